//! Running one sync end to end: read, plan, check, apply. The cursor a source hands back is
//! returned only after its changes were applied, so callers that save it never skip an update.

use std::sync::Arc;

use std::collections::HashSet;

use audience_core::activity::{ActivityEntry, entries_of_plan, entries_of_segment};
use audience_core::plan::CapacityExceeded;
use audience_core::rejections;
use audience_core::{
    ApplyControl, ApplyReport, AudiencePlanner, Checkpoint, ConnectorError, ConsentPolicy, Email,
    FieldMapping, FieldPrecedence, Merged, Mode, Plan, PlanCounts, PlanOptions, ReadScope,
    RejectionPolicy, RememberedRejection, SafetyLimit, SafetyStop, SegmentMode, SegmentPlan,
    Source, SourceCheckpoints, SourceContact, SourceMerger, SourceSegment, Target, TargetIndex,
    cap_checkpoint, plan_segment,
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

/// Whether a run read everything or only what changed since the saved checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RunMode {
    /// Every source record and every member: finds deletions (mirror) and drift.
    #[default]
    Full,
    /// Only the source records changed since the checkpoint, and the members they concern.
    Incremental,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Full => "full",
            RunMode::Incremental => "incremental",
        }
    }
}

/// One AudienceSync run.
pub struct AudienceJob<'a> {
    /// The checkpoint the last applied run of this spec saved: `Some` makes the run incremental
    /// (see [`run_audience_sync`]); `None` reads everything. With several sources it is the JSON
    /// object of each source's checkpoint ([`SourceCheckpoints`]).
    pub since: Option<Checkpoint>,
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
    /// Two-way consent (`consentPolicy.twoWay`): one Shopify source and a Mailchimp target
    /// keep consent in step both ways; every run reads both sides whole (see
    /// [`super::two_way`]).
    pub two_way: bool,
    /// Customer events both ways after the push (`spec.customerEvents`), see
    /// [`super::customer_events`].
    pub customer_events: Option<super::customer_events::CustomerEventsJob>,
    /// SMS subscribers and new customers from Mailchimp, after the email sync (see
    /// [`super::write_back`]).
    pub after_sync: super::write_back::AfterSync,
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
    /// Whether the run read everything or only the changes.
    pub mode: RunMode,
    /// Two-way consent runs: what went to the shop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub two_way: Option<super::two_way::TwoWayReport>,
    /// Customer events after the push (`spec.customerEvents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_events: Option<super::customer_events::CustomerEventsReport>,
    /// One entry per record the run changed, for the activity log (empty on a dry run; the
    /// caller stamps the run and hashes addresses, see `audience_core::activity`).
    #[serde(skip)]
    pub activity: Vec<ActivityEntry>,
    /// SMS and write-back passes (`spec.sms`, `spec.writeBack`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_sync: Option<super::write_back::AfterSyncReport>,
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
///
/// **Incremental runs** (`job.since` set): the source is read from the checkpoint
/// (`ReadScope::ChangedSince`), the target only for the members those changes concern
/// ([`Target::members_by_email`]), and the plan is made over the changed records alone with the
/// same consent, rejection, safety and capacity rules (capacity against the audience's real
/// size). Such a plan never archives: a member the source deleted is not among the changes, so
/// mode mirror finds deletions only in the full reconcile. A run with no changes reads the
/// target's facts and nothing more, and writes nothing.
///
/// Several sources are merged per email (precedence, strictest consent), which needs every
/// source's record of a changed email, and sources cannot be asked by email: so each source is
/// read from its own checkpoint, and when none changed the run ends there; when any changed, or
/// one has no checkpoint, the run reads everything as a full run does.
///
/// The checkpoint returned is the source's (each source's), capped at now
/// ([`cap_checkpoint`]), and only when the plan was applied to the end: a run stopped early
/// returns none, so the next run reads its changes again.
pub async fn run_audience_sync(job: AudienceJob<'_>) -> Result<RunOutcome, RunError> {
    let mut outcome = run_push(&job).await?;
    super::write_back::after_email_sync(&job, &mut outcome).await?;
    super::customer_events::after_push(&job, &mut outcome).await;
    Ok(outcome)
}

/// The push of [`run_audience_sync`], before the SMS, write-back and customer-event passes.
async fn run_push(job: &AudienceJob<'_>) -> Result<RunOutcome, RunError> {
    job.mapping.validate().map_err(RunError::InvalidMapping)?;
    if job.sources.is_empty() {
        return Err(RunError::InvalidMapping("no source".into()));
    }
    if job.two_way {
        return super::two_way::run_two_way(job).await;
    }
    if let Some(since) = job.since.clone()
        && let Some(read) = read_incremental(job, &since).await?
    {
        return settle_plan(job, read).await;
    }
    let read = read_full(job).await?;
    settle_plan(job, read).await
}

/// What the reads of a run produced: the plan before the rejection memory and the checks.
pub(super) struct PlannedRead {
    pub(super) plan: Plan,
    pub(super) checkpoint: Option<Checkpoint>,
    pub(super) source_reads: Vec<(String, u64)>,
    pub(super) mode: RunMode,
    /// Incremental runs: the emails read (the rest of the audience was not looked at).
    pub(super) read_emails: Option<HashSet<Email>>,
}

