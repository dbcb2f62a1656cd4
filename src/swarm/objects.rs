//! A stack's `secrets:` and `configs:` on Swarm, as `docker stack deploy`
//! makes them: one Swarm secret or config object per top-level entry a
//! deployed service uses, named `<stack>_<key>` (or its `name:`), labelled
//! with the stack namespace, and referenced from the task's container spec,
//! so every task on every node gets the file from Swarm.
//!
//! Why not the single-host way: there a `file:` secret is bind-mounted from
//! the muster host and an `environment:` one is written into the created
//! container; on Swarm the task runs on another node, where neither exists.
//!
//! Swarm objects cannot change. A config's data can be read back, so a
//! config that exists with other content is refused (naming it and what to
//! do); a secret's cannot, so an existing secret of that name is used as it
//! is (README "Limits"). `external:` ones must exist. Contents travel only as
//! [`SecretValue`] and base64 in the create call; never logged or printed.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::{
    ServiceSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
};
use serde_json::Value;

use super::raw;
use super::spec::NAMESPACE;
use super::SwarmError;
use crate::compose::{FileKind, FileObject, Project, SecretValue, Service};
use crate::engine::secrets::{read_content, FileError};
use crate::engine::Engine;

/// One object the stack needs, with its content (`None`: external).
#[derive(Debug, Clone)]
pub struct Wanted {
    pub kind: FileKind,
    /// The top-level key.
    pub key: String,
    /// Its name on Swarm.
    pub name: String,
    pub content: Option<SecretValue>,
}

/// (kind, key) -> (Swarm id, Swarm name).
pub type Ids = HashMap<(FileKind, String), (String, String)>;

fn word(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Secret => "secret",
        FileKind::Config => "config",
    }
}

/// Every secret and config the project's services use, read (files, env
/// values) and checked before anything is created. Pure but for reading
/// `file:` contents.
pub fn wanted(project: &Project) -> Result<Vec<Wanted>, FileError> {
    let mut out: Vec<Wanted> = Vec::new();
    for service in project.services.values() {
        let refs = service
            .secrets
            .iter()
            .map(|r| (FileKind::Secret, r))
            .chain(service.configs.iter().map(|r| (FileKind::Config, r)));
        for (kind, r) in refs {
            if out.iter().any(|w| w.kind == kind && w.key == r.source) {
                continue;
            }
            let objects = match kind {
                FileKind::Secret => &project.secrets,
                FileKind::Config => &project.configs,
            };
            let Some(object) = objects.get(&r.source) else {
                return Err(FileError::Undeclared {
                    service: service.name.clone(),
                    kind: word(kind),
                    name: r.source.clone(),
                });
            };
            out.push(Wanted {
                kind,
                key: r.source.clone(),
                name: swarm_name(project, &r.source, object),
                content: match object.external {
                    true => None,
                    false => Some(read_content(&service.name, kind, &r.source, object)?),
                },
            });
        }
    }
    Ok(out)
}

/// `name:` as written, else `<stack>_<key>` (external: `name:` or the key).
fn swarm_name(project: &Project, key: &str, object: &FileObject) -> String {
    match (&object.name, object.external) {
        (Some(n), _) => n.clone(),
        (None, true) => key.to_string(),
        (None, false) => format!("{}_{key}", project.name),
    }
}

/// The existing object named exactly `name` (the Engine's filter matches
/// prefixes): its id and, for a config, its data (base64).
async fn find(engine: &Engine, kind: FileKind, name: &str) -> Result<Option<Value>, SwarmError> {
    let filters = serde_json::json!({ "name": [name] }).to_string();
    let query = raw::encode(&filters);
    let path = format!("/v{}/{}s?filters={query}", engine.api_version(), word(kind));
    let list = raw::get_json(engine.host(), &path)
        .await
        .map_err(|detail| SwarmError::Raw {
            context: format!("listing {}s named {name}", word(kind)),
            detail,
        })?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["Spec"]["Name"] == name)
        .cloned())
}

/// Creates what is missing (labelled with the stack), finds the rest;
/// returns every object's id.
pub async fn ensure(
    engine: &Engine,
    project: &Project,
    wanted: &[Wanted],
) -> Result<Ids, SwarmError> {
    let mut ids = Ids::new();
    for w in wanted {
        let kind = word(w.kind);
        let found = find(engine, w.kind, &w.name).await?;
        let id = match (found, &w.content) {
            (None, None) => {
                return Err(SwarmError::Raw {
                    context: format!("{kind} {:?} is external", w.key),
                    detail: format!(
                        "no {kind} named {} on the swarm: create it first (`docker {kind} create {} FILE`)",
                        w.name, w.name
                    ),
                })
            }
            (Some(o), content) => {
                let data = o["Spec"]["Data"].as_str().unwrap_or_default();
                if let (FileKind::Config, Some(c)) = (w.kind, content) {
                    let now = base64::engine::general_purpose::STANDARD.encode(&c.0);
                    if data != now {
                        return Err(SwarmError::Raw {
                            context: format!("config {:?}", w.key),
                            detail: format!(
                                "config {} exists on the swarm with other content, and Swarm configs cannot \
                                 change: give the new content another `name:` (e.g. {}_v2), or remove the \
                                 services that use it and the config first",
                                w.name, w.name
                            ),
                        });
                    }
                }
                o["ID"].as_str().unwrap_or_default().to_string()
            }
            (None, Some(content)) => {
                let body = serde_json::json!({
                    "Name": w.name,
                    "Labels": { NAMESPACE: project.name },
                    "Data": base64::engine::general_purpose::STANDARD.encode(&content.0),
                });
                let path = format!("/v{}/{kind}s/create", engine.api_version());
                let (status, reply) = raw::request(engine.host(), "POST", &path, Some(&body))
                    .await
                    .map_err(|detail| SwarmError::Raw {
                        context: format!("creating {kind} {}", w.name),
                        detail,
                    })?;
                if status != 201 && status != 200 {
                    return Err(SwarmError::Raw {
                        context: format!("creating {kind} {}", w.name),
                        detail: format!("HTTP {status}: {}", String::from_utf8_lossy(&reply).trim()),
                    });
                }
                let v: Value = serde_json::from_slice(&reply).unwrap_or_default();
                v["ID"].as_str().unwrap_or_default().to_string()
            }
        };
        ids.insert((w.kind, w.key.clone()), (id, w.name.clone()));
    }
    Ok(ids)
}

