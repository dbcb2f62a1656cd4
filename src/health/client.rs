//! The client side of the health endpoint: finds the muster of one stack and
//! asks it one thing (`muster status`, `check --service`, `check --self`,
//! `rollout status`).
//!
//! Why: trusting whatever answers on an address gave project B the services
//! of project A's muster. [`find`] asks the given address, or the ports the
//! stack's muster derives when none is given ([`super::identity`]), and keeps
//! only an answer whose `X-Muster-Project` / `X-Muster-Namespace` name the
//! stack; every other answer is reported, so the caller can say which muster
//! it found instead. The HTTP client is a blocking one-request GET, fast
//! enough for a healthcheck that runs every second.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::identity::{self, Identity};

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Header names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The stack the answering muster supervises, from its headers.
    pub fn identity(&self) -> Option<Identity> {
        Identity::from_headers(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// The stack a client is about: its namespace always, its project when one
/// is known (`-p`, `COMPOSE_PROJECT_NAME` or a compose file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub project: Option<String>,
    pub namespace: String,
}

impl Wanted {
    /// True when `id` is this stack's muster (any project when none is known).
    pub fn matches(&self, id: &Identity) -> bool {
        id.namespace == self.namespace && self.project.as_ref().is_none_or(|p| *p == id.project)
    }

    /// `project "a" (namespace "b")`, or `namespace "b"` when no project is known.
    pub fn describe(&self) -> String {
        match &self.project {
            Some(p) => identity::describe(p, &self.namespace),
            None => format!("namespace {:?}", self.namespace),
        }
    }
}

/// What answered where, when the stack's own muster did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elsewhere {
    /// A muster of another stack.
    Other { addr: String, identity: Identity },
    /// Something that does not say which stack it supervises.
    Anonymous { addr: String, code: u16 },
    /// Nothing answered (refused, timed out).
    Unreachable { addr: String, error: String },
}

impl std::fmt::Display for Elsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Elsewhere::Other { addr, identity } => write!(
                f,
                "the muster at {addr} supervises {} (pid {})",
                identity.describe(),
                identity.pid
            ),
            Elsewhere::Anonymous { addr, code } => write!(
                f,
                "{addr} answered HTTP {code} without saying which stack it supervises (no {} header)",
                identity::PROJECT_HEADER
            ),
            Elsewhere::Unreachable { addr, error } => write!(f, "{addr}: {error}"),
        }
    }
}

/// The outcome of [`find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The stack's muster: its address and its answer.
    pub found: Option<(String, Reply)>,
    /// Every other address asked, in order, and what was there.
    pub elsewhere: Vec<Elsewhere>,
}

impl Lookup {
    /// The first muster of another stack that answered, if any.
    pub fn other(&self) -> Option<(&str, &Identity)> {
        self.elsewhere.iter().find_map(|e| match e {
            Elsewhere::Other { addr, identity } => Some((addr.as_str(), identity)),
            _ => None,
        })
    }

    /// Why nothing was found, in one line: a muster of another stack first,
    /// else what the addresses answered.
    pub fn why_not(&self, wanted: &Wanted) -> String {
        if let Some((addr, id)) = self.other() {
            return format!(
                "the muster at {addr} supervises {} (pid {}), not {}",
                id.describe(),
                id.pid,
                wanted.describe()
            );
        }
        // Addresses that failed the same way are named together.
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for e in &self.elsewhere {
            let (addr, why) = match e {
                Elsewhere::Unreachable { addr, error } => (addr.as_str(), error.clone()),
                other => ("", other.to_string()),
            };
            match groups.iter_mut().find(|(w, _)| *w == why) {
                Some((_, addrs)) => addrs.push(addr),
                None => groups.push((why, vec![addr])),
            }
        }
        let tried: Vec<String> = groups
            .into_iter()
            .map(|(why, addrs)| match addrs.as_slice() {
                [""] => why,
                _ => format!("{}: {why}", addrs.join(", ")),
            })
            .collect();
        format!(
            "no muster of {} answers ({})",
            wanted.describe(),
            tried.join("; ")
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("no address to ask: give --listen / MUSTER_LISTEN, or name the project (-p, COMPOSE_PROJECT_NAME or a compose file) so that its muster's address can be derived")]
    NoAddress,
}

/// The addresses to ask, in order: `listen` as given (an unspecified IP such
/// as `0.0.0.0` asked on loopback, `http://host:port/` accepted), else the
/// derived ports of `wanted`'s stack on 127.0.0.1 and then
/// [`identity::LEGACY_ADDRESS`].
pub fn addresses(listen: Option<&str>, wanted: &Wanted) -> Result<Vec<String>, FindError> {
    match (listen, &wanted.project) {
        (Some(listen), _) => Ok(vec![connect_address(listen)]),
        (None, Some(project)) => Ok(identity::derived_addresses(project, &wanted.namespace)
            .iter()
            .map(ToString::to_string)
            .chain(std::iter::once(identity::LEGACY_ADDRESS.to_string()))
            .collect()),
        (None, None) => Err(FindError::NoAddress),
    }
}

/// Where a client connects for a listen setting.
fn connect_address(listen: &str) -> String {
    let text = listen.trim();
    let text = text
        .strip_prefix("http://")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(text);
    match super::parse_listen(text) {
        Ok(addr) if addr.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, addr.port()).to_string()
        }
        // A host name stays as written (it resolves on each request).
        _ => text.to_string(),
    }
}