pub(super) fn plan_options(job: &AudienceJob<'_>) -> PlanOptions {
    PlanOptions {
        mode: job.mode,
        mapping: job.mapping.clone(),
        consent: job.consent,
        create_only: false,
        owner_tag: job.owner_tag.clone(),
        adopt_all: job.adopt_all,
        drift_since: job.drift_since,
    }
}

/// The whole source against the whole target.
async fn read_full(job: &AudienceJob<'_>) -> Result<PlannedRead, RunError> {
    let index = read_target(job.target, &job.mapping, job.progress.as_ref()).await?;
    let mut planner = AudiencePlanner::new(index, plan_options(job));
    let mut source_reads = Vec::new();
    let checkpoint = match job.sources.as_slice() {
        // One source streams straight into the planner: nothing is held but the plan.
        [one] => {
            read_source(one.source, ReadScope::Full, job.progress.as_ref(), |c| {
                planner.observe(c)
            })
            .await?
        }
        many => {
            let scopes = many.iter().map(|_| ReadScope::Full).collect();
            let (merged, checkpoints, reads) = read_merged(
                many,
                scopes,
                SourceCheckpoints::default(),
                job.precedence.clone(),
                job.progress.as_ref(),
            )
            .await?;
            merged.observe_into(&mut planner);
            source_reads = reads;
            checkpoints.to_checkpoint()
        }
    };
    report(job.progress.as_ref(), Phase::Planning, 0, 0);
    Ok(PlannedRead {
        plan: planner.finish(),
        checkpoint,
        source_reads,
        mode: RunMode::Full,
        read_emails: None,
    })
}

/// The changes since `since`, planned against the members they concern; `None` when the run
/// must read everything instead (several sources, see [`run_audience_sync`]).
async fn read_incremental(
    job: &AudienceJob<'_>,
    since: &Checkpoint,
) -> Result<Option<PlannedRead>, RunError> {
    let progress = job.progress.as_ref();
    let (changed, checkpoint, source_reads) = match job.sources.as_slice() {
        [one] => {
            let mut changed = Vec::new();
            let scope = ReadScope::ChangedSince(since.clone());
            let checkpoint =
                read_source(one.source, scope, progress, |c| changed.push(c.clone())).await?;
            // A source that hands out no checkpoint for an empty read stays where it was.
            (
                changed,
                checkpoint.or_else(|| Some(since.clone())),
                Vec::new(),
            )
        }
        many => {
            let saved = SourceCheckpoints::parse(since);
            let mut scopes = Vec::with_capacity(many.len());
            for named in many {
                match saved.get(named.name) {
                    Some(cp) => scopes.push(ReadScope::ChangedSince(cp.clone())),
                    None => return Ok(None),
                }
            }
            let (_nothing, checkpoints, reads) =
                read_merged(many, scopes, saved, job.precedence.clone(), progress).await?;
            if reads.iter().any(|(_, n)| *n > 0) {
                return Ok(None);
            }
            (Vec::new(), checkpoints.to_checkpoint(), reads)
        }
    };
    let plan = plan_changes(job, &changed).await?;
    let read_emails = changed
        .iter()
        .filter_map(|c| Email::parse(&c.email).ok())
        .collect();
    Ok(Some(PlannedRead {
        plan,
        checkpoint,
        source_reads,
        mode: RunMode::Incremental,
        read_emails: Some(read_emails),
    }))
}

/// Plans `changed` against the members with those emails. Never archives (mode upsert: the
/// members the source lacks are not read), and adopts nobody wholesale.
async fn plan_changes(job: &AudienceJob<'_>, changed: &[SourceContact]) -> Result<Plan, RunError> {
    let progress = job.progress.as_ref();
    let info = job.target.info().await.map_err(RunError::Target)?;
    let mut emails: Vec<Email> = changed
        .iter()
        .filter_map(|c| Email::parse(&c.email).ok())
        .collect();
    emails.sort();
    emails.dedup();
    report(progress, Phase::ReadingTarget, 0, emails.len() as u64);
    let members = if emails.is_empty() {
        Vec::new()
    } else {
        job.target
            .members_by_email(&emails)
            .await
            .map_err(RunError::Target)?
    };
    report(
        progress,
        Phase::ReadingTarget,
        members.len() as u64,
        emails.len() as u64,
    );
    let mut index = TargetIndex::with_capacity(&job.mapping, members.len());
    for member in &members {
        index.insert(member);
    }
    let options = PlanOptions {
        mode: Mode::Upsert,
        adopt_all: false,
        ..plan_options(job)
    };
    let mut planner = AudiencePlanner::new(index, options);
    for contact in changed {
        planner.observe(contact);
    }
    report(progress, Phase::Planning, 0, 0);
    let mut plan = planner.finish();
    // The audience's size, not the few members read: the capacity and safety checks weigh the
    // changes against the whole audience.
    plan.counts.target = info.member_count;
    Ok(plan)
}

