//! AudienceSync as a sync kind: its run, and what the run reports into the status.

use async_trait::async_trait;
use audience_core::{ApplyReport, MemberStatus, Plan};

use super::object::{Executed, JobParts, SyncObject};
use crate::crd::audience::AdoptPolicy;
use crate::crd::status::SAMPLE_LIMIT;
use crate::crd::{
    AudienceSync, FieldMappingSpec, PlanReport, PlannedChange, RejectedRecord, RunCounts, Schedule,
    SourceSpec, SyncStatus, TargetRef,
};
use crate::engine::{AudienceJob, RunError, RunMode, RunOutcome, run_audience_sync};

fn plan_sample(plan: &Plan) -> Vec<PlannedChange> {
    let writes = plan
        .creates
        .iter()
        .map(|w| ("create", w))
        .chain(plan.updates.iter().map(|w| {
            if w.status == Some(MemberStatus::Unsubscribed) {
                ("unsubscribe", w)
            } else if plan.is_adoption(w) {
                ("adopt", w)
            } else {
                ("update", w)
            }
        }));
    let mut sample: Vec<PlannedChange> = writes
        .take(SAMPLE_LIMIT)
        .map(|(action, w)| PlannedChange {
            action: action.into(),
            email: w.email.as_str().to_string(),
            fields: w.fields.keys().cloned().collect(),
        })
        .collect();
    let room = SAMPLE_LIMIT.saturating_sub(sample.len());
    sample.extend(plan.archives.iter().take(room).map(|e| PlannedChange {
        action: "archive".into(),
        email: e.as_str().to_string(),
        fields: Vec::new(),
    }));
    sample
}

fn rejections(
    plan: &Plan,
    applied: Option<&ApplyReport>,
    two_way: Option<&crate::engine::TwoWayReport>,
    after_sync: Option<&crate::engine::AfterSyncReport>,
) -> Vec<RejectedRecord> {
    let invalid = plan
        .skipped
        .iter()
        .filter(|s| s.reason.code() == "InvalidEmail")
        .map(|s| RejectedRecord {
            email: s.email.clone(),
            reason: s.reason.describe(),
        });
    let vendor = applied
        .into_iter()
        .flat_map(|a| a.rejected.iter())
        .map(|r| RejectedRecord {
            email: r.email.clone(),
            reason: r.reason.clone(),
        });
    let source = two_way
        .and_then(|t| t.applied.as_ref())
        .into_iter()
        .flat_map(|a| a.rejected.iter())
        .map(|r| RejectedRecord {
            email: r.email.clone(),
            reason: format!("consent write to the source refused: {}", r.reason),
        });
    let after = after_sync_rejections(after_sync);
    crate::status::sample_rejections(invalid.chain(vendor).chain(source).chain(after))
}

/// The SMS pass's and the write-back's rejected records.
fn after_sync_rejections(after: Option<&crate::engine::AfterSyncReport>) -> Vec<RejectedRecord> {
    let Some(after) = after else {
        return Vec::new();
    };
    let invalid = after
        .sms_invalid
        .iter()
        .map(|(email, reason)| RejectedRecord {
            email: email.clone(),
            reason: format!("SMS: {reason}"),
        });
    let sms = after
        .sms_applied
        .iter()
        .flat_map(|a| a.rejected.iter())
        .map(|r| RejectedRecord {
            email: r.email.clone(),
            reason: format!("SMS fields refused: {}", r.reason),
        });
    let creates = after
        .creates_applied
        .iter()
        .flat_map(|a| a.rejected.iter())
        .map(|r| RejectedRecord {
            email: r.email.clone(),
            reason: format!("customer create refused by the source: {}", r.reason),
        });
    invalid.chain(sms).chain(creates).collect()
}

