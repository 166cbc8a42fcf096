//! Writes: the audience plan (batch subscribe, tags, archives), static-segment membership and
//! merge-field definitions, each with the fewest calls the API allows.
//!
//! Calls per plan (C creates, U updates, A archives):
//! - creates and updates together: `ceil((C + U) / 500)` batch-subscribe calls, up to
//!   `write_concurrency` (10) in flight; the tags the plan adds (the sync's owner tag, mapped
//!   source tags) travel in the same entries, new and existing members alike, so an adoption
//!   (only the owner tag added) is one batch entry and no call of its own;
//! - archives: `A` `DELETE` calls (the API has no bulk archive), up to 10 in flight;
//! - nothing to do: no call at all.
//!
//! Per-member refusals inside a successful answer ("looks fake or invalid", "Member In Compliance
//! State", "Forgotten Email Not Subscribed", …) become [`RecordRejection`]s: they are final and
//! never retried. Rate limits, 5xx and timeouts are retried by [`crate::http::send`] under the
//! key budget shared by every sync using the same key.

use std::collections::HashSet;

use audience_core::mapping::FieldKind;
use audience_core::{
    ApplyControl, ApplyReport, ConnectorError, Email, ErrorKind, FieldMapping, MemberStatus,
    MemberWrite, Plan, RecordRejection, SegmentPlan,
};
use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};

use super::Inner;
use super::client::{Call, VENDOR, truncate};
use super::wire::{
    self, BatchMember, BatchResult, BatchSubscribe, MergeFieldsPage, MergeValue, NewMergeField,
    NewStaticSegment, SegmentBatch, SegmentBatchResult, WireSegment,
};
use crate::http::invalid_response;

/// Members per batch-subscribe call, and emails per segment add/remove list (the API's maximum).
pub(crate) const BATCH_SIZE: usize = 500;

const BATCH: &str = "POST /lists/{list_id}";
const ARCHIVE: &str = "DELETE /lists/{list_id}/members/{subscriber_hash}";
const CREATE_SEGMENT: &str = "POST /lists/{list_id}/segments";
const SEGMENT_BATCH: &str = "POST /lists/{list_id}/segments/{segment_id}";
const MERGE_FIELDS: &str = "GET /lists/{list_id}/merge-fields";
const CREATE_MERGE_FIELD: &str = "POST /lists/{list_id}/merge-fields";

/// What one batch-subscribe call did.
struct BatchOutcome {
    members: u64,
    created: u64,
    updated: u64,
    adopted: u64,
    unsubscribed: u64,
    rejected: Vec<RecordRejection>,
}

/// What one per-member call did.
pub(super) enum MemberOutcome {
    Done,
    /// Nothing to do (e.g. archiving a member that is not in the audience).
    Absent,
    Rejected(RecordRejection),
}

fn rejection(email: &str, reason: impl Into<String>) -> RecordRejection {
    RecordRejection {
        email: email.to_string(),
        reason: reason.into(),
    }
}

/// A member of a batch-subscribe call. New members get their status (the plan always sets one;
/// `transactional`, which sends no marketing, stands in if it did not), every non-blank field and
/// their tags. Existing members get a status only when the plan changes it, only the fields the
/// plan changes, and the tags the plan adds: since January 2022 a batch without `sync_tags` adds
/// an entry's tags to an existing member and keeps its others (Mailchimp release note "Added
/// ability to sync tags to existing members"), so tags cost no call of their own. `sync_tags` is
/// never sent: it would remove every tag the plan does not name.
fn batch_member(write: &MemberWrite, new: bool) -> BatchMember<'_> {
    let status = match write.status {
        Some(status) => wire::status_word(status),
        None if new => Some(MemberStatus::Transactional.as_str()),
        None => None,
    };
    let merge_fields = write
        .fields
        .iter()
        .filter(|(_, value)| !(new && value.is_blank()))
        .map(|(tag, value)| (tag.as_str(), MergeValue::of(value)))
        .collect();
    BatchMember {
        email_address: write.email.as_str(),
        status,
        merge_fields,
        tags: write.tags.iter().map(String::as_str).collect(),
    }
}

