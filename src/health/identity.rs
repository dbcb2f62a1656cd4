//! Which stack a muster supervises, and where it listens when no address is
//! given.
//!
//! Why: with one fixed default address, `muster status` in project B asked
//! whatever muster answered there, project A's included, and printed A's
//! services as B's. So every answer of the health endpoint names its stack
//! (`X-Muster-Project` and `X-Muster-Namespace` headers, and `muster` in
//! `/status`), clients compare that with the stack they are about, and a muster
//! started without `--listen` takes an address of its own, derived from the
//! project and namespace, that clients derive the same way.
//!
//! The rule ([`derived_ports`]): FNV-1a (64 bit) of `namespace/project`
//! picks one of [`DERIVED_PORT_COUNT`] ports from [`DERIVED_PORT_FIRST`]
//! (28700-29699, below Linux's ephemeral range 32768-60999 so outgoing
//! connections never hold it, above the usual development ports). A muster
//! binds the first free one of [`DERIVED_CANDIDATES`] ports from there (a
//! port held by something else, or a hash collision, moves it on by one);
//! clients ask those same ports on 127.0.0.1 and keep the one whose headers
//! name their stack.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The stack a muster supervises: what `/status` says under `muster`, and
/// the headers of every answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Identity {
    /// The compose project name.
    pub project: String,
    /// The key prefix in Redis (one per stack).
    pub namespace: String,
    /// The compose files it read, in merge order.
    #[serde(default)]
    pub compose_files: Vec<String>,
    /// The muster process.
    #[serde(default)]
    pub pid: u32,
    /// Where its health endpoint listens.
    #[serde(default)]
    pub listen: String,
}

pub const PROJECT_HEADER: &str = "x-muster-project";
pub const NAMESPACE_HEADER: &str = "x-muster-namespace";
pub const PID_HEADER: &str = "x-muster-pid";
/// The compose files, comma-separated, each percent-encoded.
pub const COMPOSE_FILES_HEADER: &str = "x-muster-compose-files";

/// The first port of the derived range.
pub const DERIVED_PORT_FIRST: u16 = 28700;
/// How many ports the derived range holds.
pub const DERIVED_PORT_COUNT: u16 = 1000;
/// How many ports from the derived one a muster tries to bind, and clients ask.
pub const DERIVED_CANDIDATES: u16 = 8;
/// The address muster used by default before the derived rule: clients ask
/// it last (a muster pinned there with `--listen`, e.g. the example stack's
/// sidecar published on 127.0.0.1:8686), and believe it only when its
/// headers name their stack.
pub const LEGACY_ADDRESS: &str = "127.0.0.1:8686";

impl Identity {
    /// True when this is the muster of `project` in `namespace`.
    pub fn is_stack(&self, project: &str, namespace: &str) -> bool {
        self.project == project && self.namespace == namespace
    }

    /// `project "a" (namespace "b")`, for messages.
    pub fn describe(&self) -> String {
        describe(&self.project, &self.namespace)
    }

    /// The response headers that carry it (values that are not visible
    /// ASCII are percent-encoded).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let files: Vec<String> = self.compose_files.iter().map(|f| encode(f)).collect();
        vec![
            (PROJECT_HEADER, encode(&self.project)),
            (NAMESPACE_HEADER, encode(&self.namespace)),
            (PID_HEADER, self.pid.to_string()),
            (COMPOSE_FILES_HEADER, files.join(",")),
        ]
    }

    /// From response headers (name, value) as a client read them; `None`
    /// when the project or namespace header is missing (not a muster, or one
    /// from before these headers).
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Identity> {
        let mut id = Identity::default();
        let (mut project, mut namespace) = (false, false);
        for (name, value) in headers {
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                PROJECT_HEADER => {
                    id.project = decode(value);
                    project = true;
                }
                NAMESPACE_HEADER => {
                    id.namespace = decode(value);
                    namespace = true;
                }
                PID_HEADER => id.pid = value.parse().unwrap_or(0),
                COMPOSE_FILES_HEADER => {
                    id.compose_files = value
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(decode)
                        .collect()
                }
                _ => {}
            }
        }
        (project && namespace).then_some(id)
    }
}

/// `project "a" (namespace "b")`.
pub fn describe(project: &str, namespace: &str) -> String {
    format!("project {project:?} (namespace {namespace:?})")
}

/// Bytes outside visible ASCII, `%` and `,` are escaped.
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b',')
    .add(b'"');

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, HEADER_UNSAFE).to_string()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// FNV-1a, 64 bit: a fixed, documented hash (std's hasher may change
/// between Rust releases, and the port must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The ports, in order, that the muster of `project` in `namespace` tries
/// when no address is given (see the module doc).
pub fn derived_ports(project: &str, namespace: &str) -> Vec<u16> {
    let first = fnv1a(format!("{namespace}/{project}").as_bytes()) % u64::from(DERIVED_PORT_COUNT);
    (0..DERIVED_CANDIDATES)
        .map(|i| DERIVED_PORT_FIRST + ((first as u16 + i) % DERIVED_PORT_COUNT))
        .collect()
}

/// [`derived_ports`] on 127.0.0.1.
pub fn derived_addresses(project: &str, namespace: &str) -> Vec<SocketAddr> {
    derived_ports(project, namespace)
        .into_iter()
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ports_are_stable_and_in_range() {
        let ports = derived_ports("muster-demo", "muster");
        assert_eq!(ports.len(), usize::from(DERIVED_CANDIDATES));
        // Fixed by the documented rule: a new muster must find an old one.
        assert_eq!(
            ports[0],
            DERIVED_PORT_FIRST + (fnv1a(b"muster/muster-demo") % 1000) as u16
        );
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        for p in &ports {
            assert!((DERIVED_PORT_FIRST..DERIVED_PORT_FIRST + DERIVED_PORT_COUNT).contains(p));
        }
        assert_ne!(derived_ports("a", "muster"), derived_ports("b", "muster"));
        assert_ne!(derived_ports("a", "muster"), derived_ports("a", "other"));
        // The window wraps inside the range.
        let last = (0..5000)
            .map(|i| derived_ports(&format!("p{i}"), "n"))
            .find(|p| p[0] == DERIVED_PORT_FIRST + DERIVED_PORT_COUNT - 1)
            .expect("some project hashes to the last port");
        assert_eq!(last[1], DERIVED_PORT_FIRST);
    }

    #[test]
    fn identity_round_trips_through_headers() {
        let id = Identity {
            project: "shop".into(),
            namespace: "team a".into(),
            compose_files: vec!["/srv/a,b/compose.yaml".into(), "/srv/über.yaml".into()],
            pid: 42,
            listen: String::new(),
        };
        let headers = id.headers();
        for (_, value) in &headers {
            assert!(
                value.bytes().all(|b| b.is_ascii_graphic() || b == b','),
                "{value}"
            );
        }
        let back = Identity::from_headers(headers.iter().map(|(n, v)| (*n, v.as_str()))).unwrap();
        assert_eq!(back, id);
        assert!(back.is_stack("shop", "team a") && !back.is_stack("shop", "muster"));
        assert!(Identity::from_headers([("content-type", "text/plain")]).is_none());
    }
}
