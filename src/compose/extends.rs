//! `extends:` (same file or another file) and top-level `include:`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::discover::clean;
use super::error::ComposeError;
use super::merge::merge_service;
use super::yaml::{Key, Node, Pos, Value};
use super::Loader;

/// Resolves `extends` for every service of one file's tree.
pub fn apply_extends(
    loader: &mut Loader,
    tree: &mut Node,
    file: &Path,
) -> Result<(), ComposeError> {
    let Some(services) = tree.get("services") else {
        return Ok(());
    };
    let Some(entries) = services.entries() else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .iter()
        .filter(|(_, v)| v.get("extends").is_some())
        .map(|(k, _)| k.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let snapshot = tree.clone();
    // compose-go (loader.go, extends.go): `extends.file` in a project's files
    // resolves against the project's working directory (not the directory of
    // the `-f` file that names it); in a file reached through `extends.file`,
    // against that file's directory.
    let dir = loader.work_dir.clone();
    for name in names {
        let mut chain = Vec::new();
        let resolved = resolve(loader, &snapshot, file, &dir, &name, &mut chain)?;
        if let Some(slot) = tree.get_mut("services").and_then(|s| s.get_mut(&name)) {
            *slot = resolved;
        }
    }
    Ok(())
}

/// `dir` is where this tree's relative paths (and `extends.file`) resolve.
fn resolve(
    loader: &mut Loader,
    tree: &Node,
    file: &Path,
    dir: &Path,
    name: &str,
    chain: &mut Vec<(PathBuf, String)>,
) -> Result<Node, ComposeError> {
    let key = (file.to_path_buf(), name.to_string());
    let service = tree
        .get("services")
        .and_then(|s| s.get(name))
        .cloned()
        .ok_or_else(|| ComposeError::Extends {
            pos: tree.pos.clone(),
            path: format!("services.{name}"),
            message: format!(
                "cannot extend service {name:?}: no such service in {}",
                file.display()
            ),
        })?;
    if chain.contains(&key) {
        let mut names: Vec<String> = chain.iter().map(|(_, n)| n.clone()).collect();
        names.push(name.to_string());
        return Err(ComposeError::Extends {
            pos: service.pos.clone(),
            path: format!("services.{name}.extends"),
            message: format!("circular extends: {}", names.join(" -> ")),
        });
    }
    let Some(ext) = service.get("extends").cloned() else {
        return Ok(service);
    };
    chain.push(key);
    let path = format!("services.{name}.extends");
    let (base_name, base_file) = match &ext.value {
        Value::Scalar { text, .. } => (text.clone(), None),
        Value::Map(_) => {
            let s = ext
                .get("service")
                .and_then(Node::as_scalar)
                .ok_or_else(|| ComposeError::Field {
                    pos: ext.pos.clone(),
                    path: format!("{path}.service"),
                    message: "extends needs `service:`".into(),
                })?;
            let f = ext.get("file").and_then(Node::as_scalar).map(PathBuf::from);
            (s.to_string(), f)
        }
        _ => {
            return Err(ComposeError::Field {
                pos: ext.pos.clone(),
                path,
                message: "extends takes a service name or { service, file }".into(),
            })
        }
    };
    let mut base = match base_file {
        None => resolve(loader, tree, file, dir, &base_name, chain)?,
        Some(f) => {
            let other = clean(&dir.join(f));
            let other_tree = loader.read_interpolated(&other, Some(&ext.pos))?;
            let other_dir = other.parent().unwrap_or(Path::new(".")).to_path_buf();
            let mut base = resolve(loader, &other_tree, &other, &other_dir, &base_name, chain)?;
            if other_dir != dir {
                rebase_service(&mut base, &other_dir);
            }
            base
        }
    };
    chain.pop();
    if let Value::Map(entries) = &mut base.value {
        entries.retain(|(k, _)| k.name != "extends");
    }
    let mut own = service;
    if let Value::Map(entries) = &mut own.value {
        entries.retain(|(k, _)| k.name != "extends");
    }
    let pos = own.pos.clone();
    let mut merged = merge_service(base, own);
    merged.pos = pos;
    Ok(merged)
}

fn is_relative_path(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('/') && !s.starts_with('~') && !s.contains("://")
}

fn absolutize(node: &mut Node, dir: &Path) {
    if let Value::Scalar { text, .. } = &mut node.value {
        if is_relative_path(text) {
            *text = clean(&dir.join(&*text)).to_string_lossy().into_owned();
        }
    }
}

/// Makes the relative paths of a service from another directory absolute:
/// build context, env_file, label_file, bind mount sources.
pub fn rebase_service(service: &mut Node, dir: &Path) {
    if let Some(build) = service.get_mut("build") {
        if build.as_scalar().is_some() {
            absolutize(build, dir);
        } else if let Some(ctx) = build.get_mut("context") {
            absolutize(ctx, dir);
        }
    }
    for key in ["env_file", "label_file"] {
        let Some(files) = service.get_mut(key) else {
            continue;
        };
        match &mut files.value {
            Value::Scalar { .. } => absolutize(files, dir),
            Value::Seq(items) => {
                for item in items {
                    if item.as_scalar().is_some() {
                        absolutize(item, dir);
                    } else if let Some(p) = item.get_mut("path") {
                        absolutize(p, dir);
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Seq(items)) = service.get_mut("volumes").map(|v| &mut v.value) {
        for item in items {
            match &mut item.value {
                Value::Scalar { text, .. } if text.starts_with('.') => {
                    if let Some((src, rest)) = text.split_once(':') {
                        let abs = clean(&dir.join(src)).to_string_lossy().into_owned();
                        *text = format!("{abs}:{rest}");
                    }
                }
                Value::Map(_) => {
                    let is_bind = item.get("type").and_then(Node::as_scalar) == Some("bind");
                    if is_bind {
                        if let Some(src) = item.get_mut("source") {
                            absolutize(src, dir);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Gives `- VAR` entries of a service's list-form `environment` the value the
/// included project's environment has for VAR (its `env_file`s under the
/// process environment), as compose-go's ResolveEnvironment does for each
/// included model (include_test.go TestLoadWithIncludeEnv). Unset ones stay bare.
fn resolve_bare_environment(service: &mut Node, env: &HashMap<String, String>) {
    let Some(Value::Seq(items)) = service.get_mut("environment").map(|e| &mut e.value) else {
        return;
    };
    for item in items {
        if let Value::Scalar { text, .. } = &mut item.value {
            if !text.contains('=') {
                if let Some(v) = env.get(text.as_str()) {
                    *text = format!("{text}={v}");
                }
            }
        }
    }
}

/// One `include:` entry: files, env files and project directory.
struct IncludeEntry {
    paths: Vec<PathBuf>,
    env_files: Vec<PathBuf>,
    project_dir: Option<PathBuf>,
    pos: Pos,
}

fn strings(node: &Node, path: &str) -> Result<Vec<String>, ComposeError> {
    match &node.value {
        Value::Scalar { text, .. } => Ok(vec![text.clone()]),
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_scalar()
                    .map(str::to_string)
                    .ok_or_else(|| ComposeError::Field {
                        pos: i.pos.clone(),
                        path: path.to_string(),
                        message: "expected a string".into(),
                    })
            })
            .collect(),
        _ => Err(ComposeError::Field {
            pos: node.pos.clone(),
            path: path.to_string(),
            message: "expected a string or a list of strings".into(),
        }),
    }
}

/// Loads the files named under `include:` and adds their services, networks and
/// volumes; a name defined differently on both sides is an error, as in Compose.
pub fn apply_include(
    loader: &mut Loader,
    tree: &mut Node,
    _file: &Path,
) -> Result<(), ComposeError> {
    let Some(include) = tree.get("include").cloned() else {
        return Ok(());
    };
    if let Value::Map(entries) = &mut tree.value {
        entries.retain(|(k, _)| k.name != "include");
    }
    // compose-go include.go: paths, `project_directory` and `env_file` of an
    // include entry resolve against the including project's working directory.
    let dir = loader.work_dir.clone();
    let Value::Seq(items) = &include.value else {
        return Err(ComposeError::Field {
            pos: include.pos.clone(),
            path: "include".into(),
            message: "include takes a list".into(),
        });
    };
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("include[{i}]");
        let entry = match &item.value {
            Value::Scalar { text, .. } => IncludeEntry {
                paths: vec![PathBuf::from(text)],
                env_files: vec![],
                project_dir: None,
                pos: item.pos.clone(),
            },
            Value::Map(_) => {
                let p = item.get("path").ok_or_else(|| ComposeError::Field {
                    pos: item.pos.clone(),
                    path: format!("{path}.path"),
                    message: "include needs `path:`".into(),
                })?;
                IncludeEntry {
                    paths: strings(p, &format!("{path}.path"))?
                        .into_iter()
                        .map(PathBuf::from)
                        .collect(),
                    env_files: match item.get("env_file") {
                        Some(e) => strings(e, &format!("{path}.env_file"))?
                            .into_iter()
                            .map(PathBuf::from)
                            .collect(),
                        None => vec![],
                    },
                    project_dir: item
                        .get("project_directory")
                        .and_then(Node::as_scalar)
                        .map(PathBuf::from),
                    pos: item.pos.clone(),
                }
            }
            _ => {
                return Err(ComposeError::Field {
                    pos: item.pos.clone(),
                    path,
                    message: "an include entry is a path or { path, env_file, project_directory }"
                        .into(),
                })
            }
        };
        entries.push(entry);
    }
    for entry in entries {
        let files: Vec<PathBuf> = entry.paths.iter().map(|p| clean(&dir.join(p))).collect();
        let project_dir = entry
            .project_dir
            .map(|p| clean(&dir.join(p)))
            .unwrap_or_else(|| {
                files
                    .first()
                    .and_then(|f| f.parent().map(Path::to_path_buf))
                    .unwrap_or_else(|| dir.clone())
            });
        let env_files: Vec<PathBuf> = if entry.env_files.is_empty() {
            let d = project_dir.join(".env");
            if d.is_file() {
                vec![d]
            } else {
                vec![]
            }
        } else {
            entry
                .env_files
                .iter()
                .map(|p| clean(&dir.join(p)))
                .collect()
        };
        let mut env: HashMap<String, String> = HashMap::new();
        for f in &env_files {
            let mut lookup = env.clone();
            lookup.extend(
                loader
                    .process_env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            for (k, v) in super::env::read_dotenv_pinned(f, &lookup, Some(&loader.process_env))
                .map_err(ComposeError::EnvFile)?
            {
                env.insert(k, v);
            }
        }
        env.extend(
            loader
                .process_env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let saved_dir = std::mem::replace(&mut loader.work_dir, project_dir.clone());
        let included = loader.load_files(&files, env.clone(), Some(&entry.pos));
        loader.work_dir = saved_dir;
        let mut included = included?;
        if let Some(Value::Map(services)) = included.get_mut("services").map(|s| &mut s.value) {
            for (_, svc) in services.iter_mut() {
                rebase_service(svc, &project_dir);
                resolve_bare_environment(svc, &env);
            }
        }
        for section in ["services", "networks", "volumes"] {
            let Some(Value::Map(imported)) = included.get(section).map(|s| s.value.clone()) else {
                continue;
            };
            if tree.get(section).is_none() {
                if let Value::Map(top) = &mut tree.value {
                    top.push((
                        Key {
                            name: section.into(),
                            pos: entry.pos.clone(),
                        },
                        Node::new(Value::Map(vec![]), entry.pos.clone()),
                    ));
                }
            }
            let Some(target) = tree.get_mut(section) else {
                continue;
            };
            if target.is_null() {
                target.value = Value::Map(vec![]);
            }
            let Value::Map(existing) = &mut target.value else {
                continue;
            };
            for (k, v) in imported {
                if let Some((ek, ev)) = existing.iter().find(|(e, _)| e.name == k.name) {
                    if ev.to_json() != v.to_json() {
                        return Err(ComposeError::Include {
                            pos: ek.pos.clone(),
                            message: format!(
                                "{section}.{} is also defined by an included file at {}; Compose refuses conflicting definitions",
                                k.name, v.pos
                            ),
                        });
                    }
                    continue;
                }
                existing.push((k, v));
            }
        }
    }
    Ok(())
}
