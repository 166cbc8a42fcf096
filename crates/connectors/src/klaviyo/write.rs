//! Writes: the audience plan and segment lists, with the fewest calls Klaviyo allows.
//!
//! # An audience plan (C creates, U updates, A archives)
//! 1. **Consent look-ups** (reads): a new profile the plan creates subscribed may already exist in
//!    the account, unsubscribed or suppressed; Klaviyo's subscribe job would *clear* that
//!    suppression. So every create with a consent decision (subscribed, or unsubscribed at the
//!    source) is looked up first, `GET /api/profiles?filter=any(email,[…])`, 100 to a call.
//! 2. **Bulk import jobs**: new and changed profiles (a tag the plan adds, the sync's owner tag,
//!    is a custom property of that name set to `true`, so an adoption is one more profile in a
//!    job, no call of its own), `ceil` by 10,000 profiles and 5 MB a job.
//!    Creates not planned subscribed carry `relationships.lists` naming the list, so joining it
//!    costs no call of its own (`POST /api/lists/{id}/relationships/profiles` would take profile
//!    ids, i.e. more calls); creates planned subscribed are imported without it and join through
//!    their subscribe job (see below). Each job is polled with backoff until complete, and its
//!    import errors become rejected records with Klaviyo's reason. A profile over 100 KB is
//!    refused before sending. The jobs go out while the look-ups of step 1 are still under way:
//!    they need nothing from them, and each operation has its own rate-limit windows.
//! 3. **Subscribe jobs** (`profile-subscription-bulk-create-jobs`, 1,000 a job, scoped to the
//!    list): creates planned subscribed whose account profile is not unsubscribed or suppressed,
//!    and list members the plan moves to subscribed (the core never plans that for an
//!    unsubscribed or cleaned member). A profile the account has unsubscribed, bounced,
//!    spam-reported or suppressed gets no consent: it joins the list through
//!    `relationships/profiles` (its id known from the look-up) and is reported as a rejection
//!    with the reason. Never subscribed at the source: added to the list, no consent. Pending at
//!    the source: no consent either ([U] Klaviyo has no pending state; the person's own
//!    confirmation is what a pending opt-in waits for).
//! 4. **Unsubscribe jobs** (`profile-subscription-bulk-delete-jobs`, 100 a job, scoped to the
//!    list): members the plan unsubscribes (an opt-out at the source), and new profiles the
//!    source has opted out that the account has not unsubscribed or suppressed already, so the
//!    opt-out is on record and the next run finds nothing to do (they joined the list in step 2,
//!    so the job never unsubscribes anyone globally by accident: Klaviyo unsubscribes a profile
//!    that is *not* in the given list from everything).
//! 5. **Archives** (mirror): removed from the list, `DELETE …/relationships/profiles` in 1,000s
//!    (profiles are never deleted). Ids come from the member read, else a look-up by email.
//!
//! So C new subscribed profiles into an empty account take `ceil(C/10,000)` import jobs +
//! `ceil(C/1,000)` subscribe jobs write calls, plus `ceil(C/100)` look-ups and the polls (and one
//! list call per 1,000 of them the account had suppressed).
//!
//! # Joining the list, and its flows
//! The creates given consent join the list through their subscribe job, not through the import
//! job, so whether the list's "added to list" flows (a welcome series) start is decided in one
//! place: the subscription's `historical_import`. With it (the sync's first push, and every run
//! unless the sync asks for list flows: Klaviyo's own Lightspeed integration starts no welcome
//! series for the profiles it creates, so a returning customer is not welcomed as new), consent
//! is given with the source's consent time (`consented_at`, in the past), and neither a double
//! opt-in mail nor a flow goes out. Without it, the subscription is live and the list's flows
//! start as for a sign-up.
//!
//! Nothing to do, no call. A stop request is honoured between steps and between calls.

use std::collections::{HashMap, HashSet};