/// The rejection memory, the checks and the apply, common to full and incremental runs.
pub(super) async fn settle_plan(
    job: &AudienceJob<'_>,
    read: PlannedRead,
) -> Result<RunOutcome, RunError> {
    let PlannedRead {
        mut plan,
        checkpoint,
        source_reads,
        mode,
        read_emails,
    } = read;
    plan.history_import = job.history_import;
    let now = chrono::Utc::now();
    let checkpoint = checkpoint.map(|cp| match job.sources.len() {
        1 => cap_checkpoint(cp, now),
        _ => SourceCheckpoints::parse(&cp)
            .capped(now)
            .to_checkpoint()
            .unwrap_or(cp),
    });
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
            mode,
            two_way: None,
            customer_events: None,
            activity: Vec::new(),
            after_sync: None,
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
    let mut remembered = rejections::remember(
        &job.remembered,
        held,
        &plan,
        &applied.rejected,
        now,
        &policy,
    );
    // An incremental run says nothing about the records it did not read: their refused writes
    // stay remembered as they were (the memory forgets only what a run saw accepted or changed).
    if let Some(read) = &read_emails {
        let kept: Vec<RememberedRejection> = job
            .remembered
            .iter()
            .filter(|r| {
                Email::parse(&r.email).is_ok_and(|e| !read.contains(&e))
                    && !remembered.iter().any(|m| m.email == r.email)
            })
            .cloned()
            .collect();
        remembered.extend(kept);
        remembered.sort_by(|a, b| {
            b.last_tried
                .cmp(&a.last_tried)
                .then_with(|| a.email.cmp(&b.email))
        });
        remembered.truncate(policy.max_remembered);
    }
    // Stopped before the end: the changes after the stop are not applied, so the position the
    // source reached must not be saved.
    let checkpoint = checkpoint.filter(|_| !applied.stopped_early);
    let activity = entries_of_plan(&plan, &applied, job.target.vendor(), now);
    Ok(RunOutcome {
        counts,
        applied: Some(applied),
        plan,
        checkpoint,
        remembered: Some(remembered),
        source_reads,
        mode,
        two_way: None,
        customer_events: None,
        activity,
        after_sync: None,
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
                mode: RunMode::Full,
                two_way: None,
                customer_events: None,
                activity: Vec::new(),
                after_sync: None,
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
    let side = job.target.vendor();
    let mut activity = entries_of_plan(&audience_plan, &audience_applied, side, now);
    activity.extend(entries_of_segment(
        &segment_plan.add,
        &segment_plan.remove,
        &job.target_segment,
        side,
        now,
    ));
    Ok(SegmentOutcome {
        audience: RunOutcome {
            activity,
            counts: audience_counts,
            applied: Some(audience_applied),
            plan: audience_plan,
            checkpoint,
            remembered: Some(remembered),
            source_reads: Vec::new(),
            mode: RunMode::Full,
            two_way: None,
            customer_events: None,
            after_sync: None,
        },
        segment_plan,
        applied: Some(segment_applied),
        segment_created,
    })
}

pub(super) fn report(progress: Option<&ProgressFn>, phase: Phase, done: u64, total: u64) {
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

/// Reads every source at once (their reads do not depend on each other), each in its own scope,
/// and merges their records per email. The checkpoints are `previous` with each source's
/// replaced by the one its read gave.
async fn read_merged(
    sources: &[NamedSource<'_>],
    scopes: Vec<ReadScope>,
    previous: SourceCheckpoints,
    precedence: FieldPrecedence,
    progress: Option<&ProgressFn>,
) -> Result<(Merged, SourceCheckpoints, Vec<(String, u64)>), RunError> {
    let reads = sources.iter().zip(scopes).map(|(named, scope)| async move {
        let mut records = Vec::new();
        let checkpoint =
            read_source(named.source, scope, progress, |c| records.push(c.clone())).await?;
        Ok::<_, RunError>((records, checkpoint))
    });
    let results = futures::future::try_join_all(reads).await?;
    let names: Vec<String> = sources.iter().map(|s| s.name.to_string()).collect();
    let mut merger = SourceMerger::new(names, precedence);
    let mut checkpoints = previous;
    let mut reads = Vec::with_capacity(sources.len());
    for (index, ((records, checkpoint), named)) in results.into_iter().zip(sources).enumerate() {
        reads.push((named.name.to_string(), records.len() as u64));
        for record in records {
            merger.observe(index, record);
        }
        if let Some(checkpoint) = checkpoint {
            checkpoints.set(named.name, checkpoint);
        }
    }
    let in_spec: Vec<&str> = sources.iter().map(|s| s.name).collect();
    checkpoints.retain(&in_spec);
    Ok((merger.finish(), checkpoints, reads))
}

/// Streams a source scope through `observe`; returns the last checkpoint the source gave.
pub(super) async fn read_source(
    source: &dyn Source,
    scope: ReadScope,
    progress: Option<&ProgressFn>,
    mut observe: impl FnMut(&SourceContact),
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

pub(super) fn with_progress(control: &ApplyControl, progress: Option<&ProgressFn>) -> ApplyControl {
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
