//! Image builds through the engine's build API (`POST /build`, bollard's
//! `build_image`), as `docker compose build` does them with the classic
//! builder: the context directory is streamed as a tar ([`context`]) with
//! `.dockerignore` applied ([`ignore`]), the compose `build:` keys become the
//! API's parameters, and the engine's output is handed line by line to the
//! caller (who prints it per service, or not).
//!
//! Why here: building is an engine operation like creating a container; the
//! supervisor's `up` and the CLI's `muster build` both call [`Engine::build_service`].
//! A failed build is a [`BuildError`] that names the service, the Dockerfile
//! line and step, and carries the failed step's whole log.

pub mod context;
pub mod dockerfile;
pub mod ignore;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptions, TagImageOptions};
use futures_util::StreamExt;
use serde::Serialize;

use super::client::{Engine, EngineError};
use super::labels;
use crate::compose::{Build, Project, Service};
use context::{ContextSpec, ContextStats};
use ignore::IgnoreRules;

/// Name under which an inline Dockerfile, or one from outside the context,
/// travels in the context (the Docker CLI does the same with a name of its own).
const EXTRA_DOCKERFILE: &str = ".muster.Dockerfile";

/// Flags of one build (`--no-cache`, `--pull`) over the service's own keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFlags {
    pub no_cache: bool,
    pub pull: bool,
}

/// One finished build.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltImage {
    pub service: String,
    /// The image name the service runs (`image:` or `<project>-<service>`).
    pub image: String,
    /// The image ID (`sha256:…`).
    pub id: String,
    /// Extra tags from `build.tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Bytes of the build context sent to the engine.
    pub context_bytes: u64,
    /// Regular files in the build context.
    pub context_files: u64,
    #[serde(with = "crate::duration::serde_dur")]
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("service {service} has no build: section")]
    NoBuild { service: String },
    /// A context that is not a local directory; `origin` is where it is written.
    #[error("{origin}: services.{service}.build.context: {message}")]
    Context {
        service: String,
        origin: String,
        message: String,
    },
    #[error("service {service}: Dockerfile {}: {source}", path.display())]
    Dockerfile {
        service: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service {service}: {}:{}: {}", path.display(), .source.line, .source.message)]
    Ignore {
        service: String,
        path: PathBuf,
        #[source]
        source: ignore::IgnoreError,
    },
    #[error("service {service}: services.{service}.build.{field}: {message}")]
    Option {
        service: String,
        field: &'static str,
        message: String,
    },
    #[error("service {service}: sending the build context {}: {source}", context.display())]
    Archive {
        service: String,
        context: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The engine refused the build or a step failed. `at` is
    /// `Dockerfile:LINE` when known, `step` the engine's `Step n/m : …`.
    #[error("service {service}: build failed{}{}: {message}{}",
        at.as_ref().map(|a| format!(" at {a}")).unwrap_or_default(),
        step.as_ref().map(|s| format!(" (step {s})")).unwrap_or_default(),
        if log.is_empty() { String::new() } else { format!("\n--- output of the failed step ---\n{log}") })]
    Failed {
        service: String,
        at: Option<String>,
        step: Option<String>,
        message: String,
        log: String,
    },
    #[error("service {service}: {source}")]
    Engine {
        service: String,
        #[source]
        source: EngineError,
    },
}

impl BuildError {
    /// The service whose build failed.
    pub fn service(&self) -> &str {
        match self {
            BuildError::NoBuild { service }
            | BuildError::Context { service, .. }
            | BuildError::Dockerfile { service, .. }
            | BuildError::Ignore { service, .. }
            | BuildError::Option { service, .. }
            | BuildError::Archive { service, .. }
            | BuildError::Failed { service, .. }
            | BuildError::Engine { service, .. } => service,
        }
    }
}

/// What the engine is asked to do for one service, worked out from the model
/// before anything is sent (so bad input fails before a byte goes out).
struct Prepared {
    options: BuildImageOptions,
    spec: ContextSpec,
    /// The Dockerfile as the user names it in messages, and its instruction lines.
    dockerfile_shown: String,
    instruction_lines: Vec<usize>,
}

