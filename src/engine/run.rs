//! Running one sync end to end: read, plan, check, apply. The cursor a source hands back is
//! returned only after its changes were applied, so callers that save it never skip an update.

use std::sync::Arc;

use std::collections::HashSet;

use audience_core::plan::CapacityExceeded;
use audience_core::rejections;
use audience_core::{
    ApplyControl, ApplyReport, AudiencePlanner, Checkpoint, ConnectorError, ConsentPolicy, Email,
    FieldMapping, FieldPrecedence, Merged, Mode, Plan, PlanCounts, PlanOptions, ReadScope,
    RejectionPolicy, RememberedRejection, SafetyLimit, SafetyStop, SegmentMode, SegmentPlan,
    Source, SourceMerger, SourceSegment, Target, TargetIndex, plan_segment,
};
use futures::StreamExt;
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

/// One source of a run, by the name the spec gives it.
#[derive(Clone, Copy)]
pub struct NamedSource<'a> {
    pub name: &'a str,
    pub source: &'a dyn Source,
}

/// One AudienceSync run.
pub struct AudienceJob<'a> {
    /// One source, or several planned together (see `audience_core::merge`).
    pub sources: Vec<NamedSource<'a>>,
    /// Which source owns which attribute when several feed the audience.
    pub precedence: FieldPrecedence,
    /// Source records edited before this were applied by the last successful run of this spec:
    /// corrections of them are drift (see `PlanOptions::drift_since`).
    pub drift_since: Option<chrono::DateTime<chrono::Utc>>,
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
    /// The sync's first full push (no run has finished yet): a history import, see
    /// [`Plan::history_import`].
    pub history_import: bool,
    /// Writes the target refused in earlier runs (held back while unchanged).
    pub remembered: Vec<RememberedRejection>,
    /// The tag marking the members this sync manages (`None`: it manages every member).
    pub owner_tag: Option<String>,
    /// Adopt every existing member this run (`adopt: all` on the first run).
    pub adopt_all: bool,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
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
    /// The sync's first run: members it adds are a history import.
    pub history_import: bool,
    /// Writes the target refused in earlier runs (held back while unchanged).
    pub remembered: Vec<RememberedRejection>,
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
    /// The refused writes to remember after this run; `None` when the run wrote nothing (a dry
    /// run), so the memory stays as it was.
    #[serde(skip)]
    pub remembered: Option<Vec<RememberedRejection>>,
    /// The source checkpoint reached; save it only now that the plan is applied.
    pub checkpoint: Option<Checkpoint>,
    /// Records read from each source of a multi-source sync, by name, before they were merged
    /// per email (empty for one source: `counts.source` says it).
    pub source_reads: Vec<(String, u64)>,
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
    job.mapping.validate().map_err(RunError::InvalidMapping)?;
    let options = PlanOptions {
        mode: job.mode,
        mapping: job.mapping.clone(),
        consent: job.consent,
        create_only: false,
        owner_tag: job.owner_tag.clone(),
        adopt_all: job.adopt_all,
        drift_since: job.drift_since,
    };
    let index = read_target(job.target, &job.mapping, job.progress.as_ref()).await?;
    let mut planner = AudiencePlanner::new(index, options);
    let mut source_reads = Vec::new();
    let checkpoint = match job.sources.as_slice() {
        [] => return Err(RunError::InvalidMapping("no source".into())),
        // One source streams straight into the planner: nothing is held but the plan.
        [one] => {
            read_source(one.source, ReadScope::Full, job.progress.as_ref(), |c| {
                planner.observe(c)
            })
            .await?
        }
        many => {
            let (merged, checkpoints, reads) =
                read_merged(many, job.precedence.clone(), job.progress.as_ref()).await?;
            merged.observe_into(&mut planner);
            source_reads = reads;
            checkpoints
        }
    };
    report(job.progress.as_ref(), Phase::Planning, 0, 0);
    let mut plan = planner.finish();
    plan.history_import = job.history_import;
    let now = chrono::Utc::now();
    let policy = RejectionPolicy::default();
    let held = rejections::hold_back(&mut plan, &job.remembered, now, &policy);
    check(
        &plan,
        job.safety.as_ref(),
        job.approved_plan.as_deref(),
        job.contact_limit,
    )?;
    let counts = plan.counts;
    if job.dry_run {
        return Ok(RunOutcome {
            counts,
            applied: None,
            plan,
            checkpoint,
            remembered: None,
            source_reads,
        });
    }
    let applied = apply_plan(
        job.target,
        &job.mapping,
        &plan,
        &job.control,
        job.progress.as_ref(),
    )
    .await?;
    let remembered = rejections::remember(
        &job.remembered,
        held,
        &plan,
        &applied.rejected,
        now,
        &policy,
    );
    Ok(RunOutcome {
        counts,
        applied: Some(applied),
        plan,
        checkpoint,
        remembered: Some(remembered),
        source_reads,
    })
}