/// Asks `path` at each of [`addresses`] until the muster of `wanted`'s stack
/// answers; `timeout` bounds each request.
pub fn find(
    listen: Option<&str>,
    wanted: &Wanted,
    path: &str,
    timeout: Duration,
) -> Result<Lookup, FindError> {
    let mut lookup = Lookup {
        found: None,
        elsewhere: Vec::new(),
    };
    for addr in addresses(listen, wanted)? {
        match get(&addr, path, timeout) {
            Err(e) => lookup.elsewhere.push(Elsewhere::Unreachable {
                addr,
                error: e.to_string(),
            }),
            Ok(reply) => match reply.identity() {
                Some(id) if wanted.matches(&id) => {
                    lookup.found = Some((addr, reply));
                    break;
                }
                Some(identity) => lookup.elsewhere.push(Elsewhere::Other { addr, identity }),
                None => lookup.elsewhere.push(Elsewhere::Anonymous {
                    addr,
                    code: reply.code,
                }),
            },
        }
    }
    Ok(lookup)
}

/// A minimal HTTP/1.1 GET (`Connection: close`).
pub fn get(addr: &str, path: &str, timeout: Duration) -> std::io::Result<Reply> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("address resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: muster\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("incomplete HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no HTTP status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = &raw[end + 4..];
    if !chunked {
        return Ok(Reply {
            code,
            headers,
            body: body.to_vec(),
        });
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        if rest.len() < size {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
    Ok(Reply {
        code,
        headers,
        body: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_given_or_derived() {
        let wanted = Wanted {
            project: Some("shop".into()),
            namespace: "muster".into(),
        };
        assert_eq!(
            addresses(Some("0.0.0.0:8686"), &wanted).unwrap(),
            ["127.0.0.1:8686"]
        );
        assert_eq!(addresses(Some(":9"), &wanted).unwrap(), ["127.0.0.1:9"]);
        assert_eq!(
            addresses(Some("http://muster:8686/"), &wanted).unwrap(),
            ["muster:8686"]
        );
        let derived = addresses(None, &wanted).unwrap();
        assert_eq!(derived.len(), usize::from(identity::DERIVED_CANDIDATES) + 1);
        assert!(derived[0].starts_with("127.0.0.1:"));
        assert_eq!(derived.last().unwrap(), identity::LEGACY_ADDRESS);
        let nameless = Wanted {
            project: None,
            namespace: "muster".into(),
        };
        assert!(addresses(None, &nameless).is_err());
        let id = Identity {
            project: "other".into(),
            namespace: "muster".into(),
            ..Default::default()
        };
        assert!(nameless.matches(&id) && !wanted.matches(&id));
    }

    #[test]
    fn responses_with_headers_and_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\nX-Muster-Project: a\r\nx-muster-namespace: n\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let reply = parse_response(raw).unwrap();
        assert_eq!((reply.code, reply.body.as_slice()), (200, &b"ok"[..]));
        let id = reply.identity().unwrap();
        assert!(id.is_stack("a", "n"));
        assert!(parse_response(b"HTTP/1.1 200").is_err());
        let reply = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((reply.code, reply.body.as_slice()), (200, &b"ok"[..]));
        assert!(reply.identity().is_none());
        let reply = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((reply.code, reply.body.as_slice()), (503, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
