//! The agent watcher's NATS side: ready events on `{ns}.ready.>`, hints
//! that make the watcher read the named agent's keys (applied directly only
//! while Redis is away), and the link state of the NATS connection. Apart
//! from the Redis loop in `watcher.rs` because it follows another server
//! with its own client and reconnect rules.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{Inner, Readiness, Source};

/// Subscribes on NATS and feeds events to the watcher, forever; reconnects
/// after the subscription ends or a connect fails (every second).
pub(super) async fn follow(inner: Arc<Inner>, url: String) {
    let subject = format!("{}.ready.>", inner.config.namespace);
    let mut warned = false;
    loop {
        // The client reconnects by itself and its subscription survives:
        // only its events tell that the server went away and came back.
        let link = inner.nats_link.clone();
        let options = async_nats::ConnectOptions::new().event_callback(move |event| {
            let link = link.clone();
            async move {
                match event {
                    async_nats::Event::Connected => link.connected(),
                    async_nats::Event::Disconnected => {
                        link.failed("disconnected from the NATS server; reconnecting")
                    }
                    async_nats::Event::ClientError(e) => link.failed(&e.to_string()),
                    _ => {}
                }
            }
        });
        // With options, the client no longer takes the credentials from the
        // URL (the server answered "authorization violation"): pass them.
        let (options, target) = match crate::url::split_url(&url) {
            Ok(parts) => {
                let options = match parts.userinfo.map(|u| u.split_once(':').ok_or(u)) {
                    Some(Ok((user, pass))) => {
                        options.user_and_password(user.to_string(), pass.to_string())
                    }
                    Some(Err(token)) => options.token(token.to_string()),
                    None => options,
                };
                let host = match parts.host.contains(':') {
                    true => format!("[{}]", parts.host),
                    false => parts.host.to_string(),
                };
                let target = match parts.port {
                    Some(port) => format!("{}://{host}:{port}{}", parts.scheme, parts.rest),
                    None => format!("{}://{host}{}", parts.scheme, parts.rest),
                };
                (options, target)
            }
            Err(_) => (options, url.clone()),
        };
        match options.connect(target.as_str()).await {
            Ok(client) => match client.subscribe(subject.clone()).await {
                Ok(mut sub) => {
                    inner.nats_subscribed.store(true, Ordering::SeqCst);
                    inner.nats_link.connected();
                    tracing::debug!(subject, "agent watcher listening on NATS");
                    warned = false;
                    let prefix = format!("{}.ready.", inner.config.namespace);
                    while let Some(msg) = sub.next().await {
                        let Some(event) = inner.event_of(&msg.payload, Source::Nats) else {
                            continue;
                        };
                        // NATS permissions can confine an agent to its own
                        // subject: an event about another agent is forged.
                        if msg.subject.as_str().strip_prefix(&prefix) != Some(event.agent.as_str())
                        {
                            tracing::warn!(subject = %msg.subject, agent = %event.agent,
                                "ignored a NATS ready event whose subject names another agent");
                            continue;
                        }
                        if *inner.subscribed.borrow() {
                            let _ = inner.commands.send((event.agent, Source::Nats));
                        } else {
                            inner.apply(&event.agent, Readiness::from_event(&event), Source::Nats);
                        }
                    }
                    inner.nats_subscribed.store(false, Ordering::SeqCst);
                    inner.nats_link.failed("the NATS subscription ended");
                }
                Err(e) => {
                    inner.nats_link.failed(&e.to_string());
                    tracing::warn!(error = %e, "NATS subscribe failed")
                }
            },
            Err(e) => {
                inner.nats_link.failed(&e.to_string());
                if !warned {
                    tracing::warn!(error = %e, nats = %crate::url::redact_url(&url), "agent watcher cannot reach NATS; retrying");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