/// Counts of an audience run: what was applied, or on a dry run what the plan would do.
fn audience_counts(outcome: &RunOutcome) -> RunCounts {
    let p = &outcome.counts;
    let mut c = RunCounts {
        source: p.source,
        target: p.target,
        unchanged: p.unchanged,
        skipped: p.skipped,
        rejected: p.rejected,
        consent_by_rule: p.consent_by_rule,
        not_managed: p.not_managed,
        drift: p.drift,
        ..Default::default()
    };
    match &outcome.applied {
        Some(a) => {
            c.created = a.created;
            c.updated = a.updated;
            c.adopted = a.adopted;
            c.archived = a.archived;
            c.unsubscribed = a.unsubscribed;
            c.rejected += a.rejected.len() as u64;
        }
        None => {
            c.created = p.create;
            c.updated = p.update;
            c.adopted = p.adopted;
            c.archived = p.archive;
            c.unsubscribed = p.unsubscribe;
        }
    }
    if let Some(events) = &outcome.customer_events {
        c.shopper_events = events.shopper_events;
        c.shopper_events_unknown = events.shopper_events_unknown;
        c.shopper_events_dropped = events.shopper_events_dropped;
        c.email_activity_written = events.email_activity_written;
        c.email_activity_contacts = events.email_activity_contacts;
    }
    if let Some(after) = &outcome.after_sync {
        c.sms_waiting = after.sms_waiting;
        c.sms_rejected = after.sms_counts.rejected;
        match &after.sms_applied {
            Some(a) => {
                // What Mailchimp took: the planned writes less the ones it refused.
                let refused: std::collections::HashSet<&str> =
                    a.rejected.iter().map(|r| r.email.as_str()).collect();
                for w in &after.sms_planned {
                    if refused.contains(w.email.as_str()) {
                        continue;
                    }
                    match w.change {
                        audience_core::SmsChange::Subscribe { .. } => c.sms_subscribed += 1,
                        audience_core::SmsChange::Unsubscribe => c.sms_unsubscribed += 1,
                    }
                }
                c.sms_rejected += a.rejected.len() as u64;
            }
            None => {
                c.sms_subscribed = after.sms_counts.subscribe;
                c.sms_unsubscribed = after.sms_counts.unsubscribe;
            }
        }
        match &after.creates_applied {
            Some(a) => {
                c.customers_created = a.written;
                c.customers_create_rejected = a.rejected.len() as u64;
            }
            None => c.customers_created = after.creates_planned.len() as u64,
        }
    }
    if let Some(two_way) = &outcome.two_way {
        let t = &two_way.counts;
        c.pending_reconfirm = t.pending_reconfirm;
        c.cleaned_not_resubscribed = t.cleaned_kept;
        c.already_subscribed = t.already_subscribed;
        match &two_way.applied {
            Some(a) => {
                c.consent_written_back = a.written;
                c.consent_write_rejected = a.rejected.len() as u64;
            }
            // A dry run: what would be written.
            None => c.consent_written_back = two_way.planned.len() as u64,
        }
    }
    c
}

pub(super) fn audience_executed(outcome: &RunOutcome, dry_run: bool) -> Executed {
    Executed {
        counts: audience_counts(outcome),
        rejected: rejections(
            &outcome.plan,
            outcome.applied.as_ref(),
            outcome.two_way.as_ref(),
            outcome.after_sync.as_ref(),
        ),
        plan: dry_run.then(|| PlanReport {
            time: None,
            plan_id: (outcome.plan.removals() > 0).then(|| outcome.plan.removal_id()),
            counts: audience_counts(outcome),
            sample: plan_sample(&outcome.plan),
        }),
        checkpoint: if dry_run {
            None
        } else {
            outcome.checkpoint.clone()
        },
        email_activity_cursor: outcome
            .customer_events
            .as_ref()
            .and_then(|e| e.activity_cursor),
        stopped_early: outcome.applied.as_ref().is_some_and(|a| a.stopped_early),
        source_reads: outcome.source_reads.clone(),
        activity: outcome.activity.clone(),
        mode: Some(outcome.mode),
        full_resync: None,
        held_rejections: outcome.remembered.as_ref().map(|r| {
            r.iter()
                .filter_map(crate::crd::status::HeldRejection::from_core)
                .collect()
        }),
        ..Executed::default()
    }
}

