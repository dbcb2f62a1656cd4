//! What the watcher makes of a Redis or NATS event message: which events it
//! trusts and which are only hints. Apart from the Redis loop in `watcher.rs`
//! because the trust rule (an agent's own channel is as confined as its keys,
//! the shared channel is not) is a decision of its own, tested on its own.

use super::{Inner, Readiness, Source};
use muster_signal::read::MAX_VALUE_BYTES;
use muster_signal::{validate_name, Event};

impl Inner {
    /// The event a message carries, if it is one: bounded, well-formed, a
    /// valid agent name. An event on the shared `{ns}:events` channel
    /// (version-1 clients) or on NATS is a hint, never the truth: anyone who
    /// may publish there can write any event about any agent, while an
    /// agent's keys can be confined to that agent by ACL. So such an event
    /// makes the watcher read the named agent's keys; its payload is applied
    /// only for NATS events while Redis is away (and see [`Inner::own_event`]).
    pub(super) fn event_of(&self, payload: &[u8], source: Source) -> Option<Event> {
        if payload.len() > MAX_VALUE_BYTES {
            // Not parsed; the key itself is read at the next resync.
            tracing::debug!(
                bytes = payload.len(),
                ?source,
                "ignored an oversized ready event"
            );
            return None;
        }
        match serde_json::from_slice::<Event>(payload) {
            Ok(event) if validate_name(&event.agent).is_ok() => Some(event),
            Ok(event) => {
                tracing::warn!(agent = %event.agent.escape_debug(), "ignored an event with an invalid agent name");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, ?source, "ignored a malformed ready event");
                None
            }
        }
    }

    /// An event on the agent's own channel `{ns}:events:{agent}` (protocol
    /// version 2), `channel_agent` being the channel's last part. Applied
    /// from its payload, without reading the keys, when the payload names
    /// that same agent: the ACL that confines an agent to its own keys
    /// confines it to its own channel too (`muster acl`), so the channel is
    /// exactly as trustworthy as the keys. An event naming another agent is
    /// ignored. Returns whether it was applied.
    pub(super) fn own_event(&self, channel_agent: &str, payload: &[u8]) -> bool {
        let Some(event) = self.event_of(payload, Source::Event) else {
            return false;
        };
        if event.agent != channel_agent {
            tracing::debug!(
                channel_agent = %channel_agent.escape_debug(),
                event_agent = %event.agent,
                "ignored an event on one agent's channel that names another agent"
            );
            return false;
        }
        self.apply(channel_agent, Readiness::from_event(&event), Source::Event);
        true
    }
}
