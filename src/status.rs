//! Building the status (pure): conditions that keep `lastTransitionTime` until they flip, the run
//! history, samples, and the reasons the `Ready` condition can carry.
//!
//! Health as GitOps tools read it (kstatus, used by Flux and kpt; the Argo CD checks in
//! `docs/health/` read the same conditions), set by [`set_health_conditions`]:
//! - `Stalled=True` (the `Ready` reason and message) when a person must act:
//!   [`Reason::needs_person`]. kstatus reports the object `Failed`, so a pipeline fails at once
//!   with the reason instead of waiting for its timeout.
//! - `Reconciling=True` while a new generation is applied for the first time: from the start
//!   of its first run until it succeeds or stalls (transient failures on the way keep it True,
//!   so the new spec is not reported `Current` before it ever worked). kstatus: `InProgress`.
//! - Transient trouble (rate limits, vendor outages) on a generation that was applied is
//!   neither: `Ready=False` says what happened and the operator retries; kstatus, finding no
//!   `Stalled`/`Reconciling=True`, falls back to `Ready` and says `InProgress`, never `Failed`.
//! - Every condition carries `observedGeneration`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::status::{HISTORY_LIMIT, SAMPLE_LIMIT};
use crate::crd::{HistoryEntry, RejectedRecord, SyncStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
/// kstatus: a person must act (the object is `Failed`).
pub const STALLED: &str = "Stalled";
/// kstatus: a new generation is being applied (the object is `InProgress`).
pub const RECONCILING: &str = "Reconciling";

/// The reasons of the `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Synced,
    DryRun,
    Suspended,
    CredentialsMissing,
    /// A Secret that does not opt in, or an endpoint whose host is not allowed.
    CredentialsNotAllowed,
    AuthFailed,
    RateLimited,
    CapacityExceeded,
    SafetyStop,
    InvalidSpec,
    SourceError,
    TargetError,
    /// The operator could not read or write what it needs in Kubernetes (an API server outage,
    /// a conflict, a missing permission on its own objects).
    KubernetesError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::DryRun => "DryRun",
            Reason::Suspended => "Suspended",
            Reason::CredentialsMissing => "CredentialsMissing",
            Reason::CredentialsNotAllowed => "CredentialsNotAllowed",
            Reason::AuthFailed => "AuthFailed",
            Reason::RateLimited => "RateLimited",
            Reason::CapacityExceeded => "CapacityExceeded",
            Reason::SafetyStop => "SafetyStop",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SourceError => "SourceError",
            Reason::TargetError => "TargetError",
            Reason::KubernetesError => "KubernetesError",
        }
    }

    /// `Ready` is True only after a successful run (dry runs included).
    pub fn is_ready(self) -> bool {
        matches!(self, Reason::Synced | Reason::DryRun)
    }

    /// Retrying cannot help until a person acts (fixes a Secret, the spec, frees capacity,
    /// approves a plan): `Stalled=True`. Rate limits and vendor errors pass by themselves.
    pub fn needs_person(self) -> bool {
        match self {
            Reason::CredentialsMissing
            | Reason::CredentialsNotAllowed
            | Reason::AuthFailed
            | Reason::InvalidSpec
            | Reason::CapacityExceeded
            | Reason::SafetyStop => true,
            Reason::Synced
            | Reason::DryRun
            | Reason::Suspended
            | Reason::RateLimited
            | Reason::SourceError
            | Reason::TargetError
            | Reason::KubernetesError => false,
        }
    }
}

/// What the health conditions describe: a run under way, or the outcome a reconcile settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health<'a> {
    /// A run started.
    Running,
    /// The reconcile ended with this `Ready` reason and message.
    Settled(Reason, &'a str),
}

/// Whether `Reconciling=True` stands for this generation (its first application is still under
/// way), as the previous call of [`set_health_conditions`] left it.
pub fn is_reconciling(conditions: &[Condition], generation: Option<i64>) -> bool {
    conditions.iter().any(|c| {
        c.type_ == RECONCILING && c.status == "True" && c.observed_generation == generation
    })
}

