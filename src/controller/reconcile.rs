//! One reconcile: validate → decide → dereference → run → status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, ResourceExt};
use tokio::sync::{Notify, watch};

use super::errors::{Retry, SyncError, backoff_delay};
use super::kind::{Executed, JobParts, MAILCHIMP_DEFAULT_KEY, SyncObject};
use super::schedule::{Cadence, Decision, Observed, Trigger, decide};
use super::{Context, FIELD_MANAGER, object_key};
use crate::connect::Credentials;
use crate::crd::{
    APPROVE_PLAN_ANNOTATION, HistoryEntry, LastRun, SYNC_NOW_ANNOTATION, SecretKeyRef, SyncStatus,
};
use crate::engine::{Phase, ProgressFn};
use crate::status::{
    Health, PROGRESSING, READY, Reason, format_duration, is_reconciling, push_history,
    set_condition, set_health_conditions, truncate,
};

/// The reconcile of one object.
pub async fn reconcile<K: SyncObject>(
    guard: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
) -> Result<Action, SyncError> {
    let obj = match &guard.0 {
        Ok(obj) => obj,
        Err(invalid) => {
            tracing::warn!(
                kind = K::KIND,
                name = invalid.metadata.name.as_deref().unwrap_or(""),
                error = %invalid.error,
                "object does not deserialize; waiting for a change"
            );
            return Ok(Action::await_change());
        }
    };
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    Reconciler {
        obj,
        ctx: &ctx,
        api: Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default()),
    }
    .reconcile()
    .await
}

struct Reconciler<'a, K: SyncObject> {
    obj: &'a K,
    ctx: &'a Context,
    api: Api<K>,
}

fn annotation<'a, K: SyncObject>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_until(then)).unwrap_or(Duration::ZERO)
}

