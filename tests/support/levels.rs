//! The benchmark stack's shape: 20 services in 4 levels, each healthy a fixed
//! delay after it starts, every service of level l > 0 needing two of level
//! l-1. Shared by `up_critical_path` (one host) and `swarm_deploy` (the test
//! swarm), so both measure against the same critical-path bound.

use std::collections::BTreeMap;

pub const LEVELS: usize = 4;
pub const PER_LEVEL: usize = 5;

/// Delay (ms) of service `i` in level `l`: varied so the critical path is not
/// simply the sum of each level's maximum.
pub fn delay(l: usize, i: usize) -> u64 {
    const D: [[u64; PER_LEVEL]; LEVELS] = [
        [1500, 900, 600, 1200, 300],
        [600, 1500, 900, 300, 1200],
        [1200, 300, 1500, 600, 900],
        [900, 600, 300, 1500, 1200],
    ];
    D[l][i]
}

pub fn name(l: usize, i: usize) -> String {
    format!("s{l}{i}")
}

pub fn parse_name(n: &str) -> Option<(usize, usize)> {
    let b = n.as_bytes();
    (b.len() == 3 && b[0] == b's').then(|| ((b[1] - b'0') as usize, (b[2] - b'0') as usize))
}

/// Level l > 0 service i depends (service_healthy) on services i and i+1 of level l-1.
pub fn deps(l: usize, i: usize) -> Vec<(usize, usize)> {
    if l == 0 {
        Vec::new()
    } else {
        vec![(l - 1, i), (l - 1, (i + 1) % PER_LEVEL)]
    }
}

/// Longest sum of delays along a dependency path.
pub fn critical_path_ms() -> u64 {
    let mut best: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for l in 0..LEVELS {
        for i in 0..PER_LEVEL {
            let before = deps(l, i).iter().map(|d| best[d]).max().unwrap_or(0);
            best.insert((l, i), before + delay(l, i));
        }
    }
    best.values().copied().max().unwrap_or(0)
}

/// Sum over levels of the level's largest delay (what level-by-level start costs).
pub fn level_by_level_ms() -> u64 {
    (0..LEVELS)
        .map(|l| (0..PER_LEVEL).map(|i| delay(l, i)).max().unwrap_or(0))
        .sum()
}

/// The service's command: sleep its delay, then serve "ok" with busybox httpd
/// on port 8080 from /tmp/www.
pub fn serve_after_delay(l: usize, i: usize) -> String {
    let d = delay(l, i);
    format!(
        "sleep {}.{:03}; mkdir -p /tmp/www; echo ok > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www",
        d / 1000,
        d % 1000
    )
}
