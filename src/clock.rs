//! Wall-clock time as unix milliseconds, the unit of every timestamp muster
//! stores or shows (`since_ms`, `at_ms`, revision and lock times). One helper
//! instead of one per module; a leaf that imports nothing of the crate. Pure
//! cores do not call [`now_ms`]: they take the time as a parameter.

use std::time::SystemTime;

/// Unix milliseconds of a wall-clock time (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn millis_since_the_epoch() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(t), 1_700_000_000_123);
        assert_eq!(unix_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
