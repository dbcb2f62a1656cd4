//! A service's `secrets:` and `configs:` in its containers, as Docker Compose
//! places them without Swarm (docker/compose `pkg/compose/secrets.go` and
//! `create.go`): a `file:` one is bind-mounted read-only; one from
//! `environment:` or `content:` (or a `file:` one with `uid`/`gid`/`mode`,
//! which a bind mount cannot honour) is written into the created container
//! as a one-file tar archive before it starts. The content travels only in
//! [`InjectedFile`], whose `Debug` hides it: it is never logged or printed.

use bollard::models::{Mount, MountType};
use bollard::query_parameters::UploadToContainerOptions;

use super::client::{Engine, EngineError};
use crate::compose::{FileKind, FileObject, FileRef, Project, SecretValue, Service};

/// One file to write into a created container.
#[derive(Clone, Debug)]
pub struct InjectedFile {
    /// Absolute path in the container.
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The secret or config name, for errors.
    pub name: String,
    pub content: SecretValue,
}

/// Why a secret or config cannot be given to a container. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("service {service}: {kind} {name:?} is external: it exists only on Swarm; without Swarm Compose refuses it too (give it `file:` or `environment:`)")]
    External {
        service: String,
        kind: &'static str,
        name: String,
    },
    #[error("service {service}: environment variable {variable:?} required by {kind} {name:?} is not set")]
    Unset {
        service: String,
        kind: &'static str,
        name: String,
        variable: String,
    },
    #[error("service {service}: {kind} {name:?}: cannot read {path}: {detail}")]
    Read {
        service: String,
        kind: &'static str,
        name: String,
        path: String,
        detail: String,
    },
    #[error("service {service}: {kind} {name:?}: {field} {value:?} is not a number (a bind mount or archive needs a numeric id)")]
    Id {
        service: String,
        kind: &'static str,
        name: String,
        field: &'static str,
        value: String,
    },
    #[error("service {service}: {kind} {name:?} is not declared at the top level")]
    Undeclared {
        service: String,
        kind: &'static str,
        name: String,
    },
}

/// What the service's secrets and configs become: bind mounts for the
/// create call and files to write before start.
#[derive(Debug, Default)]
pub struct Placement {
    pub mounts: Vec<Mount>,
    pub files: Vec<InjectedFile>,
}

fn one(
    service: &Service,
    kind: FileKind,
    r: &FileRef,
    object: Option<&FileObject>,
    out: &mut Placement,
) -> Result<(), FileError> {
    let label = match kind {
        FileKind::Secret => "secret",
        FileKind::Config => "config",
    };
    let name = r.source.clone();
    let Some(object) = object else {
        return Err(FileError::Undeclared {
            service: service.name.clone(),
            kind: label,
            name,
        });
    };
    if object.external {
        return Err(FileError::External {
            service: service.name.clone(),
            kind: label,
            name,
        });
    }
    let path = r.container_path(kind);
    let attributes = r.uid.is_some() || r.gid.is_some() || r.mode.is_some();
    if let (Some(file), false) = (&object.file, attributes) {
        out.mounts.push(Mount {
            typ: Some(MountType::BIND),
            source: Some(file.clone()),
            target: Some(path),
            read_only: Some(true),
            ..Default::default()
        });
        return Ok(());
    }
    let content = read_content(&service.name, kind, &name, object)?.0;
    let id = |field: &'static str, value: &Option<String>| -> Result<u64, FileError> {
        match value {
            None => Ok(0),
            Some(v) => v.parse::<u64>().map_err(|_| FileError::Id {
                service: service.name.clone(),
                kind: label,
                name: name.clone(),
                field,
                value: v.clone(),
            }),
        }
    };
    out.files.push(InjectedFile {
        path,
        // docker/compose: 0400 for a secret, 0444 for a config.
        mode: r.mode.unwrap_or(match kind {
            FileKind::Secret => 0o400,
            FileKind::Config => 0o444,
        }),
        uid: id("uid", &r.uid)?,
        gid: id("gid", &r.gid)?,
        name: name.clone(),
        content: SecretValue(content),
    });
    Ok(())
}

