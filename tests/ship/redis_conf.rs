//! redis.conf as shipped: a real redis-server runs a copy of it (only
//! port, dir and bind changed) and muster works through its two ACL users:
//! the agent user signals, the muster user watches, checks and keeps history,
//! and the agent user cannot reach anything else.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, wait_for_port, Muster, TempDir};
use muster::history::HistoryStore;
use muster::signal::{
    AgentWatcher, Client, ClientOptions, ExpiryNotifications, Readiness, Source, WatcherConfig,
};
use serde_json::json;

const NS: &str = "muster";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default of `${VAR:-default}` in a compose file of the repository.
fn compose_default(file: &str, var: &str) -> String {
    let text = std::fs::read_to_string(repo().join("compose").join(file)).unwrap();
    let needle = format!("${{{var}:-");
    let start = text
        .find(&needle)
        .unwrap_or_else(|| panic!("compose/{file} does not interpolate {needle}…}}"))
        + needle.len();
    let end = start + text[start..].find('}').unwrap();
    text[start..end].to_string()
}

/// The development passwords: the compose files' defaults, which redis.conf's
/// hashes must match (both compose files agree).
fn passwords() -> (String, String) {
    let muster = compose_default("agents.yaml", "MUSTER_REDIS_PASSWORD");
    let agent = compose_default("agents.yaml", "AGENT_REDIS_PASSWORD");
    assert_eq!(
        compose_default("demo.yaml", "MUSTER_REDIS_PASSWORD"),
        muster
    );
    assert_eq!(compose_default("demo.yaml", "AGENT_REDIS_PASSWORD"), agent);
    (muster, agent)
}

/// redis-server running a copy of a redis.conf with `port`, `dir` and `bind`
/// replaced; killed on drop. Its log goes to `dir/redis.log`.
struct ConfRedis {
    port: u16,
    dir: TempDir,
    conf: PathBuf,
    child: Option<Child>,
}

