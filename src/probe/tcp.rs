//! TCP readiness: something accepts a connection at `host:port`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::address::map_host_port;
use super::{Failure, Probe, ProbeContext, ProbeError, ProbeFuture, ProbeOutcome};
use crate::compose::xmuster::TcpProbeSpec;
use crate::url::split_host_port;

const KIND: &str = "tcp";

pub struct TcpProbe {
    host: String,
    port: u16,
    timeout: Duration,
}

impl TcpProbe {
    pub fn new(
        spec: &TcpProbeSpec,
        ctx: &ProbeContext,
        timeout: Duration,
    ) -> Result<Self, ProbeError> {
        let (host, port) =
            split_host_port(&spec.address).map_err(|e| ProbeError::field(KIND, "address", e))?;
        let port = port.ok_or_else(|| {
            ProbeError::field(
                KIND,
                "address",
                format!("{:?} has no port (expected host:port)", spec.address),
            )
        })?;
        if host.is_empty() {
            return Err(ProbeError::field(
                KIND,
                "address",
                "no host (expected host:port)",
            ));
        }
        let (host, port) = map_host_port(ctx.address_mode, &ctx.published, host, port)
            .map_err(|e| ProbeError::field(KIND, "address", e.to_string()))?;
        Ok(TcpProbe {
            host,
            port,
            timeout,
        })
    }
}

impl Probe for TcpProbe {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn check(&mut self) -> ProbeFuture<'_> {
        Box::pin(async move {
            let start = Instant::now();
            match connect(&self.host, self.port, self.timeout).await {
                Ok(stream) => {
                    let peer = stream
                        .peer_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    ProbeOutcome::ok(start.elapsed(), format!("connected to {peer}"))
                }
                Err(f) => f.outcome(start.elapsed()),
            }
        })
    }
}

/// Resolves and connects within `timeout`, with a clear reason on failure:
/// DNS, refused, unreachable, timeout.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await {
            Err(_) => {
                return Err(Failure::timed_out(format!(
                    "DNS: resolving {host:?} timed out after {}",
                    crate::duration::format(timeout)
                )))
            }
            Ok(Err(e)) => {
                return Err(Failure::fail(format!(
                    "DNS: cannot resolve host {host:?}: {e}"
                )))
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
    if addrs.is_empty() {
        return Err(Failure::fail(format!("DNS: host {host:?} has no address")));
    }
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Failure::timed_out(format!(
                    "connect to {host}:{port} ({addr}) timed out after {}",
                    crate::duration::format(timeout)
                )))
            }
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("at least one address was tried");
    Err(Failure::fail(match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {host}:{port} ({addr})")
        }
        _ => format!("connect to {host}:{port} ({addr}) failed: {e}"),
    }))
}
