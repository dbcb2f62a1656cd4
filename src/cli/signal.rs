//! `muster signal`, `muster check` and `muster demo-agent`.

use std::process::ExitCode;
use std::time::Duration;

use muster::clock::now_ms;
use muster::compose::xmuster::{NatsProbeSpec, ProbeKind, ProbeSpec, ProbeTiming, RedisProbeSpec};
use muster::config::Settings;
use muster::probe::{AddressMode, ProbeContext};
use muster::signal::client::{assert_value, open_client, refresh, set_not_ready};
use muster::signal::protocol::hostname;
use muster::signal::{
    nats_subject, notready_key, read_signal_blocking, ready_key, validate_meta, validate_name,
    Client, ClientOptions, Event, Meta, NotReadyValue, Readiness, SignalValue, Status,
};
use muster::supervisor::once::run_once;
use muster::url::redact_url;

use super::{CheckArgs, CliResult, DemoAgentArgs, Global, SignalArgs};

fn usage(msg: &str) -> CliResult {
    eprintln!("muster: usage error: {msg}");
    Ok(ExitCode::from(2))
}

fn parse_duration(flag: &str, text: &str) -> Result<Duration, String> {
    muster::duration::parse(text).map_err(|e| format!("--{flag}: {e}"))
}

// ---------------------------------------------------------------- check

/// `muster check`: 0 ready, 1 not ready (reason on stderr), 2 usage error.
pub fn check(args: CheckArgs, global: &Global, settings: &Settings) -> CliResult {
    let json = global.json;
    let chosen = [
        args.agent.is_some(),
        args.service.is_some(),
        args.self_,
        args.redis.is_some(),
        args.nats.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen != 1 {
        return usage(
            "give exactly one of --agent NAME, --service NAME, --self, --redis URL, --nats URL",
        );
    }
    let tls_flags = [
        args.cacert.is_some(),
        args.cert.is_some(),
        args.key.is_some(),
    ];
    if tls_flags.contains(&true) && args.redis.is_none() && args.nats.is_none() {
        return usage("--cacert, --cert and --key go with --redis rediss://… or --nats tls://…");
    }
    let timeout = match muster::duration::parse(&args.timeout) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => return usage("--timeout must be more than 0"),
        Err(e) => return usage(&format!("--timeout: {e}")),
    };
    if let Some(url) = &args.redis {
        let kind = ProbeKind::Redis(RedisProbeSpec {
            url: url.clone(),
            require: vec![],
            role: None,
            replication_link_up: false,
            key_exists: None,
            ca_file: args.cacert.clone(),
            cert_file: args.cert.clone(),
            key_file: args.key.clone(),
        });
        return check_server("redis", url, kind, timeout, json);
    }
    if let Some(url) = &args.nats {
        let kind = ProbeKind::Nats(NatsProbeSpec {
            url: Some(url.clone()),
            jetstream: false,
            stream: None,
            creds: None,
            nkey: None,
            monitor_url: None,
            ca_file: args.cacert.clone(),
            cert_file: args.cert.clone(),
            key_file: args.key.clone(),
        });
        return check_server("nats", url, kind, timeout, json);
    }
    if let Some(agent) = &args.agent {
        if let Err(e) = validate_name(agent) {
            return usage(&e.to_string());
        }
        let (ready, status, reason) =
            match read_signal_blocking(&settings.redis_url, &settings.namespace, agent, timeout) {
                Ok(r) => (r.is_ready(), r.status().to_string(), r.reason()),
                Err(e) => (
                    false,
                    "unknown".to_string(),
                    format!(
                        "cannot read the signal from {}: {e}",
                        redact_url(&settings.redis_url)
                    ),
                ),
            };
        return Ok(report(json, "agent", agent, ready, &status, &reason));
    }
    let wanted = super::endpoint::wanted(global, settings);
    let (kind, name, path) = match &args.service {
        Some(service) => {
            if let Err(e) = validate_name(service) {
                return usage(&e.to_string().replace("agent name", "service name"));
            }
            ("service", service.clone(), format!("/status/{service}"))
        }
        None => ("muster", wanted.describe(), "/healthz".to_string()),
    };
    // Only the muster of this stack counts: one of another project (a
    // default port shared by two stacks) is named, never believed.
    let lookup = super::endpoint::find(settings, &wanted, &path, timeout)?;
    let (ready, status, reason) = match lookup.found {
        None if lookup.other().is_some() => {
            (false, "wrong muster".to_string(), lookup.why_not(&wanted))
        }
        None => (
            false,
            "unknown".to_string(),
            format!("muster not reachable: {}", lookup.why_not(&wanted)),
        ),
        Some((_, reply)) if kind == "muster" => {
            if reply.code == 200 {
                (true, "ok".to_string(), String::new())
            } else {
                (
                    false,
                    format!("http {}", reply.code),
                    format!("/healthz answered {}", reply.code),
                )
            }
        }
        Some((_, reply)) if reply.code == 404 => (
            false,
            "unknown".to_string(),
            format!("muster knows no service {name:?}"),
        ),
        Some((_, reply)) => service_state(reply.code, &reply.body),
    };
    Ok(report(json, kind, &name, ready, &status, &reason))
}

