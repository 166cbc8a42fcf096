//! What the reconcile needs from each kind: its spec parts, its extra validation and how it runs.

use std::fmt::Debug;

use async_trait::async_trait;
use audience_core::{ApplyControl, ApplyReport, MemberStatus, Plan, Source, Target};
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::SyncError;
use super::schedule::Cadence;
use crate::crd::status::SAMPLE_LIMIT;
use crate::crd::{
    AudienceSync, AudienceTarget, FieldMappingSpec, MailchimpTarget, PlanReport, PlannedChange,
    RejectedRecord, RunCounts, Schedule, SecretKeyRef, SegmentSync, SourceSpec, SyncStatus,
};
use crate::engine::{
    AudienceJob, ProgressFn, RunError, RunOutcome, SegmentJob, SegmentOutcome, run_audience_sync,
    run_segment_sync,
};

/// The parts of a job the controller supplies.
pub struct JobParts<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub approved_plan: Option<String>,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// What a sync connects to, and the Secret keys that unlock each side: read the same way by the
/// controller and by `sync -f`.
pub struct Connections<'a> {
    pub source: &'a SourceSpec,
    pub source_secret: &'a SecretKeyRef,
    /// The key read when `source_secret` names none (`accessToken`, `token`, `apiKey`).
    pub source_default_key: &'static str,
    pub target: AudienceTarget,
    pub target_secret: SecretKeyRef,
}

/// The key of a Mailchimp credentials Secret when the spec names none.
pub const MAILCHIMP_DEFAULT_KEY: &str = "apiKey";

/// What a finished run reports into the status.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub counts: RunCounts,
    pub rejected: Vec<RejectedRecord>,
    /// Dry runs: the plan.
    pub plan: Option<PlanReport>,
    pub checkpoint: Option<String>,
    pub stopped_early: bool,
}

/// A sync kind (AudienceSync, SegmentSync).
#[async_trait]
pub trait SyncObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;

    fn sync_status(&self) -> Option<&SyncStatus>;
    fn schedule(&self) -> &Schedule;
    fn suspend(&self) -> bool;
    fn dry_run(&self) -> bool;
    fn source_spec(&self) -> &SourceSpec;
    /// The target, as the connector factory takes it.
    fn target_spec(&self) -> Option<AudienceTarget>;
    fn mode_str(&self) -> &'static str;
    fn field_mapping(&self) -> &FieldMappingSpec;
    /// Kind-specific checks beyond the schema.
    fn validate_kind(&self) -> Result<(), String> {
        Ok(())
    }

    /// The source, the target and their credential references, or why the spec lacks one.
    fn connections(&self) -> Result<Connections<'_>, SyncError> {
        let source = self.source_spec();
        let kind = source
            .kind()
            .ok_or_else(|| SyncError::InvalidSpec("no source".into()))?;
        let source_secret = source
            .credentials()
            .ok_or_else(|| SyncError::InvalidSpec("no source credentials".into()))?;
        let target = self
            .target_spec()
            .ok_or_else(|| SyncError::InvalidSpec("no target".into()))?;
        let target_secret = target
            .mailchimp
            .as_ref()
            .ok_or_else(|| SyncError::InvalidSpec("no mailchimp target".into()))?
            .credentials_secret_ref
            .clone();
        Ok(Connections {
            source,
            source_secret,
            source_default_key: kind.default_secret_key(),
            target,
            target_secret,
        })
    }

    /// Runs the sync.
    async fn execute(&self, parts: JobParts<'_>) -> Result<Executed, RunError>;

    /// Every Secret this object reads.
    fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(r) = self.source_spec().credentials() {
            names.push(r.name.clone());
        }
        if let Some(t) = self.target_spec().and_then(|t| t.mailchimp) {
            names.push(t.credentials_secret_ref.name);
        }
        names.sort();
        names.dedup();
        names
    }

    /// All checks the API server cannot make (pure).
    fn validate(&self) -> Result<(), String> {
        Cadence::parse(self.schedule())?;
        let source = self.source_spec();
        if source.kinds_given() != 1 {
            return Err("give exactly one source kind".into());
        }
        if self.target_spec().and_then(|t| t.mailchimp).is_none() {
            return Err("give a mailchimp target".into());
        }
        validate_mapping(self.field_mapping())?;
        self.validate_kind()
    }
}