/// The content of a declared, non-external secret or config: its `file:`,
/// its `environment:` variable's value, or its `content:`. Never printed.
pub fn read_content(
    service: &str,
    kind: FileKind,
    name: &str,
    object: &FileObject,
) -> Result<SecretValue, FileError> {
    let label = match kind {
        FileKind::Secret => "secret",
        FileKind::Config => "config",
    };
    if let Some(file) = &object.file {
        return std::fs::read_to_string(file)
            .map(SecretValue)
            .map_err(|e| FileError::Read {
                service: service.to_string(),
                kind: label,
                name: name.to_string(),
                path: file.clone(),
                detail: e.to_string(),
            });
    }
    if let Some(variable) = &object.environment {
        return object.value.clone().ok_or_else(|| FileError::Unset {
            service: service.to_string(),
            kind: label,
            name: name.to_string(),
            variable: variable.clone(),
        });
    }
    Ok(SecretValue(object.content.clone().unwrap_or_default()))
}

/// Where each of `service`'s secrets and configs goes.
pub fn placement(project: &Project, service: &Service) -> Result<Placement, FileError> {
    let mut out = Placement::default();
    for r in &service.secrets {
        one(
            service,
            FileKind::Secret,
            r,
            project.secrets.get(&r.source),
            &mut out,
        )?;
    }
    for r in &service.configs {
        one(
            service,
            FileKind::Config,
            r,
            project.configs.get(&r.source),
            &mut out,
        )?;
    }
    Ok(out)
}

/// A tar archive holding `files` at their absolute paths (parents created
/// by the engine's extraction).
fn archive(files: &[InjectedFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.content.0.len() as u64);
        header.set_mode(f.mode);
        header.set_uid(f.uid);
        header.set_gid(f.gid);
        header.set_entry_type(tar::EntryType::Regular);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        header.set_mtime(now);
        builder.append_data(
            &mut header,
            f.path.trim_start_matches('/'),
            f.content.0.as_bytes(),
        )?;
    }
    builder.into_inner()
}

impl Engine {
    /// Writes `files` into created container `id` (before it starts), with
    /// their modes and owners.
    pub async fn inject_files(&self, id: &str, files: &[InjectedFile]) -> Result<(), EngineError> {
        if files.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        let what = format!(
            "write secrets/configs {} into container {id}",
            names.join(", ")
        );
        let tar = archive(files).map_err(|e| EngineError::NotFound {
            what: format!("{what}: archive: {e}"),
        })?;
        self.docker()
            .upload_to_container(
                id,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..Default::default()
                }),
                bollard::body_full(tar.into()),
            )
            .await
            .map_err(|e| EngineError::api(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_carries_path_mode_and_owner_and_debug_hides_the_content() {
        let f = InjectedFile {
            path: "/run/secrets/token".into(),
            mode: 0o440,
            uid: 1000,
            gid: 1001,
            name: "token".into(),
            content: SecretValue("hunter2".into()),
        };
        assert!(!format!("{f:?}").contains("hunter2"));
        let bytes = archive(std::slice::from_ref(&f)).expect("archive");
        let mut a = tar::Archive::new(bytes.as_slice());
        let mut entries = a.entries().expect("entries");
        let mut e = entries.next().expect("one entry").expect("entry");
        assert_eq!(
            e.path().expect("path").to_string_lossy(),
            "run/secrets/token"
        );
        assert_eq!(e.header().mode().ok(), Some(0o440));
        assert_eq!(e.header().uid().ok(), Some(1000));
        assert_eq!(e.header().gid().ok(), Some(1001));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut e, &mut text).expect("read");
        assert_eq!(text, "hunter2");
    }
}