/// A probe's config error in the words of the `check` flags: the probe's
/// `ca_file`, `cert_file`, `key_file` and `url` are `--cacert`, `--cert`,
/// `--key` and URL here.
fn name_flags(error: &muster::probe::ProbeError) -> String {
    const FLAGS: [(&str, &str); 4] = [
        ("ca_file", "--cacert"),
        ("cert_file", "--cert"),
        ("key_file", "--key"),
        ("url", "URL"),
    ];
    let muster::probe::ProbeError::Field {
        kind,
        field,
        message,
    } = error
    else {
        return error.to_string();
    };
    let flag = FLAGS
        .iter()
        .find(|(f, _)| f == field)
        .map_or(*field, |(_, flag)| *flag);
    let text = FLAGS[..3]
        .iter()
        .fold(message.clone(), |text, (f, flag)| text.replace(f, flag));
    // "--cacert is for …" already names the flag.
    if text.starts_with(flag) {
        format!("{kind} probe: {text}")
    } else {
        format!("{kind} probe: {flag}: {text}")
    }
}

/// `muster check --redis URL` / `--nats URL`: one run of the probe of that
/// kind, bounded by `timeout`. A URL the probe cannot use is a usage error.
fn check_server(
    kind: &str,
    url: &str,
    probe_kind: ProbeKind,
    timeout: Duration,
    json: bool,
) -> CliResult {
    let spec = ProbeSpec {
        kind: probe_kind,
        timing: ProbeTiming {
            timeout,
            ..ProbeTiming::default()
        },
    };
    // The URL is used as written: no compose service names to map.
    let ctx = ProbeContext {
        address_mode: AddressMode::Network,
        ..ProbeContext::default()
    };
    let mut probe = match muster::probe::build(&spec, &ctx) {
        Ok(p) => p,
        Err(e) => return usage(&hide_secret(url, &name_flags(&e))),
    };
    let target = probe.target();
    let mut outcome = runtime()?.block_on(run_once(probe.as_mut(), timeout));
    outcome.reason = hide_secret(url, &outcome.reason);
    let ready = outcome.is_ok();
    if json {
        let mut value = serde_json::to_value(&outcome)?;
        if let Some(map) = value.as_object_mut() {
            map.insert(kind.to_string(), serde_json::Value::String(target.clone()));
            map.insert("ready".to_string(), serde_json::Value::Bool(ready));
        }
        println!("{value}");
    }
    if ready {
        return Ok(ExitCode::SUCCESS);
    }
    let reason = if outcome.reason.is_empty() {
        format!("{:?}", outcome.status).to_lowercase()
    } else {
        outcome.reason.clone()
    };
    eprintln!("{kind} {target} not ready: {reason}");
    Ok(ExitCode::from(1))
}

/// `text` with the password (or token) of `url` replaced by `***`: probe
/// messages redact URLs, but a URL that does not parse may be echoed as given.
fn hide_secret(url: &str, text: &str) -> String {
    match muster::url::secret(url) {
        Some(secret) => text.replace(url, &redact_url(url)).replace(secret, "***"),
        None => text.to_string(),
    }
}

fn service_state(code: u16, body: &[u8]) -> (bool, String, String) {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            return (
                false,
                "unknown".to_string(),
                format!("status endpoint answered {code} without JSON"),
            )
        }
    };
    let state = value
        .get("state")
        .or_else(|| value.pointer("/service/state"))
        .and_then(|s| s.as_str());
    let Some(state) = state else {
        return (
            false,
            "unknown".to_string(),
            format!("status endpoint answered {code} without a \"state\" field"),
        );
    };
    let ready = state == "ready" || state == "completed";
    let reason = if ready {
        String::new()
    } else {
        match value.get("reason").and_then(|r| r.as_str()) {
            Some(r) if !r.is_empty() => format!("{state}: {r}"),
            _ => state.to_string(),
        }
    };
    (ready, state.to_string(), reason)
}