impl Inner {
    /// Applies an audience plan: batches first, then tags of existing members, then archives.
    /// A stop request is honoured between calls; calls already in flight finish.
    pub(crate) async fn apply(
        &self,
        plan: &Plan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        let mut report = ApplyReport::default();
        let total = (plan.creates.len() + plan.updates.len() + plan.archives.len()) as u64;
        if total == 0 {
            return Ok(report);
        }
        let mut done = 0u64;
        control.report(done, total);

        // 1. Creates and updates, 500 to a call, in one stream of batches.
        let writes: Vec<(&MemberWrite, bool)> = plan
            .creates
            .iter()
            .map(|w| (w, true))
            .chain(plan.updates.iter().map(|w| (w, false)))
            .collect();
        let batches: Vec<&[(&MemberWrite, bool)]> = writes.chunks(BATCH_SIZE).collect();
        let batch_count = batches.len();
        let mut sent = 0usize;
        {
            let mut outcomes = stream::iter(
                batches
                    .into_iter()
                    .take_while(|_| !control.stop_requested()),
            )
            .map(|chunk| self.send_batch(plan, chunk))
            .buffer_unordered(self.write_concurrency)
            .boxed();
            while let Some(outcome) = outcomes.next().await {
                report.write_calls += 1;
                let outcome = outcome?;
                sent += 1;
                report.created += outcome.created;
                report.updated += outcome.updated;
                report.adopted += outcome.adopted;
                report.unsubscribed += outcome.unsubscribed;
                report.rejected.extend(outcome.rejected);
                done += outcome.members;
                control.report(done, total);
            }
        }
        if sent < batch_count {
            report.stopped_early = true;
            return Ok(report);
        }

        // 2. Archives: one DELETE each (the API has no bulk archive), up to 10 in flight.
        let mut archived = 0usize;
        {
            let mut outcomes = stream::iter(
                plan.archives
                    .iter()
                    .take_while(|_| !control.stop_requested()),
            )
            .map(|email| self.archive(email))
            .buffer_unordered(self.write_concurrency)
            .boxed();
            while let Some(outcome) = outcomes.next().await {
                report.write_calls += 1;
                archived += 1;
                match outcome? {
                    MemberOutcome::Done => report.archived += 1,
                    MemberOutcome::Absent => {}
                    MemberOutcome::Rejected(r) => report.rejected.push(r),
                }
                done += 1;
                control.report(done, total);
            }
        }
        if archived < plan.archives.len() {
            report.stopped_early = true;
        }
        Ok(report)
    }

    async fn send_batch(
        &self,
        plan: &Plan,
        chunk: &[(&MemberWrite, bool)],
    ) -> Result<BatchOutcome, ConnectorError> {
        let body = BatchSubscribe {
            members: chunk.iter().map(|(w, new)| batch_member(w, *new)).collect(),
            update_existing: true,
        };
        let not_found = self.list_not_found();
        // `fields=` trims the answer to the counts and errors: without it, Mailchimp echoes every
        // created and updated member in full (about 1 KB each). A server that ignores the
        // parameter sends the full answer, which reads the same.
        let call = Call::new(Method::POST, BATCH, self.list_path())
            .query("fields", "total_created,total_updated,error_count,errors")
            .json(&body)?
            .not_found(&not_found);
        drop(body);
        let result: BatchResult = self.client.json(&call).await?;
        let rejected: Vec<RecordRejection> = result
            .errors
            .iter()
            .map(|e| {
                let email = e
                    .email_address
                    .as_deref()
                    .map(|a| a.trim().to_lowercase())
                    .unwrap_or_default();
                rejection(&email, e.reason())
            })
            .collect();
        let refused: HashSet<&str> = rejected.iter().map(|r| r.email.as_str()).collect();
        let unsubscribed = chunk
            .iter()
            .filter(|(w, new)| {
                !new && w.status == Some(MemberStatus::Unsubscribed)
                    && !refused.contains(w.email.as_str())
            })
            .count() as u64;
        // Mailchimp counts an entry that only adds the owner tag as updated; the plan calls it
        // an adoption, and so does the report.
        let adopted = chunk
            .iter()
            .filter(|(w, new)| !new && plan.is_adoption(w) && !refused.contains(w.email.as_str()))
            .count() as u64;
        let updated = result
            .total_updated
            .unwrap_or(result.updated_members.len() as u64);
        Ok(BatchOutcome {
            members: chunk.len() as u64,
            created: result
                .total_created
                .unwrap_or(result.new_members.len() as u64),
            updated: updated.saturating_sub(adopted),
            adopted,
            unsubscribed,
            rejected,
        })
    }

    async fn archive(&self, email: &Email) -> Result<MemberOutcome, ConnectorError> {
        let hash = wire::subscriber_hash(email.as_str());
        let call = Call::new(
            Method::DELETE,
            ARCHIVE,
            format!("{}/members/{hash}", self.list_path()),
        );
        self.member_call(&call, email.as_str(), "archiving").await
    }

