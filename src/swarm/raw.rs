//! The Engine API as plain JSON, for what bollard's models lose: the task
//! list (`NetworksAttachments` is not in bollard's `Task`) and the service
//! spec that muster reads, changes and sends back.
//!
//! Why the spec too: bollard names a container spec's healthcheck
//! `HealthCheck`, the Engine answers `Healthcheck`. The Engine reads either
//! (Go's JSON decoding ignores case), so a spec muster *builds* keeps its
//! healthcheck, but a spec read through bollard comes back without it, and an
//! update that sends it back removes the healthcheck from the service: the
//! one thing that keeps a task that runs but does not answer out of Swarm's
//! DNS and stops a start-first update from replacing an old task with it. So
//! every read-modify-write of a service (`rollout --swarm`, the heal's
//! force-update) goes through [`inspect_service`] / [`update_service`] and
//! changes only the fields it means to; whatever else Swarm keeps in the spec,
//! known to bollard or not, goes back unchanged.
//!
//! One plain HTTP/1.0 request per call, over the engine's unix socket or TCP
//! (no TLS: `tcp://` hosts with TLS are not supported by `up --swarm` yet).

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SwarmError;

/// A service as the Engine returns it: its id, version index and spec.
#[derive(Debug, Clone)]
pub struct RawService {
    pub id: String,
    pub version: u64,
    /// `Spec`, every field as the Engine wrote it.
    pub spec: Value,
}

/// `METHOD path` on `host` (`unix://…`, `tcp://…`, `http://…`) with an
/// optional JSON body: the status code and the response body. `Err` is the
/// transport's failure as text (crate-private: callers wrap it in their own
/// typed error, with what they were doing).
pub(crate) async fn request(
    host: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Vec<u8>), String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut raw = Vec::new();
        if let Some(path) = host.strip_prefix("unix://") {
            let mut s = tokio::net::UnixStream::connect(path).await?;
            s.write_all(request.as_bytes()).await?;
            s.read_to_end(&mut raw).await?;
        } else {
            let addr = host
                .trim_start_matches("tcp://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(request.as_bytes()).await?;
            s.read_to_end(&mut raw).await?;
        }
        Ok::<_, std::io::Error>(raw)
    })
    .await
    .map_err(|_| "no answer within 10s".to_string())?
    .map_err(|e| e.to_string())?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("a response without a header end")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    Ok((status, response[split + 4..].to_vec()))
}

/// `GET path` as JSON; a status other than 200 is an error with the body.
pub(crate) async fn get_json(host: &str, path: &str) -> Result<Value, String> {
    let (status, body) = request(host, "GET", path, None).await?;
    ok_status(status, &body)?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// A status other than 200 as `HTTP <status>: <body>`.
fn ok_status(status: u16, body: &[u8]) -> Result<(), String> {
    if status == 200 {
        return Ok(());
    }
    Err(format!(
        "HTTP {status}: {}",
        String::from_utf8_lossy(body).trim()
    ))
}

fn failed(context: String) -> impl FnOnce(String) -> SwarmError {
    move |detail| SwarmError::Raw { context, detail }
}

/// `GET /services/{name}`: `None` when there is no such service.
pub async fn inspect_service(
    host: &str,
    api: &str,
    name: &str,
) -> Result<Option<RawService>, SwarmError> {
    let path = format!("/v{api}/services/{}", encode(name));
    let context = format!("inspecting service {name}");
    let (status, body) = request(host, "GET", &path, None)
        .await
        .map_err(failed(context.clone()))?;
    if status == 404 {
        return Ok(None);
    }
    ok_status(status, &body).map_err(failed(context.clone()))?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| failed(context)(e.to_string()))?;
    Ok(Some(RawService {
        id: v["ID"].as_str().unwrap_or(name).to_string(),
        version: v["Version"]["Index"].as_u64().unwrap_or_default(),
        spec: v["Spec"].clone(),
    }))
}

/// `POST /services/{id}/update?version=N` with `spec` (registry auth from
/// the spec, as `docker service update` without credentials; `rollback`:
/// Swarm's rollback to the previous spec, which ignores `spec`).
pub async fn update_service(
    host: &str,
    api: &str,
    service: &RawService,
    spec: &Value,
    rollback: bool,
) -> Result<(), SwarmError> {
    let mut path = format!(
        "/v{api}/services/{}/update?version={}&registryAuthFrom=spec",
        encode(&service.id),
        service.version
    );
    if rollback {
        path.push_str("&rollback=previous");
    }
    let name = spec["Name"].as_str().unwrap_or(&service.id).to_string();
    let context = format!("updating service {name}");
    let (status, body) = request(host, "POST", &path, Some(spec))
        .await
        .map_err(failed(context.clone()))?;
    ok_status(status, &body).map_err(failed(context))
}

/// `text` percent-encoded for a path segment or a query value.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `value[path…]` as a mutable object member, created (as `null`, and each
/// non-object on the way as `{}`) when missing.
pub fn member<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Value {
    let mut at = value;
    for key in path {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        // Indexing an object by a missing key inserts `null`.
        at = &mut at[*key];
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_created_on_the_way_and_other_fields_stay() {
        let mut spec = serde_json::json!({
            "Name": "s_api",
            "TaskTemplate": {"ContainerSpec": {"Image": "a:1", "Healthcheck": {"Test": ["NONE"]}}}
        });
        *member(&mut spec, &["TaskTemplate", "ContainerSpec", "Image"]) = "a:2".into();
        *member(&mut spec, &["UpdateConfig", "Order"]) = "start-first".into();
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], "a:2");
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0],
            "NONE"
        );
        assert_eq!(spec["UpdateConfig"]["Order"], "start-first");
    }
}