fn prepare(
    project: &Project,
    service: &Service,
    build: &Build,
    image: &str,
    flags: BuildFlags,
) -> Result<Prepared, BuildError> {
    let name = service.name.clone();
    let context_err = |message: String| BuildError::Context {
        service: name.clone(),
        origin: if build.origin.is_empty() {
            project
                .config_files
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        } else {
            build.origin.clone()
        },
        message,
    };
    let ctx = &build.context;
    if ctx.contains("://") || ctx.starts_with("git@") {
        return Err(context_err(format!(
            "{ctx} is a URL; muster builds from a local directory only (clone the repository and point build.context at it)"
        )));
    }
    let root = PathBuf::from(ctx);
    match std::fs::metadata(&root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(context_err(format!("{ctx} is not a directory"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(context_err(format!("build context {ctx} does not exist")))
        }
        Err(e) => return Err(context_err(format!("build context {ctx}: {e}"))),
    }

    // The Dockerfile: inline, inside the context, or outside it (then sent
    // under a name of its own, as the Docker CLI does).
    let mut extra = Vec::new();
    let (dockerfile_name, dockerfile_text, dockerfile_shown, dockerfile_abs) = match &build
        .dockerfile_inline
    {
        Some(text) => {
            extra.push((EXTRA_DOCKERFILE.to_string(), text.clone().into_bytes()));
            (
                EXTRA_DOCKERFILE.to_string(),
                text.clone(),
                format!("services.{name}.build.dockerfile_inline"),
                None,
            )
        }
        None => {
            let given = build.dockerfile.as_deref().unwrap_or("Dockerfile");
            let abs = if Path::new(given).is_absolute() {
                PathBuf::from(given)
            } else {
                root.join(given)
            };
            let text = std::fs::read_to_string(&abs).map_err(|source| BuildError::Dockerfile {
                service: name.clone(),
                path: abs.clone(),
                source,
            })?;
            let inside = abs
                .strip_prefix(&root)
                .ok()
                .and_then(|p| p.to_str())
                .map(ignore::clean)
                .filter(|p| !p.starts_with(".."));
            let in_tar = match inside {
                Some(rel) => rel,
                None => {
                    extra.push((EXTRA_DOCKERFILE.to_string(), text.clone().into_bytes()));
                    EXTRA_DOCKERFILE.to_string()
                }
            };
            (in_tar, text, abs.display().to_string(), Some(abs))
        }
    };

    // `<Dockerfile>.dockerignore` first, then the context's `.dockerignore`.
    let ignore_file = dockerfile_abs
        .map(|d| PathBuf::from(format!("{}.dockerignore", d.display())))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| root.join(".dockerignore"));
    let mut rules = match std::fs::read_to_string(&ignore_file) {
        Ok(text) => IgnoreRules::parse(&text).map_err(|source| BuildError::Ignore {
            service: name.clone(),
            path: ignore_file.clone(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(e) => {
            return Err(BuildError::Archive {
                service: name.clone(),
                context: ignore_file,
                source: e,
            })
        }
    };
    // The Dockerfile and .dockerignore are always sent.
    for keep in [dockerfile_name.as_str(), ".dockerignore"] {
        if rules.excludes(keep) {
            let _ = rules.push(&format!("!{keep}"), 0);
        }
    }

    let shm_size = match build.shm_size {
        Some(bytes) => Some(i32::try_from(bytes).map_err(|_| BuildError::Option {
            service: name.clone(),
            field: "shm_size",
            message: format!("{bytes} bytes is more than the engine's build API accepts (2 GiB)"),
        })?),
        None => None,
    };
    let mut image_labels: HashMap<String, String> = build
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    image_labels.insert(labels::PROJECT.into(), project.name.clone());
    image_labels.insert(labels::SERVICE.into(), name.clone());
    let args: HashMap<String, String> = build
        .args
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    let options = BuildImageOptions {
        dockerfile: dockerfile_name,
        t: Some(image.to_string()),
        extrahosts: (!build.extra_hosts.is_empty()).then(|| build.extra_hosts.join(",")),
        nocache: flags.no_cache || build.no_cache,
        cachefrom: (!build.cache_from.is_empty()).then(|| build.cache_from.clone()),
        pull: (flags.pull || build.pull).then(|| "1".to_string()),
        rm: true,
        forcerm: true,
        buildargs: (!args.is_empty()).then_some(args),
        shmsize: shm_size,
        labels: Some(image_labels),
        networkmode: build.network.clone(),
        platform: build.platforms.first().cloned().unwrap_or_default(),
        target: build.target.clone().unwrap_or_default(),
        ..Default::default()
    };
    Ok(Prepared {
        options,
        spec: ContextSpec { root, rules, extra },
        instruction_lines: dockerfile::instruction_lines(&dockerfile_text),
        dockerfile_shown,
    })
}

/// Follows the engine's output: whole lines to `on_line`, the current step
/// and its log, the image ID.
#[derive(Default)]
struct Output {
    partial: String,
    step: Option<(usize, String)>,
    step_log: Vec<String>,
    image_id: Option<String>,
}

impl Output {
    fn push(&mut self, text: &str, on_line: &mut (dyn FnMut(&str) + Send)) {
        self.partial.push_str(text);
        while let Some(at) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=at).collect();
            self.line(line.trim_end_matches(['\n', '\r']), on_line);
        }
    }

    fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(line.trim_end(), on_line);
        }
    }

    fn line(&mut self, line: &str, on_line: &mut (dyn FnMut(&str) + Send)) {
        if let Some((n, instruction)) = dockerfile::parse_step(line) {
            let of = line
                .trim_start()
                .strip_prefix("Step ")
                .and_then(|r| r.split(" : ").next())
                .unwrap_or_default()
                .to_string();
            self.step = Some((n, format!("{of}: {instruction}")));
            self.step_log.clear();
        } else if let Some(id) = line.strip_prefix("Successfully built ") {
            self.image_id.get_or_insert_with(|| id.trim().to_string());
        } else if !line.starts_with(" ---> ")
            && !line.starts_with("Removing intermediate container")
        {
            // The step's own output, without the builder's bookkeeping.
            self.step_log.push(line.to_string());
        }
        on_line(line);
    }
}