impl ConfRedis {
    fn start(source: &Path) -> ConfRedis {
        let dir = TempDir::new("muster-redisconf");
        let port = free_port();
        let text = std::fs::read_to_string(source).unwrap();
        let mut replaced = [false; 3];
        let mut lines = Vec::new();
        for line in text.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            let line = match key {
                "port" => {
                    replaced[0] = true;
                    format!("port {port}")
                }
                "dir" => {
                    replaced[1] = true;
                    format!("dir {}", dir.path().display())
                }
                "bind" => {
                    replaced[2] = true;
                    "bind 127.0.0.1".to_string()
                }
                _ => line.to_string(),
            };
            lines.push(line);
        }
        assert_eq!(
            replaced,
            [true; 3],
            "{} must set port, dir and bind",
            source.display()
        );
        let conf = dir.path().join("redis.conf");
        std::fs::write(&conf, lines.join("\n") + "\n").unwrap();
        let mut server = ConfRedis {
            port,
            dir,
            conf,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .arg(&self.conf)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (bash scripts/setup.sh)");
        self.child = Some(child);
        // A config Redis refuses makes it exit at once: show its log.
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "redis-server refused the config ({status}):\n{}",
                self.log()
            );
        }
        wait_for_port(self.port, Duration::from_secs(10));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// Waits until `needle` is in one of the append-only files (the write
    /// Redis does at most a second or two after it answered, with everysec).
    fn wait_in_aof(&self, needle: &[u8], within: Duration) {
        let aof_dir = self.dir.path().join("appendonlydir");
        let until = std::time::Instant::now() + within;
        loop {
            let found = std::fs::read_dir(&aof_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle));
            if found {
                return;
            }
            assert!(
                std::time::Instant::now() < until,
                "{:?} not in {} after {within:?}",
                String::from_utf8_lossy(needle),
                aof_dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (no shutdown save) and start again on the same port and dir.
    fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ConfRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn shipped() -> PathBuf {
    repo().join("redis.conf")
}

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    muster::signal::client::open_client(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Runs one command; Ok(reply) or the error text.
async fn run(
    conn: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> Result<redis::Value, String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.map_err(|e| e.to_string())
}

/// A refusal by the ACL (or by `enable-debug-command no`), not some other
/// error that would also make a command fail.
fn refused(error: &str) -> bool {
    error.contains("NOPERM")
        || error.contains("no permissions")
        || error.contains("can't access")
        || error.contains("can't run this command")
        || error.contains("DEBUG command not allowed")
}

fn muster_cli(args: &[&str], redis_url: &str) -> std::process::Output {
    Muster::new().redis(redis_url).namespace(NS).run(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_user_signals_and_muster_user_watches_and_checks() {
    let (muster_pw, agent_pw) = passwords();
    let redis = ConfRedis::start(&shipped());
    let muster_url = redis.url("muster", &muster_pw);
    let agent_url = redis.url("agent", &agent_pw);

    // The watcher as the muster user: PSUBSCRIBEs muster:events:*, SUBSCRIBEs
    // muster:events (version-1 clients) and the expiry channel, reads notify-keyspace-events with CONFIG GET.
    let watcher = AgentWatcher::start(WatcherConfig::new(&muster_url, NS)).unwrap();
    assert!(
        watcher.wait_subscribed(Duration::from_secs(10)).await,
        "the watcher could not subscribe as the muster user; redis log:\n{}",
        redis.log()
    );
    assert_eq!(
        watcher.expiry_notifications(),
        ExpiryNotifications::Enabled,
        "redis.conf must turn on Ex itself"
    );

    // The agents' client as the agent user.
    let client = Client::connect(&agent_url).await.unwrap();
    client
        .mark_starting(
            "memory-agent",
            "loading model 40%",
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let seen = watcher
        .wait_for("memory-agent", Duration::from_secs(10), |r| {
            r.progress() == Some("loading model 40%")
        })
        .await
        .expect("watcher sees the starting signal");
    assert_eq!(seen.source, Source::Event);
    client
        .mark_ready("memory-agent", &[("model", "small")])
        .await
        .unwrap();
    let seen = watcher
        .wait_for("memory-agent", Duration::from_secs(10), |r| r.is_ready())
        .await
        .expect("watcher sees the ready signal");
    assert_eq!(
        seen.source,
        Source::Event,
        "published on muster:events:memory-agent"
    );
    assert_eq!(client.heartbeat_now().await.unwrap(), 0);

    // `muster check --agent` as the muster user and as the agent user (the
    // agents' own Docker healthcheck runs with the agent's URL).
    for url in [&muster_url, &agent_url] {
        let out = muster_cli(&["check", "--agent", "memory-agent"], url);
        assert!(
            out.status.success(),
            "check --agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The shell agent's path: `muster signal` (MGET, FCALL, PEXPIRE) as the agent user.
    for action in ["ready", "heartbeat"] {
        let out = muster_cli(&["signal", action, "--agent", "shell-agent"], &agent_url);
        assert!(
            out.status.success(),
            "signal {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    watcher
        .wait_for("shell-agent", Duration::from_secs(10), |r| r.is_ready())
        .await
        .expect("watcher sees the shell agent");
    // The Redis probe (PING + INFO persistence) as the muster user.
    let out = muster_cli(&["check", "--redis", &muster_url], &muster_url);
    assert!(
        out.status.success(),
        "check --redis: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Not ready, with the reason, seen by both.
    client
        .mark_not_ready("memory-agent", "model server gone")
        .await
        .unwrap();
    let seen = watcher
        .wait_for("memory-agent", Duration::from_secs(10), |r| !r.is_ready())
        .await
        .unwrap();
    assert_eq!(seen.readiness.reason(), "model server gone");
    let out = muster_cli(&["check", "--agent", "memory-agent"], &muster_url);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("model server gone"));

    // An agent that dies without a word: its key expires and the muster user
    // hears it on __keyevent@0__:expired.
    let short = Client::connect_with(
        &agent_url,
        ClientOptions {
            ttl: Duration::from_millis(600),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    short.mark_ready("doomed-agent", &[]).await.unwrap();
    watcher
        .wait_for("doomed-agent", Duration::from_secs(10), Readiness::is_ready)
        .await
        .unwrap();
    drop(short);
    let seen = watcher
        .wait_for("doomed-agent", Duration::from_secs(15), |r| !r.is_ready())
        .await
        .expect("expiry seen");
    assert_eq!(seen.source, Source::Expiry);
}

#[tokio::test]
async fn history_store_works_as_the_muster_user_and_not_as_the_agent_user() {
    let (muster_pw, agent_pw) = passwords();
    let mut redis = ConfRedis::start(&shipped());
    let store = HistoryStore::redis(&redis.url("muster", &muster_pw), NS, "proj")
        .await
        .unwrap();
    for i in 1..=3 {
        store
            .push("revisions:api", &json!({ "revision": i }), 10)
            .await
            .unwrap();
    }
    assert_eq!(store.next_counter("revision-counter:api").await.unwrap(), 1);
    store
        .set("rollout:api", &json!({"to": "api:v2"}))
        .await
        .unwrap();
    store
        .set_in_list("revisions:api", 0, &json!({"revision": 3, "ok": true}))
        .await
        .unwrap();
    assert_eq!(
        store
            .acquire_lock("rollout:api", "ops-1", Duration::from_secs(60))
            .await
            .unwrap(),
        Ok(())
    );
    let taken = store
        .acquire_lock("rollout:api", "ops-2", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(taken.owner, "ops-1");
    store.release_lock("rollout:api", "ops-1").await.unwrap();
    assert_eq!(
        store
            .acquire_lock("rollout:api", "ops-2", Duration::from_secs(60))
            .await
            .unwrap(),
        Ok(())
    );

    // Persistence: appendonly + everysec keeps what reached the append-only
    // file across a SIGKILL (no shutdown save happens). With everysec Redis
    // may answer before it writes the file (it postpones the write while a
    // background fsync is slow, as on a loaded machine) and promises only
    // "at most a second lost": wait until the last write is in the file,
    // then kill.
    redis.wait_in_aof(b"ops-2", Duration::from_secs(15));
    redis.kill_and_restart();
    let again = HistoryStore::redis(&redis.url("muster", &muster_pw), NS, "proj")
        .await
        .unwrap();
    let list = again.list("revisions:api", 10).await.unwrap();
    assert_eq!(
        list,
        vec![
            json!({"revision": 3, "ok": true}),
            json!({"revision": 2}),
            json!({"revision": 1})
        ]
    );
    assert_eq!(again.next_counter("revision-counter:api").await.unwrap(), 2);
    assert_eq!(
        again.get("rollout:api").await.unwrap(),
        Some(json!({"to": "api:v2"}))
    );

    // The agent user connects (PING) but may not read or write history.
    let as_agent = HistoryStore::redis(&redis.url("agent", &agent_pw), NS, "proj")
        .await
        .unwrap();
    let err = as_agent
        .push("revisions:api", &json!({"revision": 666}), 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused(&err), "{err}");
    let err = as_agent
        .list("revisions:api", 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused(&err), "{err}");
    assert_eq!(again.list("revisions:api", 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn agent_user_is_confined_to_its_keys_and_channel() {
    let (muster_pw, agent_pw) = passwords();
    let redis = ConfRedis::start(&shipped());
    let mut admin = conn(&redis.url("muster", &muster_pw)).await;
    run(&mut admin, &["SET", "muster:proj:revisions:x", "keep"])
        .await
        .unwrap();
    run(&mut admin, &["LPUSH", "muster:proj:revisions:api", "{}"])
        .await
        .unwrap();

    let mut agent = conn(&redis.url("agent", &agent_pw)).await;
    // What the protocol needs works.
    run(&mut agent, &["SET", "muster:ready:a", "{}", "PX", "5000"])
        .await
        .unwrap();
    run(&mut agent, &["MGET", "muster:ready:a", "muster:notready:a"])
        .await
        .unwrap();
    for channel in ["muster:events:a", "muster:events"] {
        run(&mut agent, &["PUBLISH", channel, "{}"]).await.unwrap();
    }
    run(&mut agent, &["PING"]).await.unwrap();

    let denied: &[&[&str]] = &[
        &["FLUSHALL"],
        &["FLUSHDB"],
        &["KEYS", "*"],
        &["SCAN", "0"],
        &["CONFIG", "GET", "*"],
        &["CONFIG", "SET", "notify-keyspace-events", ""],
        &["DEBUG", "SLEEP", "0"],
        &["SHUTDOWN", "NOSAVE"],
        &["ACL", "SETUSER", "agent", "+@all"],
        &["ACL", "LIST"],
        &["INFO"],
        &["MONITOR"],
        &["GET", "muster:proj:revisions:x"],
        &["SET", "muster:proj:revisions:x", "overwritten"],
        &["DEL", "muster:proj:revisions:x"],
        &["LRANGE", "muster:proj:revisions:api", "0", "-1"],
        &["LPUSH", "muster:proj:revisions:api", "{}"],
        &["SET", "other:key", "1"],
        &["GET", "other:key"],
        &["MGET", "muster:ready:a", "muster:proj:revisions:x"],
        &["EXPIRE", "muster:ready:a", "10"],
        &["RENAME", "muster:ready:a", "muster:proj:revisions:x"],
        &["PUBLISH", "other-channel", "x"],
        &["SUBSCRIBE", "muster:events"],
        &["PSUBSCRIBE", "muster:events:*"],
        &[
            "EVAL",
            "return redis.call('GET', KEYS[1])",
            "1",
            "muster:proj:revisions:x",
        ],
        &["EVAL", "return redis.call('FLUSHALL')", "0"],
        &["EVAL", "return redis.call('GET', 'other:key')", "0"],
        &["EVALSHA", "0000000000000000000000000000000000000000", "0"],
        &["SELECT", "1"],
    ];
    for args in denied {
        match run(&mut agent, args).await {
            Err(e) if refused(&e) => {}
            other => panic!("agent user ran {args:?}: {other:?}"),
        }
    }

    // The muster user is confined to the namespace and has no dangerous commands.
    for args in [
        &["FLUSHALL"][..],
        &["KEYS", "*"],
        &["CONFIG", "SET", "notify-keyspace-events", ""],
        &["DEBUG", "SLEEP", "0"],
        &["SET", "other:key", "1"],
        &["ACL", "LIST"],
    ] {
        match run(&mut admin, args).await {
            Err(e) if refused(&e) => {}
            other => panic!("muster user ran {args:?}: {other:?}"),
        }
    }

    // No anonymous access; a wrong password is refused.
    let anon = format!("redis://127.0.0.1:{}", redis.port);
    let mut anon = conn(&anon).await;
    let err = run(&mut anon, &["PING"]).await.unwrap_err();
    assert!(err.contains("NOAUTH"), "{err}");
    let wrong = muster::signal::client::open_client(&redis.url("agent", "not-the-password"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(wrong.is_err(), "a wrong password connects");

    // Nothing the agent tried changed anything.
    assert_eq!(
        run(&mut admin, &["GET", "muster:proj:revisions:x"])
            .await
            .unwrap(),
        redis::Value::BulkString(b"keep".to_vec())
    );
    assert_eq!(
        run(&mut admin, &["LLEN", "muster:proj:revisions:api"])
            .await
            .unwrap(),
        redis::Value::Int(1)
    );
    let policy = run(&mut admin, &["CONFIG", "GET", "maxmemory-policy"])
        .await
        .unwrap();
    assert_eq!(
        policy,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"maxmemory-policy".to_vec()),
            redis::Value::BulkString(b"noeviction".to_vec())
        ])
    );
    let aof = run(&mut admin, &["CONFIG", "GET", "appendonly"])
        .await
        .unwrap();
    assert_eq!(
        aof,
        redis::Value::Array(vec![
            redis::Value::BulkString(b"appendonly".to_vec()),
            redis::Value::BulkString(b"yes".to_vec())
        ])
    );
}

#[tokio::test]
async fn redis_conf_script_replaces_the_passwords() {
    let dir = TempDir::new("muster-redisconf-script");
    let out_conf = dir.path().join("redis.local.conf");
    let status = Command::new("bash")
        .arg(repo().join("scripts/redis-conf.sh"))
        .arg(&out_conf)
        .env("MUSTER_REDIS_PASSWORD", "ops-secret-0123456789")
        .env("AGENT_REDIS_PASSWORD", "agent-secret-0123456789")
        .env("MUSTER_NAMESPACE", "prod")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out_conf).unwrap();
    assert!(
        !text.contains("ops-secret-0123456789"),
        "plain password written"
    );

    let redis = ConfRedis::start(&out_conf);
    let (old_muster, _) = passwords();
    let old = muster::signal::client::open_client(&redis.url("muster", &old_muster))
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    assert!(old.is_err(), "the default password still works");

    // muster connects first, as in a stack: it loads the functions agents FCALL.
    let watcher = AgentWatcher::start(WatcherConfig::new(
        redis.url("muster", "ops-secret-0123456789"),
        "prod",
    ))
    .unwrap();
    assert!(watcher.wait_subscribed(Duration::from_secs(10)).await);
    let client = Client::connect_with(
        &redis.url("agent", "agent-secret-0123456789"),
        ClientOptions {
            namespace: "prod".into(),
            ..ClientOptions::default()
        },
    )
    .await
    .unwrap();
    client.mark_ready("a1", &[]).await.unwrap();
    let out = Muster::new()
        .redis(&redis.url("muster", "ops-secret-0123456789"))
        .namespace("prod")
        .run(&["check", "--agent", "a1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The namespace moved: the agent user no longer reaches muster:ready:*.
    let mut agent = conn(&redis.url("agent", "agent-secret-0123456789")).await;
    assert!(run(&mut agent, &["GET", "muster:ready:a1"]).await.is_err());

    // Bad input: a short or URL-unsafe password is refused with the variable's name.
    for bad in ["short", "has space and more", "p@ss/word:12345"] {
        let out = Command::new("bash")
            .arg(repo().join("scripts/redis-conf.sh"))
            .arg(dir.path().join("never.conf"))
            .env("AGENT_REDIS_PASSWORD", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("AGENT_REDIS_PASSWORD"));
        assert!(!dir.path().join("never.conf").exists());
    }
}

/// redis.conf as shipped plus the users `muster acl --passwords DIR` prints
/// for `agents`; returns the server and each agent's URL.
fn with_agent_users(agents: &[&str]) -> (ConfRedis, TempDir, Vec<String>) {
    let dir = TempDir::new("muster-acl");
    let pw_dir = dir.path().join("passwords");
    let mut args = vec!["acl", "--passwords", pw_dir.to_str().unwrap()];
    for a in agents {
        args.extend(["--agent", a]);
    }
    let out = Muster::new().namespace(NS).run(&args);
    assert!(
        out.status.success(),
        "muster acl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = String::from_utf8_lossy(&out.stdout).to_string();
    // The rules carry hashes, never the passwords themselves.
    let passwords: Vec<String> = agents
        .iter()
        .map(|a| {
            std::fs::read_to_string(pw_dir.join(a))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    for p in &passwords {
        assert!(p.len() >= 32, "a made password is long: {p:?}");
        assert!(
            !rules.contains(p.as_str()),
            "the password leaked into the rules"
        );
    }
    let conf = dir.path().join("redis.conf");
    let shipped_text = std::fs::read_to_string(shipped()).unwrap();
    std::fs::write(&conf, format!("{shipped_text}\n{rules}")).unwrap();
    let redis = ConfRedis::start(&conf);
    let urls = agents
        .iter()
        .zip(&passwords)
        .map(|(a, p)| redis.url(&format!("agent-{a}"), p))
        .collect();
    (redis, dir, urls)
}

/// Each agent's own user (from `muster acl`) may signal for that agent only,
/// through muster's functions, may not run Lua of its own, and an event it
/// forges about another agent does not make muster believe that agent ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_users_confine_each_agent_to_its_own_signal() {
    let (muster_pw, agent_pw) = passwords();
    let (redis, _dir, urls) = with_agent_users(&["alpha", "beta"]);
    let watcher =
        AgentWatcher::start(WatcherConfig::new(redis.url("muster", &muster_pw), NS)).unwrap();
    assert!(
        watcher.wait_subscribed(Duration::from_secs(10)).await,
        "redis log:\n{}",
        redis.log()
    );
    watcher.track("beta").unwrap();

    // alpha signals for itself (FCALL of the functions the watcher loaded).
    let alpha = Client::connect(&urls[0]).await.unwrap();
    alpha.mark_starting("alpha", "warming", None).await.unwrap();
    watcher
        .wait_for("alpha", Duration::from_secs(10), |r| {
            r.progress() == Some("warming")
        })
        .await
        .expect("alpha's own signal is seen");
    // ... and not for beta.
    let err = alpha.mark_ready("beta", &[]).await.unwrap_err().to_string();
    assert!(refused(&err), "{err}");

    // No Lua of its own: an endless loop would block every client of Redis.
    let mut raw = conn(&urls[0]).await;
    for args in [
        &["EVAL", "while true do end", "0"][..],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=evil\nredis.register_function('f', function() end)",
        ],
        &["FUNCTION", "FLUSH"],
        &["SCRIPT", "LOAD", "return 1"],
        &["GET", "muster:ready:beta"],
        &["SET", "muster:ready:beta", "{}"],
    ] {
        let err = run(&mut raw, args).await.unwrap_err();
        assert!(refused(&err), "{args:?}: {err}");
    }

    // A forged event about beta. alpha may not publish on beta's channel
    // (which muster believes) nor on the version-1 shared one.
    let forged = json!({"agent": "beta", "status": "ready", "since": 1, "ttl_ms": 30000});
    let forged = forged.to_string();
    for channel in ["muster:events:beta", "muster:events"] {
        let err = run(&mut raw, &["PUBLISH", channel, &forged])
            .await
            .unwrap_err();
        assert!(refused(&err), "PUBLISH {channel}: {err}");
    }
    // On its own channel: published, but muster ignores an event there
    // that names another agent.
    run(&mut raw, &["PUBLISH", "muster:events:alpha", &forged])
        .await
        .unwrap();
    // On the shared channel, as the shipped shared `agent` user (kept for
    // version-1 clients): a hint; muster reads beta's keys, which hold
    // nothing, and keeps beta not ready.
    let mut shared = conn(&redis.url("agent", &agent_pw)).await;
    run(&mut shared, &["PUBLISH", "muster:events", &forged])
        .await
        .unwrap();
    // alpha's next real signal is published after both, so once the watcher
    // has seen that one it has handled the forged events too.
    alpha.mark_ready("alpha", &[]).await.unwrap();
    watcher
        .wait_for("alpha", Duration::from_secs(10), |r| r.is_ready())
        .await
        .expect("alpha ready");
    assert!(
        !watcher.readiness("beta").is_ready(),
        "a forged event made beta ready: {:?}",
        watcher.get("beta")
    );

    // beta's own user can, and then muster believes it.
    let beta = Client::connect(&urls[1]).await.unwrap();
    beta.mark_ready("beta", &[]).await.unwrap();
    watcher
        .wait_for("beta", Duration::from_secs(10), |r| r.is_ready())
        .await
        .expect("beta's own signal is seen");
}

/// Before muster has loaded its functions into a Redis, an agent user
/// without EVAL cannot signal: the error says why and what to do.
#[tokio::test]
async fn without_muster_functions_a_confined_agent_is_told_what_to_do() {
    let (redis, _dir, urls) = with_agent_users(&["gamma"]);
    let gamma = Client::connect(&urls[0]).await.unwrap();
    let err = gamma.mark_ready("gamma", &[]).await.unwrap_err();
    let text = muster::error_text::error_chain(&err);
    assert!(
        text.contains("functions (muster_v1) are not loaded") && text.contains("start muster"),
        "{text}"
    );
    assert!(
        !text.contains(&urls[0]),
        "the URL (with its password) leaked: {text}"
    );
    drop(redis);
}
