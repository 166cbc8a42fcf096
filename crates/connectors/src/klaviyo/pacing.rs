//! Per-endpoint pacing: Klaviyo limits every operation separately, with a burst per second and a
//! steady rate per minute (`x-klaviyo-ratelimit` in the spec), counted in fixed windows per
//! account. The connector keeps each key under both limits with sliding windows, a little longer
//! than the vendor's to absorb network jitter (a sliding
//! window never puts more than `burst` calls into any one-second span, so however the vendor's
//! fixed windows are aligned, none of them overflows), shared by every sync in the process that
//! uses the same key. A 429 still pauses the endpoint for `Retry-After`.
//!
//! [U] The vendor's docs speak of limits "per endpoint"; this module keys windows by operation
//! (method and route template), which is what `x-klaviyo-ratelimit` is attached to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// One operation's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls per second.
    pub burst: u32,
    /// Calls per minute.
    pub steady: u32,
}

impl Limits {
    pub const fn new(burst: u32, steady: u32) -> Self {
        Limits { burst, steady }
    }
}

/// How much longer than the vendor's our windows are. The windows count *sends*; the vendor
/// counts *arrivals*, and two calls sent a full window apart can arrive closer together when the
/// first one travels slower (measured: 24 retried 429s in 351 bulk jobs with exact windows). 3%
/// (30 ms a second, 1.8 s a minute) absorbs that jitter for 3% of the throughput, far less than
/// the `Retry-After` pause each 429 costs.
const ARRIVAL_MARGIN: f64 = 1.03;

/// A usable window scale (a bad one is 1).
fn usable(scale: f64) -> f64 {
    if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    }
}

/// The limits the spec gives each operation the connector uses.
pub fn limits_of(endpoint: &str) -> Limits {
    match endpoint {
        // Tier M: 10/s, 150/m.
        "POST /api/lists"
        | "POST /api/lists/{id}/relationships/profiles"
        | "DELETE /api/lists/{id}/relationships/profiles"
        | "POST /api/profile-bulk-import-jobs"
        | "GET /api/profile-bulk-import-jobs/{job_id}"
        | "GET /api/profile-bulk-import-jobs/{id}/import-errors"
        | "POST /api/event-bulk-create-jobs" => Limits::new(10, 150),
        // Tier XS: 1/s, 15/m.
        "GET /api/accounts" => Limits::new(1, 15),
        // `additional-fields[list]=profile_count` has its own, much lower limit.
        super::read::LIST_WITH_COUNT => Limits::new(1, 15),
        // Tier L: 75/s, 750/m (lists, profiles, list members, subscription jobs).
        _ => Limits::new(75, 750),
    }
}

/// The sliding windows of one operation on one key.
pub struct Window {
    limits: Limits,
    /// The burst and steady window lengths: 1 s and 60 s, times the scale.
    second: Duration,
    minute: Duration,
    state: Mutex<State>,
}

