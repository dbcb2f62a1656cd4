//! Argument definitions and dispatch. One file per subcommand family; each
//! returns an exit code (0 ok, 1 failure or bad input, 2 usage / not built).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
pub use logs::follow_short_flag;
pub use rollout::{HistoryArgs, RollbackArgs, RolloutArgs};

mod acl;
mod build;
pub mod compose;
mod endpoint;
mod logs;
mod manual;
mod pause;
pub mod plugin;
mod pull;
mod rollout;
mod signal;
mod stack;
mod status;
mod swarm;
mod swarm_history;
mod tune;
mod watch;

/// What a subcommand returns: an exit code, or an error printed with its
/// causes as `muster: error: top: cause: cause` with exit code 1.
pub type CliResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Parser, Debug)]
#[command(
    name = "muster",
    version,
    about = "Health supervisor for docker-compose stacks",
    long_about = "muster starts a compose stack in dependency order, decides readiness with real \
                  probes (Redis, NATS, HTTP, TCP, exec, Docker health, agent ready signals), \
                  supervises it, and serves /healthz, /readyz, /status and /metrics."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand shares (strongest first: flag, env, config file, default).
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Compose file(s); later files merge over earlier ones (default: COMPOSE_FILE, then compose.yaml, …).
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, `name:` in the file, or the directory name).
    #[arg(short = 'p', long = "project-name", global = true)]
    pub project_name: Option<String>,
    /// Profiles to enable (default: COMPOSE_PROFILES).
    #[arg(long = "profile", global = true, value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Environment file(s) for interpolation (default: the project's .env).
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Project directory (default: the first compose file's directory).
    #[arg(long = "project-directory", global = true, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// muster's own settings file (default: config/muster.yaml when present).
    #[arg(long, global = true, env = "MUSTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Redis holding ready signals, history and revisions [default: redis://127.0.0.1:6379].
    #[arg(long, global = true, env = "MUSTER_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,
    /// NATS server for ready events (optional).
    #[arg(long, global = true, env = "MUSTER_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// Key prefix in Redis, one per stack [default: muster].
    #[arg(long, global = true, env = "MUSTER_NAMESPACE")]
    pub namespace: Option<String>,
    /// Health endpoint address [default: a port derived from the project and
    /// namespace, 127.0.0.1:28700-29699].
    #[arg(long, global = true, env = "MUSTER_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// How probe hostnames are reached: auto, network (muster on the compose
    /// network: as written) or host (service:port -> 127.0.0.1:published port) [default: auto].
    #[arg(long, global = true, env = "MUSTER_PROBE_ADDRESS", value_name = "MODE")]
    pub probe_address: Option<muster::probe::AddressMode>,
    /// Local state file for history, revisions and locks when Redis is unreachable
    /// [default: $XDG_STATE_HOME/muster/state.json].
    #[arg(long, global = true, env = "MUSTER_STATE_FILE", value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Webhook (http:// or https://) that receives restart / failed / recovered notifications as JSON POSTs.
    #[arg(long, global = true, env = "MUSTER_WEBHOOK_URL", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// For an https:// webhook: PEM CA certificates to trust instead of the system's.
    #[arg(
        long,
        global = true,
        env = "MUSTER_WEBHOOK_CA_FILE",
        value_name = "FILE"
    )]
    pub webhook_ca_file: Option<PathBuf>,
    /// How many images are pulled at once [default: 4].
    #[arg(long, global = true, env = "MUSTER_PULL_PARALLEL", value_name = "N")]
    pub pull_parallel: Option<usize>,
    /// How often CPU and memory are sampled per container (0s: off) [default: 5s].
    #[arg(
        long,
        global = true,
        env = "MUSTER_TELEMETRY_INTERVAL",
        value_name = "DURATION"
    )]
    pub telemetry_interval: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `muster=debug`.
    #[arg(long, global = true, env = "MUSTER_LOG", default_value = "warn")]
    pub log: String,
    /// Log as JSON lines on stderr.
    #[arg(long, global = true)]
    pub log_json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the stack (or SERVICES and their dependencies) in dependency order and wait until ready.
    Up(UpArgs),
    /// Stop and remove the project's containers and networks.
    Down(DownArgs),
    /// Build the images of services that have `build:` (or SERVICES), through the engine's build API.
    Build(build::BuildArgs),
    /// List the project's containers with state, health and uptime.
    Ps,
    /// Print the logs of the project's containers (or SERVICES'), `service-N  | line`, as `docker compose logs`.
    Logs(logs::LogsArgs),
    /// Each service's readiness as muster sees it; exit 0 only when all required services are ready.
    Status(StatusArgs),
    /// Exit 0 when an agent / service / Redis / NATS is ready, 1 (reason on stderr) when not.
    Check(CheckArgs),
    /// Send a ready signal for an agent (ready, not-ready, starting, stopping, heartbeat).
    Signal(SignalArgs),
    /// Print one Redis ACL user per agent, confined to that agent's own keys (FCALL, no EVAL).
    Acl(AclArgs),
    /// Supervise the running stack and serve the health endpoint.
    Serve,
    /// Print (or write as an override file) the healthcheck timings muster would use.
    Tune(TuneArgs),
    /// Pull the images of the stack's services (or of SERVICES), a few at a time, with progress.
    Pull(PullArgs),
    /// Replace a service's containers with a new image, batch by batch (or `rollout status SERVICE`).
    Rollout(RolloutArgs),
    /// Return a service to its previous (or a named) revision.
    Rollback(RollbackArgs),
    /// List a service's revisions.
    History(HistoryArgs),
    /// Print the normalised, merged, interpolated compose model.
    Config(ConfigArgs),
    /// Print the dependency levels (or Graphviz with --dot).
    Graph(GraphArgs),
    /// A demo agent: slow start, then ready, heartbeats, not-ready on SIGTERM.
    DemoAgent(DemoAgentArgs),
    /// Maintenance: stop healing and alerts for one service until `resume` (kept across muster restarts).
    Pause(PauseArgs),
    /// End a service's maintenance: muster heals it and alerts for it again.
    Resume(ResumeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print muster's man page (roff), or write every subcommand's page to a directory.
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    /// The service to pause.
    pub service: String,
    /// Why (shown in status, /readyz?verbose and the page).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The service to resume.
    pub service: String,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Default)]
