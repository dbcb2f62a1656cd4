//! What the benches share besides the servers and stacks of the other
//! support modules: their numeric options (command line or environment), and
//! what Linux's /proc says of a process, for the benches that report the CPU
//! time and memory they cost (`heal_overhead`, `probe_load`, `telemetry`,
//! `signal_load`, `compose_load`): one reader each, so every bench's "CPU" is
//! the same measure. CPU time comes from each thread's `schedstat`
//! (nanoseconds on the CPU), not `stat`'s 10 ms ticks, which are too coarse
//! for a short round; `stat` is read only where the user/system split is
//! wanted. A thread that is on a CPU while it is read counts only up to its
//! last scheduler tick, so a measure is worth something over many rounds,
//! not one of a millisecond.

use std::time::Duration;

/// The number after option `name` on the bench's command line
/// (`cargo bench --bench B -- --services 200`), or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The number in environment variable `name` (`SIGNALS=200 cargo bench …`),
/// or `default` when it is unset or not a number.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of every thread of process `pid` (`"self"` for this one), in ns;
/// 0 when the process is gone or /proc cannot be read.
pub fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of this process so far (all its threads).
pub fn cpu_time() -> Duration {
    Duration::from_nanos(cpu_ns("self"))
}

/// (user, system) CPU time from a `/proc/.../stat` file (a process's or one
/// thread's), at the kernel's 100 ticks a second; zero when it cannot be read.
pub fn cpu_split(stat_path: &str) -> (Duration, Duration) {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let Some(after) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let hz = 100; // sysconf(_SC_CLK_TCK) on Linux
    let ticks = |i: usize| {
        let n = f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Duration::from_millis(n * 1000 / hz)
    };
    (ticks(11), ticks(12))
}

/// The `/proc` stat file of this process's thread named `name` (its `comm`).
pub fn thread_stat(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| t.path().join("stat").to_string_lossy().into_owned())
        })
}

/// A `kB` field of /proc/self/status (`"VmRSS:"`, `"VmHWM:"`).
pub fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