use audience_core::{
    ApplyControl, ApplyReport, ConnectorError, Email, MemberStatus, MemberWrite, Plan,
    RecordRejection, SegmentPlan,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use reqwest::Method;

use super::Inner;
use super::client::Call;
use super::jobs::{
    Encoded, MAX_IMPORT_BYTES, MAX_IMPORT_PROFILES, MAX_PROFILE_BYTES, split_batches,
};
use super::wire::{self, Standing};

/// Profiles per list add/remove call (the API's maximum).
pub const LIST_BATCH: usize = 1000;
/// Profiles per subscribe job (the API's maximum).
pub const SUBSCRIBE_BATCH: usize = 1000;
/// Profiles per unsubscribe job (the API's maximum).
pub const UNSUBSCRIBE_BATCH: usize = 100;
/// Emails per look-up call (one page of the largest size).
pub const LOOKUP_BATCH: usize = 100;

pub(crate) const SUBSCRIBE: &str = "POST /api/profile-subscription-bulk-create-jobs";
pub(crate) const UNSUBSCRIBE: &str = "POST /api/profile-subscription-bulk-delete-jobs";
pub(crate) const ADD_TO_LIST: &str = "POST /api/lists/{id}/relationships/profiles";
pub(crate) const REMOVE_FROM_LIST: &str = "DELETE /api/lists/{id}/relationships/profiles";

fn rejection(email: &str, reason: impl Into<String>) -> RecordRejection {
    RecordRejection {
        email: email.to_string(),
        reason: reason.into(),
    }
}

/// What the import jobs of an apply did.
#[derive(Default)]
struct ImportOutcome {
    jobs: usize,
    finished: usize,
    write_calls: u64,
    done: u64,
    rejected: Vec<RecordRejection>,
    /// Emails refused (too large, or an import error): no consent job for them.
    refused: HashSet<String>,
}

/// What the plan's creates need for consent, after the look-ups.
#[derive(Default)]
struct ConsentPlan<'a> {
    subscribe: Vec<&'a str>,
    unsubscribe: Vec<&'a str>,
    /// Creates planned subscribed that the account has unsubscribed or suppressed: imported
    /// without the list (as every planned subscriber is), they join it with no consent.
    join_list: Vec<&'a str>,
}

