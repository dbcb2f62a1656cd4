//! Builds inside `up`: a service with `build:` gets its image built before
//! its containers are created when `up --build` asks for it, when its
//! `pull_policy` is `build`, or when the image is missing; `up --no-build`
//! never builds (a missing image then fails the service, naming the flag).
//!
//! Why a file of its own: it keeps the hook in the service task to one call,
//! and the decision (build or not, and why a missing image fails) in one
//! place. Services that share an image wait for one build of it.

use super::*;
use crate::engine::build::{dockerfile, BuildFlags};

/// What `up` does about images of services that have `build:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildPolicy {
    /// Build when the image is missing (or `pull_policy: build`).
    #[default]
    Missing,
    /// `up --build`: build every selected service that has `build:`.
    Always,
    /// `up --no-build`: never build.
    Never,
}

/// One build per image per `up`, shared by the services that use the image.
pub(super) type Builds = HashMap<String, Arc<tokio::sync::OnceCell<Result<(), String>>>>;

/// The images of the selected services that have `build:`.
pub(super) fn builds_for(project: &Project, order: &[String]) -> Builds {
    order
        .iter()
        .map(|n| &project.services[n])
        .filter(|s| s.build.is_some())
        .filter_map(|s| s.image.clone())
        .map(|image| (image, Arc::default()))
        .collect()
}

/// Applies `up --build` / `up --no-build` to the per-service image decisions
/// of `images.rs` (which already say `Build` for a service with `build:`
/// whose image is missing, or with `pull_policy: build`): `--build` builds
/// every selected service that has `build:` (instead of pulling or using the
/// image there); `--no-build` never builds, so a missing image fails the
/// service with what to run instead.
pub(super) fn apply_policy(
    policy: BuildPolicy,
    project: &Project,
    local: &HashMap<String, Option<images::Local>>,
    decisions: &mut BTreeMap<String, images::Decision>,
    pulls: &mut BTreeMap<String, Vec<String>>,
) {
    for (name, decision) in decisions.iter_mut() {
        let service = &project.services[name];
        if service.build.is_none() {
            continue;
        }
        match policy {
            BuildPolicy::Missing => {}
            BuildPolicy::Always => *decision = images::Decision::Build,
            BuildPolicy::Never if *decision == images::Decision::Build => {
                let image = service.image.as_deref().unwrap_or_default();
                *decision = if local.get(image).is_some_and(Option::is_some) {
                    images::Decision::Present
                } else {
                    images::Decision::Refuse(format!(
                        "image {image} is not present and --no-build forbids building it (run `muster build {name}` first)"
                    ))
                };
            }
            BuildPolicy::Never => {}
        }
    }
    // An image now built is not pulled as well.
    for services in pulls.values_mut() {
        services.retain(|s| decisions.get(s) == Some(&images::Decision::Pull));
    }
    pulls.retain(|_, services| !services.is_empty());
}

/// Builds the service's image (once per image however many services use it).
pub(super) async fn build_image(ctx: &Ctx, service: &Service) -> Result<(), String> {
    let Some(image) = &service.image else {
        return Err(format!(
            "no image (set `image:` or `build:` for {})",
            service.name
        ));
    };
    build_once(ctx, service, image).await
}

async fn build_once(ctx: &Ctx, service: &Service, image: &str) -> Result<(), String> {
    let cell = ctx.builds.get(image).cloned().unwrap_or_default();
    let name = service.name.clone();
    cell.get_or_init(|| async {
        ctx.writes
            .set(&name, ServiceState::Pending, format!("building {image}"));
        let writes = ctx.writes.clone();
        let mut on_line = |line: &str| {
            if let Some((_, step)) = dockerfile::parse_step(line) {
                writes.set(
                    &name,
                    ServiceState::Pending,
                    format!("building {image}: {step}"),
                );
            }
        };
        match ctx
            .engine
            .build_service(&ctx.project, service, BuildFlags::default(), &mut on_line)
            .await
        {
            Ok(built) => {
                tracing::info!(service = %name, image = %built.image, id = %built.id, "built");
                Ok(())
            }
            Err(e) => Err(crate::error_text::error_chain(&e)),
        }
    })
    .await
    .clone()
}
