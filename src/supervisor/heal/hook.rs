//! The optional post-restart hook (`x-muster.restart.hook`): a command muster
//! runs on its own host after it restarted a service, with environment
//! variables that name the service, its containers and the reason. It runs on
//! its own task and is killed when it outlives `hook_timeout`; its result is
//! logged, never waited for by supervision.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::compose::xmuster::HookCommand;

/// What the hook is told.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub command: HookCommand,
    pub timeout: Duration,
    pub project: String,
    pub service: String,
    /// Container names.
    pub containers: Vec<String>,
    pub container_ids: Vec<String>,
    pub reason: String,
    /// `muster` or `dependency`.
    pub by: String,
    /// Restarts of the service muster made so far (this one included).
    pub restarts: u32,
    /// Where it runs (the project directory).
    pub dir: Option<PathBuf>,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    Exited { code: Option<i32>, output: String },
    TimedOut,
    NotStarted(String),
}

/// Runs the hook to its end (or its timeout).
pub async fn run(hook: HookRun) -> HookResult {
    let argv = hook.command.argv();
    let Some((program, args)) = argv.split_first() else {
        return HookResult::NotStarted("empty command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("MUSTER_EVENT", "restart")
        .env("MUSTER_PROJECT", &hook.project)
        .env("MUSTER_SERVICE", &hook.service)
        .env("MUSTER_CONTAINERS", hook.containers.join(","))
        .env(
            "MUSTER_CONTAINER",
            hook.containers.first().cloned().unwrap_or_default(),
        )
        .env("MUSTER_CONTAINER_IDS", hook.container_ids.join(","))
        .env("MUSTER_REASON", &hook.reason)
        .env("MUSTER_RESTART_BY", &hook.by)
        .env("MUSTER_RESTARTS", hook.restarts.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = hook.dir.as_ref().filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookResult::NotStarted(format!("{program}: {e}")),
    };
    match tokio::time::timeout(hook.timeout, child.wait_with_output()).await {
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => HookResult::TimedOut,
        Ok(Err(e)) => HookResult::NotStarted(e.to_string()),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let text = text.trim();
            // Keep logs short: the first 2000 characters.
            let output: String = text.chars().take(2000).collect();
            HookResult::Exited {
                code: out.status.code(),
                output,
            }
        }
    }
}

/// Runs the hook on its own task and logs how it ended.
pub fn spawn(hook: HookRun) {
    tokio::spawn(async move {
        let service = hook.service.clone();
        let timeout = hook.timeout;
        match run(hook).await {
            HookResult::Exited {
                code: Some(0),
                output,
            } => {
                tracing::info!(service = %service, output = %output, "post-restart hook finished")
            }
            HookResult::Exited { code, output } => {
                tracing::warn!(service = %service, code = ?code, output = %output, "post-restart hook failed")
            }
            HookResult::TimedOut => {
                tracing::warn!(service = %service, timeout = %crate::duration::format(timeout), "post-restart hook timed out and was killed")
            }
            HookResult::NotStarted(e) => {
                tracing::warn!(service = %service, error = %e, "post-restart hook could not run")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: HookCommand, timeout: Duration) -> HookRun {
        HookRun {
            command,
            timeout,
            project: "p".into(),
            service: "api".into(),
            containers: vec!["p-api-1".into()],
            container_ids: vec!["abc".into()],
            reason: "not ready".into(),
            by: "muster".into(),
            restarts: 2,
            dir: None,
        }
    }

    #[tokio::test]
    async fn hook_sees_its_environment_and_is_bounded() {
        let r = run(hook(
            HookCommand::Shell(
                "echo $MUSTER_PROJECT/$MUSTER_SERVICE/$MUSTER_CONTAINER/$MUSTER_REASON/$MUSTER_RESTARTS".into(),
            ),
            Duration::from_secs(10),
        ))
        .await;
        assert_eq!(
            r,
            HookResult::Exited {
                code: Some(0),
                output: "p/api/p-api-1/not ready/2".into()
            }
        );
        let r = run(hook(
            HookCommand::Argv(vec!["sh".into(), "-c".into(), "exit 3".into()]),
            Duration::from_secs(10),
        ))
        .await;
        assert!(
            matches!(r, HookResult::Exited { code: Some(3), .. }),
            "{r:?}"
        );
        let r = run(hook(
            HookCommand::Shell("sleep 30".into()),
            Duration::from_millis(200),
        ))
        .await;
        assert_eq!(r, HookResult::TimedOut);
        let r = run(hook(
            HookCommand::Argv(vec!["/nonexistent/muster-hook".into()]),
            Duration::from_secs(1),
        ))
        .await;
        assert!(matches!(r, HookResult::NotStarted(_)), "{r:?}");
    }
}