impl Inner {
    pub(crate) async fn apply(
        &self,
        plan: &Plan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        let mut report = ApplyReport::default();
        if plan.is_empty() {
            return Ok(report);
        }
        let historical = plan.history_import || self.historical_import;
        // The fallback consent time of a history import: when this apply started.
        let started = Utc::now() - chrono::Duration::seconds(1);
        // Field changes and tags (the owner tag, a property) travel in the import jobs.
        let field_updates: Vec<&MemberWrite> = plan
            .updates
            .iter()
            .filter(|w| !w.fields.is_empty() || !w.tags.is_empty())
            .collect();
        let subscribed_updates: Vec<&MemberWrite> = plan
            .updates
            .iter()
            .filter(|w| w.status == Some(MemberStatus::Subscribed))
            .collect();
        let unsubscribed_updates: Vec<&MemberWrite> = plan
            .updates
            .iter()
            .filter(|w| w.status == Some(MemberStatus::Unsubscribed))
            .collect();
        if plan.creates.is_empty()
            && field_updates.is_empty()
            && subscribed_updates.is_empty()
            && unsubscribed_updates.is_empty()
            && plan.archives.is_empty()
        {
            // Only statuses Klaviyo has no word for (pending): nothing to send.
            return Ok(report);
        }
        let total = (plan.creates.len() + plan.updates.len() + plan.archives.len()) as u64;
        control.report(0, total);

        let (list_id, created_list) = self.list_for_write().await?;
        if created_list {
            report.write_calls += 1;
        }

        // 1. Consent of new profiles in the account, and 2. the import jobs, at once: the creates
        // planned subscribed are imported without the list and join it through their subscribe
        // job (see "Joining the list"), so which job a profile goes in never waits for a
        // look-up. The look-ups are paced by their own windows (`GET /api/profiles`, 75/s and
        // 750/m) and the jobs by theirs (10/s and 150/m); one after the other, a large push
        // would wait out every look-up before its first job.
        let mut consent_report = ApplyReport::default();
        let via_job: HashSet<&str> = plan
            .creates
            .iter()
            .filter(|w| w.status == Some(MemberStatus::Subscribed))
            .map(|w| w.email.as_str())
            .collect();
        let (consent, imports) = futures::future::try_join(
            self.creates_consent(&plan.creates, &list_id, control, &mut consent_report),
            self.import_jobs(
                &plan.creates,
                &field_updates,
                &via_job,
                &list_id,
                control,
                total,
            ),
        )
        .await?;
        report.rejected.extend(consent_report.rejected);
        report.rejected.extend(imports.rejected);
        report.write_calls += imports.write_calls;
        let mut done = imports.done;
        let refused = imports.refused;
        let Some(consent) = consent else {
            report.stopped_early = true;
            return Ok(report);
        };
        if imports.finished < imports.jobs {
            report.stopped_early = true;
            return Ok(report);
        }
        report.created = plan
            .creates
            .iter()
            .filter(|w| !refused.contains(w.email.as_str()))
            .count() as u64;
        // Creates refused consent (the account unsubscribed or suppressed them) join the list
        // without it; the look-ups cached their ids, so this is the add call alone.
        let join: Vec<&str> = consent
            .join_list
            .iter()
            .copied()
            .filter(|e| !refused.contains(*e))
            .collect();
        if !join.is_empty()
            && self
                .list_membership(&list_id, &join, true, control, &mut report)
                .await?
                .is_none()
        {
            report.stopped_early = true;
            return Ok(report);
        }
        report.updated = plan
            .updates
            .iter()
            .filter(|w| !refused.contains(w.email.as_str()) && !plan.is_adoption(w))
            .filter(|w| {
                !w.fields.is_empty()
                    || !w.tags.is_empty()
                    || matches!(
                        w.status,
                        Some(MemberStatus::Subscribed | MemberStatus::Unsubscribed)
                    )
            })
            .count() as u64;
        report.adopted = plan
            .updates
            .iter()
            .filter(|w| !refused.contains(w.email.as_str()) && plan.is_adoption(w))
            .count() as u64;

        // 3. Subscribe jobs.
        // The plan's consent times (the source's); a write without one gets the apply's start.
        let planned: HashMap<&str, DateTime<Utc>> = plan
            .creates
            .iter()
            .chain(plan.updates.iter())
            .filter_map(|w| w.consented_at.map(|t| (w.email.as_str(), t)))
            .collect();
        let consented_at = |email: &str| -> Option<String> {
            historical.then(|| {
                let time = planned
                    .get(email)
                    .copied()
                    .filter(|t| *t < started)
                    .unwrap_or(started);
                rfc3339(time)
            })
        };
        let to_subscribe: Vec<(&str, Option<String>)> = consent
            .subscribe
            .iter()
            .copied()
            .chain(subscribed_updates.iter().map(|w| w.email.as_str()))
            .filter(|e| !refused.contains(*e))
            .map(|e| (e, consented_at(e)))
            .collect();
        if !self
            .consent_jobs(
                true,
                &to_subscribe,
                &list_id,
                historical,
                control,
                &mut report,
            )
            .await?
        {
            report.stopped_early = true;
            return Ok(report);
        }

        // 4. Unsubscribe jobs, scoped to the list (every profile here is in it).
        let to_unsubscribe: Vec<(&str, Option<String>)> = consent
            .unsubscribe
            .iter()
            .copied()
            .chain(unsubscribed_updates.iter().map(|w| w.email.as_str()))
            .filter(|e| !refused.contains(*e))
            .map(|e| (e, None))
            .collect();
        if !self
            .consent_jobs(
                false,
                &to_unsubscribe,
                &list_id,
                false,
                control,
                &mut report,
            )
            .await?
        {
            report.stopped_early = true;
            return Ok(report);
        }
        report.unsubscribed = to_unsubscribe.len() as u64;
        done += plan.updates.len().saturating_sub(field_updates.len()) as u64;
        control.report(done.min(total), total);

        // 5. Archives: out of the list, never out of the account.
        if !plan.archives.is_empty() {
            let emails: Vec<&str> = plan.archives.iter().map(Email::as_str).collect();
            match self
                .list_membership(&list_id, &emails, false, control, &mut report)
                .await?
            {
                Some(removed) => report.archived = removed,
                None => report.stopped_early = true,
            }
            done += emails.len() as u64;
            control.report(done.min(total), total);
        }
        Ok(report)
    }

