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
        held_rejections: outcome.remembered.as_ref().map(|r| {
            r.iter()
                .filter_map(crate::crd::status::HeldRejection::from_core)
                .collect()
        }),
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
    fn source_spec(&self) -> &SourceSpec {
        &self.spec.source
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
            source: parts.source,
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
