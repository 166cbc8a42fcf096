//! One reconcile, as steps: validate (pure) → decide (pure, [`crate::schedule`]) → dereference
//! ([`super::dereference`]) and run ([`super::run`]) → status (pure, [`super::status`]) → apply
//! the status, publish the Event, count the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, ResourceExt};

use super::errors::{Retry, backoff_delay, retry_for};
use super::registration::Next;
use super::run::{apply_status, execute_with_progress};
use super::status::{RunTimes, Settled, record_failure, record_success, settle};
use super::{Context, object_key};
use crate::crd::{
    APPROVE_PLAN_ANNOTATION, SYNC_NOW_ANNOTATION, SyncStatus, WEBHOOK_HINT_ANNOTATION,
};
use crate::schedule::{Cadence, Decision, Observed, Trigger, decide};
use crate::status::{Health, PROGRESSING, Reason, set_condition, set_health_conditions, truncate};
use crate::sync::{SyncError, SyncObject};

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
    let reconciler = Reconciler {
        obj,
        ctx: &ctx,
        api: Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default()),
    };
    // Webhook subscriptions first: a deleted sync only cleans up (see `registration`).
    match reconciler.registration().await? {
        Next::Deleted { retry: true } => return Ok(Action::requeue(Duration::from_secs(10))),
        Next::Deleted { retry: false } => return Ok(Action::await_change()),
        Next::Continue => {}
    }
    reconciler.reconcile().await
}

pub(super) struct Reconciler<'a, K: SyncObject> {
    pub(super) obj: &'a K,
    pub(super) ctx: &'a Context,
    pub(super) api: Api<K>,
}

