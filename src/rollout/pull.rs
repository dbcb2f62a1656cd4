//! The new image of a rollout, there before the first batch: present, or
//! pulled now with progress (following the service's `pull_policy` with
//! `up`'s rule, `supervisor::start::images::decide`), or refused when it is
//! missing and the policy is `never`. Why a step of its own: a failed pull
//! must fail the rollout before any container is stopped.

use std::time::{Duration, Instant};

use super::*;
use crate::engine::ImageInfo;
use crate::supervisor::start::images::{decide, Decision, Local};

impl Rollouts {
    pub(super) async fn ensure_image(
        &self,
        name: &str,
        spec: &Service,
        image: &str,
        reporter: &Reporter,
    ) -> Result<ImageInfo, RolloutError> {
        let info = self.engine.image_info(image).await?;
        let local = info.as_ref().map(Local::from_info);
        let missing = || RolloutError::MissingImage {
            service: name.to_string(),
            image: image.to_string(),
        };
        match decide(spec, spec.pull_policy, local, now_ms()) {
            Decision::Pull => {}
            // Present, or a `build:` service whose image is there: use it.
            _ => return info.ok_or_else(missing),
        }
        // Progress events at most once a second; the engine sends many more.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pull = self.engine.pull_image(image, move |p| {
            let _ = tx.send(p.clone());
        });
        tokio::pin!(pull);
        let mut last: Option<Instant> = None;
        let done = loop {
            tokio::select! {
                done = &mut pull => break done,
                Some(progress) = rx.recv() => {
                    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        last = Some(Instant::now());
                        reporter
                            .report(EventKind::Pulling { image: image.to_string(), progress })
                            .await;
                    }
                }
            }
        };
        let done = done.map_err(|source| RolloutError::Pull {
            service: name.to_string(),
            source: Box::new(source),
        })?;
        reporter
            .report(EventKind::Pulled {
                image: image.to_string(),
                downloaded: done.downloaded,
                elapsed_ms: done.elapsed.as_millis() as u64,
            })
            .await;
        self.engine.image_info(image).await?.ok_or_else(missing)
    }
}