    /// A call about one member: 2xx is done, 404 means the member is not there, another 4xx
    /// (other than auth and rate limits) is that member's refusal; the rest fails the apply.
    pub(super) async fn member_call(
        &self,
        call: &Call<'_>,
        email: &str,
        doing: &str,
    ) -> Result<MemberOutcome, ConnectorError> {
        match self.client.send_raw(call).await? {
            Ok(_) => Ok(MemberOutcome::Done),
            Err(refused) => match refused.status {
                StatusCode::NOT_FOUND => Ok(MemberOutcome::Absent),
                status
                    if status.is_client_error()
                        && !matches!(
                            refused.error.kind,
                            ErrorKind::Auth | ErrorKind::RateLimited
                        ) =>
                {
                    let text = refused.problem.text();
                    let reason = if text.is_empty() {
                        format!("refused while {doing}: HTTP {}", status.as_u16())
                    } else {
                        truncate(&self.client_redact(&text), 300)
                    };
                    Ok(MemberOutcome::Rejected(rejection(email, reason)))
                }
                _ => Err(refused.error),
            },
        }
    }

    fn client_redact(&self, text: &str) -> String {
        super::client::redact(text, &self.api_key)
    }

    /// Creates an empty static segment (a tag) and remembers its id.
    async fn create_segment(&self, name: &str) -> Result<u64, ConnectorError> {
        let not_found = self.list_not_found();
        let call = Call::new(
            Method::POST,
            CREATE_SEGMENT,
            format!("{}/segments", self.list_path()),
        )
        .json(&NewStaticSegment {
            name,
            static_segment: [],
        })?
        .not_found(&not_found);
        let segment: WireSegment = self.client.json(&call).await?;
        self.remember_segment(&segment);
        Ok(segment.id)
    }

