//! `GET /`: a self-contained status page (inline CSS and JS, no external
//! assets). It loads `/status`, follows `/events` with an `EventSource`, and
//! reloads `/status` after each change and every 5 s (progress text and
//! probe results change without a state event).

pub(crate) const HTML: &str = include_str!("status.html");