pub struct AclArgs {
    /// Agents to make users for [default: every agent an `agent` probe of the stack names].
    #[arg(long = "agent", value_name = "NAME", value_parser = crate::cli::agent_value)]
    pub agents: Vec<String>,
    /// Read each agent's password from DIR/NAME (made, mode 0600, when missing) and put its SHA-256 in the rule.
    #[arg(long, value_name = "DIR")]
    pub passwords: Option<PathBuf>,
    /// User name = this prefix + the agent name.
    #[arg(long, default_value = "agent-", value_name = "PREFIX")]
    pub user_prefix: String,
}

#[derive(Args, Debug, Default)]
pub struct ManArgs {
    /// Write muster.1 and one muster-SUBCOMMAND.1 per subcommand here instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
pub struct UpArgs {
    /// Services to start (with their dependencies); default all.
    pub services: Vec<String>,
    /// Give up waiting after this long (Go duration) [default: no limit].
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub wait_timeout: Option<String>,
    /// Do not start the named services' dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Keep running: supervise the stack after it is up.
    #[arg(long)]
    pub watch: bool,
    /// Keep running and serve the health endpoint (implies --watch).
    #[arg(long)]
    pub serve: bool,
    /// Build the images of services with `build:` before starting them.
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Never build: a service whose image is missing fails.
    #[arg(long)]
    pub no_build: bool,
    /// Pull images: always, missing (only absent ones) or never [default: each service's pull_policy].
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<muster::supervisor::start::images::PullOverride>,
    /// Deploy onto the Docker Swarm whose manager DOCKER_HOST names, as
    /// `docker stack deploy` would, but service by service in dependency
    /// order, each gated on muster's probes of every task.
    #[arg(long, conflicts_with_all = ["watch", "build", "no_build", "pull", "no_deps"])]
    pub swarm: bool,
}

#[derive(Args, Debug, Default)]
pub struct PullArgs {
    /// Services whose images to pull; default all.
    pub services: Vec<String>,
    /// Report failed pulls but exit 0.
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// No progress output (errors and the summary still print).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Default)]
pub struct DownArgs {
    /// Also remove named volumes declared by the project.
    #[arg(short = 'v', long)]
    pub volumes: bool,
}

#[derive(Args, Debug, Default)]
pub struct StatusArgs {
    /// Only probe directly; do not ask a running muster.
    #[arg(long)]
    pub direct: bool,
    /// Keep watching: a live full-screen view on a terminal (q quits, f
    /// filters by state, Enter shows a service's logs), a table per
    /// --interval over a pipe.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: how often the stack is read (Go duration).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = crate::cli::duration_value, requires = "watch")]
    pub interval: String,
}

#[derive(Args, Debug, Default)]
pub struct CheckArgs {
    /// Agent name: read its ready signal from Redis.
    #[arg(long, value_name = "NAME", value_parser = agent_value)]
    pub agent: Option<String>,
    /// Service name: ask a running muster's health endpoint.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Check a Redis server (PING, not loading).
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Check a NATS server (connect + flush).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Check this muster's own health endpoint (/healthz).
    #[arg(long = "self")]
    pub self_: bool,
    /// For --redis rediss:// or --nats tls://: PEM CA certificates to trust
    /// instead of the system's (as redis-cli --cacert).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<String>,
    /// With --key, for --redis rediss:// or --nats tls://: a PEM client
    /// certificate for a server that requires one (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<String>,
    /// The PEM private key of --cert.
    #[arg(long, value_name = "FILE")]
    pub key: Option<String>,
    /// Give up after this long (Go duration).
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub timeout: String,
}

#[derive(Args, Debug)]
pub struct SignalArgs {
    /// ready | not-ready | starting | stopping | heartbeat
    pub action: String,
    #[arg(long, value_name = "NAME", value_parser = agent_value)]
    pub agent: String,
    /// Metadata `k=v` (repeatable).
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Reason (not-ready) or progress text (starting).
    #[arg(long)]
    pub reason: Option<String>,
    /// Progress text for `starting`.
    #[arg(long)]
    pub progress: Option<String>,
    /// For `starting`: push the start deadline this far out (Go duration).
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub extend: Option<String>,
    /// Key TTL (Go duration).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub ttl: String,
}

#[derive(Args, Debug, Default)]
pub struct TuneArgs {
    /// Services to tune (default: all).
    pub services: Vec<String>,
    /// Write the values as a compose override file.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
pub struct ConfigArgs {
    /// Print only the service names.
    #[arg(long)]
    pub services: bool,
    /// Print `SERVICE HASH` lines: the com.docker.compose.config-hash Docker
    /// Compose computes for each named service (comma-separated; `*` = all).
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Print muster's normalised model (Docker's healthcheck defaults filled
    /// in, `replicas`, implicit-dependency marks) instead of Compose's document.
    #[arg(long)]
    pub model: bool,
}

#[derive(Args, Debug, Default)]
pub struct GraphArgs {
    /// Print Graphviz dot instead of levels.
    #[arg(long)]
    pub dot: bool,
}

#[derive(Args, Debug, Default)]
pub struct DemoAgentArgs {
    /// Agent name (default: $MUSTER_AGENT or the hostname).
    #[arg(long, value_parser = agent_value)]
    pub agent: Option<String>,
    /// Simulated start-up time (Go duration).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub startup: String,
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = crate::cli::duration_value)]
    pub ttl: String,
}

/// Libraries whose debug output can carry secrets: bollard logs Engine API
/// requests and replies (container environments), async-nats its CONNECT
/// (user and password), hyper/h2/rustls/redis the bytes they move. At
/// `--log debug` or `trace` they stay at `info` unless the filter names them
/// (`--log debug,bollard=debug` still shows bollard's output).
const SECRET_BEARING_CRATES: &[&str] = &[
    "bollard",
    "async_nats",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio_rustls",
    "redis",
];

/// Checks a `DURATION` flag while the command line is parsed, so a bad one is
/// a usage error (exit 2) in every subcommand alike; the value stays text for
/// the code that reads it.
pub fn duration_value(text: &str) -> Result<String, muster::duration::DurationError> {
    muster::duration::parse(text).map(|_| text.to_string())
}

/// Checks an `--agent NAME` flag while the command line is parsed (exit 2).
pub fn agent_value(text: &str) -> Result<String, muster::signal::SignalError> {
    muster::signal::validate_name(text).map(|()| text.to_string())
}

pub fn init_tracing(global: &Global) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_new(&global.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    let verbose = global.log.contains("debug") || global.log.contains("trace");
    if verbose {
        for krate in SECRET_BEARING_CRATES {
            if global.log.contains(krate) {
                continue;
            }
            if let Ok(directive) = format!("{krate}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(watch::log_sink::writer);
    if global.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> ExitCode {
    let global = cli.global;
    // Generated from the definitions alone: no settings needed.
    let result = match &cli.command {
        Command::Completions(args) => Some(manual::completions(args, global.json)),
        Command::Man(args) => Some(manual::man(args, global.json)),
        _ => None,
    };
    if let Some(result) = result {
        return result.unwrap_or_else(|e| print_error(&*e));
    }
    // A bad config file is reported before any subcommand does anything.
    let settings = match global.settings() {
        Ok(settings) => settings,
        Err(e) => return print_error(&e),
    };
    tracing::debug!(redis = %muster::url::redact_url(&settings.redis_url), namespace = %settings.namespace, "settings");
    let result = match cli.command {
        Command::Up(args) if args.swarm => swarm::up(&global, &settings, &args),
        Command::Up(args) => stack::up(&global, &settings, &args),
        Command::Down(args) => stack::down(&global, &args),
        Command::Build(args) => build::run(&global, &args),
        Command::Ps => stack::ps(&global),
        Command::Logs(args) => logs::run(&global, &args),
        Command::Check(args) => signal::check(args, &global, &settings),
        Command::Signal(args) => signal::signal(args, &settings, global.json),
        Command::Acl(args) => acl::run(&global, &settings, &args),
        Command::Status(args) if args.watch => watch::run(&global, &settings, &args),
        Command::Status(args) => status::run(&global, &settings, &args),
        Command::Serve => stack::serve(&global, &settings),
        Command::Tune(args) => tune::run(&global, &settings, &args),
        Command::Pull(args) => pull::run(&global, &settings, &args),
        Command::Rollout(args) if args.swarm => swarm::rollout(&global, &settings, &args),
        Command::Rollback(args) if args.swarm => swarm::rollback(&global, &settings, &args),
        Command::Rollout(args) => rollout::rollout(&global, &settings, &args),
        Command::Rollback(args) => rollout::rollback(&global, &settings, &args),
        Command::History(args) => rollout::history(&global, &settings, &args),
        Command::Config(args) => compose::config(&global, &settings, &args),
        Command::Graph(args) => compose::graph(&global, &settings, &args),
        Command::DemoAgent(args) => signal::demo_agent(args, &settings, global.json),
        Command::Pause(args) => pause::pause(&global, &settings, &args),
        Command::Resume(args) => pause::resume(&global, &settings, &args),
        Command::Completions(_) | Command::Man(_) => unreachable!("answered above"),
    };
    match result {
        Ok(code) => code,
        Err(e) => print_error(&*e),
    }
}

/// `muster: error: top: cause: cause` on stderr (each cause once), exit code 1.
fn print_error(e: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("muster: error: {}", muster::error_text::error_chain(e));
    ExitCode::from(1)
}

impl Global {
    /// Settings from flags/env over the config file over defaults.
    pub fn settings(&self) -> Result<muster::config::Settings, muster::config::ConfigError> {
        muster::config::Settings::resolve(&muster::config::Overrides {
            config: self.config.clone(),
            redis_url: self.redis_url.clone(),
            nats_url: self.nats_url.clone(),
            namespace: self.namespace.clone(),
            listen: self.listen.clone(),
            probe_address: self.probe_address,
            state_file: self.state_file.clone(),
            webhook_url: self.webhook_url.clone(),
            webhook_ca_file: self.webhook_ca_file.clone(),
            pull_parallel: self.pull_parallel,
            telemetry_interval: self.telemetry_interval.clone(),
        })
    }
}
