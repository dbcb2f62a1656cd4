//! Helpers shared by the compose tests: load fixtures with a controlled environment.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use muster::compose::{self, ComposeError, LoadOptions, Project, Warning};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose")
}

pub fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn options(files: &[&str], vars: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        files: files.iter().map(|f| fixtures().join(f)).collect(),
        environment: Some(env(vars)),
        working_dir: Some(fixtures()),
        ..Default::default()
    }
}

pub fn load(files: &[&str], vars: &[(&str, &str)]) -> Result<Project, ComposeError> {
    compose::load(&options(files, vars))
}

pub fn load_ok(files: &[&str], vars: &[(&str, &str)]) -> Project {
    match load(files, vars) {
        Ok(p) => p,
        Err(e) => panic!("loading {files:?} failed: {e}"),
    }
}

pub fn load_warnings(files: &[&str], vars: &[(&str, &str)]) -> (Project, Vec<Warning>) {
    compose::load_with_warnings(&options(files, vars)).unwrap_or_else(|e| panic!("{e}"))
}

/// The error text with the fixture directory cut off, for exact assertions.
pub fn load_err(files: &[&str], vars: &[(&str, &str)]) -> String {
    match load(files, vars) {
        Ok(_) => panic!("loading {files:?} should fail"),
        Err(e) => e
            .to_string()
            .replace(&format!("{}/", fixtures().display()), ""),
    }
}

/// Writes `text` to `dir/rel` (creating parent directories), as compose-go's
/// tests write their projects to a scratch directory.
pub fn write_file(dir: &std::path::Path, rel: &str, text: &str) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dir");
    }
    std::fs::write(&path, text).expect("write fixture");
    path
}

/// Loads `files` of `dir` with only `vars` as the environment and an optional `-p`.
pub fn load_dir(
    dir: &std::path::Path,
    files: &[&str],
    vars: &[(&str, &str)],
    name: Option<&str>,
) -> Result<Project, ComposeError> {
    compose::load(&LoadOptions {
        files: files.iter().map(|f| dir.join(f)).collect(),
        environment: Some(env(vars)),
        working_dir: Some(dir.to_path_buf()),
        project_name: name.map(str::to_string),
        ..Default::default()
    })
}
