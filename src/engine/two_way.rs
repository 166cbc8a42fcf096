//! An AudienceSync run with two-way consent (`consentPolicy.twoWay`): a Shopify source and a
//! Mailchimp target keep email consent in step both ways (`audience_core::two_way` decides).
//!
//! Every two-way run reads both sides whole: a consent change made in Mailchimp concerns a
//! customer the shop did not change, so the shop's change feed alone would miss it. The member
//! read asks for `last_changed` and `timestamp_opt` besides what a one-way run reads; the plan
//! is made with `resubscribe: pending` (a re-opt-in is asked to confirm, never resubscribed
//! directly), the audience plan is applied first, and then the consents Mailchimp's side won
//! are written to the shop. A run stopped early writes nothing to the shop (the next run
//! decides again from what both sides hold then).

use std::collections::{BTreeMap, HashMap, HashSet};

use audience_core::activity::{ConsentTimes, entries_of_consent_writes};

use audience_core::{
    AudiencePlanner, ConsentWrite, ConsentWriteReport, Email, MemberConsent, ReadScope,
    ResubscribePolicy, TargetIndex, TwoWayCounts, TwoWayOutcome, reconcile,
};
use futures::StreamExt;
use serde::Serialize;

use super::run::{
    AudienceJob, Phase, PlannedRead, RunError, RunMode, RunOutcome, plan_options, read_source,
    report, settle_plan, with_progress,
};

/// What the consent half of a two-way run decided and wrote to the shop.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoWayReport {
    pub counts: TwoWayCounts,
    /// The consents to write to the shop (on a dry run: that would be written).
    pub planned: Vec<ConsentWrite>,
    /// `None` on a dry run, or when the audience apply stopped early.
    pub applied: Option<ConsentWriteReport>,
}

/// Runs a two-way AudienceSync (see the module docs).
pub(super) async fn run_two_way(job: &AudienceJob<'_>) -> Result<RunOutcome, RunError> {
    let [one] = job.sources.as_slice() else {
        return Err(RunError::InvalidMapping(
            "consentPolicy.twoWay needs exactly one source (a Shopify source)".into(),
        ));
    };
    let Some(writer) = one.source.consent_writer() else {
        return Err(RunError::InvalidMapping(format!(
            "consentPolicy.twoWay: the {} source takes no consent writes (two-way consent needs a Shopify source)",
            one.source.vendor()
        )));
    };
    let progress = job.progress.as_ref();
    let info = job.target.info().await.map_err(RunError::Target)?;
    let mut index = TargetIndex::with_capacity(&job.mapping, info.member_count as usize);
    let mut consents: HashMap<Email, MemberConsent> = HashMap::new();
    // Members carrying the sync's owner tag: the sync has handled them before.
    let mut handled: HashSet<Email> = HashSet::new();
    let owner = job.owner_tag.as_deref().map(str::to_lowercase);
    let mut pages = job.target.members_with_consent();
    while let Some(page) = pages.next().await {
        for (member, consent) in page.map_err(RunError::Target)? {
            index.insert(&member);
            if owner
                .as_deref()
                .is_some_and(|o| member.tags.iter().any(|t| t.trim().to_lowercase() == o))
            {
                handled.insert(member.email.clone());
            }
            consents.insert(member.email, consent);
        }
        report(
            progress,
            Phase::ReadingTarget,
            consents.len() as u64,
            info.member_count,
        );
    }
    drop(pages);
    let mut options = plan_options(job);
    options.consent.resubscribe = ResubscribePolicy::Pending;
    let mut planner = AudiencePlanner::new(index, options);
    let mut counts = TwoWayCounts::default();
    let mut planned = Vec::new();
    // Both sides' consent times of the customers whose consent crosses over, for the log.
    let mut times: BTreeMap<Email, ConsentTimes> = BTreeMap::new();
    // The first sync's rule ("already subscribed in Mailchimp: keep, and mark subscribed in
    // Shopify") applies on the sync's first run, and only to members the sync has not handled
    // before (no owner tag): `sync -f` keeps no status, so every run of it looks like a first
    // run, and the owner tag the first sync leaves on every member it saw says otherwise.
    let first_sync = |email: &Email| job.history_import && !handled.contains(email);
    let checkpoint = read_source(one.source, ReadScope::Full, progress, |contact| {
        let Ok(email) = Email::parse(&contact.email) else {
            // The planner reports the invalid address.
            planner.observe(contact);
            return;
        };
        let decided = reconcile(
            contact.clone(),
            &email,
            consents.get(&email),
            first_sync(&email),
        );
        counts.add(decided.outcome);
        if !matches!(decided.outcome, TwoWayOutcome::New | TwoWayOutcome::InStep) {
            times.insert(
                email.clone(),
                ConsentTimes {
                    shop: contact.consented_at,
                    target: consents.get(&email).and_then(MemberConsent::consent_time),
                },
            );
        }
        planned.extend(decided.source_write);
        match &decided.contact {
            Some(c) => planner.observe(c),
            None => planner.leave_alone(contact),
        }
    })
    .await?;
    report(progress, Phase::Planning, 0, 0);
    let read = PlannedRead {
        plan: planner.finish(),
        checkpoint,
        source_reads: Vec::new(),
        mode: RunMode::Full,
        read_emails: None,
    };
    let mut outcome = settle_plan(job, read).await?;
    let stopped = outcome.applied.as_ref().is_some_and(|a| a.stopped_early);
    let applied = if job.dry_run || stopped {
        None
    } else if planned.is_empty() {
        Some(ConsentWriteReport::default())
    } else {
        let control = with_progress(&job.control, progress);
        let written = writer
            .write_consent(&planned, &control)
            .await
            .map_err(RunError::Source)?;
        if written.stopped_early {
            outcome.checkpoint = None;
        }
        Some(written)
    };
    for entry in &mut outcome.activity {
        if let Some(t) = Email::parse(&entry.email).ok().and_then(|e| times.get(&e)) {
            entry.shop_consent_at = t.shop;
            entry.target_consent_at = t.target;
        }
    }
    if let Some(written) = &applied {
        let mut entries = entries_of_consent_writes(
            &planned,
            &written.rejected,
            &times,
            one.source.vendor(),
            chrono::Utc::now(),
        );
        for entry in &mut entries {
            entry.unconfirmed = written.stopped_early;
        }
        outcome.activity.extend(entries);
    }
    outcome.two_way = Some(TwoWayReport {
        counts,
        planned,
        applied,
    });
    Ok(outcome)
}