    /// The import jobs of the creates and the field updates (`via_job`: creates that join the
    /// list through their subscribe job instead), polled to completion, `write_concurrency` at
    /// once. A profile over 100 KB is refused before sending.
    async fn import_jobs(
        &self,
        creates: &[MemberWrite],
        field_updates: &[&MemberWrite],
        via_job: &HashSet<&str>,
        list_id: &str,
        control: &ApplyControl,
        total: u64,
    ) -> Result<ImportOutcome, ConnectorError> {
        let mut outcome = ImportOutcome::default();
        let mut with_list: Vec<Encoded<'_>> = Vec::new();
        let mut without_list: Vec<Encoded<'_>> = Vec::new();
        for (write, new) in creates
            .iter()
            .map(|w| (w, true))
            .chain(field_updates.iter().map(|w| (*w, false)))
        {
            let json = serde_json::to_vec(&wire::import_profile(write, new))
                .expect("a JSON value always encodes");
            if json.len() > MAX_PROFILE_BYTES {
                outcome.refused.insert(write.email.as_str().to_string());
                outcome.rejected.push(rejection(
                    write.email.as_str(),
                    format!(
                        "profile of {} bytes is over Klaviyo's limit of 100 KB a profile",
                        json.len()
                    ),
                ));
                continue;
            }
            let encoded = Encoded {
                email: write.email.as_str(),
                json,
            };
            if new && via_job.contains(write.email.as_str()) {
                without_list.push(encoded);
            } else {
                with_list.push(encoded);
            }
        }
        let mut jobs: Vec<(&[Encoded<'_>], Option<&str>)> = Vec::new();
        for (group, list) in [(&with_list, Some(list_id)), (&without_list, None)] {
            let sizes: Vec<usize> = group.iter().map(|e| e.json.len()).collect();
            let overhead = wire::import_job_overhead(list);
            for range in split_batches(&sizes, MAX_IMPORT_PROFILES, MAX_IMPORT_BYTES, overhead) {
                jobs.push((&group[range], list));
            }
        }
        outcome.jobs = jobs.len();
        let mut outcomes = stream::iter(jobs.into_iter().take_while(|_| !control.stop_requested()))
            .map(|(profiles, list)| async move {
                (profiles.len(), self.import_job(profiles, list).await)
            })
            .buffer_unordered(self.write_concurrency)
            .boxed();
        while let Some((size, result)) = outcomes.next().await {
            outcome.write_calls += 1;
            let rejected = result?;
            outcome.finished += 1;
            outcome
                .refused
                .extend(rejected.iter().map(|r| r.email.clone()));
            outcome.rejected.extend(rejected);
            outcome.done += size as u64;
            control.report(outcome.done.min(total), total);
        }
        Ok(outcome)
    }

    /// Looks up the account profiles of the creates that carry a consent decision and sorts them
    /// into subscribe, unsubscribe and neither (with a rejection naming the suppression). `None`
    /// when a stop cut it short.
    async fn creates_consent<'a>(
        &self,
        creates: &'a [MemberWrite],
        list_id: &str,
        control: &ApplyControl,
        report: &mut ApplyReport,
    ) -> Result<Option<ConsentPlan<'a>>, ConnectorError> {
        let deciding: Vec<&MemberWrite> = creates
            .iter()
            .filter(|w| {
                matches!(
                    w.status,
                    Some(MemberStatus::Subscribed | MemberStatus::Unsubscribed)
                )
            })
            .collect();
        let emails: Vec<&str> = deciding.iter().map(|w| w.email.as_str()).collect();
        let batches: Vec<&[&str]> = emails.chunks(LOOKUP_BATCH).collect();
        let batch_count = batches.len();
        let mut found: HashMap<String, (String, Standing)> = HashMap::new();
        let mut looked = 0usize;
        {
            let mut outcomes = stream::iter(
                batches
                    .into_iter()
                    .take_while(|_| !control.stop_requested()),
            )
            .map(|batch| self.account_profiles(batch, list_id))
            .buffer_unordered(self.write_concurrency)
            .boxed();
            while let Some(outcome) = outcomes.next().await {
                found.extend(outcome?);
                looked += 1;
            }
        }
        if looked < batch_count {
            return Ok(None);
        }
        let mut consent = ConsentPlan::default();
        for write in deciding {
            let email = write.email.as_str();
            let standing = found.get(email).map(|(_, s)| s);
            match write.status {
                // Subscribed in the account already: the subscribe job (no suppression to lift)
                // is how this new list member joins, like every other.
                Some(MemberStatus::Subscribed) => match standing {
                    Some(s) if s.blocks_subscribe().is_some() => {
                        let why = s.blocks_subscribe().unwrap_or_default();
                        report.rejected.push(rejection(
                            email,
                            format!("added to the list without consent: {why}"),
                        ));
                        consent.join_list.push(email);
                    }
                    _ => consent.subscribe.push(email),
                },
                // An opt-out at the source is recorded in Klaviyo too, for a profile new to the
                // account as for one subscribed already; one unsubscribed or suppressed already
                // needs nothing. Without the job a new profile would read back as never
                // subscribed and the next run would plan the unsubscribe again.
                Some(MemberStatus::Unsubscribed)
                    if matches!(
                        standing,
                        None | Some(Standing::Subscribed | Standing::NeverSubscribed)
                    ) =>
                {
                    consent.unsubscribe.push(email);
                }
                _ => {}
            }
        }
        Ok(Some(consent))
    }