fn report(json: bool, kind: &str, name: &str, ready: bool, status: &str, reason: &str) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({ kind: name, "ready": ready, "status": status, "reason": reason })
        );
    }
    if ready {
        ExitCode::SUCCESS
    } else {
        eprintln!("{kind} {name} not ready: {reason}");
        ExitCode::from(1)
    }
}

// ---------------------------------------------------------------- signal

fn parse_meta(pairs: &[String]) -> Result<Meta, String> {
    let mut meta = Meta::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("--meta {p:?}: expected KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(format!("--meta {p:?}: empty key"));
        }
        meta.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(meta)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// `muster signal ACTION --agent NAME`: one write (atomic with its event), then exit.
pub fn signal(args: SignalArgs, settings: &Settings, json: bool) -> CliResult {
    let action = args.action.as_str();
    if !matches!(
        action,
        "ready" | "not-ready" | "starting" | "stopping" | "heartbeat"
    ) {
        return usage(&format!(
            "unknown action {action:?}: use ready, not-ready, starting, stopping or heartbeat"
        ));
    }
    validate_name(&args.agent)?;
    let ttl = parse_duration("ttl", &args.ttl)?;
    if ttl < Duration::from_millis(1) {
        return Err("--ttl must be at least 1ms".into());
    }
    let extend = args
        .extend
        .as_deref()
        .map(|e| parse_duration("extend", e))
        .transpose()?;
    let meta = parse_meta(&args.meta)?;
    validate_meta(&args.agent, &meta)?;
    let rt = runtime()?;
    rt.block_on(signal_async(args, settings, json, ttl, extend, meta))
}

async fn signal_async(
    args: SignalArgs,
    settings: &Settings,
    json: bool,
    ttl: Duration,
    extend: Option<Duration>,
    meta: Meta,
) -> CliResult {
    let ns = &settings.namespace;
    let agent = &args.agent;
    let client = open_client(&settings.redis_url)?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| {
            format!(
                "cannot reach Redis at {}: {e}",
                redact_url(&settings.redis_url)
            )
        })?;

    if args.action == "heartbeat" {
        if refresh(&mut conn, ns, agent, ttl).await? {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"agent": agent, "refreshed": true, "ttl_ms": ttl.as_millis() as u64})
                );
            } else {
                println!(
                    "agent {agent}: signal refreshed (ttl {})",
                    muster::duration::format(ttl)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("muster signal heartbeat: agent {agent} has no live signal to refresh (expired or never sent); send `muster signal ready` again");
        return Ok(ExitCode::from(1));
    }

    // Keep `since` when the status does not change, so repeating a command
    // (a shell agent's loop) only refreshes the TTL and publishes nothing.
    let (old_ready, old_notready): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("MGET")
        .arg(ready_key(ns, agent))
        .arg(notready_key(ns, agent))
        .query_async(&mut conn)
        .await?;
    let old_value: Option<SignalValue> = old_ready
        .as_deref()
        .and_then(|raw| serde_json::from_slice(raw).ok());
    let host = Some(hostname());
    // The pid of the agent (this CLI's parent: the entrypoint script), not of this short-lived process.
    let pid = Some(parent_pid());

    let event = if args.action == "not-ready" {
        let reason = args
            .reason
            .clone()
            .unwrap_or_else(|| "not ready".to_string());
        let old: Option<NotReadyValue> = old_notready
            .as_deref()
            .and_then(|raw| serde_json::from_slice(raw).ok());
        let since = match old {
            Some(o) if o.reason == reason && old_ready.is_none() => o.since,
            _ => now_ms(),
        };
        let value = NotReadyValue {
            reason,
            since,
            host,
            pid,
        };
        set_not_ready(
            &mut conn,
            ns,
            agent,
            &value,
            muster::signal::DEFAULT_NOTREADY_TTL,
        )
        .await?;
        Event::from_not_ready(agent, &value)
    } else {
        let status = match args.action.as_str() {
            "ready" => Status::Ready,
            "starting" => Status::Starting,
            _ => Status::Stopping,
        };
        let progress = if status == Status::Starting {
            args.progress.clone().or(args.reason.clone())
        } else {
            None
        };
        let mut deadline = extend.map(|d| now_ms() + d.as_millis() as u64);
        let since = match &old_value {
            Some(o) if o.status == status => {
                if deadline.is_none() {
                    deadline = o.deadline;
                }
                o.since
            }
            _ => now_ms(),
        };
        let value = SignalValue {
            status,
            since,
            progress,
            deadline: if status == Status::Starting {
                deadline
            } else {
                None
            },
            host,
            pid,
            meta,
        };
        assert_value(&mut conn, ns, agent, &value, ttl).await?;
        Event::from_value(agent, &value, ttl)
    };

    if let Some(url) = &settings.nats_url {
        let payload = serde_json::to_vec(&event)?;
        let nats = async {
            let client = async_nats::connect(url.as_str()).await?;
            client
                .publish(nats_subject(ns, agent), payload.into())
                .await?;
            client.flush().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(Duration::from_secs(2), nats).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, nats = %redact_url(url), "NATS publish failed (the Redis signal was written)")
            }
            Err(_) => {
                tracing::warn!(nats = %redact_url(url), "NATS publish timed out (the Redis signal was written)")
            }
        }
    }

    if json {
        println!("{}", serde_json::to_string(&event)?);
    } else {
        let r = Readiness::from_event(&event);
        match r.is_ready() {
            true => println!(
                "agent {agent}: ready (ttl {})",
                muster::duration::format(ttl)
            ),
            false => println!("agent {agent}: {}", r.reason()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

// ---------------------------------------------------------------- demo-agent

/// A demo agent: starting with progress, ready, heartbeats, stopping and
/// not-ready on SIGTERM/SIGINT.
pub fn demo_agent(args: DemoAgentArgs, settings: &Settings, json: bool) -> CliResult {
    let agent = args
        .agent
        .clone()
        .or_else(|| std::env::var("MUSTER_AGENT").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(hostname);
    validate_name(&agent)?;
    let startup = parse_duration("startup", &args.startup)?;
    let ttl = parse_duration("ttl", &args.ttl)?;
    if ttl < Duration::from_millis(100) {
        return Err("--ttl must be at least 100ms".into());
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let opts = ClientOptions {
            namespace: settings.namespace.clone(),
            ttl,
            ..ClientOptions::default()
        };
        let client = Client::connect_with(&settings.redis_url, opts)
            .await
            .map_err(|e| {
                format!(
                    "cannot reach Redis at {}: {e}",
                    redact_url(&settings.redis_url)
                )
            })?;
        let mut guard = client.shutdown_guard()?;
        let say = |what: &str| {
            if json {
                println!("{}", serde_json::json!({"agent": agent, "event": what}));
            } else {
                println!("demo-agent {agent}: {what}");
            }
        };
        let steps = 10u32;
        let step = startup / steps;
        for i in 0..steps {
            let progress = format!("loading model {}%", i * 100 / steps);
            // Each progress report pushes the start deadline out by a few steps.
            client
                .mark_starting(&agent, &progress, Some(step * 3 + Duration::from_secs(1)))
                .await?;
            say(&progress);
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                sig = guard.signalled() => {
                    say(&format!("{sig} during start-up; stopping"));
                    guard.finish(&format!("stopped on {sig}")).await?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        client
            .mark_ready(
                &agent,
                &[("demo", "true"), ("pid", &std::process::id().to_string())],
            )
            .await?;
        say("ready");
        let sig = guard.signalled().await;
        say(&format!("{sig}: stopping"));
        guard.finish(&format!("stopped on {sig}")).await?;
        say("not ready; bye");
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_states() {
        assert!(service_state(200, br#"{"state":"ready"}"#).0);
        assert!(service_state(200, br#"{"state":"completed"}"#).0);
        let (ok, _, reason) = service_state(503, br#"{"state":"starting","reason":"grace"}"#);
        assert!(!ok);
        assert_eq!(reason, "starting: grace");
        assert!(!service_state(200, b"nope").0);
    }

    #[test]
    fn secrets_hidden() {
        let url = "redis://:s3cret@127.0.0.1:1";
        assert_eq!(
            hide_secret(url, &format!("bad {url:?} and s3cret")),
            "bad \"redis://:***@127.0.0.1:1\" and ***"
        );
        assert_eq!(hide_secret("nats://tok@h:1", "tok@h"), "***@h");
        assert_eq!(hide_secret("redis://h:1", "as is"), "as is");
    }

    #[test]
    fn meta_pairs() {
        let m = parse_meta(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(m["b"], "x=y");
        assert!(parse_meta(&["novalue".into()]).is_err());
    }
}