pub(super) fn annotation<'a, K: SyncObject>(obj: &'a K, key: &str) -> Option<&'a str> {
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
    pub(super) fn generation(&self) -> Option<i64> {
        self.obj.meta().generation
    }

    async fn reconcile(&self) -> Result<Action, SyncError> {
        let now = Timestamp::now();
        let original = self.obj.sync_status().cloned().unwrap_or_default();

        // Validate (pure): an invalid spec waits for a change.
        if let Err(message) = self.obj.validate() {
            let mut status = original.clone();
            settle(
                &mut status,
                Reason::InvalidSpec,
                &message,
                None,
                self.generation(),
                now,
            );
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
            settle(
                &mut status,
                Reason::Suspended,
                "suspended: no runs are scheduled",
                None,
                self.generation(),
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
            webhook: self.ctx.webhooks.as_ref().and_then(|w| w.take(&key)),
            webhook_hint: annotation(self.obj, WEBHOOK_HINT_ANNOTATION),
        };
        let decision = match decide(&observed, now) {
            Decision::WaitFor(d) => match self.watch_segment(d).await {
                Ok(trigger) => Decision::Run(trigger),
                Err(d) => Decision::WaitFor(d),
            },
            other => other,
        };
        match decision {
            Decision::WaitFor(d) => Ok(Action::requeue(d)),
            Decision::WaitForChange => Ok(Action::await_change()),
            Decision::Run(trigger) => {
                // The watch cache can lag behind the operator's own last status write: a
                // reconcile queued by a progress patch may see the object as it was before the
                // run finished and start it again. Decide once more on the object as the API
                // server has it, so a finished run is never started twice.
                let fresh = self.api.get(&self.obj.name_any()).await?;
                if fresh.meta().resource_version != self.obj.meta().resource_version {
                    if observed.secret_changed {
                        self.ctx.mark_secret_changed(key.clone());
                    }
                    if let (Some(hub), Some(what)) = (&self.ctx.webhooks, &observed.webhook) {
                        hub.put_back(&key, what.clone());
                    }
                    let again = Reconciler {
                        obj: &fresh,
                        ctx: self.ctx,
                        api: self.api.clone(),
                    };
                    return Box::pin(again.reconcile()).await;
                }
                let _admitted = self.ctx.runs.admit(self.obj.sync_status()).await;
                // This run reads the segment: a change the watch saw is handled by it, and the
                // next check is a whole interval away (the run is a check).
                self.ctx.set_segment_change(&key, None);
                if self.obj.watched_segment().is_some() {
                    self.ctx.segment_read(&key, std::time::Instant::now());
                }
                self.run(trigger, original, &key).await
            }
        }
    }

    /// The sync's connectors: the ones kept from its last run while its connections and Secrets
    /// are unchanged, else new ones (see [`crate::sync::cache`]).
    pub(super) async fn connectors(
        &self,
    ) -> Result<std::sync::Arc<crate::sync::Prepared>, crate::sync::SyncError> {
        self.ctx
            .connector_cache
            .prepare(
                &super::object_key(self.obj),
                self.obj,
                &self.secrets(),
                self.ctx.connectors.as_ref(),
                self.ctx.settings.sandbox.as_ref(),
            )
            .await
    }

    /// Where this sync's runs read their Secrets: the kind's watched store, else the API server.
    pub(super) fn secrets(&self) -> super::dereference::KubeSecrets {
        let namespace = self.obj.namespace().unwrap_or_default();
        super::dereference::KubeSecrets {
            client: self.ctx.client.clone(),
            store: self.ctx.secret_store(K::KIND, &namespace),
            namespace,
        }
    }

    pub(super) async fn apply(&self, status: &SyncStatus) -> Result<(), kube::Error> {
        apply_status(&self.api, &self.obj.name_any(), status).await
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, action: &str, note: &str) {
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
        // kstatus: Reconciling while a new generation's first run goes on; Stalled cleared.
        let new_generation = status.observed_generation != generation;
        set_health_conditions(
            &mut status.conditions,
            Health::Running,
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

        let result = execute_with_progress(self, &mut status).await;

        let times = RunTimes {
            trigger: trigger.describe(),
            started_at,
            finished: Timestamp::now(),
            took: started.elapsed(),
        };
        let cadence = Cadence::parse(self.obj.schedule()).map_err(SyncError::InvalidSpec)?;
        status.handled_sync_now = annotation(self.obj, SYNC_NOW_ANNOTATION).map(str::to_string);
        // Any run reads what a handed-over webhook announced.
        status.handled_webhook_hint =
            annotation(self.obj, WEBHOOK_HINT_ANNOTATION).map(str::to_string);
        let took = times.took;
        let mut activity = Vec::new();
        let mut sent_events = None;
        let settled = match result {
            Ok(mut executed) => {
                self.ctx.reset_failures(key);
                activity = std::mem::take(&mut executed.activity);
                sent_events = executed.sent_events.take();
                record_success(
                    &mut status,
                    executed,
                    self.obj.dry_run(),
                    |finished| cadence.next_after(finished),
                    generation,
                    times,
                )
            }
            Err(error) => {
                let delay = self.retry_delay(&error, &cadence, times.finished, key);
                let next = delay.map(|d| add(times.finished, d));
                record_failure(
                    &mut status,
                    &error,
                    next,
                    self.obj.dry_run(),
                    generation,
                    times,
                )
            }
        };
        // The log before the status: once the status says a run finished, its log is there.
        self.record_activity(activity, started_at).await;
        super::run::save_sent_events(self, sent_events).await;
        self.apply(&status).await?;
        self.report(&settled, took).await;
        Ok(match settled.next {
            Some(next) => {
                Action::requeue(until(Timestamp::now(), next).max(Duration::from_millis(100)))
            }
            None => Action::await_change(),
        })
    }

    /// The activity log after a run (`crate::activity`): written only when the run changed
    /// records (a dry run changes none); deleted when the spec turned it off. A failure to write
    /// it is logged and does not fail the run (the records were synced).
    async fn record_activity(
        &self,
        entries: Vec<audience_core::activity::ActivityEntry>,
        started_at: Timestamp,
    ) {
        let Some(spec) = self.obj.activity_log() else {
            return;
        };
        if spec.enabled && entries.is_empty() {
            return;
        }
        let run = started_at.to_string();
        if let Err(e) =
            crate::activity::record(&self.ctx.client, self.obj, spec, entries, &run).await
        {
            tracing::warn!(kind = K::KIND, name = %self.obj.name_any(), error = %e, "writing the activity log");
        }
    }

    /// When a failed run is tried again: the error's retry policy, with the per-object backoff
    /// counted here.
    fn retry_delay(
        &self,
        error: &SyncError,
        cadence: &Cadence,
        finished: Timestamp,
        key: &str,
    ) -> Option<Duration> {
        let settings = &self.ctx.settings;
        match retry_for(error) {
            Retry::OnChange => None,
            Retry::Slow => Some(settings.credentials_retry),
            Retry::Backoff { at_least } => {
                let d = backoff_delay(
                    self.ctx.failure(key),
                    settings.backoff_base,
                    settings.backoff_max,
                );
                Some(at_least.map_or(d, |a| d.max(a)))
            }
            Retry::Schedule => Some(until(finished, cadence.next_after(finished))),
        }
    }

    /// The Event, the log line and the metrics of a finished run.
    async fn report(&self, settled: &Settled, took: Duration) {
        let name = self.obj.name_any();
        let ok = !settled.warning;
        self.ctx
            .metrics
            .run_finished(K::KIND, settled.outcome, ok, took, settled.counts.as_ref());
        if ok {
            tracing::info!(kind = K::KIND, %name, outcome = settled.outcome, message = %settled.message, "run finished");
        } else {
            tracing::warn!(kind = K::KIND, %name, outcome = settled.outcome, message = %settled.message, next = ?settled.next, "run failed");
        }
        let type_ = if ok {
            EventType::Normal
        } else {
            EventType::Warning
        };
        self.event(type_, settled.outcome, "Sync", &settled.message)
            .await;
    }
}