    async fn segment_batch(
        &self,
        id: u64,
        add: &[&str],
        remove: &[&str],
    ) -> Result<SegmentOutcome, ConnectorError> {
        let not_found = format!("segment {id} of audience (list) {}", self.list_id);
        let call = Call::new(
            Method::POST,
            SEGMENT_BATCH,
            format!("{}/segments/{id}", self.list_path()),
        )
        .query("fields", "total_added,total_removed,error_count,errors")
        .json(&SegmentBatch {
            members_to_add: add,
            members_to_remove: remove,
        })?
        .not_found(&not_found);
        let result: SegmentBatchResult = self.client.json(&call).await?;
        let mut rejected = Vec::new();
        for error in &result.errors {
            let reason = error
                .error
                .clone()
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| "refused without a reason".to_string());
            for email in &error.email_addresses {
                rejected.push(rejection(&email.trim().to_lowercase(), reason.clone()));
            }
        }
        Ok(SegmentOutcome {
            added: result
                .total_added
                .unwrap_or(result.members_added.len() as u64),
            removed: result
                .total_removed
                .unwrap_or(result.members_removed.len() as u64),
            rejected,
        })
    }

    async fn sized_segment_batch(
        &self,
        id: u64,
        add: &[&str],
        remove: &[&str],
    ) -> (u64, Result<SegmentOutcome, ConnectorError>) {
        (
            (add.len() + remove.len()) as u64,
            self.segment_batch(id, add, remove).await,
        )
    }

    /// Applies a segment plan: finds the static segment (or creates it, empty), then sends the
    /// additions and removals 500 of each to a call (both lists in the same call), up to 10 calls
    /// in flight. An empty plan on a known segment makes no call.
    pub(crate) async fn apply_segment(
        &self,
        name: &str,
        plan: &SegmentPlan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        let mut report = ApplyReport::default();
        for attempt in 0..2 {
            let (id, created) = match self.find_segment(name).await? {
                Some(id) => (id, false),
                None => {
                    report.write_calls += 1;
                    (self.create_segment(name).await?, true)
                }
            };
            if plan.is_empty() {
                return Ok(report);
            }
            match self.segment_batches(id, plan, control, &mut report).await {
                Err(e) if e.kind == ErrorKind::NotFound && attempt == 0 && !created => {
                    // A cached id of a segment deleted since: look it up (or create it) again.
                    self.forget_segment(id);
                    report.segment_added = 0;
                    report.segment_removed = 0;
                    report.rejected.clear();
                }
                other => return other.map(|()| report),
            }
        }
        Ok(report)
    }

    async fn segment_batches(
        &self,
        id: u64,
        plan: &SegmentPlan,
        control: &ApplyControl,
        report: &mut ApplyReport,
    ) -> Result<(), ConnectorError> {
        let add: Vec<&str> = plan.add.iter().map(Email::as_str).collect();
        let remove: Vec<&str> = plan.remove.iter().map(Email::as_str).collect();
        let calls = add.len().max(remove.len()).div_ceil(BATCH_SIZE);
        let total = (add.len() + remove.len()) as u64;
        let mut add_chunks = add.chunks(BATCH_SIZE);
        let mut remove_chunks = remove.chunks(BATCH_SIZE);
        let jobs: Vec<(&[&str], &[&str])> = (0..calls)
            .map(|_| {
                (
                    add_chunks.next().unwrap_or_default(),
                    remove_chunks.next().unwrap_or_default(),
                )
            })
            .collect();
        let mut done = 0u64;
        let mut sent = 0usize;
        control.report(done, total);
        let mut outcomes = stream::iter(jobs.into_iter().take_while(|_| !control.stop_requested()))
            .map(|(add, remove)| self.sized_segment_batch(id, add, remove))
            .buffer_unordered(self.write_concurrency)
            .boxed();
        while let Some((size, outcome)) = outcomes.next().await {
            report.write_calls += 1;
            let outcome = outcome?;
            sent += 1;
            report.segment_added += outcome.added;
            report.segment_removed += outcome.removed;
            report.rejected.extend(outcome.rejected);
            done += size;
            control.report(done, total);
        }
        if sent < calls {
            report.stopped_early = true;
        }
        Ok(())
    }

    /// Creates the merge fields the mapping writes that the audience lacks.
    pub(crate) async fn ensure_fields(&self, mapping: &FieldMapping) -> Result<(), ConnectorError> {
        let wanted = mapping.target_fields();
        if wanted.is_empty() {
            return Ok(());
        }
        let existing = self.merge_fields().await?;
        for (tag, kind) in wanted {
            let found = existing.iter().find(|(t, _)| t.eq_ignore_ascii_case(tag));
            match found {
                Some((_, vendor_type)) => {
                    let is_address = vendor_type == "address";
                    if (kind == FieldKind::Address) != is_address {
                        return Err(ConnectorError::new(
                            VENDOR,
                            MERGE_FIELDS,
                            ErrorKind::InvalidConfig,
                            format!(
                                "merge field {tag} of audience (list) {} has type {vendor_type}, but the mapping writes {} into it",
                                self.list_id,
                                if kind == FieldKind::Address {
                                    "an address"
                                } else {
                                    "text"
                                }
                            ),
                        ));
                    }
                }
                None => {
                    let not_found = self.list_not_found();
                    let call = Call::new(
                        Method::POST,
                        CREATE_MERGE_FIELD,
                        format!("{}/merge-fields", self.list_path()),
                    )
                    .json(&NewMergeField {
                        tag,
                        name: tag,
                        kind: match kind {
                            FieldKind::Text => "text",
                            FieldKind::Phone => "phone",
                            FieldKind::Address => "address",
                        },
                        required: false,
                        public: false,
                    })?
                    .not_found(&not_found);
                    self.client.send(&call).await?;
                }
            }
        }
        Ok(())
    }

    /// Every merge field's tag and type.
    async fn merge_fields(&self) -> Result<Vec<(String, String)>, ConnectorError> {
        let not_found = self.list_not_found();
        let mut fields = Vec::new();
        let mut offset = 0u64;
        loop {
            let call = Call::new(
                Method::GET,
                MERGE_FIELDS,
                format!("{}/merge-fields", self.list_path()),
            )
            .query("count", super::read::PAGE_SIZE.to_string())
            .query("offset", offset.to_string())
            .query("fields", "merge_fields.tag,merge_fields.type,total_items")
            .not_found(&not_found);
            let page: MergeFieldsPage = self.client.json(&call).await?;
            let received = page.merge_fields.len() as u64;
            fields.extend(page.merge_fields.into_iter().map(|f| (f.tag, f.kind)));
            offset += super::read::PAGE_SIZE;
            if received == 0 || offset >= page.total_items {
                break;
            }
        }
        if fields.iter().any(|(tag, _)| tag.is_empty()) {
            return Err(invalid_response(
                VENDOR,
                MERGE_FIELDS,
                "a merge field without a tag",
            ));
        }
        Ok(fields)
    }
}

struct SegmentOutcome {
    added: u64,
    removed: u64,
    rejected: Vec<RecordRejection>,
}
