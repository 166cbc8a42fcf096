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
use crate::engine::{AudienceJob, RunError, RunOutcome, run_audience_sync};

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

fn rejections(plan: &Plan, applied: Option<&ApplyReport>) -> Vec<RejectedRecord> {
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
    crate::status::sample_rejections(invalid.chain(vendor))
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
    c
}

pub(super) fn audience_executed(outcome: &RunOutcome, dry_run: bool) -> Executed {
    Executed {
        counts: audience_counts(outcome),
        rejected: rejections(&outcome.plan, outcome.applied.as_ref()),
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
        stopped_early: outcome.applied.as_ref().is_some_and(|a| a.stopped_early),
        source_reads: outcome.source_reads.clone(),
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
        let outcome = run_audience_sync(AudienceJob {
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
            control: parts.control,
            progress: parts.progress,
        })
        .await?;
        Ok(audience_executed(&outcome, spec.dry_run))
    }
}
