//! The status a reconcile writes, built without I/O: from the outcome of a run (or the reason no
//! run happened) to conditions, the last run, the history and the next run time. The caller
//! applies it, publishes the Event and counts the metrics.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{HistoryEntry, LastRun, RunCounts, SyncStatus};
use crate::status::{
    Health, PROGRESSING, READY, Reason, format_duration, is_reconciling, push_history,
    set_condition, set_health_conditions, truncate,
};
use crate::sync::{Executed, SyncError};

/// When a run started and ended.
#[derive(Debug, Clone)]
pub struct RunTimes {
    /// Why the run started (`schedule`, `shopify webhook customers/update (1 delivery)`, ...).
    pub trigger: String,
    pub started_at: Timestamp,
    pub finished: Timestamp,
    pub took: Duration,
}

/// What a finished run left, for the Event, the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The `Ready` reason, or `Interrupted` for a run cut short.
    pub outcome: &'static str,
    pub message: String,
    /// A Warning Event (a failure) rather than a Normal one.
    pub warning: bool,
    /// When the next run is due (`None`: only a change starts one).
    pub next: Option<Timestamp>,
    /// The counts of a successful run.
    pub counts: Option<RunCounts>,
}

/// The `lastRun.outcome` and Event reason of a run stopped at a safe point.
pub const INTERRUPTED: &str = "Interrupted";

/// Sets `Ready` (False unless the reason is a success), `Progressing=False`, `Stalled` and
/// `Reconciling` (kstatus), the observed generation and the next run time.
pub fn settle(
    status: &mut SyncStatus,
    reason: Reason,
    message: &str,
    next: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
) {
    set_condition(
        &mut status.conditions,
        READY,
        reason.is_ready(),
        reason.as_str(),
        message,
        generation,
        now,
    );
    let idle = match next {
        Some(next) => format!("next run at {next}"),
        None if reason == Reason::Suspended => "suspended".to_string(),
        None => "waiting for a change".to_string(),
    };
    set_condition(
        &mut status.conditions,
        PROGRESSING,
        false,
        "Idle",
        idle,
        generation,
        now,
    );
    // kstatus: Stalled for what needs a person, Reconciling until a new generation settles.
    let reconciling = is_reconciling(&status.conditions, generation);
    set_health_conditions(
        &mut status.conditions,
        Health::Settled(reason, message),
        generation,
        reconciling,
        now,
    );
    status.observed_generation = generation;
    status.next_sync_time = next.map(Time);
}

/// Records a run that finished (or was stopped at a safe point). `next_after` gives the next
/// scheduled run after a time.
pub fn record_success(
    status: &mut SyncStatus,
    ex: Executed,
    dry_run: bool,
    next_after: impl FnOnce(Timestamp) -> Timestamp,
    generation: Option<i64>,
    times: RunTimes,
) -> Settled {
    let c = ex.counts;
    let finished = times.finished;
    if ex.stopped_early {
        return record_interrupted(status, ex, dry_run, generation, times);
    }
    let (reason, message) = if let Some(message) = ex.message.clone() {
        // A kind with its own counts (OrderSync) says what it did itself.
        let reason = if dry_run {
            Reason::DryRun
        } else {
            Reason::Synced
        };
        (reason, message)
    } else if dry_run {
        (
            Reason::DryRun,
            format!(
                "dry run, nothing written: would create {}, update {}, archive {}, unsubscribe {}{} ({} source customers, {} members)",
                c.created,
                c.updated,
                c.archived,
                c.unsubscribed,
                segment_note(&c, true),
                c.source,
                c.target
            ),
        )
    } else {
        (
            Reason::Synced,
            format!(
                "synced {} source customers into {} members: created {}, updated {}, archived {}, unsubscribed {}{}, unchanged {}, skipped {}, rejected {}",
                c.source,
                c.target,
                c.created,
                c.updated,
                c.archived,
                c.unsubscribed,
                segment_note(&c, false),
                c.unchanged,
                c.skipped,
                c.rejected
            ) + &consent_note(&c),
        )
    };
    let next = next_after(finished);
    settle(status, reason, &message, Some(next), generation, finished);
    for n in &ex.notices {
        set_condition(
            &mut status.conditions,
            n.type_,
            n.status,
            n.reason,
            n.message.clone(),
            generation,
            finished,
        );
    }
    status.last_sync_time = Some(Time(finished));
    status.last_run = Some(LastRun {
        start_time: Some(Time(times.started_at)),
        trigger: times.trigger.clone(),
        outcome: reason.as_str().into(),
        duration: format_duration(times.took),
        dry_run,
        stopped_early: false,
        counts: c,
        mode: ex.mode.map(|m| m.as_str().to_string()),
    });
    crate::sync::record_full_resync(status, &ex, dry_run, generation, times.started_at);
    status.rejected_sample = ex.rejected;
    if let Some(held) = ex.held_rejections {
        status.held_rejections = held;
    }
    status.plan = ex.plan.map(|mut p| {
        p.time = Some(Time(finished));
        p
    });
    status.pending_approval = None;
    if ex.checkpoint.is_some() {
        status.checkpoint = ex.checkpoint;
    }
    if let Some(cursor) = ex.email_activity_cursor.and_then(to_time) {
        status.email_activity_cursor = Some(cursor);
    }
    if let Some(at) = ex.promo_codes_synced_at.and_then(to_time) {
        status.promo_codes_synced_at = Some(at);
    }
    push_history(
        status,
        HistoryEntry {
            time: Time(times.started_at),
            outcome: reason.as_str().into(),
            summary: c.summary(),
            duration: format_duration(times.took),
        },
    );
    Settled {
        outcome: reason.as_str(),
        message,
        warning: false,
        next: Some(next),
        counts: Some(c),
    }
}

