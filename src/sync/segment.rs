//! SegmentSync as a sync kind: its run, and what the run reports into the status.

use async_trait::async_trait;

use super::audience::audience_executed;
use super::object::{Executed, JobParts, SyncObject};
use crate::crd::status::SAMPLE_LIMIT;
use crate::crd::{
    FieldMappingSpec, PlannedChange, RejectedRecord, Schedule, SegmentSync, SourceSpec, SyncStatus,
    TargetRef,
};
use crate::engine::{RunError, SegmentJob, SegmentOutcome, run_segment_sync};

/// A SegmentSync's `status.checkpoint` is its source segment's metadata stamp (see
/// [`audience_core::Source::segment_stamp`]), with this prefix.
pub const SEGMENT_STAMP_PREFIX: &str = "segment:";

fn segment_executed(outcome: &SegmentOutcome, dry_run: bool) -> Executed {
    let mut e = audience_executed(&outcome.audience, dry_run);
    // A segment run always reads the whole segment: no full/incremental bookkeeping.
    e.mode = None;
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
    fn activity_log(&self) -> Option<&crate::crd::audience::ActivityLogSpec> {
        Some(&self.spec.activity_log)
    }
    fn source_specs(&self) -> Vec<(&str, &SourceSpec)> {
        let name = self.spec.source.kind().map_or("source", |k| k.as_str());
        vec![(name, &self.spec.source)]
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
        if self.spec.target.segment_name().is_none_or(str::is_empty) {
            return Err("the target's segment name is empty".into());
        }
        Ok(())
    }

    /// RetailCRM segments only: Shopify has no segment metadata that tells a membership change
    /// (`lastEditDate` is the query's edit), so a Shopify segment follows its schedule.
    fn watched_segment(&self) -> Option<String> {
        let segment = &self.spec.source_segment;
        segment
            .retailcrm_segment
            .clone()
            .or_else(|| segment.shopify_segment.clone())
    }

    async fn execute(&self, parts: JobParts<'_>) -> Result<Executed, RunError> {
        let spec = &self.spec;
        let source = parts
            .sources
            .first()
            .ok_or_else(|| RunError::InvalidMapping("no source".into()))?
            .source;
        // The segment's metadata before its members are read: a recomputation during the read
        // then shows as a change at the next watch tick instead of being lost.
        let stamp = match self.watched_segment() {
            Some(id) => source.segment_stamp(&id).await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "reading the segment's metadata");
                None
            }),
            None => None,
        };
        let outcome = run_segment_sync(SegmentJob {
            source,
            target: parts.target,
            source_segment: spec
                .source_segment
                .to_core()
                .ok_or_else(|| RunError::InvalidMapping("no source segment".into()))?,
            target_segment: spec.target.segment_name().unwrap_or_default().to_string(),
            mode: spec.mode.to_core(),
            mapping: self.mapping(),
            consent: spec.consent_policy.to_policy(),
            safety: spec.safety.to_limit(),
            approved_plan: parts.approved_plan,
            contact_limit: spec.target.get().and_then(TargetRef::contact_limit),
            dry_run: spec.dry_run,
            history_import: self.first_run(),
            remembered: self.remembered_rejections(),
            control: parts.control,
            progress: parts.progress,
        })
        .await?;
        let mut executed = segment_executed(&outcome, spec.dry_run);
        // The stamp is the position this run applied (what the watch compares with); a dry run
        // or an interrupted one applied nothing.
        if !spec.dry_run && !executed.stopped_early {
            executed.checkpoint = stamp.map(|s| format!("{SEGMENT_STAMP_PREFIX}{s}"));
        }
        Ok(executed)
    }
}