/// The tag marking the members `sync` manages: `spec.ownership.tag`, else derived from its
/// namespace and name (a manifest without a namespace, run by `sync -f`, is in `default`, as
/// `kubectl apply` would put it). Derived from the identity, not the uid, so deleting and
/// re-applying a sync keeps its members; see `audience_core::diff` (*Ownership*) for why a tag.
/// What a run does with customer events (`spec.customerEvents`; none when absent or off).
fn customer_events_job(
    sync: &AudienceSync,
) -> Option<crate::engine::customer_events::CustomerEventsJob> {
    let spec = sync.spec.customer_events.as_ref().filter(|c| c.enabled)?;
    let namespace = sync.metadata.namespace.as_deref().unwrap_or("default");
    let name = sync.metadata.name.as_deref().unwrap_or_default();
    let activity_cursor = sync
        .status
        .as_ref()
        .and_then(|s| s.email_activity_cursor.as_ref())
        .and_then(|t| chrono::DateTime::from_timestamp(t.0.as_second(), 0));
    Some(crate::engine::customer_events::CustomerEventsJob {
        sync_key: format!("{namespace}/{name}"),
        shopper_events: spec.sends_shopper_events(),
        email_activity: spec.writes_email_activity(),
        activity_cursor,
    })
}

pub fn owner_tag(sync: &AudienceSync) -> String {
    if let Some(tag) = &sync.spec.ownership.tag {
        return tag.trim().to_string();
    }
    let namespace = sync.metadata.namespace.as_deref().unwrap_or("default");
    let name = sync.metadata.name.as_deref().unwrap_or_default();
    audience_core::default_owner_tag(namespace, name)
}

/// How much a vendor's clock may run behind ours: records edited this long before the last run
/// started are not yet taken as applied by it, so a slow clock never makes an edit look like drift.
const DRIFT_CLOCK_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// When the last run of this very spec that applied everything started (less the clock margin):
/// the records a source had not edited since were written by it, so a difference now is drift.
/// `None` when the last run failed, stopped early or only planned, or the spec changed since.
pub fn drift_baseline(sync: &AudienceSync) -> Option<chrono::DateTime<chrono::Utc>> {
    let status = sync.status.as_ref()?;
    let last = status.last_run.as_ref()?;
    let same_spec = status.observed_generation.is_some()
        && status.observed_generation == sync.metadata.generation;
    if !same_spec || last.outcome != "Synced" || last.dry_run || last.stopped_early {
        return None;
    }
    let started = last.start_time.as_ref()?.0;
    let started = chrono::DateTime::from_timestamp(started.as_second(), 0)?;
    Some(started - DRIFT_CLOCK_MARGIN)
}

/// `spec.fullResync` when the spec leaves it out.
pub const DEFAULT_FULL_RESYNC: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `spec.fullResync`, or the default.
pub fn full_resync(sync: &AudienceSync) -> Result<std::time::Duration, String> {
    match &sync.spec.full_resync {
        None => Ok(DEFAULT_FULL_RESYNC),
        Some(s) => {
            let d = crate::schedule::parse_interval(s).map_err(|e| format!("fullResync: {e}"))?;
            if d < crate::schedule::MIN_INTERVAL {
                return Err("fullResync must be at least 1m".into());
            }
            Ok(d)
        }
    }
}

/// Why the next run of `sync` must read everything, or `None` when it may read only the changes
/// since `status.checkpoint`.
pub fn full_run_reason(sync: &AudienceSync, now: jiff::Timestamp) -> Option<&'static str> {
    if sync.spec.dry_run {
        // A dry run shows the whole plan a person reviews, and saves no checkpoint.
        return Some("dry run");
    }
    let Some(status) = sync.status.as_ref() else {
        return Some("first run");
    };
    if status.checkpoint.is_none() {
        return Some("no checkpoint");
    }
    if status.checkpoint_generation.is_none()
        || status.checkpoint_generation != sync.metadata.generation
    {
        // A new mapping, mode or consent rule applies to every member, not only the changed ones.
        return Some("the spec changed since the checkpoint was saved");
    }
    if status.pending_approval.is_some() {
        // The plan waiting for approval was a full one: approving its id means that plan.
        return Some("a plan waits for approval");
    }
    let asked = sync
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::crd::SYNC_NOW_ANNOTATION));
    if let Some(value) = asked
        && value.trim_start().starts_with("full")
        && status.handled_sync_now.as_deref() != Some(value.as_str())
    {
        return Some("asked for by the sync-now annotation");
    }
    let Some(last_full) = status.last_full_sync_time.as_ref() else {
        return Some("no full run recorded");
    };
    let every = full_resync(sync).unwrap_or(DEFAULT_FULL_RESYNC);
    let due = jiff::SignedDuration::try_from(every)
        .ok()
        .and_then(|d| last_full.0.checked_add(d).ok());
    match due {
        Some(due) if due > now => None,
        _ => Some("full reconcile due (fullResync)"),
    }
}

