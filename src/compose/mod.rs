//! Loading a compose project the way Docker Compose does: file discovery,
//! interpolation, merging of several files, profiles, validation.
//!
//! The pipeline, one module per step:
//! [`discover`] (files, project directory, `.env`, name, profiles) ->
//! [`yaml`] (text -> positioned tree; anchors, merge keys, alias budget) ->
//! [`interpolate`] (`${VAR:-x}` …) -> [`extends`] (`extends:` and `include:`) ->
//! [`merge`] (later files over earlier ones, `!reset`, `!override`) ->
//! [`normalize`] (tree -> [`model`] types, Docker defaults, implicit deps) ->
//! [`validate`] (dependencies, image/build, unknown-field warnings) ->
//! [`consistency`] (compose-go's checkConsistency refusals).
//!
//! Beside the pipeline: [`xmuster`], the schema of the `x-muster:` key (probes,
//! grace, restart) that normalize reads into each service, and [`graph`], the
//! dependency graph over the loaded model, and [`hash`], the service in Docker
//! Compose's JSON shape and its `com.docker.compose.config-hash`.

pub mod blkio;
pub mod consistency;
pub mod devices;
pub mod discover;
pub mod document;
pub mod env;
mod error;
pub mod extends;
pub mod graph;
pub mod hash;
pub mod interpolate;
pub mod locate;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod objects;
pub mod validate;
pub mod volume_mount;
pub mod xmuster;
pub mod yaml;

pub use error::ComposeError;
pub use model::*;
pub use objects::{FileKind, FileObject, FileRef, SecretValue};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml::{Node, Pos, Value};

/// Largest compose file read (a 500-service stack is about 100 KB).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What `-f`, `-p`, `--profile`, `--env-file` and `--project-directory` say.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compose files in merge order; empty = `COMPOSE_FILE`, then discovery in the working directory.
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    /// Profiles to enable; empty = `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// Env files for interpolation; empty = the project directory's `.env`.
    pub env_files: Vec<PathBuf>,
    pub project_directory: Option<PathBuf>,
    /// Variables for interpolation; `None` = the process environment.
    pub environment: Option<HashMap<String, String>>,
    /// Directory to discover compose files in; `None` = the current directory.
    pub working_dir: Option<PathBuf>,
}

/// Something Compose would accept but a user likely wants to know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
}

/// Reads files with the interpolation environment of the project (or of an
/// included project) and runs the per-file steps.
pub struct Loader {
    pub process_env: HashMap<String, String>,
    env: HashMap<String, String>,
    stack: Vec<PathBuf>,
    pub warnings: Vec<Warning>,
    unset_reported: std::collections::BTreeSet<String>,
    /// Top-level files already parsed to find the project name, read once.
    parsed: HashMap<PathBuf, Node>,
    /// The directory `extends.file` and `include` paths resolve against: the
    /// project directory, an include's `project_directory`, or the directory of
    /// a file reached through `extends.file` (compose-go's localResourceLoader).
    pub work_dir: PathBuf,
}