/// Runs a SegmentSync: add missing members to the audience, then shape the segment.
pub async fn run_segment_sync(job: SegmentJob<'_>) -> Result<SegmentOutcome, RunError> {
    job.mapping.validate().map_err(RunError::InvalidMapping)?;
    let scope = job.source_segment.read_scope();
    // Subtracting never adds anyone to the audience; the other modes create members the segment
    // needs but leave existing members' fields to the AudienceSync that owns them.
    let adds_members = job.mode != SegmentMode::Subtract;
    let options = PlanOptions {
        mode: Mode::Upsert,
        mapping: job.mapping.clone(),
        consent: job.consent,
        create_only: true,
        ..PlanOptions::default()
    };
    let index = read_target(job.target, &job.mapping, job.progress.as_ref()).await?;
    let mut planner = AudiencePlanner::new(index, options);
    let mut segment_emails: Vec<Email> = Vec::new();
    let checkpoint = read_source(job.source, scope, job.progress.as_ref(), |contact| {
        if let Ok(email) = Email::parse(&contact.email) {
            segment_emails.push(email);
        }
        if adds_members {
            planner.observe(contact);
        }
    })
    .await?;
    report(job.progress.as_ref(), Phase::Planning, 0, 0);
    let mut audience_plan = planner.finish();
    if !adds_members {
        audience_plan = Plan::default();
    }
    audience_plan.history_import = job.history_import;
    let now = chrono::Utc::now();
    let policy = RejectionPolicy::default();
    let held = rejections::hold_back(&mut audience_plan, &job.remembered, now, &policy);
    // Emails the audience will not hold (skipped as undeliverable) cannot join the segment.
    let unplaceable: HashSet<&str> = audience_plan
        .skipped
        .iter()
        .filter(|s| {
            matches!(
                s.reason,
                audience_core::SkipReason::Undeliverable
                    | audience_core::SkipReason::RejectedBefore { .. }
            )
        })
        .map(|s| s.email.as_str())
        .collect();
    segment_emails.retain(|e| !unplaceable.contains(e.as_str()));
    segment_emails.sort();
    segment_emails.dedup();

    let existing = job
        .target
        .segment_members(&job.target_segment)
        .await
        .map_err(RunError::Target)?;
    let segment_created = existing.is_none();
    let target_emails = existing.unwrap_or_default();
    let segment_plan = plan_segment(job.mode, &segment_emails, &target_emails);

    check(&audience_plan, None, None, job.contact_limit)?;
    if let Some(limit) = &job.safety {
        segment_plan
            .check_safety(limit, job.approved_plan.as_deref())
            .map_err(RunError::Safety)?;
    }
    let audience_counts = audience_plan.counts;
    if job.dry_run {
        return Ok(SegmentOutcome {
            audience: RunOutcome {
                counts: audience_counts,
                applied: None,
                plan: audience_plan,
                checkpoint,
                remembered: None,
                source_reads: Vec::new(),
            },
            segment_plan,
            applied: None,
            segment_created,
        });
    }
    let audience_applied = if audience_plan.is_empty() {
        ApplyReport::default()
    } else {
        apply_plan(
            job.target,
            &job.mapping,
            &audience_plan,
            &job.control,
            job.progress.as_ref(),
        )
        .await?
    };
    let segment_applied = if segment_plan.is_empty() && !segment_created {
        ApplyReport::default()
    } else {
        let control = with_progress(&job.control, job.progress.as_ref());
        job.target
            .apply_segment(&job.target_segment, &segment_plan, &control)
            .await
            .map_err(RunError::Target)?
    };
    let remembered = rejections::remember(
        &job.remembered,
        held,
        &audience_plan,
        &audience_applied.rejected,
        now,
        &policy,
    );
    Ok(SegmentOutcome {
        audience: RunOutcome {
            counts: audience_counts,
            applied: Some(audience_applied),
            plan: audience_plan,
            checkpoint,
            remembered: Some(remembered),
            source_reads: Vec::new(),
        },
        segment_plan,
        applied: Some(segment_applied),
        segment_created,
    })
}

