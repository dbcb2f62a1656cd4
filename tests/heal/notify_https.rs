//! Notifications to an `https://` webhook: a real TLS server on loopback
//! with a certificate from a CA the test makes. Trusted through
//! `webhook_ca_file` the notification arrives; with the system's roots only
//! the handshake is refused and nothing is posted.

use std::time::{Duration, Instant};

use crate::support::{certs, webhook::Webhook, TempDir};
use muster::notify::{Notification, Notifier, NotifyEvent, WebhookOptions};

fn notification(service: &str) -> Notification {
    Notification {
        event: NotifyEvent::Failed,
        project: "notify-https".into(),
        service: service.into(),
        reason: "liveness probe failed 3 times".into(),
        at_ms: 1,
        containers: vec![format!("notify-https-{service}-1")],
        by: None,
        attempt: None,
        backoff_ms: None,
        restarts: 5,
        budget: None,
        error: None,
        text: format!("{service} failed"),
        muster: env!("CARGO_PKG_VERSION").into(),
    }
}

fn options(ca_file: Option<std::path::PathBuf>) -> WebhookOptions {
    WebhookOptions {
        timeout: Duration::from_secs(3),
        attempts: 1,
        ca_file,
        ..WebhookOptions::default()
    }
}

#[tokio::test]
async fn https_webhook_trusts_its_ca_file_and_refuses_an_unknown_issuer() {
    let dir = TempDir::new("muster-notify-https");
    certs::make_certificates(dir.path());
    let hook = Webhook::start_tls(
        0,
        &dir.path().join("server.pem"),
        &dir.path().join("server.key"),
    )
    .await;
    assert!(hook.url.starts_with("https://127.0.0.1:"), "{}", hook.url);

    // Trusted through the CA file: delivered, with the JSON body intact.
    let notifier =
        Notifier::webhook(&hook.url, options(Some(dir.path().join("ca.pem")))).expect("notifier");
    notifier.notify(notification("api"));
    hook.wait_for("the failed notification", Duration::from_secs(10), |got| {
        got.iter()
            .any(|v| v["service"] == "api" && v["event"] == "failed")
    })
    .await;

    // The system's roots do not know the test CA: the client ends the
    // handshake, so the server sees a failed handshake and no request. A
    // refused certificate is not retried (the server would present it again).
    let untrusted = Notifier::webhook(
        &hook.url,
        WebhookOptions {
            attempts: 3,
            retry_delay: Duration::from_millis(200),
            ..options(None)
        },
    )
    .expect("notifier");
    untrusted.notify(notification("worker"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.tls_failures() == 0 {
        assert!(Instant::now() < deadline, "no TLS handshake was refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Retries would have come 200 ms and 600 ms after the first try.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.tls_failures(), 1, "a refused certificate was retried");
    assert!(
        hook.of("worker", "failed").is_empty(),
        "{:?}",
        hook.received()
    );
    assert_eq!(hook.requests().len(), 1, "{:?}", hook.requests());
}

#[test]
fn a_ca_file_for_a_plain_webhook_or_a_missing_one_is_refused() {
    let dir = TempDir::new("muster-notify-ca");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let plain = Notifier::webhook(
        "http://127.0.0.1:9/hook",
        options(Some(dir.path().join("ca.pem"))),
    )
    .expect_err("a CA file for http:// is refused")
    .to_string();
    assert!(
        plain.contains("webhook_ca_file") && plain.contains("http://"),
        "{plain}"
    );
    let missing = Notifier::webhook(
        "https://127.0.0.1:9/hook",
        options(Some(dir.path().join("missing.pem"))),
    )
    .expect_err("a missing CA file is refused")
    .to_string();
    assert!(
        missing.contains("webhook_ca_file") && missing.contains("missing.pem"),
        "{missing}"
    );
}
