//! Run: the sync's one job path ([`crate::sync::prepare`]) with credentials from Kubernetes
//! Secrets, while `Progressing` follows the run's phase.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tokio::sync::{Notify, watch};

use super::FIELD_MANAGER;
use super::reconcile::{Reconciler, annotation};
use crate::crd::{APPROVE_PLAN_ANNOTATION, SyncStatus};
use crate::engine::{CheckpointFn, Phase, ProgressFn};
use crate::status::{PROGRESSING, set_condition};
use crate::sync::{Executed, RunControl, SyncError, SyncObject};

/// Dereferences, builds the connectors and runs, patching `Progressing` at most every
/// `progress_interval` meanwhile. An order cursor accepted during the run is left in `status`
/// (so a run that fails later still keeps what the target accepted).
pub(super) async fn execute_with_progress<K: SyncObject>(
    r: &Reconciler<'_, K>,
    status: &mut SyncStatus,
) -> Result<Executed, SyncError> {
    let (tx, rx) = watch::channel::<Option<(Phase, u64, u64)>>(None);
    let progress: ProgressFn = Arc::new(move |phase, done, total| {
        tx.send_replace(Some((phase, done, total)));
    });
    // An order cursor the target accepted everything up to: saved with the next progress patch,
    // so a process killed mid-run resumes there instead of at the last run's end.
    let (cp_tx, cp_rx) = watch::channel::<Option<String>>(None);
    let on_checkpoint: CheckpointFn = Arc::new(move |cp: &str| {
        cp_tx.send_replace(Some(cp.to_string()));
    });
    let done = Arc::new(Notify::new());
    let reporter = tokio::spawn(report_progress(
        r.api.clone(),
        r.obj.name_any(),
        status.clone(),
        r.generation(),
        (rx, cp_rx.clone()),
        done.clone(),
        r.ctx.settings.progress_interval,
    ));
    let accepted = cp_rx.clone();
    let result = execute(r, progress, on_checkpoint).await;
    done.notify_one();
    let _ = reporter.await;
    if let Some(cp) = accepted.borrow().clone() {
        status.checkpoint = Some(cp);
    }
    result
}

async fn execute<K: SyncObject>(
    r: &Reconciler<'_, K>,
    progress: ProgressFn,
    on_checkpoint: CheckpointFn,
) -> Result<Executed, SyncError> {
    let key = super::object_key(r.obj);
    let prepared = r.connectors().await?;
    let sent_events = load_sent_events(r).await;
    let control = RunControl {
        approved_plan: annotation(r.obj, APPROVE_PLAN_ANNOTATION).map(str::to_string),
        control: audience_core::ApplyControl {
            progress: None,
            stop: r.ctx.stop.clone(),
        },
        progress: Some(progress),
        on_checkpoint: Some(on_checkpoint),
        sent_events,
    };
    let result = prepared.run(r.obj, control).await;
    if result.is_err() {
        // Whatever failed, the next run starts from new connectors.
        r.ctx.connector_cache.forget(&key);
    }
    result
}

/// The ids the sync's target accepted in earlier runs (`crate::sent_events`). Unreadable: the
/// run goes on without (it sends known ids again, which the target records once).
async fn load_sent_events<K: SyncObject>(
    r: &Reconciler<'_, K>,
) -> Option<audience_core::SentLedger> {
    let target = r.obj.sent_events_target()?;
    match crate::sent_events::load(&r.ctx.client, r.obj, &target).await {
        Ok(ledger) => ledger,
        Err(e) => {
            tracing::warn!(kind = K::KIND, name = %r.obj.name_any(), error = %e, "reading the sent-events ledger");
            None
        }
    }
}

/// Keeps the ledger a run added to. A failure is logged and does not fail the run (the events
/// were sent; the next run sends known ids again).
pub(super) async fn save_sent_events<K: SyncObject>(
    r: &Reconciler<'_, K>,
    ledger: Option<audience_core::SentLedger>,
) {
    let (Some(ledger), Some(target)) = (ledger, r.obj.sent_events_target()) else {
        return;
    };
    if let Err(e) = crate::sent_events::save(&r.ctx.client, r.obj, &target, &ledger).await {
        tracing::warn!(kind = K::KIND, name = %r.obj.name_any(), error = %e, "writing the sent-events ledger");
    }
}

/// Server-side apply of the whole status with the operator's field manager.
pub async fn apply_status<K: SyncObject>(
    api: &Api<K>,
    name: &str,
    status: &SyncStatus,
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::ReadingTarget => "ReadingTarget",
        Phase::ReadingSource => "ReadingSource",
        Phase::Planning => "Planning",
        Phase::Applying => "Applying",
    }
}

/// What a run tells its progress reporter: the latest phase and done/total, and the latest
/// order cursor the target accepted.
type RunUpdates = (
    watch::Receiver<Option<(Phase, u64, u64)>>,
    watch::Receiver<Option<String>>,
);

/// Patches `Progressing` with the latest phase and done/total, at most every `every`.
async fn report_progress<K: SyncObject>(
    api: Api<K>,
    name: String,
    mut status: SyncStatus,
    generation: Option<i64>,
    (mut rx, mut checkpoints): RunUpdates,
    done: Arc<Notify>,
    every: Duration,
) {
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            changed = checkpoints.changed() => if changed.is_err() { return },
            _ = done.notified() => return,
        }
        if let Some(cp) = checkpoints.borrow_and_update().clone() {
            status.checkpoint = Some(cp);
        }
        let Some((phase, n, total)) = *rx.borrow_and_update() else {
            continue;
        };
        let message = if total > 0 {
            format!("{} {n}/{total}", phase_name(phase))
        } else {
            format!("{} {n}", phase_name(phase))
        };
        set_condition(
            &mut status.conditions,
            PROGRESSING,
            true,
            phase_name(phase),
            message,
            generation,
            Timestamp::now(),
        );
        if let Err(e) = apply_status(&api, &name, &status).await {
            tracing::debug!(%name, error = %e, "progress update");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.notified() => return,
        }
    }
}
