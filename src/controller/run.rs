//! Run: the sync's one job path ([`crate::sync::prepare`]) with credentials from Kubernetes
//! Secrets, while `Progressing` follows the run's phase.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use tokio::sync::{Notify, watch};

use super::FIELD_MANAGER;
use super::dereference::KubeSecrets;
use super::reconcile::{Reconciler, annotation};
use crate::crd::{APPROVE_PLAN_ANNOTATION, SyncStatus};
use crate::engine::{Phase, ProgressFn};
use crate::status::{PROGRESSING, set_condition};
use crate::sync::{Executed, RunControl, SyncError, SyncObject, prepare};

/// Dereferences, builds the connectors and runs, patching `Progressing` at most every
/// `progress_interval` meanwhile.
pub(super) async fn execute_with_progress<K: SyncObject>(
    r: &Reconciler<'_, K>,
    status: &SyncStatus,
) -> Result<Executed, SyncError> {
    let (tx, rx) = watch::channel::<Option<(Phase, u64, u64)>>(None);
    let progress: ProgressFn = Arc::new(move |phase, done, total| {
        tx.send_replace(Some((phase, done, total)));
    });
    let done = Arc::new(Notify::new());
    let reporter = tokio::spawn(report_progress(
        r.api.clone(),
        r.obj.name_any(),
        status.clone(),
        r.generation(),
        rx,
        done.clone(),
        r.ctx.settings.progress_interval,
    ));
    let result = execute(r, progress).await;
    done.notify_one();
    let _ = reporter.await;
    result
}

async fn execute<K: SyncObject>(
    r: &Reconciler<'_, K>,
    progress: ProgressFn,
) -> Result<Executed, SyncError> {
    let secrets = KubeSecrets {
        client: r.ctx.client.clone(),
        namespace: r.obj.namespace().unwrap_or_default(),
    };
    let prepared = prepare(
        r.obj,
        &secrets,
        r.ctx.connectors.as_ref(),
        r.ctx.settings.sandbox.as_ref(),
    )
    .await?;
    let control = RunControl {
        approved_plan: annotation(r.obj, APPROVE_PLAN_ANNOTATION).map(str::to_string),
        control: audience_core::ApplyControl {
            progress: None,
            stop: r.ctx.stop.clone(),
        },
        progress: Some(progress),
    };
    prepared.run(r.obj, control).await
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

/// Patches `Progressing` with the latest phase and done/total, at most every `every`.
async fn report_progress<K: SyncObject>(
    api: Api<K>,
    name: String,
    mut status: SyncStatus,
    generation: Option<i64>,
    mut rx: watch::Receiver<Option<(Phase, u64, u64)>>,
    done: Arc<Notify>,
    every: Duration,
) {
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = done.notified() => return,
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
