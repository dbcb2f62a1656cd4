//! `GET /events`: Server-Sent Events of state changes.
//!
//! Frames on the wire:
//! - `event: state` with `data:` one [`StateEvent`] as JSON (what
//!   `muster up --json` prints), per state change;
//! - `event: pull` with `data:` one [`PullPulse`] (image, services, bytes
//!   done / total, layers, rate, ETA) while an image is pulled, at most one
//!   a second per image, the last with `"done": true`;
//! - `event: resync` with `data: {"missed":N}` when this client fell more
//!   than the channel's capacity behind: the stream goes on from the oldest
//!   event still held, and the client should reload `/status`;
//! - `: keep-alive` comments every [`ServerOptions::sse_keepalive`], so
//!   proxies and load balancers keep the connection open;
//! - `event: shutdown` once, when the server shuts down; the stream ends.
//!
//! [`StateEvent`]: crate::supervisor::StateEvent
//! [`PullPulse`]: crate::supervisor::PullPulse
//! [`ServerOptions::sse_keepalive`]: super::ServerOptions::sse_keepalive

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::Body;
use crate::supervisor::{PullPulse, StateEvent, StateStore};

struct Stream {
    events: broadcast::Receiver<StateEvent>,
    pulls: broadcast::Receiver<PullPulse>,
    keepalive: tokio::time::Interval,
    shutdown: watch::Receiver<bool>,
    started: bool,
    done: bool,
}

fn frame(data: impl Into<Bytes>) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(data.into()))
}

/// Waits until the server shuts down (or its shutdown sender is gone).
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}

pub(crate) fn body(
    store: &StateStore,
    keepalive: Duration,
    shutdown: watch::Receiver<bool>,
) -> Body {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Stream {
        events: store.events(),
        pulls: store.pull_pulses(),
        keepalive: ticker,
        shutdown,
        started: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if !st.started {
            st.started = true;
            return Some((frame(&b"retry: 2000\n: muster state events\n\n"[..]), st));
        }
        tokio::select! {
            biased;
            _ = shutting_down(&mut st.shutdown) => {
                st.done = true;
                Some((frame(&b"event: shutdown\ndata: {}\n\n"[..]), st))
            }
            received = st.events.recv() => match received {
                Ok(event) => {
                    // A plain struct of strings and numbers always serialises.
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    Some((frame(format!("event: state\ndata: {json}\n\n")), st))
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "an /events client lagged; asking it to resync");
                    Some((frame(format!("event: resync\ndata: {{\"missed\":{missed}}}\n\n")), st))
                }
                Err(RecvError::Closed) => None,
            },
            // Pull numbers are a pulse, not history: a lagging client just
            // gets the next one.
            Ok(pulse) = st.pulls.recv() => {
                let json = serde_json::to_string(&pulse).unwrap_or_default();
                Some((frame(format!("event: pull\ndata: {json}\n\n")), st))
            }
            _ = st.keepalive.tick() => Some((frame(&b": keep-alive\n\n"[..]), st)),
        }
    });
    StreamBody::new(stream).boxed_unsync()
}
