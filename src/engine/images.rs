//! Image inspection: size, creation time, last tag time, labels,
//! healthcheck. Pulls are `pull.rs`.

use std::collections::HashMap;

use serde::Serialize;

use super::client::{is_status, Engine, EngineError};

#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// RFC 3339.
    pub created: Option<String>,
    pub labels: HashMap<String, String>,
    /// The image's healthcheck test (`["CMD-SHELL", "…"]`), if it declares one.
    pub healthcheck: Option<Vec<String>>,
    /// RFC 3339: when the image was last tagged (pulled) on this engine, if
    /// the engine knows (`pull_policy: daily` compares against it).
    pub last_tag_time: Option<String>,
}

impl Engine {
    /// Inspects a local image; `Ok(None)` when it is not present.
    pub async fn image_info(&self, reference: &str) -> Result<Option<ImageInfo>, EngineError> {
        match self.docker().inspect_image(reference).await {
            Ok(img) => {
                let config = img.config.unwrap_or_default();
                Ok(Some(ImageInfo {
                    id: img.id.unwrap_or_default(),
                    size: img.size.unwrap_or(0).max(0) as u64,
                    created: img.created.map(|c| c.to_string()),
                    labels: config.labels.unwrap_or_default(),
                    healthcheck: config
                        .healthcheck
                        .and_then(|h| h.test)
                        .filter(|t| super::declares_healthcheck(t)),
                    last_tag_time: img
                        .metadata
                        .and_then(|m| m.last_tag_time)
                        .map(|t| t.to_string()),
                }))
            }
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(EngineError::api(format!("inspect image {reference}"), e)),
        }
    }
}
