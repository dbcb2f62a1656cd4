//! Which files, which project directory, which name, which variables, which
//! profiles: everything decided before a compose file is read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::env::read_dotenv_pinned;
use super::{ComposeError, LoadOptions};

/// Default file names, in Compose's order of preference.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
/// Override files looked for next to the discovered file.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// What discovery settled.
#[derive(Debug, Clone)]
pub struct Setup {
    pub files: Vec<PathBuf>,
    pub project_dir: PathBuf,
    /// Variables for interpolation: env files under the process environment.
    pub env: HashMap<String, String>,
    /// An explicit name (`-p` or `COMPOSE_PROJECT_NAME`), validated later.
    pub explicit_name: Option<String>,
    pub profiles: Vec<String>,
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    clean(&joined)
}

/// Removes `.` and resolves `..` lexically (no symlink resolution, as Compose).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Finds compose.yaml (or the other default names) in `dir` or a parent, plus its override.
pub fn discover_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut current = Some(dir);
    while let Some(d) = current {
        if let Some(found) = DEFAULT_FILES
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
        {
            let mut files = vec![found];
            if let Some(o) = OVERRIDE_FILES
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file())
            {
                files.push(o);
            }
            return Some(files);
        }
        current = d.parent();
    }
    None
}

fn read_env_files(
    files: &[PathBuf],
    process: &HashMap<String, String>,
) -> Result<HashMap<String, String>, ComposeError> {
    let mut env: HashMap<String, String> = HashMap::new();
    for f in files {
        // Earlier env files are visible to later ones; the process environment wins.
        let mut lookup = env.clone();
        lookup.extend(process.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (k, v) in
            read_dotenv_pinned(f, &lookup, Some(process)).map_err(ComposeError::EnvFile)?
        {
            env.insert(k, v);
        }
    }
    Ok(env)
}

/// Splits `COMPOSE_FILE` with `COMPOSE_PATH_SEPARATOR` (default `:` on unix, `;` on Windows).
pub fn split_compose_file(value: &str, env: &HashMap<String, String>) -> Vec<PathBuf> {
    let default_sep = if cfg!(windows) { ";" } else { ":" };
    let sep = env
        .get("COMPOSE_PATH_SEPARATOR")
        .filter(|s| !s.is_empty())
        .map(String::as_str)
        .unwrap_or(default_sep);
    value
        .split(sep)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

pub fn setup(options: &LoadOptions) -> Result<Setup, ComposeError> {
    let process: HashMap<String, String> = options
        .environment
        .clone()
        .unwrap_or_else(|| std::env::vars().collect());
    let cwd = match &options.working_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| ComposeError::Io {
            path: PathBuf::from("."),
            message: format!("cannot read the current directory: {e}"),
        })?,
    };
    let explicit_dir = options
        .project_directory
        .as_ref()
        .map(|d| absolute(&cwd, d));
    let explicit_env_files: Vec<PathBuf> = options
        .env_files
        .iter()
        .map(|f| absolute(&cwd, f))
        .collect();

    let dotenv_for = |dir: &Path| -> Result<HashMap<String, String>, ComposeError> {
        if !explicit_env_files.is_empty() {
            return read_env_files(&explicit_env_files, &process);
        }
        let dotenv = dir.join(".env");
        if dotenv.is_file() {
            read_env_files(&[dotenv], &process)
        } else {
            Ok(HashMap::new())
        }
    };
    let merged = |dotenv: HashMap<String, String>| {
        let mut env = dotenv;
        env.extend(process.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    };

    // A first guess at the project directory, to read `.env` (which may set COMPOSE_FILE).
    let first_guess = explicit_dir
        .clone()
        .or_else(|| {
            options
                .files
                .first()
                .and_then(|f| absolute(&cwd, f).parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(|| cwd.clone());
    let mut env = merged(dotenv_for(&first_guess)?);

    let files: Vec<PathBuf> = if !options.files.is_empty() {
        options.files.iter().map(|f| absolute(&cwd, f)).collect()
    } else if let Some(cf) = env.get("COMPOSE_FILE").filter(|v| !v.is_empty()) {
        split_compose_file(cf, &env)
            .iter()
            .map(|f| absolute(&first_guess, f))
            .collect()
    } else {
        discover_files(&cwd).ok_or_else(|| ComposeError::NoComposeFile { dir: cwd.clone() })?
    };
    for f in &files {
        if !f.is_file() {
            return Err(ComposeError::Io {
                path: f.clone(),
                message: "no such compose file".into(),
            });
        }
    }
    let project_dir = explicit_dir.unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| cwd.clone())
    });
    if project_dir != first_guess {
        env = merged(dotenv_for(&project_dir)?);
    }
    let explicit_name = options
        .project_name
        .clone()
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").cloned())
        .filter(|n| !n.is_empty());
    let profiles: Vec<String> = if !options.profiles.is_empty() {
        options
            .profiles
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    } else {
        env.get("COMPOSE_PROFILES")
            .map(|v| {
                v.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Setup {
        files,
        project_dir,
        env,
        explicit_name,
        profiles,
    })
}

/// Compose's rule for a name taken from a directory: lowercase, keep `[a-z0-9_-]`,
/// drop leading `_` and `-`.
pub fn normalize_project_name(raw: &str) -> String {
    let lowered = raw.to_lowercase();
    let kept: String = lowered
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// A name given explicitly (`-p`, `COMPOSE_PROJECT_NAME`, `name:`) must already be valid.
pub fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("__x-Y"), "x-y");
        assert!(valid_project_name("stack_1-a"));
        assert!(!valid_project_name("Stack"));
        assert!(!valid_project_name("-x"));
        assert!(!valid_project_name(""));
    }

    #[test]
    fn compose_file_separator() {
        let mut env = HashMap::new();
        assert_eq!(split_compose_file("a.yml:b.yml", &env).len(), 2);
        env.insert("COMPOSE_PATH_SEPARATOR".to_string(), ";".to_string());
        assert_eq!(
            split_compose_file("a.yml;b.yml", &env),
            vec![PathBuf::from("a.yml"), PathBuf::from("b.yml")]
        );
    }
}