/// A run stopped at a safe point (shutdown, lost leadership) is not a success: `Ready` keeps
/// what the last finished run said, `Progressing` says the run was interrupted and when it
/// resumes (at once), and the last run records exactly what was applied.
fn record_interrupted(
    status: &mut SyncStatus,
    ex: Executed,
    dry_run: bool,
    generation: Option<i64>,
    times: RunTimes,
) -> Settled {
    let c = ex.counts;
    let finished = times.finished;
    let message = format!(
        "interrupted at a safe point (shutdown) after creating {}, updating {}, archiving {}; the next run finishes the job",
        c.created, c.updated, c.archived
    );
    set_condition(
        &mut status.conditions,
        PROGRESSING,
        true,
        INTERRUPTED,
        &message,
        generation,
        finished,
    );
    status.next_sync_time = Some(Time(finished));
    status.last_run = Some(LastRun {
        start_time: Some(Time(times.started_at)),
        trigger: times.trigger.clone(),
        outcome: INTERRUPTED.into(),
        duration: format_duration(times.took),
        dry_run,
        stopped_early: true,
        counts: c,
        mode: ex.mode.map(|m| m.as_str().to_string()),
    });
    status.rejected_sample = ex.rejected;
    if let Some(held) = ex.held_rejections {
        status.held_rejections = held;
    }
    if ex.checkpoint.is_some() {
        status.checkpoint = ex.checkpoint;
    }
    if let Some(cursor) = ex.email_activity_cursor.and_then(to_time) {
        status.email_activity_cursor = Some(cursor);
    }
    if let Some(at) = ex.promo_codes_synced_at.and_then(to_time) {
        status.promo_codes_synced_at = Some(at);
    }
    push_history(
        status,
        HistoryEntry {
            time: Time(times.started_at),
            outcome: INTERRUPTED.into(),
            summary: c.summary(),
            duration: format_duration(times.took),
        },
    );
    Settled {
        outcome: INTERRUPTED,
        message,
        warning: false,
        next: Some(finished),
        counts: Some(c),
    }
}

/// Records a failed run; `next` is when the retry policy runs it again.
pub fn record_failure(
    status: &mut SyncStatus,
    error: &SyncError,
    next: Option<Timestamp>,
    dry_run: bool,
    generation: Option<i64>,
    times: RunTimes,
) -> Settled {
    let reason = error.reason();
    let message = error.to_string();
    settle(status, reason, &message, next, generation, times.finished);
    status.last_run = Some(LastRun {
        start_time: Some(Time(times.started_at)),
        trigger: times.trigger.clone(),
        outcome: reason.as_str().into(),
        duration: format_duration(times.took),
        dry_run,
        stopped_early: false,
        counts: Default::default(),
        mode: None,
    });
    status.pending_approval = error.pending_approval();
    let mut summary = message.clone();
    truncate(&mut summary, 256);
    push_history(
        status,
        HistoryEntry {
            time: Time(times.started_at),
            outcome: reason.as_str().into(),
            summary,
            duration: format_duration(times.took),
        },
    );
    Settled {
        outcome: reason.as_str(),
        message,
        warning: true,
        next,
        counts: None,
    }
}

