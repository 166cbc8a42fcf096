//! Building the status (pure): conditions that keep `lastTransitionTime` until they flip, the run
//! history, samples, and the reasons the `Ready` condition can carry.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::status::{HISTORY_LIMIT, SAMPLE_LIMIT};
use crate::crd::{HistoryEntry, RejectedRecord, SyncStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";

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
        _ => 2,
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