impl Engine {
    /// Builds `service`'s image and tags it with its image name and
    /// `build.tags`. Each line of the engine's output goes to `on_line`.
    pub async fn build_service(
        &self,
        project: &Project,
        service: &Service,
        flags: BuildFlags,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<BuiltImage, BuildError> {
        let name = service.name.clone();
        let build = service.build.as_ref().ok_or_else(|| BuildError::NoBuild {
            service: name.clone(),
        })?;
        let image = service
            .image
            .clone()
            .unwrap_or_else(|| crate::compose::normalize::default_image_name(&project.name, &name));
        let began = Instant::now();
        let prepared = prepare(project, service, build, &image, flags)?;
        let context_root = prepared.spec.root.clone();
        tracing::info!(service = %name, image = %image, context = %context_root.display(), "building");
        let (rx, sender) = context::stream(prepared.spec);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut stream =
            self.docker()
                .build_image(prepared.options, None, Some(bollard::body_try_stream(body)));
        let mut out = Output::default();
        let mut failure: Option<(String, bool)> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        out.push(text, on_line);
                    }
                    if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                        out.image_id = Some(id);
                    }
                    if let Some(status) = &info.status {
                        out.push(&format!("{status}\n"), on_line);
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    failure = Some((error, true));
                    break;
                }
                Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                    failure = Some((message, false));
                    break;
                }
                Err(e) => {
                    drop(stream);
                    // A failed walk shows up as a broken request: say why
                    // (unless the walk failed only because the request did).
                    if let Ok(Err(source)) = sender.await {
                        if source.kind() == std::io::ErrorKind::BrokenPipe {
                            return Err(BuildError::Engine {
                                service: name,
                                source: EngineError::api(format!("build {image}"), e),
                            });
                        }
                        return Err(BuildError::Archive {
                            service: name,
                            context: context_root,
                            source,
                        });
                    }
                    return Err(BuildError::Engine {
                        service: name,
                        source: EngineError::api(format!("build {image}"), e),
                    });
                }
            }
        }
        drop(stream);
        out.finish(on_line);
        let stats: ContextStats = match sender.await {
            Ok(Ok(stats)) => stats,
            // The engine answered before it read the whole context: its answer is the news.
            Ok(Err(_)) if failure.is_some() => ContextStats::default(),
            Ok(Err(source)) => {
                return Err(BuildError::Archive {
                    service: name,
                    context: context_root,
                    source,
                })
            }
            Err(join) => {
                return Err(BuildError::Archive {
                    service: name,
                    context: context_root,
                    source: std::io::Error::other(join.to_string()),
                })
            }
        };
        if let Some((message, during_step)) = failure {
            let line_of_step =
                |n: usize| prepared.instruction_lines.get(n.wrapping_sub(1)).copied();
            let (at, step, log) = match (&out.step, during_step) {
                (Some((n, text)), true) => (
                    line_of_step(*n).map(|l| format!("{}:{l}", prepared.dockerfile_shown)),
                    Some(text.clone()),
                    out.step_log.join("\n"),
                ),
                _ => (
                    dockerfile::parse_error_line(&message)
                        .map(|l| format!("{}:{l}", prepared.dockerfile_shown)),
                    None,
                    String::new(),
                ),
            };
            return Err(BuildError::Failed {
                service: name,
                at,
                step,
                message: message.trim().to_string(),
                log: log.trim_end().to_string(),
            });
        }
        let id = match out.image_id.clone() {
            Some(id) if id.starts_with("sha256:") => id,
            _ => self
                .image_info(&image)
                .await
                .map_err(|source| BuildError::Engine {
                    service: name.clone(),
                    source,
                })?
                .map(|i| i.id)
                .unwrap_or_default(),
        };
        for tag in &build.tags {
            let (repo, tag_part) = split_reference(tag);
            self.docker()
                .tag_image(
                    &id,
                    Some(TagImageOptions {
                        repo: Some(repo.to_string()),
                        tag: Some(tag_part.to_string()),
                    }),
                )
                .await
                .map_err(|e| BuildError::Engine {
                    service: name.clone(),
                    source: EngineError::api(format!("tag {id} as {tag}"), e),
                })?;
        }
        Ok(BuiltImage {
            service: name,
            image,
            id,
            tags: build.tags.clone(),
            context_bytes: stats.bytes,
            context_files: stats.files,
            elapsed: began.elapsed(),
        })
    }
}