    /// Subscribe (or, with `subscribe` false, unsubscribe) jobs for `emails`, scoped to the list.
    /// False when a stop cut it short.
    async fn consent_jobs(
        &self,
        subscribe: bool,
        emails: &[(&str, Option<String>)],
        list_id: &str,
        historical: bool,
        control: &ApplyControl,
        report: &mut ApplyReport,
    ) -> Result<bool, ConnectorError> {
        let size = if subscribe {
            SUBSCRIBE_BATCH
        } else {
            UNSUBSCRIBE_BATCH
        };
        let (endpoint, path) = if subscribe {
            (SUBSCRIBE, "/api/profile-subscription-bulk-create-jobs")
        } else {
            (UNSUBSCRIBE, "/api/profile-subscription-bulk-delete-jobs")
        };
        let not_found = Self::list_not_found(list_id);
        let batches: Vec<&[(&str, Option<String>)]> = emails.chunks(size).collect();
        let batch_count = batches.len();
        let mut sent = 0usize;
        let not_found = &not_found;
        let mut outcomes = stream::iter(
            batches
                .into_iter()
                .take_while(|_| !control.stop_requested()),
        )
        .map(|batch| async move {
            let body = wire::consent_job(subscribe, batch, list_id, historical);
            let call = Call::new(Method::POST, endpoint, path.to_string())
                .json(&body)?
                .not_found(not_found);
            self.client.send(&call).await.map(drop)
        })
        .buffer_unordered(self.write_concurrency)
        .boxed();
        while let Some(outcome) = outcomes.next().await {
            report.write_calls += 1;
            outcome?;
            sent += 1;
        }
        Ok(sent == batch_count)
    }

