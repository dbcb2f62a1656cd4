//! What muster may do to heal one service, and the arithmetic of it: the
//! exponential backoff and the restart budget over a service's
//! `x-muster.restart` settings (their schema and validation live with the
//! compose model, in `compose::xmuster::restart`). Pure: no I/O, no clock of
//! its own (times are passed in).

use std::collections::VecDeque;
use std::time::Duration;

use crate::compose::xmuster::RestartSettings;

impl RestartSettings {
    /// The delay before a restart when `used` restarts were made in the window:
    /// `backoff * 2^used`, at most `max_backoff`.
    pub fn delay_after(&self, used: u32) -> Duration {
        let factor = 2u32.saturating_pow(used.min(31));
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// What the budget says about one more restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Restart after `delay`; it will be restart number `attempt` in the window.
    Restart { delay: Duration, attempt: u32 },
    /// `used` restarts in the window already: no more.
    Exhausted { used: u32 },
    /// `budget: 0`: muster does not restart this service.
    Disabled,
}

/// The restarts muster made, as unix milliseconds, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    at_ms: VecDeque<u64>,
}

impl Budget {
    /// A budget that already holds these restarts (e.g. from the durable history).
    pub fn from_records(mut at_ms: Vec<u64>) -> Budget {
        at_ms.sort_unstable();
        Budget {
            at_ms: at_ms.into(),
        }
    }

    /// Restarts within `window` before `now_ms`.
    pub fn used(&self, settings: &RestartSettings, now_ms: u64) -> u32 {
        let from = now_ms.saturating_sub(settings.window.as_millis() as u64);
        self.at_ms.iter().filter(|t| **t > from).count() as u32
    }

    /// May muster restart once more now, and after which delay?
    pub fn check(&self, settings: &RestartSettings, now_ms: u64) -> Verdict {
        if settings.budget == 0 {
            return Verdict::Disabled;
        }
        let used = self.used(settings, now_ms);
        if used >= settings.budget {
            return Verdict::Exhausted { used };
        }
        Verdict::Restart {
            delay: settings.delay_after(used),
            attempt: used + 1,
        }
    }

    /// A restart happened at `at_ms`; records older than `keep` before it are dropped.
    pub fn record(&mut self, at_ms: u64, keep: Duration) {
        self.at_ms.push_back(at_ms);
        let from = at_ms.saturating_sub(keep.as_millis() as u64);
        while self.at_ms.front().is_some_and(|t| *t <= from) {
            self.at_ms.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = RestartSettings::default();
        let delays: Vec<u64> = (0..9).map(|n| s.delay_after(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(s.delay_after(200), Duration::from_secs(60));
    }

    #[test]
    fn budget_counts_restarts_in_the_window() {
        let s = RestartSettings {
            budget: 3,
            window: Duration::from_secs(60),
            ..RestartSettings::default()
        };
        let mut b = Budget::default();
        let t0 = 1_000_000u64;
        assert_eq!(
            b.check(&s, t0),
            Verdict::Restart {
                delay: Duration::from_secs(1),
                attempt: 1
            }
        );
        b.record(t0, s.window);
        b.record(t0 + 10_000, s.window);
        assert_eq!(
            b.check(&s, t0 + 20_000),
            Verdict::Restart {
                delay: Duration::from_secs(4),
                attempt: 3
            }
        );
        b.record(t0 + 20_000, s.window);
        assert_eq!(b.check(&s, t0 + 30_000), Verdict::Exhausted { used: 3 });
        // The first restart leaves the window after 60 s.
        assert_eq!(b.used(&s, t0 + 60_001), 2);
        assert!(matches!(
            b.check(&s, t0 + 60_001),
            Verdict::Restart { attempt: 3, .. }
        ));
        let off = RestartSettings {
            budget: 0,
            ..RestartSettings::default()
        };
        assert_eq!(Budget::default().check(&off, t0), Verdict::Disabled);
        let b = Budget::from_records(vec![t0 + 5, t0]);
        assert_eq!(b.used(&s, t0 + 10), 2);
    }
}