/// Records what a finished AudienceSync run means for later incremental runs: when and under
/// which generation the checkpoint was reached, and the last and next full reconcile. Nothing for
/// dry runs (they save no checkpoint) and other kinds.
pub fn record_full_resync(
    status: &mut SyncStatus,
    ex: &Executed,
    dry_run: bool,
    generation: Option<i64>,
    started_at: jiff::Timestamp,
) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let Some(mode) = ex.mode else { return };
    if dry_run {
        return;
    }
    if ex.checkpoint.is_some() {
        status.checkpoint_time = Some(Time(started_at));
        status.checkpoint_generation = generation;
    }
    if mode == RunMode::Full {
        status.last_full_sync_time = Some(Time(started_at));
    }
    status.next_full_sync_time = status
        .last_full_sync_time
        .as_ref()
        .zip(ex.full_resync)
        .and_then(|(last, every)| {
            let every = jiff::SignedDuration::try_from(every).ok()?;
            last.0.checked_add(every).ok().map(Time)
        });
}

impl AudienceSync {
    /// The names of the sources, in spec order.
    fn source_names(&self) -> Vec<String> {
        self.source_specs()
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// `fieldPrecedence` resolved against the mapping and the sources' names.
    fn precedence(&self) -> Result<audience_core::FieldPrecedence, String> {
        let lists = self
            .spec
            .field_precedence
            .iter()
            .map(|(field, list)| (field.clone(), list.0.clone()))
            .collect();
        audience_core::FieldPrecedence::for_target_fields(
            &self.mapping(),
            &lists,
            &self.source_names(),
        )
        .map_err(|e| format!("fieldPrecedence: {e}"))
    }
}

#[async_trait]
impl SyncObject for AudienceSync {
    const KIND: &'static str = "AudienceSync";

    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
    fn schedule(&self) -> &Schedule {
        &self.spec.schedule
    }
    fn suspend(&self) -> bool {
        self.spec.suspend
    }
    fn dry_run(&self) -> bool {
        self.spec.dry_run
    }
    fn activity_log(&self) -> Option<&crate::crd::audience::ActivityLogSpec> {
        Some(&self.spec.activity_log)
    }
    fn registers_webhooks(&self) -> bool {
        self.spec.webhooks.as_ref().is_some_and(|w| w.register)
    }
    fn source_specs(&self) -> Vec<(&str, &SourceSpec)> {
        match &self.spec.source {
            Some(one) => vec![(one.kind().map_or("source", |k| k.as_str()), one)],
            None => self
                .spec
                .sources
                .iter()
                .map(|s| (s.name.as_str(), &s.source))
                .collect(),
        }
    }

