//! When a sync runs next (pure).
//!
//! A run is due when the spec changed since the last run, when the `sync-now` annotation has a
//! value not acted on yet, when the `approve-plan` annotation names the plan waiting for approval,
//! when the credentials it failed on changed, or when `status.nextSyncTime` has passed. Status
//! writes change none of these, so they never start a run by themselves.

use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::crd::{Schedule, SyncStatus};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Cadence {
    /// Time from the end of one run to the start of the next.
    Interval(Duration),
    /// Occurrences of a cron expression in a time zone.
    Cron { cron: Box<Cron>, tz: TimeZone },
}

/// Shortest interval accepted (the CRD enforces it too).
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Parses `15m`, `1h30m`, `90s` (units s, m, h).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    if s.is_empty() {
        return Err("empty interval".into());
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("interval {s:?}: unknown unit {c:?} (use s, m, h)")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("interval {s:?}: a number must precede {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("interval {s:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("interval {s:?}: the last number has no unit"));
    }
    Ok(Duration::from_secs(total))
}

impl Cadence {
    /// Validates and parses a schedule (what the CRD schema cannot check: the cron grammar and
    /// whether the time zone exists).
    pub fn parse(schedule: &Schedule) -> Result<Cadence, String> {
        match (&schedule.interval, &schedule.cron) {
            (Some(interval), None) => {
                let d = parse_interval(interval)?;
                if d < MIN_INTERVAL {
                    return Err(format!("interval {interval} is shorter than 1m"));
                }
                Ok(Cadence::Interval(d))
            }
            (None, Some(expr)) => {
                let cron =
                    Cron::from_str(expr.trim()).map_err(|e| format!("cron {expr:?}: {e}"))?;
                let tz = match schedule.time_zone.as_deref() {
                    None | Some("UTC") => TimeZone::UTC,
                    Some(name) => {
                        TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))?
                    }
                };
                Ok(Cadence::Cron {
                    cron: Box::new(cron),
                    tz,
                })
            }
            _ => Err("give exactly one of schedule.interval or schedule.cron".into()),
        }
    }

    /// The usual time between two runs (for a cron schedule, between its next two occurrences
    /// from now): what "stale" is measured against.
    pub fn interval(&self) -> Duration {
        match self {
            Cadence::Interval(d) => *d,
            Cadence::Cron { .. } => {
                let first = self.next_after(Timestamp::now());
                let second = self.next_after(first);
                Duration::try_from(first.duration_until(second)).unwrap_or(Duration::ZERO)
            }
        }
    }

    /// The next run after a run that ended at `after` (or, with no run yet, after now).
    pub fn next_after(&self, after: Timestamp) -> Timestamp {
        match self {
            Cadence::Interval(d) => after
                .checked_add(
                    jiff::SignedDuration::try_from(*d)
                        .unwrap_or(jiff::SignedDuration::from_hours(1)),
                )
                .unwrap_or(Timestamp::MAX),
            Cadence::Cron { cron, tz } => {
                let zoned = after.to_zoned(tz.clone());
                cron.find_next_occurrence(&zoned, false)
                    .map(|z| z.timestamp())
                    .unwrap_or(Timestamp::MAX)
            }
        }
    }
}

/// Why a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Never ran.
    FirstRun,
    /// The spec changed (generation ahead of `status.observedGeneration`).
    SpecChanged,
    /// The `sync-now` annotation has a new value.
    SyncNow(String),
    /// The `approve-plan` annotation names the plan waiting for approval.
    Approved(String),
    /// The Secret the last run failed on changed.
    CredentialsChanged,
    /// A vendor webhook said the sync's account changed (what it said).
    Webhook(String),
    /// `status.nextSyncTime` has passed.
    Scheduled,
    /// The source segment's metadata changed since the last applied run (what changed).
    SegmentChanged(String),
}

impl Trigger {
    pub fn describe(&self) -> String {
        match self {
            Trigger::FirstRun => "first run".into(),
            Trigger::SpecChanged => "spec changed".into(),
            Trigger::SyncNow(v) => format!("sync-now annotation {v:?}"),
            Trigger::Approved(id) => format!("plan {id} approved"),
            Trigger::CredentialsChanged => "credentials changed".into(),
            Trigger::Webhook(what) => what.clone(),
            Trigger::Scheduled => "schedule".into(),
            Trigger::SegmentChanged(what) => format!("source segment changed ({what})"),
        }
    }
}

/// What the reconcile should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(Trigger),
    /// Nothing due; look again after this long.
    WaitFor(Duration),
    /// Nothing due until something changes (spec, annotations, Secret).
    WaitForChange,
}

/// The inputs of [`decide`].
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub status: Option<&'a SyncStatus>,
    pub sync_now: Option<&'a str>,
    pub approve_plan: Option<&'a str>,
    /// A Secret this sync references changed since the last look.
    pub secret_changed: bool,
    /// A vendor webhook named this sync's account since the last look (what it said).
    pub webhook: Option<String>,
    /// The `webhook-hint` annotation: a webhook another replica received for this sync.
    pub webhook_hint: Option<&'a str>,
}

