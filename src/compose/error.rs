//! Why a project could not be loaded. Every message names the file (with line and
//! column when there is one) and the field path, such as
//! `services.api.healthcheck.interval`.

use std::path::PathBuf;

use super::yaml::Pos;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("no compose file found in {} or its parents (looked for compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml)", dir.display())]
    NoComposeFile { dir: PathBuf },
    #[error(transparent)]
    EnvFile(#[from] super::env::DotenvError),
    /// YAML syntax errors, alias bombs, duplicate keys.
    #[error("{pos}: {message}")]
    Yaml { pos: Pos, message: String },
    /// `${VAR:?message}` / `${VAR?message}` with VAR missing.
    #[error("{pos}: {path}: required variable {variable} is missing a value: {message}")]
    MissingVariable {
        pos: Pos,
        path: String,
        variable: String,
        message: String,
    },
    #[error("{pos}: {path}: invalid interpolation format: {reason}")]
    Interpolation {
        pos: Pos,
        path: String,
        reason: String,
    },
    /// A field with the wrong shape or value.
    #[error("{pos}: {path}: {message}")]
    Field {
        pos: Pos,
        path: String,
        message: String,
    },
    #[error("{pos}: {path}: {source}")]
    Duration {
        pos: Pos,
        path: String,
        source: crate::duration::DurationError,
    },
    /// A bad `x-muster` block (probe kind, probe field, grace).
    #[error("{pos}: {path}: invalid x-muster settings: {message}")]
    Muster {
        pos: Pos,
        path: String,
        message: String,
    },
    #[error("{pos}: services.{service}.depends_on: service {service:?} depends on undefined service {dependency:?}")]
    UnknownDependency {
        pos: Pos,
        service: String,
        dependency: String,
    },
    #[error("{pos}: services.{service}.depends_on: service {service:?} depends on service {dependency:?}, which is disabled by its profiles [{profiles}]; enable one with --profile or COMPOSE_PROFILES")]
    DisabledDependency {
        pos: Pos,
        service: String,
        dependency: String,
        profiles: String,
    },
    #[error("{pos}: services.{service}: service {service:?} has neither an image nor a build context specified")]
    NoImageOrBuild { pos: Pos, service: String },
    /// The cycle as `a -> b -> c -> a`; `pos` is where `a` names `b`.
    #[error("{pos}: services.{service}.depends_on: dependency cycle: {cycle}")]
    Cycle {
        pos: Pos,
        service: String,
        cycle: String,
    },
    #[error("{pos}: {path}: {message}")]
    Extends {
        pos: Pos,
        path: String,
        message: String,
    },
    #[error("{pos}: include: {message}")]
    Include { pos: Pos, message: String },
    #[error("{0}")]
    ProjectName(String),
}