/// `registry:5000/app:1.2` -> (`registry:5000/app`, `1.2`); no tag -> `latest`.
pub fn split_reference(reference: &str) -> (&str, &str) {
    let name_start = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[name_start..].rfind(':') {
        Some(at) => (
            &reference[..name_start + at],
            &reference[name_start + at + 1..],
        ),
        None => (reference, "latest"),
    }
}

/// Where each service's build output goes: `(service, line)`.
pub type LineSink = std::sync::Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How many builds run at once (`muster build` of many services).
pub const PARALLEL_BUILDS: usize = 4;

/// Builds the buildable services among `names` (all when empty), up to
/// [`PARALLEL_BUILDS`] at once; one result per image, in service order.
pub async fn build_services(
    engine: &Engine,
    project: &Project,
    names: &[String],
    flags: BuildFlags,
    sink: LineSink,
) -> Vec<Result<BuiltImage, BuildError>> {
    let services = buildable(project, names);
    let mut results: Vec<(String, Result<BuiltImage, BuildError>)> =
        futures_util::stream::iter(services.into_iter().map(|service| {
            let sink = sink.clone();
            async move {
                let name = service.name.clone();
                let mut on_line = |line: &str| sink(&name, line);
                let r = engine
                    .build_service(project, service, flags, &mut on_line)
                    .await;
                (service.name.clone(), r)
            }
        }))
        .buffer_unordered(PARALLEL_BUILDS)
        .collect()
        .await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results.into_iter().map(|(_, r)| r).collect()
}

/// Services of `project` that have `build:`, among `names` (all when empty),
/// one per image name (two services sharing an image build it once).
pub fn buildable<'a>(project: &'a Project, names: &[String]) -> Vec<&'a Service> {
    let mut by_image: BTreeMap<String, &Service> = BTreeMap::new();
    for s in project.services.values() {
        if s.build.is_none() || !(names.is_empty() || names.contains(&s.name)) {
            continue;
        }
        let image = s.image.clone().unwrap_or_else(|| {
            crate::compose::normalize::default_image_name(&project.name, &s.name)
        });
        by_image.entry(image).or_insert(s);
    }
    by_image.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_reference("app"), ("app", "latest"));
        assert_eq!(split_reference("app:1"), ("app", "1"));
        assert_eq!(
            split_reference("127.0.0.1:5000/team/app:v2"),
            ("127.0.0.1:5000/team/app", "v2")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "latest")
        );
    }

    #[test]
    fn output_tracks_the_step_and_its_log() {
        let mut out = Output::default();
        let mut seen = Vec::new();
        let mut sink = |l: &str| seen.push(l.to_string());
        out.push("Step 1/2 : FROM scratch\n ---> \nStep 2/2 : RU", &mut sink);
        out.push("N false\n ---> Running in 1\nboom\n", &mut sink);
        assert_eq!(out.step, Some((2, "2/2: RUN false".to_string())));
        assert_eq!(out.step_log, vec!["boom"]);
        assert_eq!(seen.len(), 5);
    }
}