/// Ready reasons after which a changed Secret is worth an immediate run.
pub const CREDENTIAL_REASONS: [&str; 3] =
    ["CredentialsMissing", "CredentialsNotAllowed", "AuthFailed"];

/// Decides whether a run is due now.
pub fn decide(o: &Observed<'_>, now: Timestamp) -> Decision {
    let status = o.status;
    let observed_generation = status.and_then(|s| s.observed_generation);
    if status.is_none_or(|s| s.last_run.is_none() && s.observed_generation.is_none()) {
        return Decision::Run(Trigger::FirstRun);
    }
    if o.generation.is_some() && o.generation != observed_generation {
        return Decision::Run(Trigger::SpecChanged);
    }
    if let Some(value) = o.sync_now.filter(|v| !v.is_empty())
        && status.and_then(|s| s.handled_sync_now.as_deref()) != Some(value)
    {
        return Decision::Run(Trigger::SyncNow(value.to_string()));
    }
    if let (Some(approved), Some(pending)) = (
        o.approve_plan,
        status.and_then(|s| s.pending_approval.as_ref()),
    ) && approved == pending.plan_id
    {
        return Decision::Run(Trigger::Approved(approved.to_string()));
    }
    if o.secret_changed {
        let reason = status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.reason.as_str());
        if reason.is_some_and(|r| CREDENTIAL_REASONS.contains(&r)) {
            return Decision::Run(Trigger::CredentialsChanged);
        }
    }
    // A webhook runs a sync at once, but only one whose last run succeeded: after a failure the
    // sync's own backoff decides, so deliveries never hammer a vendor that refuses or throttles.
    if let Some(what) = &o.webhook {
        let reason = status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.reason.as_str());
        if reason == Some("Synced") {
            return Decision::Run(Trigger::Webhook(what.clone()));
        }
    }
    // The same for a webhook another replica received and handed over through the annotation.
    if let Some(hint) = o.webhook_hint.filter(|h| !h.is_empty())
        && status.and_then(|s| s.handled_webhook_hint.as_deref()) != Some(hint)
    {
        let reason = status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.reason.as_str());
        if reason == Some("Synced") {
            let what = hint.split_once(';').map_or(hint, |(_, what)| what);
            return Decision::Run(Trigger::Webhook(format!(
                "{what}, handed over by another replica"
            )));
        }
    }
    match status.and_then(|s| s.next_sync_time.as_ref()) {
        None => Decision::WaitForChange,
        Some(next) if next.0 <= now => Decision::Run(Trigger::Scheduled),
        Some(next) => {
            let wait = now.duration_until(next.0);
            Decision::WaitFor(Duration::try_from(wait).unwrap_or(Duration::from_secs(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::crd::{LastRun, PendingApproval};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ran(next: Option<&str>) -> SyncStatus {
        SyncStatus {
            observed_generation: Some(1),
            last_run: Some(LastRun::default()),
            next_sync_time: next.map(|n| Time(ts(n))),
            ..Default::default()
        }
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_interval("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_interval("90s").unwrap(), Duration::from_secs(90));
        assert!(parse_interval("15").is_err());
        assert!(parse_interval("m").is_err());
        assert!(parse_interval("5d").is_err());
        assert!(parse_interval("99999999999999999999h").is_err());
        let short = Schedule {
            interval: Some("30s".into()),
            cron: None,
            time_zone: None,
        };
        assert!(
            Cadence::parse(&short)
                .unwrap_err()
                .contains("shorter than 1m")
        );
    }

    #[test]
    fn cron_in_a_time_zone() {
        let s = Schedule {
            interval: None,
            cron: Some("0 9 * * *".into()),
            time_zone: Some("Europe/Amsterdam".into()),
        };
        let c = Cadence::parse(&s).unwrap();
        // 09:00 in Amsterdam in winter is 08:00 UTC; in summer 07:00 UTC.
        assert_eq!(
            c.next_after(ts("2025-01-10T12:00:00Z")),
            ts("2025-01-11T08:00:00Z")
        );
        assert_eq!(
            c.next_after(ts("2025-07-10T12:00:00Z")),
            ts("2025-07-11T07:00:00Z")
        );
        let hourly = Schedule {
            interval: None,
            cron: Some("@hourly".into()),
            time_zone: None,
        };
        let c = Cadence::parse(&hourly).unwrap();
        assert_eq!(
            c.next_after(ts("2025-01-10T12:00:00Z")),
            ts("2025-01-10T13:00:00Z")
        );
    }

    #[test]
    fn bad_cron_and_zone_are_reported() {
        let s = Schedule {
            interval: None,
            cron: Some("61 * * * *".into()),
            time_zone: None,
        };
        assert!(Cadence::parse(&s).is_err());
        let s = Schedule {
            interval: None,
            cron: Some("0 * * * *".into()),
            time_zone: Some("Mars/Olympus".into()),
        };
        assert!(
            Cadence::parse(&s)
                .unwrap_err()
                .contains("unknown time zone")
        );
    }

    #[test]
    fn interval_counts_from_the_end_of_the_last_run() {
        let c = Cadence::Interval(Duration::from_secs(900));
        assert_eq!(
            c.next_after(ts("2025-01-10T12:00:00Z")),
            ts("2025-01-10T12:15:00Z")
        );
    }

    #[test]
    fn decisions() {
        let now = ts("2025-01-10T12:00:00Z");
        assert_eq!(
            decide(
                &Observed {
                    generation: Some(1),
                    ..Default::default()
                },
                now
            ),
            Decision::Run(Trigger::FirstRun)
        );

        let st = ran(Some("2025-01-10T12:10:00Z"));
        let base = Observed {
            generation: Some(1),
            status: Some(&st),
            ..Default::default()
        };
        assert_eq!(
            decide(&base, now),
            Decision::WaitFor(Duration::from_secs(600))
        );
        assert_eq!(
            decide(&base, ts("2025-01-10T12:10:00Z")),
            Decision::Run(Trigger::Scheduled)
        );
        assert_eq!(
            decide(
                &Observed {
                    generation: Some(2),
                    ..base.clone()
                },
                now
            ),
            Decision::Run(Trigger::SpecChanged)
        );

        // sync-now runs once per value.
        let o = Observed {
            sync_now: Some("a"),
            ..base.clone()
        };
        assert_eq!(decide(&o, now), Decision::Run(Trigger::SyncNow("a".into())));
        let handled = SyncStatus {
            handled_sync_now: Some("a".into()),
            ..st.clone()
        };
        let o = Observed {
            sync_now: Some("a"),
            status: Some(&handled),
            ..base.clone()
        };
        assert_eq!(decide(&o, now), Decision::WaitFor(Duration::from_secs(600)));

        // approval of exactly the pending plan.
        let pending = SyncStatus {
            pending_approval: Some(PendingApproval {
                plan_id: "p1".into(),
                ..Default::default()
            }),
            next_sync_time: None,
            ..st.clone()
        };
        let o = Observed {
            approve_plan: Some("p0"),
            status: Some(&pending),
            ..base.clone()
        };
        assert_eq!(decide(&o, now), Decision::WaitForChange);
        let o = Observed {
            approve_plan: Some("p1"),
            status: Some(&pending),
            ..base.clone()
        };
        assert_eq!(
            decide(&o, now),
            Decision::Run(Trigger::Approved("p1".into()))
        );

        // A changed Secret matters only after a credentials failure.
        let o = Observed {
            secret_changed: true,
            ..base.clone()
        };
        assert_eq!(decide(&o, now), Decision::WaitFor(Duration::from_secs(600)));
        let mut failing = st.clone();
        failing.conditions.push(Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "CredentialsMissing".into(),
            message: String::new(),
            last_transition_time: Time(now),
            observed_generation: Some(1),
        });
        let o = Observed {
            secret_changed: true,
            status: Some(&failing),
            ..base
        };
        assert_eq!(decide(&o, now), Decision::Run(Trigger::CredentialsChanged));
    }

    #[test]
    fn a_webhook_runs_a_synced_sync_at_once_and_leaves_a_failing_one_to_its_backoff() {
        let now = ts("2025-01-10T12:00:00Z");
        let condition = |reason: &str| Condition {
            type_: "Ready".into(),
            status: if reason == "Synced" { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(now),
            observed_generation: Some(1),
        };
        let mut synced = ran(Some("2025-01-10T13:00:00Z"));
        synced.conditions.push(condition("Synced"));
        let what = "shopify webhook customers/update (1 delivery)".to_string();
        let o = Observed {
            generation: Some(1),
            status: Some(&synced),
            webhook: Some(what.clone()),
            ..Default::default()
        };
        assert_eq!(
            decide(&o, now),
            Decision::Run(Trigger::Webhook(what.clone()))
        );
        let mut throttled = ran(Some("2025-01-10T13:00:00Z"));
        throttled.conditions.push(condition("RateLimited"));
        let o = Observed {
            status: Some(&throttled),
            ..o
        };
        assert_eq!(
            decide(&o, now),
            Decision::WaitFor(Duration::from_secs(3600))
        );
    }

    #[test]
    fn a_handed_over_webhook_runs_once_per_hint_value() {
        let now = ts("2025-01-10T12:00:00Z");
        let mut synced = ran(Some("2025-01-10T13:00:00Z"));
        synced.conditions.push(Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Synced".into(),
            message: String::new(),
            last_transition_time: Time(now),
            observed_generation: Some(1),
        });
        let hint = "2025-01-10T11:59:59Z;shopify webhook customers/update (1 delivery)";
        let o = Observed {
            generation: Some(1),
            status: Some(&synced),
            webhook_hint: Some(hint),
            ..Default::default()
        };
        assert_eq!(
            decide(&o, now),
            Decision::Run(Trigger::Webhook(
                "shopify webhook customers/update (1 delivery), handed over by another replica"
                    .into()
            ))
        );
        let mut handled = synced.clone();
        handled.handled_webhook_hint = Some(hint.into());
        let o = Observed {
            status: Some(&handled),
            ..o
        };
        assert_eq!(
            decide(&o, now),
            Decision::WaitFor(Duration::from_secs(3600))
        );
    }
}
