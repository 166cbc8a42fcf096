//! Klaviyo's rate limits: each operation has a burst (per second) and a steady (per minute) limit,
//! some also a daily one, as its `x-klaviyo-ratelimit` says [S]. Windows are fixed (aligned on
//! multiples of their length) and counted per API key and operation [D]. A request over any
//! window's quota gets 429 `throttled` with `Retry-After` (whole seconds until that window ends,
//! at least 1); other answers carry `RateLimit-Limit/-Remaining/-Reset` for the tightest window.
//!
//! [U] Which window the `RateLimit-*` headers describe (here: the one with the fewest requests
//! left), that refused requests do not count, and that answers refused for auth or revision do not
//! count either.

use std::collections::HashMap;

/// An operation: `(method, path template)`.
pub type Operation = (&'static str, &'static str);

/// One operation's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub burst_per_second: u32,
    pub steady_per_minute: u32,
    pub daily: Option<u32>,
}

impl Limits {
    pub const fn new(burst_per_second: u32, steady_per_minute: u32) -> Limits {
        Limits {
            burst_per_second,
            steady_per_minute,
            daily: None,
        }
    }

    pub const fn daily(self, per_day: u32) -> Limits {
        Limits {
            daily: Some(per_day),
            ..self
        }
    }

    /// `(quota, window in ms)` of each window.
    fn windows(&self) -> Vec<(u32, i64)> {
        let mut windows = vec![
            (self.burst_per_second, 1_000),
            (self.steady_per_minute, 60_000),
        ];
        if let Some(daily) = self.daily {
            windows.push((daily, 86_400_000));
        }
        windows
    }
}

/// The spec's tiers.
pub const XS: Limits = Limits::new(1, 15);
pub const S: Limits = Limits::new(3, 60);
pub const M: Limits = Limits::new(10, 150);
pub const L: Limits = Limits::new(75, 750);
pub const XL: Limits = Limits::new(350, 3500);

/// What the `RateLimit-*` headers of an allowed request say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

/// Request counts per key, operation and window.
#[derive(Debug)]
pub struct Limiter {
    /// Window lengths are multiplied by this (tests shrink them; 1.0 is Klaviyo's).
    pub scale: f64,
    /// Off: every request is allowed (still counted for the headers).
    pub enabled: bool,
    counts: HashMap<(String, Operation), Vec<(i64, u32)>>,
    /// 429s answered, by operation.
    pub throttled: HashMap<Operation, u64>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            scale: 1.0,
            enabled: true,
            counts: HashMap::new(),
            throttled: HashMap::new(),
        }
    }
}

impl Limiter {
    /// Counts one request of `key` to `operation` at `now_ms`, or refuses it with the seconds to
    /// wait.
    pub fn check(
        &mut self,
        key: &str,
        operation: Operation,
        limits: Limits,
        now_ms: i64,
    ) -> Result<Allowance, u64> {
        let windows: Vec<(u32, i64)> = limits
            .windows()
            .into_iter()
            .map(|(quota, ms)| (quota, ((ms as f64 * self.scale).round() as i64).max(1)))
            .collect();
        let counts = self
            .counts
            .entry((key.to_string(), operation))
            .or_insert_with(|| vec![(i64::MIN, 0); windows.len()]);
        // The current count and the ms left of each window.
        let current: Vec<(u32, u32, i64)> = windows
            .iter()
            .zip(counts.iter_mut())
            .map(|(&(quota, len), slot)| {
                let index = now_ms.div_euclid(len);
                if slot.0 != index {
                    *slot = (index, 0);
                }
                (quota, slot.1, (index + 1) * len - now_ms)
            })
            .collect();
        let over: Vec<i64> = current
            .iter()
            .filter(|(quota, used, _)| used >= quota)
            .map(|(_, _, left)| *left)
            .collect();
        if self.enabled && !over.is_empty() {
            *self.throttled.entry(operation).or_default() += 1;
            let wait_ms = over.into_iter().max().unwrap_or(1_000);
            return Err(ceil_secs(wait_ms));
        }
        for slot in counts.iter_mut() {
            slot.1 += 1;
        }
        let tightest = current
            .iter()
            .map(|(quota, used, left)| (quota.saturating_sub(used + 1), *quota, *left))
            .min_by_key(|(remaining, _, _)| *remaining)
            .unwrap_or((0, 0, 0));
        Ok(Allowance {
            limit: tightest.1,
            remaining: tightest.0,
            reset_secs: ceil_secs(tightest.2),
        })
    }

    pub fn clear_counts(&mut self) {
        self.counts.clear();
        self.throttled.clear();
    }
}

fn ceil_secs(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: Operation = ("GET", "/a");
    const OP2: Operation = ("POST", "/a");

    #[test]
    fn burst_window_refuses_then_reopens() {
        let mut limiter = Limiter::default();
        let limits = Limits::new(2, 100);
        assert!(limiter.check("k", OP, limits, 10_000).is_ok());
        assert_eq!(
            limiter.check("k", OP, limits, 10_100).map(|a| a.remaining),
            Ok(0)
        );
        assert_eq!(limiter.check("k", OP, limits, 10_200), Err(1));
        // Another key and another operation have their own windows.
        assert!(limiter.check("other", OP, limits, 10_200).is_ok());
        assert!(limiter.check("k", OP2, limits, 10_200).is_ok());
        assert!(limiter.check("k", OP, limits, 11_000).is_ok());
    }

    #[test]
    fn steady_window_waits_for_the_minute() {
        let mut limiter = Limiter::default();
        let limits = Limits::new(10, 3);
        for ms in [0, 1_000, 2_000] {
            assert!(limiter.check("k", OP, limits, ms).is_ok());
        }
        assert_eq!(limiter.check("k", OP, limits, 3_000), Err(57));
    }

    #[test]
    fn scaled_windows_are_shorter() {
        let mut limiter = Limiter {
            scale: 0.01,
            ..Limiter::default()
        };
        let limits = Limits::new(1, 100);
        assert!(limiter.check("k", OP, limits, 0).is_ok());
        assert!(limiter.check("k", OP, limits, 5).is_err());
        assert!(limiter.check("k", OP, limits, 10).is_ok());
    }
}
