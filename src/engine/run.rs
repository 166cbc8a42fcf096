//! Running one sync end to end (being written by the lead; the API is stable).

use std::sync::Arc;

use audience_core::plan::CapacityExceeded;
use audience_core::{
    ApplyControl, ApplyReport, Checkpoint, ConnectorError, ConsentPolicy, FieldMapping, Mode, Plan, PlanCounts,
    SafetyLimit, SafetyStop, SegmentMode, SegmentPlan, Skip, Source, Target,
};
use serde::Serialize;

/// The stage a run is in, for the `Progressing` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    ReadingTarget,
    ReadingSource,
    Planning,
    Applying,
}

/// Called with the phase and done/total records (total 0 when unknown). May be called often:
/// callers rate-limit what they do with it.
pub type ProgressFn = Arc<dyn Fn(Phase, u64, u64) + Send + Sync>;

/// One AudienceSync run.
pub struct AudienceJob<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub mode: Mode,
    pub mapping: FieldMapping,
    pub consent: ConsentPolicy,
    /// `None` disables the safety stop.
    pub safety: Option<SafetyLimit>,
    /// The removal id of a plan a person approved after a safety stop.
    pub approved_plan: Option<String>,
    /// The target's contact limit (e.g. 2,000 on Mailchimp's free plan).
    pub contact_limit: Option<u64>,
    /// Plan only; write nothing.
    pub dry_run: bool,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// Where a SegmentSync takes its members from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSegment {
    /// Every customer of the source.
    AllCustomers,
    /// A source segment by id or code.
    Segment(String),
}

/// One SegmentSync run.
pub struct SegmentJob<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub source_segment: SourceSegment,
    /// Name of the target static segment / tag (created when missing).
    pub target_segment: String,
    pub mode: SegmentMode,
    pub mapping: FieldMapping,
    pub consent: ConsentPolicy,
    pub safety: Option<SafetyLimit>,
    pub approved_plan: Option<String>,
    pub contact_limit: Option<u64>,
    pub dry_run: bool,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// What an audience run planned and did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub counts: PlanCounts,
    /// `None` on a dry run.
    pub applied: Option<ApplyReport>,
    /// The plan (kept whole; callers show a sample).
    pub plan: Plan,
    /// The source checkpoint reached; save it only now that the plan is applied.
    pub checkpoint: Option<Checkpoint>,
}

/// What a segment run planned and did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentOutcome {
    /// The audience part: segment members missing from the audience are added first.
    pub audience: RunOutcome,
    pub segment_plan: SegmentPlan,
    pub applied: Option<ApplyReport>,
    /// The target segment did not exist (it is created when the plan is applied).
    pub segment_created: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("source: {0}")]
    Source(ConnectorError),
    #[error("target: {0}")]
    Target(ConnectorError),
    #[error("safety stop: {0}")]
    Safety(SafetyStop),
    #[error("capacity: {0}")]
    Capacity(CapacityExceeded),
    #[error("invalid field mapping: {0}")]
    InvalidMapping(String),
}

impl RunError {
    pub fn connector(&self) -> Option<&ConnectorError> {
        match self {
            RunError::Source(e) | RunError::Target(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs an AudienceSync: read target, read source, plan, check safety and capacity, apply.
pub async fn run_audience_sync(job: AudienceJob<'_>) -> Result<RunOutcome, RunError> {
    let _ = (&job.source, &job.target, &job.mode, &job.mapping, &job.consent, &job.dry_run);
    let _: Option<&Skip> = None;
    let _: Option<SegmentMode> = None;
    Err(RunError::InvalidMapping("runner not yet written".into()))
}

/// Runs a SegmentSync: add missing members to the audience, then shape the segment.
pub async fn run_segment_sync(job: SegmentJob<'_>) -> Result<SegmentOutcome, RunError> {
    let _ = &job.source_segment;
    Err(RunError::InvalidMapping("runner not yet written".into()))
}
