//! The supervisor side: AgentWatcher and AgentProbe against a real
//! redis-server (and nats-server).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::signal::{client, watcher};
use crate::support::{redis_cli, Muster, NatsServer, RedisServer, TempDir};
use muster::probe::agent::AgentProbe;
use muster::probe::Probe;
use muster::signal::{
    AgentWatcher, Client, ClientOptions, ExpiryNotifications, Readiness, Source, WatcherConfig,
};

/// Each signal flips the watcher's view, learned from its event (no resync
/// in the test's time). How fast is not asserted here: the `signal_latency`
/// bench measures this same path (`mark_ready` / `mark_not_ready`, the
/// event, the watcher's view and change stream, resync off) over 1000
/// signals, against the README's target (median < 2 ms, p99 < 10 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_flips_on_each_signal_from_its_event() {
    let redis = RedisServer::start();
    let mut cfg = WatcherConfig::new(redis.url(), "w");
    // No polling help: only events can change the view within the wait.
    cfg.resync_period = Duration::from_secs(3600);
    cfg.poll_period = Duration::from_secs(3600);
    let w = watcher(cfg).await;
    let c = client(&redis.url(), "w").await;
    // Generous: a loaded machine must not fail a test of behaviour.
    let within = Duration::from_secs(10);
    for i in 0..10 {
        c.mark_ready("flip", &[]).await.unwrap();
        let v = w
            .wait_for("flip", within, |r| r.is_ready())
            .await
            .expect("ready seen");
        assert_eq!(v.source, Source::Event);
        let reason = format!("flip {i}");
        c.mark_not_ready("flip", &reason).await.unwrap();
        let v = w
            .wait_for("flip", within, |r| r.reason() == reason)
            .await
            .expect("not ready seen");
        assert!(!v.readiness.is_ready());
    }

    // Progress updates arrive as events as well.
    c.mark_starting("flip", "loading model 40%", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let v = w
        .wait_for("flip", within, |r| {
            r.progress() == Some("loading model 40%")
        })
        .await
        .expect("progress seen");
    assert!(!v.readiness.is_ready());
    assert!(w.start_deadline_ms("flip").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_channel_reports_each_change_once() {
    let redis = RedisServer::start();
    let w = watcher(WatcherConfig::new(redis.url(), "ch")).await;
    let mut rx = w.changes();
    let c = client(&redis.url(), "ch").await;
    c.mark_ready("a", &[]).await.unwrap();
    c.mark_ready("a", &[]).await.unwrap(); // same value: TTL refresh only, no event
    c.mark_stopping("a").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.agent, "a");
    assert!(first.view.readiness.is_ready());
    let second = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(second.view.readiness, Readiness::Stopping { .. }),
        "{second:?}"
    );
    assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_seen_through_keyspace_notifications() {
    let redis = RedisServer::start();
    let mut cfg = WatcherConfig::new(redis.url(), "e");
    cfg.resync_period = Duration::from_secs(3600);
    cfg.poll_period = Duration::from_secs(3600);
    let w = watcher(cfg).await;
    assert_eq!(w.expiry_notifications(), ExpiryNotifications::Enabled);
    let opts = ClientOptions {
        namespace: "e".into(),
        ttl: Duration::from_millis(500),
        heartbeat: Some(Duration::from_secs(3600)), // a hung agent: no heartbeat
        ..ClientOptions::default()
    };
    let c = Client::connect_with(&redis.url(), opts).await.unwrap();
    c.mark_ready("hung", &[]).await.unwrap();
    assert!(w
        .wait_for("hung", Duration::from_secs(1), |r| r.is_ready())
        .await
        .is_some());
    let v = w
        .wait_for("hung", Duration::from_secs(3), |r| !r.is_ready())
        .await
        .expect("expiry seen");
    assert_eq!(v.source, Source::Expiry);
    assert!(v.readiness.reason().contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_expiry_events_on_when_allowed_and_says_when_not() {
    // Off, CONFIG allowed: muster turns them on.
    let redis = RedisServer::start_with(&["--notify-keyspace-events", ""]);
    let w = watcher(WatcherConfig::new(redis.url(), "x")).await;
    assert_eq!(
        w.expiry_notifications(),
        ExpiryNotifications::EnabledByMuster
    );
    let flags = redis_cli(redis.port, &["CONFIG", "GET", "notify-keyspace-events"]);
    assert!(
        flags.contains('E') && (flags.contains('x') || flags.contains('A')),
        "{flags}"
    );

    // Off, CONFIG renamed away: reported as unavailable, polling finds keys.
    let locked = RedisServer::start_with(&[
        "--notify-keyspace-events",
        "",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let mut cfg = WatcherConfig::new(locked.url(), "x");
    cfg.resync_period = Duration::from_millis(300);
    let w = watcher(cfg).await;
    match w.expiry_notifications() {
        ExpiryNotifications::Unavailable(why) => assert!(why.contains("CONFIG"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A key written by hand (no event) is found by the resync.
    redis_cli(
        locked.port,
        &[
            "SET",
            "x:ready:manual",
            r#"{"status":"ready","since":1}"#,
            "PX",
            "1000",
        ],
    );
    let v = w
        .wait_for("manual", Duration::from_secs(3), |r| r.is_ready())
        .await
        .expect("resync found the key");
    assert_eq!(v.source, Source::Poll);
    // ... and its expiry, too, without notifications.
    let v = w
        .wait_for("manual", Duration::from_secs(4), |r| !r.is_ready())
        .await
        .expect("resync saw it gone");
    assert_eq!(v.source, Source::Poll);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_and_catches_up_after_redis_restart() {
    let mut redis = RedisServer::start();
    let mut cfg = WatcherConfig::new(redis.url(), "rs");
    cfg.poll_period = Duration::from_millis(200);
    cfg.resync_period = Duration::from_secs(3600);
    let w = watcher(cfg).await;
    tokio::task::block_in_place(|| redis.kill());
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.is_subscribed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!w.is_subscribed(), "watcher did not notice the drop");
    tokio::task::block_in_place(|| redis.restart());
    // A signal written while the watcher was re-subscribing is caught by the catch-up read.
    redis_cli(
        redis.port,
        &["SET", "rs:ready:late", r#"{"status":"ready","since":1}"#],
    );
    assert!(
        w.wait_subscribed(Duration::from_secs(5)).await,
        "no re-subscribe"
    );
    assert!(w
        .wait_for("late", Duration::from_secs(2), |r| r.is_ready())
        .await
        .is_some());
    // Events flow again.
    let c = client(&redis.url(), "rs").await;
    c.mark_not_ready("late", "after restart").await.unwrap();
    let v = w
        .wait_for("late", Duration::from_secs(1), |r| {
            r.reason() == "after restart"
        })
        .await
        .expect("event after re-subscribe");
    assert_eq!(v.source, Source::Event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_answers_from_the_view_with_reason_progress_and_deadline() {
    let redis = RedisServer::start();
    let w = watcher(WatcherConfig::new(redis.url(), "p")).await;
    let c = client(&redis.url(), "p").await;
    let mut probe = AgentProbe::new(w.clone(), "memory-agent").unwrap();
    assert_eq!(probe.kind(), "agent");
    assert_eq!(probe.target(), "p:ready:memory-agent");
    let out = probe.check().await;
    assert!(!out.is_ok());
    assert!(out.reason.contains("no ready signal"), "{}", out.reason);

    c.mark_starting(
        "memory-agent",
        "loading model 40%",
        Some(Duration::from_secs(300)),
    )
    .await
    .unwrap();
    w.wait_for("memory-agent", Duration::from_secs(1), |r| {
        r.progress().is_some()
    })
    .await
    .unwrap();
    let out = probe.check().await;
    assert!(!out.is_ok());
    assert!(out.reason.contains("loading model 40%"), "{}", out.reason);
    assert!(out.reason.contains("start deadline in"), "{}", out.reason);
    let deadline = probe.start_deadline().expect("deadline in the future");
    let left = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left > Duration::from_secs(290) && left <= Duration::from_secs(300),
        "{left:?}"
    );
    assert_eq!(probe.progress().as_deref(), Some("loading model 40%"));

    c.mark_ready("memory-agent", &[("model", "small")])
        .await
        .unwrap();
    w.wait_for("memory-agent", Duration::from_secs(1), |r| r.is_ready())
        .await
        .unwrap();
    let out = probe.check().await;
    assert!(out.is_ok(), "{out:?}");
    assert!(out.reason.contains("small"));
    assert!(probe.start_deadline().is_none());

    // A corrupt value is read as not ready, never a panic.
    redis_cli(redis.port, &["SET", "p:ready:broken", "{not json"]);
    let mut broken = AgentProbe::new(w.clone(), "broken").unwrap();
    w.wait_for("broken", Duration::from_secs(2), |r| {
        matches!(r, Readiness::Corrupt { .. })
    })
    .await
    .expect("corrupt read");
    let out = broken.check().await;
    assert!(!out.is_ok());
    assert!(out.reason.starts_with("corrupt signal"), "{}", out.reason);
    assert!(AgentProbe::new(w, "bad name").is_err());
}

/// NATS carries a signal while the watcher's Redis is away (here: never
/// reachable), and only for the agent its subject names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_events_reach_the_watcher_while_redis_is_away() {
    let agent_redis = RedisServer::start();
    let nats = NatsServer::start(false);
    let closed = format!("redis://127.0.0.1:{}", crate::support::free_port());
    let mut cfg = WatcherConfig::new(closed, "n");
    cfg.nats_url = Some(nats.url());
    let w = AgentWatcher::start(cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.is_nats_subscribed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(w.is_nats_subscribed());
    // An event about another agent than its subject names is forged: ignored.
    let nc = async_nats::connect(nats.url()).await.unwrap();
    let forged = r#"{"agent":"victim","status":"ready","since":1}"#;
    nc.publish("n.ready.via.nats", forged.into()).await.unwrap();
    nc.flush().await.unwrap();
    let dir = TempDir::new("muster-nats-cli");
    let out = Muster::new()
        .dir(dir.path())
        .args([
            "--redis-url",
            &agent_redis.url(),
            "--nats-url",
            &nats.url(),
            "--namespace",
            "n",
        ])
        .args(["signal", "ready", "--agent", "via.nats"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = w
        .wait_for("via.nats", Duration::from_secs(2), |r| r.is_ready())
        .await
        .expect("NATS event seen");
    assert_eq!(v.source, Source::Nats);
    // The forged event reached the server (flushed) before the CLI ran, so
    // it was delivered first: it changed nothing.
    assert!(w.get("victim").is_none(), "{:?}", w.get("victim"));
}

/// While Redis is there, a NATS event is a hint: the watcher reads the
/// agent's keys, so an event without a key behind it changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_events_are_checked_against_redis_when_it_answers() {
    let redis = RedisServer::start();
    let nats = NatsServer::start(false);
    let mut cfg = WatcherConfig::new(redis.url(), "n");
    cfg.nats_url = Some(nats.url());
    let w = watcher(cfg).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.is_nats_subscribed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.track("ghost").unwrap();
    let nc = async_nats::connect(nats.url()).await.unwrap();
    let no_key = r#"{"agent":"ghost","status":"ready","since":1}"#;
    nc.publish("n.ready.ghost", no_key.into()).await.unwrap();
    nc.flush().await.unwrap();
    // A real signal, written to Redis and published on NATS after it.
    let c = client(&redis.url(), "n").await;
    c.mark_ready("real", &[]).await.unwrap();
    let real = r#"{"agent":"real","status":"ready","since":1}"#;
    nc.publish("n.ready.real", real.into()).await.unwrap();
    nc.flush().await.unwrap();
    w.wait_for("real", Duration::from_secs(5), |r| r.is_ready())
        .await
        .expect("the real signal is seen");
    assert!(
        !w.readiness("ghost").is_ready(),
        "an event with no key behind it made ghost ready: {:?}",
        w.get("ghost")
    );
}

/// Protocol version 2: an event on the agent's own channel `{ns}:events:{agent}`
/// is applied from its payload (no key read: there is no key behind these),
/// but only when it names the channel's agent; an event on the version-1
/// shared channel stays a hint checked against the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_channel_events_are_applied_and_shared_channel_events_checked() {
    let redis = RedisServer::start();
    let mut cfg = WatcherConfig::new(redis.url(), "o");
    cfg.resync_period = Duration::from_secs(3600);
    let w = watcher(cfg).await;
    let publish = |channel: &str, payload: &str| {
        // The reply is the number of subscribers that got it: the watcher.
        assert_eq!(redis_cli(redis.port, &["PUBLISH", channel, payload]), "1");
    };
    publish(
        "o:events:solo",
        r#"{"agent":"solo","status":"starting","since":5,"progress":"warming"}"#,
    );
    let v = w
        .wait_for("solo", Duration::from_secs(5), |r| {
            r.progress() == Some("warming")
        })
        .await
        .expect("the own-channel event is applied from its payload");
    assert_eq!(v.source, Source::Event);
    // solo's channel, an event about victim: ignored. On the shared channel:
    // a hint, and victim has no key. Each is followed by a real change of
    // solo on solo's channel, delivered after it on the same subscription.
    let forged = r#"{"agent":"victim","status":"ready","since":1,"ttl_ms":30000}"#;
    for (i, channel) in ["o:events:solo", "o:events"].into_iter().enumerate() {
        publish(channel, forged);
        let progress = format!("step {i}");
        let after =
            format!(r#"{{"agent":"solo","status":"starting","since":5,"progress":"{progress}"}}"#);
        publish("o:events:solo", &after);
        w.wait_for("solo", Duration::from_secs(5), |r| {
            r.progress() == Some(progress.as_str())
        })
        .await
        .expect("solo's later event is seen");
        assert!(
            !w.readiness("victim").is_ready(),
            "a forged event on {channel} made victim ready: {:?}",
            w.get("victim")
        );
    }
    // A version-1 client (shared channel, real keys) is still heard at once.
    redis_cli(
        redis.port,
        &[
            "SET",
            "o:ready:old",
            r#"{"status":"ready","since":9}"#,
            "PX",
            "30000",
        ],
    );
    publish("o:events", r#"{"agent":"old","status":"ready","since":9}"#);
    let v = w
        .wait_for("old", Duration::from_secs(5), |r| r.is_ready())
        .await
        .expect("a version-1 client's event is heard");
    assert_eq!(v.source, Source::Event);
}

/// redis-cli as the default user of a Redis started with `--requirepass adminpw`.
fn as_admin(redis: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "-a", "adminpw"])
        .arg("--no-auth-warning")
        .args(args)
        .output()
        .expect("redis-cli must be installed (bash scripts/setup.sh)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A muster user set up before protocol v2 (no `+psubscribe`, no
/// `&{ns}:events:*`): the watcher still subscribes to the shared channel and
/// hears version-1 clients there, instead of failing to subscribe at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muster_user_without_the_pattern_still_follows_the_shared_channel() {
    let redis = RedisServer::start_with(&["--requirepass", "adminpw"]);
    let admin = |args: &[&str]| as_admin(&redis, args);
    let acl = [
        "ACL",
        "SETUSER",
        "old",
        "on",
        ">oldpw",
        "~v:*",
        "&v:events",
        "&__keyevent@0__:expired",
        "+get",
        "+mget",
        "+scan",
        "+subscribe",
        "+ping",
    ];
    assert_eq!(admin(&acl), "OK");
    let url = format!("redis://old:oldpw@127.0.0.1:{}", redis.port);
    let w = watcher(WatcherConfig::new(url, "v")).await;
    assert!(w.is_subscribed());
    // A version-1 client: the key, then the event on the shared channel.
    let value = r#"{"status":"ready","since":3}"#;
    assert_eq!(admin(&["SET", "v:ready:v1", value, "PX", "30000"]), "OK");
    assert_eq!(
        admin(&[
            "PUBLISH",
            "v:events",
            r#"{"agent":"v1","status":"ready","since":3}"#
        ]),
        "1"
    );
    let v = w
        .wait_for("v1", Duration::from_secs(5), |r| r.is_ready())
        .await
        .expect("the shared channel is followed");
    assert_eq!(v.source, Source::Event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_without_config_works_through_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "adminpw"]);
    let acl = as_admin(
        &redis,
        &[
            "ACL",
            "SETUSER",
            "sup",
            "on",
            ">suppw",
            "~a:*",
            "&a:events:*",
            "&a:events",
            "&__keyevent@0__:expired",
            "+get",
            "+mget",
            "+scan",
            "+subscribe",
            "+psubscribe",
            "+ping",
            "+eval",
            "+set",
            "+del",
            "+publish",
            "+pexpire",
        ],
    );
    assert_eq!(acl, "OK");
    let url = format!("redis://sup:suppw@127.0.0.1:{}", redis.port);
    let w = watcher(WatcherConfig::new(url.clone(), "a")).await;
    // CONFIG is not allowed for this user: said plainly.
    assert!(matches!(
        w.expiry_notifications(),
        ExpiryNotifications::Unavailable(_)
    ));
    let c = client(&url, "a").await;
    c.mark_ready("acl-agent", &[]).await.unwrap();
    assert!(w
        .wait_for("acl-agent", Duration::from_secs(1), |r| r.is_ready())
        .await
        .is_some());
    // A wrong password: the watcher never subscribes.
    let bad = AgentWatcher::start(WatcherConfig::new(
        format!("redis://sup:nope@127.0.0.1:{}", redis.port),
        "a",
    ))
    .unwrap();
    assert!(!bad.wait_subscribed(Duration::from_millis(500)).await);
}