/// Mailchimp merge tags: an upper-case letter, then up to 9 upper-case letters, digits or `_`.
fn is_merge_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && tag.len() <= 10
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The field mapping names valid, distinct merge tags.
pub fn validate_mapping(spec: &FieldMappingSpec) -> Result<(), String> {
    let mapping = spec.to_mapping();
    for (source, tag) in &mapping.custom {
        if source.trim().is_empty() {
            return Err("fieldMapping.customFields: a source attribute name is empty".into());
        }
        if !is_merge_tag(tag) {
            return Err(format!(
                "fieldMapping.customFields.{source}: {tag:?} is not a Mailchimp merge tag (up to 10 of A-Z, 0-9, _, starting with a letter)"
            ));
        }
    }
    for (tag, _) in mapping.target_fields() {
        if tag.eq_ignore_ascii_case("EMAIL") {
            return Err(
                "fieldMapping: EMAIL is the member's address, not a merge field to map onto".into(),
            );
        }
        if !is_merge_tag(tag) {
            return Err(format!(
                "fieldMapping: {tag:?} is not a Mailchimp merge tag"
            ));
        }
    }
    mapping.validate().map_err(|e| format!("fieldMapping: {e}"))
}

fn plan_sample(plan: &Plan) -> Vec<PlannedChange> {
    let writes = plan
        .creates
        .iter()
        .map(|w| ("create", w))
        .chain(plan.updates.iter().map(|w| {
            if w.status == Some(MemberStatus::Unsubscribed) {
                ("unsubscribe", w)
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
        ..Default::default()
    };
    match &outcome.applied {
        Some(a) => {
            c.created = a.created;
            c.updated = a.updated;
            c.archived = a.archived;
            c.unsubscribed = a.unsubscribed;
            c.rejected += a.rejected.len() as u64;
        }
        None => {
            c.created = p.create;
            c.updated = p.update;
            c.archived = p.archive;
            c.unsubscribed = p.unsubscribe;
        }
    }
    c
}

fn audience_executed(outcome: &RunOutcome, dry_run: bool) -> Executed {
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
    fn source_spec(&self) -> &SourceSpec {
        &self.spec.source
    }
    fn target_spec(&self) -> Option<AudienceTarget> {
        Some(self.spec.target.clone())
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
            mapping: spec.field_mapping.to_mapping(),
            consent: spec.consent_policy.to_policy(),
            safety: spec.safety.to_limit(),
            approved_plan: parts.approved_plan,
            contact_limit: spec.target.mailchimp.as_ref().and_then(|m| m.contact_limit),
            dry_run: spec.dry_run,
            control: parts.control,
            progress: parts.progress,
        })
        .await?;
        Ok(audience_executed(&outcome, spec.dry_run))
    }
}

fn segment_executed(outcome: &SegmentOutcome, dry_run: bool) -> Executed {
    let mut e = audience_executed(&outcome.audience, dry_run);
    let seg = &outcome.segment_plan;
    match &outcome.applied {
        Some(a) => {
            e.counts.segment_added = a.segment_added;
            e.counts.segment_removed = a.segment_removed;
            e.stopped_early |= a.stopped_early;
            e.rejected.extend(a.rejected.iter().map(|r| RejectedRecord {
                email: r.email.clone(),
                reason: r.reason.clone(),
            }));
            e.rejected.truncate(SAMPLE_LIMIT);
            e.counts.rejected += a.rejected.len() as u64;
        }
        None => {
            e.counts.segment_added = seg.add.len() as u64;
            e.counts.segment_removed = seg.remove.len() as u64;
        }
    }
    if let Some(plan) = &mut e.plan {
        plan.counts = e.counts;
        let room = SAMPLE_LIMIT.saturating_sub(plan.sample.len());
        let adds = seg.add.iter().map(|m| ("segmentAdd", m));
        let removes = seg.remove.iter().map(|m| ("segmentRemove", m));
        plan.sample.extend(
            adds.chain(removes)
                .take(room)
                .map(|(action, m)| PlannedChange {
                    action: action.into(),
                    email: m.as_str().to_string(),
                    fields: Vec::new(),
                }),
        );
    }
    e
}

#[async_trait]
impl SyncObject for SegmentSync {
    const KIND: &'static str = "SegmentSync";

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
    fn target_spec(&self) -> Option<AudienceTarget> {
        self.spec.target.mailchimp.as_ref().map(|m| AudienceTarget {
            mailchimp: Some(MailchimpTarget {
                audience_id: m.audience_id.clone(),
                credentials_secret_ref: m.credentials_secret_ref.clone(),
                endpoint: m.endpoint.clone(),
                contact_limit: m.contact_limit,
            }),
        })
    }
    fn mode_str(&self) -> &'static str {
        self.spec.mode.as_str()
    }
    fn field_mapping(&self) -> &FieldMappingSpec {
        &self.spec.field_mapping
    }

    fn validate_kind(&self) -> Result<(), String> {
        let seg = &self.spec.source_segment;
        let given = [
            seg.retailcrm_segment.is_some(),
            seg.shopify_segment.is_some(),
            seg.all_customers == Some(true),
        ]
        .into_iter()
        .filter(|b| *b)
        .count();
        if given != 1 {
            return Err("give exactly one of sourceSegment.retailcrmSegment, shopifySegment or allCustomers: true".into());
        }
        if seg.retailcrm_segment.is_some() && self.spec.source.retailcrm.is_none() {
            return Err("sourceSegment.retailcrmSegment needs a retailcrm source".into());
        }
        if seg.shopify_segment.is_some() && self.spec.source.shopify.is_none() {
            return Err("sourceSegment.shopifySegment needs a shopify source".into());
        }
        let name = self
            .spec
            .target
            .mailchimp
            .as_ref()
            .map(|m| m.segment.trim())
            .unwrap_or("");
        if name.is_empty() {
            return Err("target.mailchimp.segment is empty".into());
        }
        Ok(())
    }

    async fn execute(&self, parts: JobParts<'_>) -> Result<Executed, RunError> {
        let spec = &self.spec;
        let target = spec.target.mailchimp.as_ref();
        let outcome = run_segment_sync(SegmentJob {
            source: parts.source,
            target: parts.target,
            source_segment: spec
                .source_segment
                .to_core()
                .ok_or_else(|| RunError::InvalidMapping("no source segment".into()))?,
            target_segment: target.map(|m| m.segment.clone()).unwrap_or_default(),
            mode: spec.mode.to_core(),
            mapping: spec.field_mapping.to_mapping(),
            consent: spec.consent_policy.to_policy(),
            safety: spec.safety.to_limit(),
            approved_plan: parts.approved_plan,
            contact_limit: target.and_then(|m| m.contact_limit),
            dry_run: spec.dry_run,
            control: parts.control,
            progress: parts.progress,
        })
        .await?;
        Ok(segment_executed(&outcome, spec.dry_run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_validation() {
        let mut m = FieldMappingSpec::default();
        assert!(validate_mapping(&m).is_ok());
        m.custom_fields.insert("company".into(), "COMPANY".into());
        assert!(validate_mapping(&m).is_ok());
        m.custom_fields.insert("vat".into(), "vat number".into());
        assert!(
            validate_mapping(&m)
                .unwrap_err()
                .contains("not a Mailchimp merge tag")
        );
        let twice = FieldMappingSpec {
            last_name: Some("FNAME".into()),
            ..Default::default()
        };
        assert!(
            validate_mapping(&twice)
                .unwrap_err()
                .contains("mapped twice")
        );
        let mut email = FieldMappingSpec::default();
        email.custom_fields.insert("mail".into(), "EMAIL".into());
        assert!(validate_mapping(&email).unwrap_err().contains("EMAIL"));
        let off = FieldMappingSpec {
            first_name: Some(String::new()),
            ..Default::default()
        };
        assert!(validate_mapping(&off).is_ok());
        assert_eq!(off.to_mapping().first_name, None);
    }
}