    fn validate_kind(&self) -> Result<(), String> {
        if self.spec.source.is_some() != self.spec.sources.is_empty() {
            return Err("give exactly one of source or sources".into());
        }
        full_resync(self)?;
        if self.spec.consent_policy.two_way {
            let shopify = self
                .spec
                .source
                .as_ref()
                .is_some_and(|s| s.shopify.is_some());
            if !shopify || self.spec.target.mailchimp.is_none() {
                return Err(crate::crd::audience::TWO_WAY_MESSAGE.into());
            }
        }
        if self.spec.sms.is_some() || self.spec.write_back.is_some() {
            let shopify = self
                .spec
                .source
                .as_ref()
                .is_some_and(|s| s.shopify.is_some());
            if !shopify || self.spec.target.mailchimp.is_none() {
                return Err(crate::crd::audience::SMS_WRITE_BACK_MESSAGE.into());
            }
        }
        if let Some(sms) = &self.spec.sms {
            sms.since_time()?;
        }
        self.precedence().map(|_| ())
    }
    fn target(&self) -> Option<TargetRef<'_>> {
        self.spec.target.get()
    }
    fn mode_str(&self) -> &'static str {
        self.spec.mode.as_str()
    }
    fn field_mapping(&self) -> &FieldMappingSpec {
        &self.spec.field_mapping
    }

    async fn execute(&self, parts: JobParts<'_>) -> Result<Executed, RunError> {
        let spec = &self.spec;
        let full = full_run_reason(self, jiff::Timestamp::now());
        let since = match full {
            Some(why) => {
                tracing::debug!(name = ?self.metadata.name, why, "full run");
                None
            }
            None => self.status.as_ref().and_then(|s| s.checkpoint.clone()),
        };
        let outcome = run_audience_sync(AudienceJob {
            since,
            sources: parts.sources,
            precedence: self.precedence().map_err(RunError::InvalidMapping)?,
            drift_since: drift_baseline(self),
            target: parts.target,
            mode: spec.mode.to_core(),
            mapping: self.mapping(),
            consent: spec.consent_policy.to_policy(),
            safety: spec.safety.to_limit(),
            approved_plan: parts.approved_plan,
            contact_limit: spec.target.get().and_then(TargetRef::contact_limit),
            dry_run: spec.dry_run,
            history_import: self.first_run(),
            remembered: self.remembered_rejections(),
            owner_tag: Some(owner_tag(self)),
            adopt_all: spec.ownership.adopt == AdoptPolicy::All && self.first_run(),
            two_way: spec.consent_policy.two_way,
            customer_events: customer_events_job(self),
            after_sync: crate::engine::AfterSync {
                sms_since: match &spec.sms {
                    Some(sms) => Some(sms.since_time().map_err(RunError::InvalidMapping)?),
                    None => None,
                },
                email_synced: !self.first_run(),
                create_customers: spec.write_back.as_ref().is_some_and(|w| w.create_customers),
            },
            control: parts.control,
            progress: parts.progress,
        })
        .await?;
        let mut executed = audience_executed(&outcome, spec.dry_run);
        executed.full_resync = full_resync(self).ok();
        Ok(executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn sync(extra: serde_json::Value) -> AudienceSync {
        let mut value = serde_json::json!({
            "apiVersion": "sync.audience-operator.io/v1alpha1",
            "kind": "AudienceSync",
            "metadata": {"name": "shop", "namespace": "ns", "generation": 3},
            "spec": {
                "source": {"shopify": {"shopDomain": "s.myshopify.com", "credentialsSecretRef": {"name": "s"}}},
                "target": {"mailchimp": {"audienceId": "a1", "credentialsSecretRef": {"name": "m"}}}
            }
        });
        json_merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn json_merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// A sync whose last full run started at `last_full`, checkpoint saved under generation 3.
    fn synced(last_full: &str, extra: serde_json::Value) -> AudienceSync {
        let mut s = sync(extra);
        let status = s.status.get_or_insert_with(Default::default);
        status.checkpoint = Some("2026-12-01T00:00:00Z".into());
        status.checkpoint_generation = Some(3);
        status.last_full_sync_time = Some(Time(at(last_full)));
        s
    }

    #[test]
    fn a_run_is_incremental_only_with_a_checkpoint_of_this_spec_and_a_recent_full_run() {
        let now = at("2026-12-02T10:00:00Z");
        assert_eq!(
            full_run_reason(&sync(serde_json::json!({})), now),
            Some("first run")
        );
        let recent = synced("2026-12-01T12:00:00Z", serde_json::json!({}));
        assert_eq!(full_run_reason(&recent, now), None);

        let mut no_checkpoint = recent.clone();
        no_checkpoint.status.as_mut().unwrap().checkpoint = None;
        assert!(full_run_reason(&no_checkpoint, now).is_some());

        let mut changed = recent.clone();
        changed.metadata.generation = Some(4);
        assert!(full_run_reason(&changed, now).is_some());

        let mut unknown_generation = recent.clone();
        unknown_generation
            .status
            .as_mut()
            .unwrap()
            .checkpoint_generation = None;
        assert!(full_run_reason(&unknown_generation, now).is_some());

        let mut waiting = recent.clone();
        waiting.status.as_mut().unwrap().pending_approval = Some(Default::default());
        assert!(full_run_reason(&waiting, now).is_some());

        let dry = synced(
            "2026-12-01T12:00:00Z",
            serde_json::json!({"spec": {"dryRun": true}}),
        );
        assert_eq!(full_run_reason(&dry, now), Some("dry run"));

        // 24h by default; fullResync shortens it.
        let old = synced("2026-12-01T09:59:59Z", serde_json::json!({}));
        assert!(full_run_reason(&old, now).is_some());
        let hourly = synced(
            "2026-12-02T08:30:00Z",
            serde_json::json!({"spec": {"fullResync": "1h"}}),
        );
        assert!(full_run_reason(&hourly, now).is_some());
        let hourly_recent = synced(
            "2026-12-02T09:30:00Z",
            serde_json::json!({"spec": {"fullResync": "1h"}}),
        );
        assert_eq!(full_run_reason(&hourly_recent, now), None);
    }

    #[test]
    fn sync_now_full_asks_for_one_full_run() {
        let now = at("2026-12-02T10:00:00Z");
        let asked = synced(
            "2026-12-02T09:00:00Z",
            serde_json::json!({"metadata": {"annotations": {crate::crd::SYNC_NOW_ANNOTATION: "full-7"}}}),
        );
        assert!(full_run_reason(&asked, now).is_some());
        let mut handled = asked.clone();
        handled.status.as_mut().unwrap().handled_sync_now = Some("full-7".into());
        assert_eq!(full_run_reason(&handled, now), None);
        let plain = synced(
            "2026-12-02T09:00:00Z",
            serde_json::json!({"metadata": {"annotations": {crate::crd::SYNC_NOW_ANNOTATION: "7"}}}),
        );
        assert_eq!(full_run_reason(&plain, now), None);
    }

    #[test]
    fn fullresync_is_checked() {
        assert_eq!(
            full_resync(&sync(serde_json::json!({}))).unwrap(),
            DEFAULT_FULL_RESYNC
        );
        let six = sync(serde_json::json!({"spec": {"fullResync": "6h"}}));
        assert_eq!(full_resync(&six).unwrap().as_secs(), 6 * 3600);
        for bad in ["30s", "6d", ""] {
            let s = sync(serde_json::json!({"spec": {"fullResync": bad}}));
            assert!(full_resync(&s).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_status_records_full_runs_and_when_the_next_is_due() {
        let mut status = SyncStatus::default();
        let started = at("2026-12-02T10:00:00Z");
        let ex = Executed {
            mode: Some(RunMode::Full),
            full_resync: Some(std::time::Duration::from_secs(3600)),
            checkpoint: Some("cp".into()),
            ..Default::default()
        };
        record_full_resync(&mut status, &ex, false, Some(3), started);
        assert_eq!(status.last_full_sync_time, Some(Time(started)));
        assert_eq!(status.checkpoint_time, Some(Time(started)));
        assert_eq!(status.checkpoint_generation, Some(3));
        assert_eq!(
            status.next_full_sync_time,
            Some(Time(at("2026-12-02T11:00:00Z")))
        );
        // An incremental run moves the checkpoint, not the full reconcile.
        let later = at("2026-12-02T10:30:00Z");
        let ex = Executed {
            mode: Some(RunMode::Incremental),
            ..ex
        };
        record_full_resync(&mut status, &ex, false, Some(3), later);
        assert_eq!(status.last_full_sync_time, Some(Time(started)));
        assert_eq!(status.checkpoint_time, Some(Time(later)));
        // Dry runs and other kinds record nothing.
        let before = status.clone();
        record_full_resync(&mut status, &ex, true, Some(4), later);
        let other = Executed::default();
        record_full_resync(&mut status, &other, false, Some(4), later);
        assert_eq!(status, before);
    }
}