/// Sets `Stalled` and `Reconciling` (kstatus) for `health`.
///
/// `reconciling`: this generation has not been applied yet. At a run start pass whether the
/// generation is new (`status.observedGeneration` differs); when settling pass
/// [`is_reconciling`] of the conditions as they stand, so a transient failure of a new
/// generation keeps it `InProgress` while success or a stall ends it.
pub fn set_health_conditions(
    conditions: &mut Vec<Condition>,
    health: Health<'_>,
    generation: Option<i64>,
    reconciling: bool,
    now: Timestamp,
) {
    let applying = match generation {
        Some(g) => format!("applying generation {g}"),
        None => "applying the spec".to_string(),
    };
    match health {
        Health::Running => {
            if reconciling {
                set_condition(
                    conditions,
                    RECONCILING,
                    true,
                    "NewGeneration",
                    format!("{applying}: first run started"),
                    generation,
                    now,
                );
                set_condition(
                    conditions,
                    STALLED,
                    false,
                    "NewGeneration",
                    "",
                    generation,
                    now,
                );
            } else {
                // A run of an applied generation: what stalled before stands until the run
                // settles; objects from before these conditions existed get them now.
                for type_ in [RECONCILING, STALLED] {
                    if !conditions.iter().any(|c| c.type_ == type_) {
                        set_condition(conditions, type_, false, "Running", "", generation, now);
                    }
                }
            }
        }
        Health::Settled(reason, message) => {
            let stalled = reason.needs_person();
            set_condition(
                conditions,
                STALLED,
                stalled,
                reason.as_str(),
                if stalled { message } else { "" },
                generation,
                now,
            );
            let still =
                reconciling && !stalled && !reason.is_ready() && reason != Reason::Suspended;
            set_condition(
                conditions,
                RECONCILING,
                still,
                reason.as_str(),
                if still {
                    format!("{applying}, not done yet: {message}")
                } else {
                    String::new()
                },
                generation,
                now,
            );
        }
    }
}

/// Sets a condition; `lastTransitionTime` changes only when `status` flips.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let mut message: String = message.into();
    truncate(&mut message, 1024);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Time(now);
            }
            c.status = status;
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
    conditions.sort_by(|a, b| {
        order(&a.type_)
            .cmp(&order(&b.type_))
            .then(a.type_.cmp(&b.type_))
    });
}

fn order(t: &str) -> u8 {
    match t {
        READY => 0,
        PROGRESSING => 1,
        STALLED => 2,
        RECONCILING => 3,
        _ => 4,
    }
}

/// The condition of a type.
pub fn condition<'a>(status: &'a SyncStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Adds a run to the history (newest first, bounded).
pub fn push_history(status: &mut SyncStatus, entry: HistoryEntry) {
    status.history.insert(0, entry);
    status.history.truncate(HISTORY_LIMIT);
}