impl Loader {
    fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        self.warnings.push(Warning { message });
    }

    fn read_raw(&mut self, path: &Path, from: Option<&Pos>) -> Result<Node, ComposeError> {
        if let Some(tree) = self.parsed.remove(path) {
            return Ok(tree);
        }
        let io = |message: String| match from {
            Some(pos) => ComposeError::Field {
                pos: pos.clone(),
                path: "file".into(),
                message: format!("{}: {message}", path.display()),
            },
            None => ComposeError::Io {
                path: path.to_path_buf(),
                message,
            },
        };
        let meta = std::fs::metadata(path).map_err(|e| io(format!("cannot read: {e}")))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(io(format!(
                "file is larger than {MAX_FILE_BYTES} bytes; refused"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| io(format!("cannot read: {e}")))?;
        let name: Arc<str> = Arc::from(path.display().to_string());
        yaml::parse(&text, &name).map_err(|e| ComposeError::Yaml {
            pos: e.pos,
            message: e.message,
        })
    }

    /// Reads and interpolates one file with the current environment.
    pub fn read_interpolated(
        &mut self,
        path: &Path,
        from: Option<&Pos>,
    ) -> Result<Node, ComposeError> {
        let mut tree = self.read_raw(path, from)?;
        if tree.is_null() {
            // As compose-go (loader_test.go TestEmptyFile): a file with no
            // document (empty, or only comments) is refused, not read as an
            // empty project.
            return Err(ComposeError::Io {
                path: path.to_path_buf(),
                message: "empty compose file (it has no YAML document; give it at least a `services:` key)".into(),
            });
        }
        if !matches!(tree.value, Value::Map(_)) {
            return Err(ComposeError::Field {
                pos: tree.pos.clone(),
                path: "(top level)".into(),
                message: format!("a compose file is a mapping, found {}", tree.kind()),
            });
        }
        let mut env = interpolate::Env::new(&self.env);
        let result = interpolate::interpolate_tree(&mut tree, &mut Vec::new(), &mut env);
        let unset = std::mem::take(&mut env.unset);
        drop(env);
        for name in unset {
            if self.unset_reported.insert(name.clone()) {
                self.warn(format!(
                    "the {name:?} variable is not set; defaulting to a blank string"
                ));
            }
        }
        result.map_err(|(pos, path, e)| match e {
            interpolate::InterpolateError::Required { variable, message } => {
                ComposeError::MissingVariable {
                    pos,
                    path,
                    variable,
                    message,
                }
            }
            interpolate::InterpolateError::Invalid { reason } => {
                ComposeError::Interpolation { pos, path, reason }
            }
        })?;
        Ok(tree)
    }

    /// Loads files in order with `env`, each with its includes and extends, merged.
    pub fn load_files(
        &mut self,
        files: &[PathBuf],
        env: HashMap<String, String>,
        from: Option<&Pos>,
    ) -> Result<Node, ComposeError> {
        let saved = std::mem::replace(&mut self.env, env);
        let result = self.load_files_inner(files, from);
        self.env = saved;
        result
    }

    fn load_files_inner(
        &mut self,
        files: &[PathBuf],
        from: Option<&Pos>,
    ) -> Result<Node, ComposeError> {
        let mut acc: Option<Node> = None;
        for file in files {
            if self.stack.contains(file) {
                let mut chain: Vec<String> =
                    self.stack.iter().map(|p| p.display().to_string()).collect();
                chain.push(file.display().to_string());
                let pos = from.cloned().unwrap_or(Pos {
                    file: Arc::from(file.display().to_string()),
                    line: 1,
                    col: 1,
                });
                return Err(ComposeError::Include {
                    pos,
                    message: format!("include cycle: {}", chain.join(" -> ")),
                });
            }
            self.stack.push(file.clone());
            let result = (|| {
                let mut tree = self.read_interpolated(file, from)?;
                extends::apply_include(self, &mut tree, file)?;
                extends::apply_extends(self, &mut tree, file)?;
                Ok::<Node, ComposeError>(tree)
            })();
            self.stack.pop();
            let tree = result?;
            acc = Some(match acc {
                None => tree,
                Some(base) => merge::merge_top(base, tree),
            });
        }
        let mut tree = acc.unwrap_or_else(|| {
            Node::new(
                Value::Map(vec![]),
                Pos {
                    file: Arc::from("(none)"),
                    line: 1,
                    col: 1,
                },
            )
        });
        merge::strip_tags(&mut tree);
        merge::enforce_unicity(&mut tree);
        Ok(tree)
    }
}

impl Loader {
    /// The project name as Compose settles it before interpolation: `-p` or
    /// `COMPOSE_PROJECT_NAME`, else the last file's interpolated `name:`, else
    /// the project directory's name. `None` when no name can be derived (the
    /// model step reports it).
    fn project_name(&mut self, setup: &discover::Setup) -> Result<Option<String>, ComposeError> {
        if let Some(n) = &setup.explicit_name {
            return Ok(Some(n.clone()));
        }
        let mut from_files = None;
        for file in &setup.files {
            let tree = self.read_raw(file, None)?;
            if let Some(text) = tree.get("name").and_then(Node::as_scalar) {
                let mut env = interpolate::Env::new(&setup.env);
                // An error here is reported with its position when the file is read.
                if let Ok(n) = interpolate::interpolate(text, &mut env) {
                    if !n.is_empty() {
                        from_files = Some(n);
                    }
                }
            }
            self.parsed.insert(file.clone(), tree);
        }
        if from_files.is_some() {
            return Ok(from_files);
        }
        let base = setup
            .project_dir
            .file_name()
            .map(|s| discover::normalize_project_name(&s.to_string_lossy()))
            .filter(|n| !n.is_empty());
        Ok(base)
    }
}

/// Loads, interpolates, merges and validates a compose project.
/// Warnings go to `tracing`.
pub fn load(options: &LoadOptions) -> Result<Project, ComposeError> {
    load_with_warnings(options).map(|(project, _)| project)
}

/// As [`load`], and also returns the warnings (unknown fields, unset variables, …).
pub fn load_with_warnings(options: &LoadOptions) -> Result<(Project, Vec<Warning>), ComposeError> {
    let setup = discover::setup(options)?;
    let process_env: HashMap<String, String> = options
        .environment
        .clone()
        .unwrap_or_else(|| std::env::vars().collect());
    let mut setup = setup;
    let mut loader = Loader {
        process_env,
        env: HashMap::new(),
        stack: Vec::new(),
        warnings: Vec::new(),
        unset_reported: Default::default(),
        parsed: HashMap::new(),
        work_dir: setup.project_dir.clone(),
    };
    // As compose-go (loader.go projectName, TestProjectNameInterpolation): the
    // name is settled before the files are interpolated, and the files see it
    // as ${COMPOSE_PROJECT_NAME}.
    if let Some(name) = loader.project_name(&setup)? {
        setup.env.insert("COMPOSE_PROJECT_NAME".into(), name);
    }
    let tree = loader.load_files(&setup.files, setup.env.clone(), None)?;
    let mut warnings = std::mem::take(&mut loader.warnings);
    validate::warn_unknown_fields(&tree, &mut warnings);
    let project = normalize::project(&tree, &setup, &mut warnings)?;
    validate::check(&project, &tree, &setup, &mut warnings)?;
    consistency::check(&project, &tree)?;
    Ok((project, warnings))
}