/// `service`'s secrets and configs as references in its Swarm spec: a
/// secret at `/run/secrets/<target or key>` (mode 0444, as docker stack
/// deploy), a config at `/<key>` or its target. Pure.
pub fn attach(spec: &mut ServiceSpec, service: &Service, ids: &Ids) {
    let Some(c) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    else {
        return;
    };
    let id = |kind: FileKind, key: &str| ids.get(&(kind, key.to_string())).cloned();
    let secrets: Vec<TaskSpecContainerSpecSecrets> = service
        .secrets
        .iter()
        .filter_map(|r| {
            let (secret_id, secret_name) = id(FileKind::Secret, &r.source)?;
            Some(TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(r.target.clone().unwrap_or_else(|| r.source.clone())),
                    uid: Some(r.uid.clone().unwrap_or_else(|| "0".into())),
                    gid: Some(r.gid.clone().unwrap_or_else(|| "0".into())),
                    mode: Some(r.mode.unwrap_or(0o444)),
                }),
                secret_id: Some(secret_id),
                secret_name: Some(secret_name),
            })
        })
        .collect();
    let configs: Vec<TaskSpecContainerSpecConfigs> = service
        .configs
        .iter()
        .filter_map(|r| {
            let (config_id, config_name) = id(FileKind::Config, &r.source)?;
            Some(TaskSpecContainerSpecConfigs {
                file: Some(TaskSpecContainerSpecFile1 {
                    name: Some(r.container_path(FileKind::Config)),
                    uid: Some(r.uid.clone().unwrap_or_else(|| "0".into())),
                    gid: Some(r.gid.clone().unwrap_or_else(|| "0".into())),
                    mode: Some(r.mode.unwrap_or(0o444)),
                }),
                config_id: Some(config_id),
                config_name: Some(config_name),
                ..Default::default()
            })
        })
        .collect();
    c.secrets = Some(secrets).filter(|s| !s.is_empty());
    c.configs = Some(configs).filter(|c| !c.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::FileRef;

    #[test]
    fn names_contents_and_references_as_docker_stack_deploy_makes_them() {
        let mut p = Project {
            name: "shop".into(),
            ..Default::default()
        };
        p.secrets.insert(
            "token".into(),
            FileObject {
                environment: Some("TOKEN".into()),
                value: Some(SecretValue("hunter2".into())),
                ..Default::default()
            },
        );
        p.secrets.insert(
            "shared".into(),
            FileObject {
                external: true,
                name: Some("org_shared".into()),
                ..Default::default()
            },
        );
        p.configs.insert(
            "app".into(),
            FileObject {
                content: Some("a=1".into()),
                ..Default::default()
            },
        );
        let api = Service {
            name: "api".into(),
            image: Some("api:1".into()),
            secrets: vec![
                FileRef {
                    source: "token".into(),
                    ..Default::default()
                },
                FileRef {
                    source: "shared".into(),
                    target: Some("s".into()),
                    ..Default::default()
                },
            ],
            configs: vec![FileRef {
                source: "app".into(),
                target: Some("/etc/app.conf".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        p.services.insert("api".into(), api.clone());
        let w = wanted(&p).unwrap();
        let names: Vec<(&str, bool)> = w
            .iter()
            .map(|w| (w.name.as_str(), w.content.is_some()))
            .collect();
        assert_eq!(
            names,
            [
                ("shop_token", true),
                ("org_shared", false),
                ("shop_app", true)
            ]
        );
        assert!(!format!("{w:?}").contains("hunter2"));

        let mut ids = Ids::new();
        for x in &w {
            ids.insert(
                (x.kind, x.key.clone()),
                (format!("id-{}", x.key), x.name.clone()),
            );
        }
        let mut spec = ServiceSpec {
            task_template: Some(bollard::models::TaskSpec {
                container_spec: Some(Default::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        attach(&mut spec, &api, &ids);
        let c = spec.task_template.unwrap().container_spec.unwrap();
        let secrets = c.secrets.unwrap();
        assert_eq!(secrets[0].secret_name.as_deref(), Some("shop_token"));
        assert_eq!(
            secrets[0].file.as_ref().unwrap().name.as_deref(),
            Some("token")
        );
        assert_eq!(secrets[1].file.as_ref().unwrap().name.as_deref(), Some("s"));
        let configs = c.configs.unwrap();
        assert_eq!(configs[0].config_id.as_deref(), Some("id-app"));
        assert_eq!(
            configs[0].file.as_ref().unwrap().name.as_deref(),
            Some("/etc/app.conf")
        );

        p.services.get_mut("api").unwrap().secrets[0].source = "missing".into();
        let err = wanted(&p).unwrap_err().to_string();
        assert!(
            err.contains("missing") && err.contains("not declared"),
            "{err}"
        );
    }
}
