//! The HTTP call of a `pre_stop` hook (`x-muster.rollout.pre_stop.http`): one
//! request through the http probe's client, so the hook speaks the same
//! HTTP/TLS as the probes do, and its status code or the reason it failed.
//! Kept apart from the executor, which only decides when the hook runs.

use std::time::Duration;

/// One HTTP request for the pre-stop hook; the status code.
pub(super) async fn http_call(method: &str, url: &str, timeout: Duration) -> Result<u16, String> {
    let target = crate::probe::http::HttpTarget::parse(url, &Default::default())?;
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut conn = crate::probe::http::HttpConn::new();
    match tokio::time::timeout(timeout, conn.request(&target, &method, &[], timeout, false)).await {
        Err(_) => Err(format!(
            "no answer within {}",
            crate::duration::format(timeout)
        )),
        Ok(Err(f)) => Err(f.reason),
        Ok(Ok(resp)) if resp.status.is_success() => Ok(resp.status.as_u16()),
        Ok(Ok(resp)) => Err(format!("HTTP {}", resp.status.as_u16())),
    }
}