    /// Adds (`add`) or removes the profiles with these emails to or from `list_id`, 1,000 to a
    /// call, finding ids in the cache or by look-up (in the account for an add, in the list for a
    /// removal). Returns how many were sent, or `None` when a stop cut it short. Adds of emails
    /// without a profile become rejections; removals of profiles not in the list are nothing to do.
    async fn list_membership(
        &self,
        list_id: &str,
        emails: &[&str],
        add: bool,
        control: &ApplyControl,
        report: &mut ApplyReport,
    ) -> Result<Option<u64>, ConnectorError> {
        let mut ids: Vec<(String, String)> = Vec::with_capacity(emails.len());
        let mut missing: Vec<&str> = Vec::new();
        for email in emails {
            match self.cached_id(email) {
                Some(id) => ids.push((email.to_string(), id)),
                None => missing.push(email),
            }
        }
        for batch in missing.chunks(LOOKUP_BATCH) {
            if control.stop_requested() {
                return Ok(None);
            }
            let found: HashMap<String, String> = if add {
                self.account_profiles(batch, list_id)
                    .await?
                    .into_iter()
                    .map(|(email, (id, _))| (email, id))
                    .collect()
            } else {
                self.list_member_ids(list_id, batch).await?
            };
            for email in batch {
                match found.get(*email) {
                    Some(id) => ids.push((email.to_string(), id.clone())),
                    None if add => report.rejected.push(rejection(
                        email,
                        "no Klaviyo profile has this email (the audience sync creates it first)",
                    )),
                    None => {}
                }
            }
        }
        let (endpoint, method) = if add {
            (ADD_TO_LIST, Method::POST)
        } else {
            (REMOVE_FROM_LIST, Method::DELETE)
        };
        let not_found = Self::list_not_found(list_id);
        let not_found = &not_found;
        let batches: Vec<&[(String, String)]> = ids.chunks(LIST_BATCH).collect();
        let batch_count = batches.len();
        let mut sent = 0usize;
        let mut count = 0u64;
        let mut outcomes = stream::iter(
            batches
                .into_iter()
                .take_while(|_| !control.stop_requested()),
        )
        .map(|batch| {
            let method = method.clone();
            async move {
                let refs: Vec<&str> = batch.iter().map(|(_, id)| id.as_str()).collect();
                let call = Call::new(
                    method,
                    endpoint,
                    format!("/api/lists/{list_id}/relationships/profiles"),
                )
                .json(&wire::relationship_body(&refs))?
                .not_found(not_found);
                self.client.send(&call).await.map(|_| batch.len() as u64)
            }
        })
        .buffer_unordered(self.write_concurrency)
        .boxed();
        while let Some(outcome) = outcomes.next().await {
            report.write_calls += 1;
            count += outcome?;
            sent += 1;
        }
        Ok((sent == batch_count).then_some(count))
    }

    /// Applies a segment plan to the list called `name` (created when missing): additions and
    /// removals 1,000 to a call. An empty plan on an existing list makes no call.
    pub(crate) async fn apply_segment(
        &self,
        name: &str,
        plan: &SegmentPlan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        let mut report = ApplyReport::default();
        for attempt in 0..2 {
            let (id, created) = self
                .segment_list(name, true)
                .await?
                .expect("created when missing");
            if created {
                report.write_calls += 1;
            }
            if plan.is_empty() {
                return Ok(report);
            }
            match self.segment_changes(&id, plan, control, &mut report).await {
                Err(e)
                    if e.kind == audience_core::ErrorKind::NotFound && attempt == 0 && !created =>
                {
                    // A cached id of a list deleted since: find (or create) it again.
                    self.forget_segment_list(name);
                    report = ApplyReport {
                        write_calls: report.write_calls,
                        ..ApplyReport::default()
                    };
                }
                other => return other.map(|()| report),
            }
        }
        Ok(report)
    }

    async fn segment_changes(
        &self,
        list_id: &str,
        plan: &SegmentPlan,
        control: &ApplyControl,
        report: &mut ApplyReport,
    ) -> Result<(), ConnectorError> {
        let total = (plan.add.len() + plan.remove.len()) as u64;
        control.report(0, total);
        let add: Vec<&str> = plan.add.iter().map(Email::as_str).collect();
        if !add.is_empty() {
            match self
                .list_membership(list_id, &add, true, control, report)
                .await?
            {
                Some(added) => report.segment_added = added,
                None => {
                    report.stopped_early = true;
                    return Ok(());
                }
            }
        }
        control.report(add.len() as u64, total);
        let remove: Vec<&str> = plan.remove.iter().map(Email::as_str).collect();
        if !remove.is_empty() {
            match self
                .list_membership(list_id, &remove, false, control, report)
                .await?
            {
                Some(removed) => report.segment_removed = removed,
                None => report.stopped_early = true,
            }
        }
        control.report(total, total);
        Ok(())
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}