fn report(progress: Option<&ProgressFn>, phase: Phase, done: u64, total: u64) {
    if let Some(progress) = progress {
        progress(phase, done, total);
    }
}

/// Streams every target member into a fingerprint index.
async fn read_target(
    target: &dyn Target,
    mapping: &FieldMapping,
    progress: Option<&ProgressFn>,
) -> Result<TargetIndex, RunError> {
    let info = target.info().await.map_err(RunError::Target)?;
    let mut index = TargetIndex::with_capacity(mapping, info.member_count as usize);
    let mut pages = target.members();
    let mut read = 0u64;
    while let Some(page) = pages.next().await {
        let page = page.map_err(RunError::Target)?;
        for member in &page {
            index.insert(member);
        }
        read += page.len() as u64;
        report(progress, Phase::ReadingTarget, read, info.member_count);
    }
    Ok(index)
}

/// Reads every source at once (their reads do not depend on each other) and merges their records
/// per email. The checkpoint is a JSON object of each source's, by name, when any gave one.
async fn read_merged(
    sources: &[NamedSource<'_>],
    precedence: FieldPrecedence,
    progress: Option<&ProgressFn>,
) -> Result<(Merged, Option<Checkpoint>, Vec<(String, u64)>), RunError> {
    let reads = sources.iter().map(|named| async move {
        let mut records = Vec::new();
        let checkpoint = read_source(named.source, ReadScope::Full, progress, |c| {
            records.push(c.clone())
        })
        .await?;
        Ok::<_, RunError>((records, checkpoint))
    });
    let results = futures::future::try_join_all(reads).await?;
    let names = sources.iter().map(|s| s.name.to_string()).collect();
    let mut merger = SourceMerger::new(names, precedence);
    let mut checkpoints = serde_json::Map::new();
    let mut reads = Vec::with_capacity(sources.len());
    for (index, ((records, checkpoint), named)) in results.into_iter().zip(sources).enumerate() {
        reads.push((named.name.to_string(), records.len() as u64));
        for record in records {
            merger.observe(index, record);
        }
        if let Some(checkpoint) = checkpoint {
            checkpoints.insert(named.name.to_string(), checkpoint.into());
        }
    }
    let checkpoint =
        (!checkpoints.is_empty()).then(|| serde_json::Value::Object(checkpoints).to_string());
    Ok((merger.finish(), checkpoint, reads))
}

/// Streams a source scope through `observe`; returns the last checkpoint the source gave.
async fn read_source(
    source: &dyn Source,
    scope: ReadScope,
    progress: Option<&ProgressFn>,
    mut observe: impl FnMut(&audience_core::SourceContact),
) -> Result<Option<Checkpoint>, RunError> {
    let mut pages = source.read(scope);
    let mut checkpoint = None;
    let mut read = 0u64;
    while let Some(page) = pages.next().await {
        let page = page.map_err(RunError::Source)?;
        for contact in &page.contacts {
            observe(contact);
        }
        read += page.contacts.len() as u64;
        if page.checkpoint.is_some() {
            checkpoint = page.checkpoint;
        }
        report(progress, Phase::ReadingSource, read, 0);
    }
    Ok(checkpoint)
}

fn check(
    plan: &Plan,
    safety: Option<&SafetyLimit>,
    approved: Option<&str>,
    contact_limit: Option<u64>,
) -> Result<(), RunError> {
    if let Some(limit) = safety {
        plan.check_safety(limit, approved)
            .map_err(RunError::Safety)?;
    }
    plan.check_capacity(contact_limit)
        .map_err(RunError::Capacity)
}

fn with_progress(control: &ApplyControl, progress: Option<&ProgressFn>) -> ApplyControl {
    let mut control = control.clone();
    if let Some(progress) = progress.cloned() {
        control.progress = Some(Arc::new(move |done, total| {
            progress(Phase::Applying, done, total)
        }));
    }
    control
}

async fn apply_plan(
    target: &dyn Target,
    mapping: &FieldMapping,
    plan: &Plan,
    control: &ApplyControl,
    progress: Option<&ProgressFn>,
) -> Result<ApplyReport, RunError> {
    if plan.is_empty() {
        return Ok(ApplyReport::default());
    }
    target
        .ensure_fields(mapping)
        .await
        .map_err(RunError::Target)?;
    let control = with_progress(control, progress);
    target.apply(plan, &control).await.map_err(RunError::Target)
}