/// How many contacts' consent the "source cannot record an opt-in" rule decided, so a merchant
/// sees that their Lightspeed customers were added as transactional, and why.
fn consent_note(c: &RunCounts) -> String {
    let mut note = String::new();
    if c.consent_by_rule > 0 {
        note = format!(
            "; {} by consentPolicy.whenSourceCannotOptIn (the source records opt-outs only, no opt-in)",
            c.consent_by_rule
        );
    }
    if c.drift > 0 {
        // Someone edits the audience by hand or another tool writes to it: the merchant should
        // know the sync overwrote it, and how often.
        note.push_str(&format!(
            "; drift: {} changed in the target behind the sync's back, set back to the source",
            c.drift
        ));
    }
    let two_way = c.two_way_note();
    if !two_way.is_empty() {
        note.push_str("; ");
        note.push_str(&two_way);
    }
    note
}

fn segment_note(c: &RunCounts, dry_run: bool) -> String {
    if c.segment_added + c.segment_removed == 0 {
        return String::new();
    }
    let verb = if dry_run { "would add" } else { "added" };
    format!(
        "; segment: {verb} {}, removed {}",
        c.segment_added, c.segment_removed
    )
}

fn to_time(at: chrono::DateTime<chrono::Utc>) -> Option<Time> {
    jiff::Timestamp::from_second(at.timestamp()).ok().map(Time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times() -> RunTimes {
        let started_at: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        RunTimes {
            trigger: "schedule".into(),
            started_at,
            finished: "2026-01-01T10:00:05Z".parse().unwrap(),
            took: Duration::from_secs(5),
        }
    }

    fn condition<'a>(status: &'a SyncStatus, type_: &str) -> &'a str {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map_or("", |c| c.reason.as_str())
    }

    #[test]
    fn a_finished_run_is_synced_with_its_counts_and_next_run() {
        let mut status = SyncStatus::default();
        let mut ex = Executed::default();
        ex.counts.created = 3;
        ex.checkpoint = Some("v9".into());
        let next: Timestamp = "2026-01-01T11:00:05Z".parse().unwrap();
        let settled = record_success(&mut status, ex, false, |_| next, Some(2), times());
        assert_eq!(settled.outcome, "Synced");
        assert!(settled.message.contains("created 3"), "{}", settled.message);
        assert_eq!(condition(&status, READY), "Synced");
        assert_eq!(condition(&status, PROGRESSING), "Idle");
        assert_eq!(status.checkpoint.as_deref(), Some("v9"));
        assert_eq!(status.next_sync_time, Some(Time(next)));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.history.len(), 1);
    }

    #[test]
    fn an_interrupted_run_keeps_ready_and_says_it_is_unfinished() {
        let mut status = SyncStatus::default();
        let first = record_success(
            &mut status,
            Executed::default(),
            false,
            |t| t,
            Some(1),
            times(),
        );
        assert_eq!(first.outcome, "Synced");
        let mut ex = Executed {
            stopped_early: true,
            checkpoint: Some("v10".into()),
            ..Executed::default()
        };
        ex.counts.created = 7;
        let settled = record_success(&mut status, ex, false, |_| unreachable!(), Some(1), times());
        assert_eq!(settled.outcome, INTERRUPTED);
        assert_eq!(
            condition(&status, READY),
            "Synced",
            "Ready is left as it was"
        );
        let progressing = status
            .conditions
            .iter()
            .find(|c| c.type_ == PROGRESSING)
            .unwrap();
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_str()),
            ("True", INTERRUPTED)
        );
        let run = status.last_run.as_ref().unwrap();
        assert_eq!(
            (run.outcome.as_str(), run.stopped_early),
            (INTERRUPTED, true)
        );
        assert_eq!(run.counts.created, 7);
        assert_eq!(
            status.checkpoint.as_deref(),
            Some("v10"),
            "what was applied is kept"
        );
        assert_eq!(
            status.next_sync_time,
            Some(Time(times().finished)),
            "resumes at once"
        );
    }

    #[test]
    fn a_failure_names_its_reason_and_keeps_the_checkpoint() {
        let mut status = SyncStatus {
            checkpoint: Some("v1".into()),
            ..SyncStatus::default()
        };
        let error = SyncError::CredentialsMissing("source credentials: Secret s not found".into());
        let settled = record_failure(&mut status, &error, None, false, Some(3), times());
        assert!(settled.warning);
        assert_eq!(settled.outcome, "CredentialsMissing");
        assert_eq!(condition(&status, READY), "CredentialsMissing");
        assert_eq!(status.next_sync_time, None);
        assert_eq!(status.checkpoint.as_deref(), Some("v1"));
    }
}
