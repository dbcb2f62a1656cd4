//! Secrets and configs in the model: the top-level `secrets:` / `configs:`
//! entries and a service's references to them. Kept apart from model.rs
//! because a secret's value needs care the other keys do not: it is held in
//! [`SecretValue`], which never serialises and prints as `<redacted>`, so it
//! cannot reach a log, an error, `/status` or `config --json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A secret's value read from the environment at load time. Never
/// serialised; `Debug` hides it.
#[derive(Clone, Default, PartialEq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A top-level `secrets:` or `configs:` entry (compose-go's
/// FileObjectConfig): where its content comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `file:`, made absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `environment:`: the variable whose value is the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `content:` (configs): the content written in the compose file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The value of `environment:`'s variable (None when it is not set:
    /// `up` then refuses, as Compose does). Never printed.
    #[serde(skip)]
    pub value: Option<SecretValue>,
}

/// One entry of a service's `secrets:` or `configs:` (short `- name` or
/// long `{source, target, uid, gid, mode}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FileRef {
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode (written in octal as `0440` or decimal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Secret (`/run/secrets/`) or config (`/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Secret,
    Config,
}

impl FileRef {
    /// The path in the container, as docker/compose places it: a secret at
    /// `/run/secrets/<target or source>` (an absolute target as is), a
    /// config at `/<source>` or its target.
    pub fn container_path(&self, kind: FileKind) -> String {
        match (kind, self.target.as_deref()) {
            (_, Some(t)) if t.starts_with('/') => t.to_string(),
            (FileKind::Secret, Some(t)) => format!("/run/secrets/{t}"),
            (FileKind::Secret, None) => format!("/run/secrets/{}", self.source),
            (FileKind::Config, Some(t)) => format!("/{t}"),
            (FileKind::Config, None) => format!("/{}", self.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_compose_places_them_and_values_never_print() {
        let r = |target: Option<&str>| FileRef {
            source: "token".into(),
            target: target.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            r(None).container_path(FileKind::Secret),
            "/run/secrets/token"
        );
        assert_eq!(
            r(Some("t")).container_path(FileKind::Secret),
            "/run/secrets/t"
        );
        assert_eq!(r(Some("/etc/t")).container_path(FileKind::Secret), "/etc/t");
        assert_eq!(r(None).container_path(FileKind::Config), "/token");
        assert_eq!(
            r(Some("/etc/c.conf")).container_path(FileKind::Config),
            "/etc/c.conf"
        );
        let o = FileObject {
            environment: Some("TOKEN".into()),
            value: Some(SecretValue("hunter2".into())),
            ..Default::default()
        };
        assert!(!format!("{o:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&o)
            .unwrap_or_default()
            .contains("hunter2"));
    }
}