struct State {
    second: VecDeque<Instant>,
    minute: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Window {
    pub fn new(limits: Limits) -> Self {
        Window::scaled(limits, 1.0)
    }

    /// Windows `scale` times as long as Klaviyo's (a simulator scaled down for tests).
    pub fn scaled(limits: Limits, scale: f64) -> Self {
        let scale = usable(scale) * ARRIVAL_MARGIN;
        Window {
            limits,
            second: Duration::from_secs_f64(scale),
            minute: Duration::from_secs_f64(60.0 * scale),
            state: Mutex::new(State {
                second: VecDeque::new(),
                minute: VecDeque::new(),
                paused_until: None,
            }),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Waits until a call fits in both windows, and counts it.
    pub async fn acquire(&self) {
        loop {
            let wait = self.try_acquire(Instant::now());
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Counts a call at `now` if it fits, otherwise says how long to wait.
    fn try_acquire(&self, now: Instant) -> Option<Duration> {
        let mut state = self.state.lock().expect("pacing lock");
        if let Some(until) = state.paused_until {
            if until > now {
                return Some(until - now);
            }
            state.paused_until = None;
        }
        let (second, minute) = (self.second, self.minute);
        while state.second.front().is_some_and(|t| now - *t >= second) {
            state.second.pop_front();
        }
        while state.minute.front().is_some_and(|t| now - *t >= minute) {
            state.minute.pop_front();
        }
        let mut wait = Duration::ZERO;
        if state.second.len() >= self.limits.burst as usize {
            wait = wait.max(second - (now - state.second[0]));
        }
        if state.minute.len() >= self.limits.steady as usize {
            wait = wait.max(minute - (now - state.minute[0]));
        }
        if wait > Duration::ZERO {
            return Some(wait);
        }
        state.second.push_back(now);
        state.minute.push_back(now);
        None
    }

    /// Holds every call of this operation until `delay` from now (keeps the later of two pauses).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.state.lock().expect("pacing lock");
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }
}

/// The window of `endpoint` for `api_key`, shared process-wide. Keys are held as fingerprints.
/// `scale` multiplies the window lengths (tests against a simulator whose windows are scaled
/// down); windows with different scales are kept apart.
pub fn window_for(api_key: &str, endpoint: &'static str, scale: f64) -> Arc<Window> {
    type Windows = Mutex<HashMap<(u64, &'static str, u64), Arc<Window>>>;
    static WINDOWS: OnceLock<Windows> = OnceLock::new();
    let windows = WINDOWS.get_or_init(Default::default);
    let id = (xxh3_64(api_key.as_bytes()), endpoint, scale.to_bits());
    windows
        .lock()
        .expect("pacing registry lock")
        .entry(id)
        .or_insert_with(|| Arc::new(Window::scaled(limits_of(endpoint), scale)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_spec() {
        assert_eq!(
            limits_of("POST /api/profile-bulk-import-jobs"),
            Limits::new(10, 150)
        );
        assert_eq!(
            limits_of("POST /api/profile-subscription-bulk-create-jobs"),
            Limits::new(75, 750)
        );
        assert_eq!(
            limits_of("POST /api/event-bulk-create-jobs"),
            Limits::new(10, 150)
        );
        assert_eq!(limits_of("GET /api/accounts"), Limits::new(1, 15));
        assert_eq!(
            limits_of(super::super::read::LIST_WITH_COUNT),
            Limits::new(1, 15)
        );
    }

    #[test]
    fn burst_then_wait_for_the_oldest_call_to_leave_the_second() {
        let window = Window::new(Limits::new(3, 5));
        let ms = |n: u64| Duration::from_millis(n);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(window.try_acquire(t0), None);
        }
        // The fourth call in the same second waits the whole second, and the jitter margin.
        assert_eq!(window.try_acquire(t0), Some(ms(1030)));
        // A full second later is not yet enough: sent then, it could arrive inside the second.
        assert_eq!(window.try_acquire(t0 + ms(1000)), Some(ms(30)));
        let t1 = t0 + ms(1030);
        assert_eq!(window.try_acquire(t1), None);
        assert_eq!(window.try_acquire(t1), None);
        // Five in the minute: the sixth waits for the first to be a minute (and 1.8 s) old.
        let t2 = t0 + Duration::from_secs(5);
        assert_eq!(window.try_acquire(t2), Some(ms(56_800)));
        let t3 = t0 + ms(61_800);
        assert_eq!(window.try_acquire(t3), None);
    }

    #[test]
    fn scaled_windows_are_shorter() {
        let window = Window::scaled(Limits::new(1, 2), 0.01);
        let us = |n: u64| Duration::from_micros(n);
        let t0 = Instant::now();
        assert_eq!(window.try_acquire(t0), None);
        assert_eq!(window.try_acquire(t0), Some(us(10_300)));
        assert_eq!(window.try_acquire(t0 + us(10_300)), None);
        assert_eq!(
            window.try_acquire(t0 + us(20_600)),
            Some(us(618_000 - 20_600))
        );
        assert_eq!(usable(f64::NAN), 1.0);
    }

    #[test]
    fn a_pause_holds_calls() {
        let window = Window::new(Limits::new(10, 100));
        window.pause_for(Duration::from_secs(2));
        let wait = window.try_acquire(Instant::now()).expect("paused");
        assert!(wait > Duration::from_millis(1500) && wait <= Duration::from_secs(2));
    }

    #[test]
    fn windows_are_shared_per_key_and_endpoint() {
        let a = window_for("pk_a", "POST /api/lists", 1.0);
        let b = window_for("pk_a", "POST /api/lists", 1.0);
        let c = window_for("pk_b", "POST /api/lists", 1.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.limits(), Limits::new(10, 150));
    }
}