/// Keeps at most [`SAMPLE_LIMIT`] records.
pub fn sample_rejections(records: impl IntoIterator<Item = RejectedRecord>) -> Vec<RejectedRecord> {
    records
        .into_iter()
        .take(SAMPLE_LIMIT)
        .map(|mut r| {
            truncate(&mut r.email, 320);
            truncate(&mut r.reason, 256);
            r
        })
        .collect()
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// `1.234s`, `2m03s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.3}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_on_flip() {
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let t2: Timestamp = "2025-01-01T02:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set_condition(&mut c, READY, true, "Synced", "ok", Some(1), t0);
        set_condition(&mut c, READY, true, "Synced", "ok again", Some(2), t1);
        assert_eq!(c[0].last_transition_time.0, t0);
        assert_eq!(c[0].observed_generation, Some(2));
        set_condition(&mut c, READY, false, "AuthFailed", "401", Some(2), t2);
        assert_eq!(c[0].last_transition_time.0, t2);
        set_condition(&mut c, PROGRESSING, false, "Idle", "", Some(2), t2);
        set_condition(&mut c, READY, false, "RateLimited", "429", Some(2), t1);
        assert_eq!(
            c[0].last_transition_time.0, t2,
            "reason changes alone keep the time"
        );
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [READY, PROGRESSING]
        );
    }

    fn cond<'a>(c: &'a [Condition], type_: &str) -> &'a Condition {
        c.iter().find(|c| c.type_ == type_).unwrap()
    }

    fn health(c: &[Condition]) -> (String, String) {
        (
            cond(c, STALLED).status.clone(),
            cond(c, RECONCILING).status.clone(),
        )
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const PERSON: [Reason; 6] = [
        Reason::CredentialsMissing,
        Reason::CredentialsNotAllowed,
        Reason::AuthFailed,
        Reason::InvalidSpec,
        Reason::CapacityExceeded,
        Reason::SafetyStop,
    ];
    const PASSING: [Reason; 6] = [
        Reason::Synced,
        Reason::DryRun,
        Reason::Suspended,
        Reason::RateLimited,
        Reason::SourceError,
        Reason::TargetError,
    ];

    #[test]
    fn person_needed_reasons_stall_with_reason_and_message() {
        for reason in PERSON {
            let mut c = Vec::new();
            set_health_conditions(
                &mut c,
                Health::Settled(reason, "Secret shop/x not found"),
                Some(4),
                false,
                t("2025-01-01T00:00:00Z"),
            );
            let s = cond(&c, STALLED);
            assert_eq!(s.status, "True", "{reason:?}");
            assert_eq!(s.reason, reason.as_str());
            assert_eq!(s.message, "Secret shop/x not found");
            assert_eq!(s.observed_generation, Some(4));
            assert_eq!(cond(&c, RECONCILING).status, "False");
            assert_eq!(cond(&c, RECONCILING).observed_generation, Some(4));
        }
    }

    #[test]
    fn transient_and_successful_outcomes_do_not_stall() {
        for reason in PASSING {
            assert!(!reason.needs_person(), "{reason:?}");
            let mut c = Vec::new();
            set_health_conditions(
                &mut c,
                Health::Settled(reason, "429"),
                Some(1),
                false,
                t("2025-01-01T00:00:00Z"),
            );
            assert_eq!(health(&c), ("False".into(), "False".into()), "{reason:?}");
        }
    }

    #[test]
    fn a_new_generation_reconciles_until_it_succeeds_or_stalls() {
        let t0 = t("2025-01-01T00:00:00Z");
        let t1 = t("2025-01-01T00:01:00Z");
        let mut c = Vec::new();
        set_health_conditions(&mut c, Health::Running, Some(2), true, t0);
        assert_eq!(health(&c), ("False".into(), "True".into()));
        assert_eq!(cond(&c, RECONCILING).reason, "NewGeneration");
        assert!(is_reconciling(&c, Some(2)));
        assert!(!is_reconciling(&c, Some(3)), "another generation");

        // A rate limit on the way: still applying, not stalled.
        let still = is_reconciling(&c, Some(2));
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::RateLimited, "429 from mailchimp"),
            Some(2),
            still,
            t1,
        );
        assert_eq!(health(&c), ("False".into(), "True".into()));
        assert!(cond(&c, RECONCILING).message.contains("429 from mailchimp"));
        assert_eq!(cond(&c, RECONCILING).last_transition_time.0, t0);

        // Success ends it.
        let still = is_reconciling(&c, Some(2));
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::Synced, "synced"),
            Some(2),
            still,
            t1,
        );
        assert_eq!(health(&c), ("False".into(), "False".into()));
        assert_eq!(cond(&c, RECONCILING).last_transition_time.0, t1);

        // A later transient failure of the applied generation is neither.
        let still = is_reconciling(&c, Some(2));
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::TargetError, "503"),
            Some(2),
            still,
            t1,
        );
        assert_eq!(health(&c), ("False".into(), "False".into()));

        // A new generation that stalls: Stalled wins, Reconciling ends.
        set_health_conditions(&mut c, Health::Running, Some(3), true, t1);
        let still = is_reconciling(&c, Some(3));
        assert!(still);
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::AuthFailed, "401"),
            Some(3),
            still,
            t1,
        );
        assert_eq!(health(&c), ("True".into(), "False".into()));
    }

    #[test]
    fn a_rerun_of_the_same_generation_keeps_a_stall_until_it_settles() {
        let t0 = t("2025-01-01T00:00:00Z");
        let mut c = Vec::new();
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::CredentialsMissing, "no Secret"),
            Some(1),
            false,
            t0,
        );
        set_health_conditions(&mut c, Health::Running, Some(1), false, t0);
        assert_eq!(health(&c), ("True".into(), "False".into()));
        set_health_conditions(
            &mut c,
            Health::Settled(Reason::Synced, "ok"),
            Some(1),
            false,
            t0,
        );
        assert_eq!(health(&c), ("False".into(), "False".into()));
        assert_eq!(cond(&c, STALLED).message, "");
    }

    #[test]
    fn a_run_fills_in_missing_health_conditions() {
        let mut c = Vec::new();
        set_condition(
            &mut c,
            READY,
            true,
            "Synced",
            "ok",
            Some(1),
            Timestamp::UNIX_EPOCH,
        );
        set_health_conditions(
            &mut c,
            Health::Running,
            Some(1),
            false,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [READY, STALLED, RECONCILING]
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn history_is_bounded_newest_first() {
        let mut s = SyncStatus::default();
        for i in 0..8 {
            push_history(
                &mut s,
                HistoryEntry {
                    time: Time(Timestamp::UNIX_EPOCH),
                    outcome: format!("run{i}"),
                    summary: String::new(),
                    duration: String::new(),
                },
            );
        }
        assert_eq!(s.history.len(), HISTORY_LIMIT);
        assert_eq!(s.history[0].outcome, "run7");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "ééé".to_string();
        truncate(&mut s, 3);
        assert_eq!(s, "é");
    }
}
