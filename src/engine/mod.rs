//! A thin, typed layer over the Docker Engine API (bollard).
//!
//! One module per responsibility: [`build`] (image builds), [`client`] (connecting, errors),
//! [`containers`], [`networks`], [`volumes`], [`images`], [`events`],
//! [`labels`] (Docker Compose's labels and the config hash),
//! [`translate`] (compose model -> container create options), and pulls:
//! [`reference`] (image names), [`auth`] (registry credentials as the docker
//! CLI finds them) and [`pull`] (the pull stream and its progress).

pub mod auth;
pub mod build;
pub mod client;
pub mod containers;
pub mod events;
pub mod images;
pub mod labels;
pub mod logs;
pub mod networks;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod secrets;
pub mod stats;
pub mod translate;
pub mod volumes;
pub mod watch;

pub use client::{Engine, EngineError};
pub use containers::{ContainerDetails, ContainerInfo, PublishedPort};
pub use events::{Action, EngineEvent, Health};
pub use images::ImageInfo;
pub use pull::{PullDone, PullError, PullFailure, PullProgress};
pub use reference::ImageRef;

/// Whether a healthcheck `test` (as the engine reports it, for a container
/// or an image) declares a check: `["NONE"]` or an empty test disables one.
pub fn declares_healthcheck(test: &[String]) -> bool {
    test.first().is_some_and(|first| first != "NONE")
}

/// A container's health status (`starting`, `healthy`,
/// `unhealthy`); `None` when the engine reports none.
pub fn health_status(status: Option<bollard::models::HealthStatusEnum>) -> Option<Health> {
    status
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none")
        .map(|s| Health::parse(&s))
}

/// Parses Docker's RFC 3339 timestamps (`2026-11-23T09:13:14.123456789Z`,
/// also with a `+01:00` offset) into nanoseconds since the Unix epoch.
/// Returns `None` for Docker's zero time (`0001-01-01T00:00:00Z`) and bad input.
pub fn parse_rfc3339_ns(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y <= 1 {
        return None;
    }
    let rest = &s[19..];
    let (frac, tz) = match rest.strip_prefix('.') {
        Some(r) => {
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            (&r[..end], &r[end..])
        }
        None => ("", rest),
    };
    let mut nanos: i128 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        nanos += (c as i128 - '0' as i128) * 10i128.pow(8 - i as u32);
    }
    let offset_s: i64 = match tz {
        "Z" | "z" | "" => 0,
        t if t.len() == 6 => {
            let sign = if t.starts_with('-') { -1 } else { 1 };
            let oh: i64 = t.get(1..3)?.parse().ok()?;
            let om: i64 = t.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs as i128 * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_timestamps() {
        assert_eq!(
            parse_rfc3339_ns("1970-01-01T00:00:01Z"),
            Some(1_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-23T09:13:14.000000001+01:00"),
            parse_rfc3339_ns("2026-11-23T08:13:14.000000001Z")
        );
        assert_eq!(
            parse_rfc3339_ns("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000_000)
        );
        assert_eq!(parse_rfc3339_ns("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ns("nonsense"), None);
        let a = parse_rfc3339_ns("2026-11-23T09:13:14.9Z").unwrap();
        let b = parse_rfc3339_ns("2026-11-23T09:13:14.123456789Z").unwrap();
        assert!(a > b);
    }
}