fn add(now: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

impl<K: SyncObject> Reconciler<'_, K> {
    fn generation(&self) -> Option<i64> {
        self.obj.meta().generation
    }

    async fn reconcile(&self) -> Result<Action, SyncError> {
        let now = Timestamp::now();
        let original = self.obj.sync_status().cloned().unwrap_or_default();

        // Validate (pure): an invalid spec waits for a change.
        if let Err(message) = self.obj.validate() {
            let mut status = original.clone();
            self.settle(&mut status, Reason::InvalidSpec, &message, None, now);
            status.pending_approval = None;
            if status != original {
                self.apply(&status).await?;
                self.event(EventType::Warning, "InvalidSpec", "Validate", &message)
                    .await;
            }
            return Ok(Action::await_change());
        }

        if self.obj.suspend() {
            let mut status = original.clone();
            self.settle(
                &mut status,
                Reason::Suspended,
                "suspended: no runs are scheduled",
                None,
                now,
            );
            if status != original {
                self.apply(&status).await?;
                self.event(EventType::Normal, "Suspended", "Suspend", "runs suspended")
                    .await;
            }
            return Ok(Action::await_change());
        }

        let key = object_key(self.obj);
        let observed = Observed {
            generation: self.generation(),
            status: self.obj.sync_status(),
            sync_now: annotation(self.obj, SYNC_NOW_ANNOTATION),
            approve_plan: annotation(self.obj, APPROVE_PLAN_ANNOTATION),
            secret_changed: self.ctx.take_secret_changed(&key),
        };
        match decide(&observed, now) {
            Decision::WaitFor(d) => Ok(Action::requeue(d)),
            Decision::WaitForChange => Ok(Action::await_change()),
            Decision::Run(trigger) => {
                let _permit = self
                    .ctx
                    .runs
                    .acquire()
                    .await
                    .expect("the run semaphore is never closed");
                self.run(trigger, original, &key).await
            }
        }
    }

    /// Sets `Ready` (False unless the reason is a success), `Progressing=False`, `Stalled` and
    /// `Reconciling` (kstatus), the observed generation and the next run time.
    fn settle(
        &self,
        status: &mut SyncStatus,
        reason: Reason,
        message: &str,
        next: Option<Timestamp>,
        now: Timestamp,
    ) {
        let generation = self.generation();
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
        let reconciling = is_reconciling(&status.conditions, generation);
        let health = Health::Settled(reason, message);
        set_health_conditions(&mut status.conditions, health, generation, reconciling, now);
        status.observed_generation = generation;
        status.next_sync_time = next.map(Time);
    }

    async fn apply(&self, status: &SyncStatus) -> Result<(), kube::Error> {
        apply_status(&self.api, &self.obj.name_any(), status).await
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: &str) {
        let mut note = note.to_string();
        truncate(&mut note, 1000);
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self
            .ctx
            .recorder
            .publish(&ev, &self.obj.object_ref(&()))
            .await
        {
            tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), error = %e, "publishing an event");
        }
    }

    async fn credentials(
        &self,
        r: &SecretKeyRef,
        default_key: &str,
        role: &str,
    ) -> Result<Credentials, SyncError> {
        let ns = self.obj.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        let key = r.key_or(default_key).to_string();
        let secret = match secrets.get_opt(&r.name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(SyncError::CredentialsMissing(format!(
                    "{role} credentials: Secret {ns}/{} not found",
                    r.name
                )));
            }
            Err(kube::Error::Api(e)) if e.code == 403 => {
                return Err(SyncError::CredentialsMissing(format!(
                    "{role} credentials: not allowed to read Secret {ns}/{}",
                    r.name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let data: std::collections::BTreeMap<String, String> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
            .collect();
        let value = data
            .get(&key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if value.is_empty() {
            return Err(SyncError::CredentialsMissing(format!(
                "{role} credentials: Secret {ns}/{} has no non-empty key {key:?}",
                r.name
            )));
        }
        Ok(Credentials {
            secret_name: r.name.clone(),
            key,
            value,
            data,
        })
    }

    /// Dereference, build the connectors, run.
    async fn execute(&self, progress: ProgressFn) -> Result<Executed, SyncError> {
        let connections = self.obj.connections()?;
        let source_creds = self
            .credentials(
                connections.source_secret,
                connections.source_default_key,
                "source",
            )
            .await?;
        let target_creds = self
            .credentials(&connections.target_secret, MAILCHIMP_DEFAULT_KEY, "target")
            .await?;
        let sandbox = self.ctx.settings.sandbox.as_ref();
        let source = self
            .ctx
            .connectors
            .source(connections.source, &source_creds, sandbox)?;
        let target = self
            .ctx
            .connectors
            .target(&connections.target, &target_creds, sandbox)?;
        let control = audience_core::ApplyControl {
            progress: None,
            stop: self.ctx.stop.clone(),
        };
        let parts = JobParts {
            source: source.as_ref(),
            target: target.as_ref(),
            approved_plan: annotation(self.obj, APPROVE_PLAN_ANNOTATION).map(str::to_string),
            control,
            progress: Some(progress),
        };
        Ok(self.obj.execute(parts).await?)
    }

    async fn run(
        &self,
        trigger: Trigger,
        original: SyncStatus,
        key: &str,
    ) -> Result<Action, SyncError> {
        let name = self.obj.name_any();
        let started_at = Timestamp::now();
        let started = Instant::now();
        tracing::info!(kind = K::KIND, namespace = %self.obj.namespace().unwrap_or_default(), %name, trigger = %trigger.describe(), "run started");

        // Progressing=True, then at most every `progress_interval` while the run goes on.
        let mut status = original;
        let generation = self.generation();
        set_condition(
            &mut status.conditions,
            PROGRESSING,
            true,
            "Started",
            format!("run started ({})", trigger.describe()),
            generation,
            started_at,
        );
        let new_generation = status.observed_generation != generation;
        let health = Health::Running;
        set_health_conditions(
            &mut status.conditions,
            health,
            generation,
            new_generation,
            started_at,
        );
        self.apply(&status).await?;
        self.event(
            EventType::Normal,
            "RunStarted",
            "Sync",
            &format!("run started ({})", trigger.describe()),
        )
        .await;
        self.ctx.metrics.run_started(K::KIND);

        let (tx, rx) = watch::channel::<Option<(Phase, u64, u64)>>(None);
        let progress: ProgressFn = Arc::new(move |phase, done, total| {
            tx.send_replace(Some((phase, done, total)));
        });
        let done = Arc::new(Notify::new());
        let reporter = tokio::spawn(report_progress(
            self.api.clone(),
            name.clone(),
            status.clone(),
            generation,
            rx,
            done.clone(),
            self.ctx.settings.progress_interval,
        ));
        let result = self.execute(progress).await;
        done.notify_one();
        let _ = reporter.await;

        let finished = Timestamp::now();
        let took = started.elapsed();
        let cadence = Cadence::parse(self.obj.schedule()).map_err(SyncError::InvalidSpec)?;
        status.handled_sync_now = annotation(self.obj, SYNC_NOW_ANNOTATION).map(str::to_string);
        let action = match result {
            Ok(executed) => self.succeeded(
                &mut status,
                executed,
                &cadence,
                started_at,
                finished,
                took,
                key,
            ),
            Err(error) => self.failed(
                &mut status,
                &error,
                &cadence,
                started_at,
                finished,
                took,
                key,
            ),
        };
        self.apply(&status).await?;
        let (type_, reason, note) = action.1;
        self.event(type_, &reason, "Sync", &note).await;
        Ok(action.0)
    }

    #[allow(clippy::too_many_arguments)]
    fn succeeded(
        &self,
        status: &mut SyncStatus,
        ex: Executed,
        cadence: &Cadence,
        started_at: Timestamp,
        finished: Timestamp,
        took: Duration,
        key: &str,
    ) -> (Action, (EventType, String, String)) {
        self.ctx.reset_failures(key);
        let dry_run = self.obj.dry_run();
        let c = ex.counts;
        let (reason, message) = if dry_run {
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
        } else if ex.stopped_early {
            (
                Reason::Synced,
                format!(
                    "stopped at a safe point (shutdown) after creating {}, updating {}, archiving {}; the next run finishes the job",
                    c.created, c.updated, c.archived
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
                ),
            )
        };
        let next = if ex.stopped_early {
            finished
        } else {
            cadence.next_after(finished)
        };
        self.settle(status, reason, &message, Some(next), finished);
        status.last_sync_time = Some(Time(finished));
        status.last_run = Some(LastRun {
            start_time: Some(Time(started_at)),
            outcome: reason.as_str().into(),
            duration: format_duration(took),
            dry_run,
            stopped_early: ex.stopped_early,
            counts: c,
        });
        status.rejected_sample = ex.rejected;
        status.plan = ex.plan.map(|mut p| {
            p.time = Some(Time(finished));
            p
        });
        status.pending_approval = None;
        if ex.checkpoint.is_some() {
            status.checkpoint = ex.checkpoint;
        }
        push_history(
            status,
            HistoryEntry {
                time: Time(started_at),
                outcome: reason.as_str().into(),
                summary: c.summary(),
                duration: format_duration(took),
            },
        );
        self.ctx
            .metrics
            .run_finished(K::KIND, reason.as_str(), true, took, Some(&c));
        tracing::info!(kind = K::KIND, name = %self.obj.name_any(), outcome = reason.as_str(), %message, "run finished");
        (
            Action::requeue(until(Timestamp::now(), next).max(Duration::from_millis(100))),
            (EventType::Normal, reason.as_str().into(), message),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn failed(
        &self,
        status: &mut SyncStatus,
        error: &SyncError,
        cadence: &Cadence,
        started_at: Timestamp,
        finished: Timestamp,
        took: Duration,
        key: &str,
    ) -> (Action, (EventType, String, String)) {
        let reason = error.reason();
        let message = error.to_string();
        let delay = match error.retry() {
            Retry::OnChange => None,
            Retry::Slow => Some(self.ctx.settings.credentials_retry),
            Retry::Backoff { at_least } => {
                let n = self.ctx.failure(key);
                let d = backoff_delay(
                    n,
                    self.ctx.settings.backoff_base,
                    self.ctx.settings.backoff_max,
                );
                Some(at_least.map_or(d, |a| d.max(a)))
            }
            Retry::Schedule => Some(until(finished, cadence.next_after(finished))),
        };
        let next = delay.map(|d| add(finished, d));
        self.settle(status, reason, &message, next, finished);
        status.last_run = Some(LastRun {
            start_time: Some(Time(started_at)),
            outcome: reason.as_str().into(),
            duration: format_duration(took),
            dry_run: self.obj.dry_run(),
            stopped_early: false,
            counts: Default::default(),
        });
        status.pending_approval = error.pending_approval();
        let mut summary = message.clone();
        truncate(&mut summary, 256);
        push_history(
            status,
            HistoryEntry {
                time: Time(started_at),
                outcome: reason.as_str().into(),
                summary,
                duration: format_duration(took),
            },
        );
        self.ctx
            .metrics
            .run_finished(K::KIND, reason.as_str(), false, took, None);
        tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), outcome = reason.as_str(), %message, retry_in = ?delay, "run failed");
        let action = match delay {
            Some(d) => Action::requeue(d.max(Duration::from_millis(100))),
            None => Action::await_change(),
        };
        (
            action,
            (EventType::Warning, reason.as_str().into(), message),
        )
    }
}

fn segment_note(c: &crate::crd::RunCounts, dry_run: bool) -> String {
    if c.segment_added + c.segment_removed == 0 {
        return String::new();
    }
    let verb = if dry_run { "would add" } else { "added" };
    format!(
        "; segment: {verb} {}, removed {}",
        c.segment_added, c.segment_removed
    )
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
