//! Reads: members (full and incremental), the audience's facts, static segments (tags) and their
//! members. Collections are read with `count=1000` (the API's maximum) and trimmed with `fields=`;
//! once the first page has told `total_items`, the remaining offsets are known and up to
//! `read_ahead` pages are fetched concurrently (each request still waits for a slot of the key
//! budget, so reads never push the key past Mailchimp's 10 connections).

use audience_core::{ConnectorError, Email, ErrorKind, MemberConsent, MemberStatus, TargetMember};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesOrdered, StreamExt, TryStreamExt};
use reqwest::Method;

use super::Inner;
use super::client::{Call, VENDOR, truncate};
use super::wire::{
    self, MemberProblem, MembersPage, SegmentMembersPage, SegmentsPage, WireSegment,
};
use crate::http::invalid_response;

/// Mailchimp's largest page.
pub(crate) const PAGE_SIZE: u64 = 1000;

pub(crate) const MEMBERS: &str = "GET /lists/{list_id}/members";
const SEGMENTS: &str = "GET /lists/{list_id}/segments";
const SEGMENT_MEMBERS: &str = "GET /lists/{list_id}/segments/{segment_id}/members";
const LIST: &str = "GET /lists/{list_id}";
pub(crate) const MEMBER: &str = "GET /lists/{list_id}/members/{subscriber_hash}";

type PageFuture<'a, T> = BoxFuture<'a, Result<(Vec<T>, u64), ConnectorError>>;
type OffsetPage<'a, T> = BoxFuture<'a, (u64, Result<(Vec<T>, u64), ConnectorError>)>;

/// Pages of an offset-paged collection: the first page alone, then up to `read_ahead` pages in
/// flight, in offset order. The end follows the largest `total_items` seen, so members added
/// while reading are not cut off; but `total_items` is only the vendor's word, so an empty page
/// ends the collection there (a bogus total of 10^15 costs one empty page, not 10^12 calls).
/// Empty pages are not yielded.
pub(crate) fn paged<'a, T, F>(
    read_ahead: usize,
    fetch: F,
) -> BoxStream<'a, Result<Vec<T>, ConnectorError>>
where
    T: Send + 'a,
    F: Fn(u64) -> PageFuture<'a, T> + Send + 'a,
{
    struct State<'a, T, F> {
        fetch: F,
        next_offset: u64,
        end: u64,
        inflight: FuturesOrdered<OffsetPage<'a, T>>,
        ahead: usize,
        failed: bool,
    }
    let state = State {
        fetch,
        next_offset: 0,
        // Unknown until the first page: schedule offset 0 only.
        end: 1,
        inflight: FuturesOrdered::new(),
        ahead: read_ahead.max(1),
        failed: false,
    };
    stream::unfold(state, |mut s| async move {
        if s.failed {
            return None;
        }
        loop {
            while s.inflight.len() < s.ahead && s.next_offset < s.end {
                let offset = s.next_offset;
                let future = (s.fetch)(offset);
                s.inflight
                    .push_back(Box::pin(async move { (offset, future.await) }));
                s.next_offset = s.next_offset.saturating_add(PAGE_SIZE);
            }
            let (offset, page) = s.inflight.next().await?;
            match page {
                Ok((items, total)) => {
                    if items.is_empty() {
                        // Nothing at this offset: nothing beyond it either, whatever the total says.
                        s.end = s.end.min(offset);
                    } else {
                        s.end = s.end.max(total);
                        return Some((Ok(items), s));
                    }
                }
                Err(error) => {
                    s.failed = true;
                    return Some((Err(error), s));
                }
            }
        }
    })
    .boxed()
}

/// Which members a pass reads.
#[derive(Clone, Copy)]
enum Pass {
    /// Every status the default listing returns (archived members are skipped here: they come
    /// from their own pass, whether or not the listing includes them).
    Live,
    /// `status=archived`: Mailchimp leaves archived members out of the default listing.
    Archived,
}

impl Inner {
    pub(crate) fn list_path(&self) -> String {
        format!("/lists/{}", self.list_id)
    }

    pub(crate) fn list_not_found(&self) -> String {
        format!(
            "audience (list) {} does not exist in this account",
            self.list_id
        )
    }

    /// Every member, live then archived.
    pub(crate) fn members(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>> {
        self.members_timed(since, false)
            .map(|page| page.map(|members| members.into_iter().map(|(m, _)| m).collect()))
            .boxed()
    }

    /// Every member with its consent times (`last_changed`, `timestamp_opt`), live then archived.
    pub(crate) fn members_with_consent(
        &self,
    ) -> BoxStream<'_, Result<Vec<(TargetMember, MemberConsent)>, ConnectorError>> {
        self.members_timed(None, true)
    }

    fn members_timed(
        &self,
        since: Option<DateTime<Utc>>,
        times: bool,
    ) -> BoxStream<'_, Result<Vec<(TargetMember, MemberConsent)>, ConnectorError>> {
        self.member_pass(Pass::Live, since, times)
            .chain(self.member_pass(Pass::Archived, since, times))
            .boxed()
    }

    fn member_pass(
        &self,
        pass: Pass,
        since: Option<DateTime<Utc>>,
        times: bool,
    ) -> BoxStream<'_, Result<Vec<(TargetMember, MemberConsent)>, ConnectorError>> {
        let since = since.map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
        paged(self.read_ahead, move |offset| {
            let since = since.clone();
            Box::pin(async move { self.member_page(pass, since, offset, times).await })
        })
    }

    async fn member_page(
        &self,
        pass: Pass,
        since: Option<String>,
        offset: u64,
        times: bool,
    ) -> Result<(Vec<(TargetMember, MemberConsent)>, u64), ConnectorError> {
        let not_found = self.list_not_found();
        let mut call = Call::new(
            Method::GET,
            MEMBERS,
            format!("{}/members", self.list_path()),
        )
        .query("count", PAGE_SIZE.to_string())
        .query("offset", offset.to_string())
        .query(
            "fields",
            if times {
                "members.email_address,members.status,members.merge_fields,members.tags,members.last_changed,members.timestamp_opt,total_items"
            } else {
                "members.email_address,members.status,members.merge_fields,members.tags,total_items"
            },
        )
        .not_found(&not_found);
        if let Pass::Archived = pass {
            call = call.query("status", "archived");
        }
        if let Some(since) = since {
            call = call.query("since_last_changed", since);
        }
        let page: MembersPage = self.client.json(&call).await?;
        let mut members = Vec::with_capacity(page.members.len());
        let mut invalid = 0usize;
        let default_status = match pass {
            Pass::Live => None,
            Pass::Archived => Some(MemberStatus::Archived),
        };
        for member in page.members {
            let last_changed = wire::timestamp(member.last_changed.as_deref());
            let opted_in_at = wire::timestamp(member.timestamp_opt.as_deref());
            match member.into_member(default_status) {
                Ok(member) => {
                    let archived = member.status == MemberStatus::Archived;
                    let consent = MemberConsent {
                        status: member.status,
                        last_changed,
                        opted_in_at,
                    };
                    match pass {
                        Pass::Live if archived => {}
                        Pass::Archived if !archived => {}
                        _ => members.push((member, consent)),
                    }
                }
                Err(MemberProblem::InvalidEmail) => invalid += 1,
                Err(MemberProblem::UnknownStatus(word)) => {
                    return Err(invalid_response(
                        VENDOR,
                        MEMBERS,
                        format!(
                            "member status {:?} is not one the API defines",
                            truncate(&word, 40)
                        ),
                    ));
                }
            }
        }
        if invalid > 0 {
            tracing::warn!(
                vendor = VENDOR,
                list_id = %self.list_id,
                count = invalid,
                "skipped members whose address the email check refuses"
            );
        }
        Ok((members, page.total_items))
    }

    /// The members with these emails, archived ones included (see [`Target::members_by_email`]).
    ///
    /// Why one `GET /lists/{id}/members/{hash}` per email: the 3.0 API has no call that reads
    /// several given members at once. `GET /search-members?query=` takes a single query (an
    /// email, or a name matched fuzzily into `full_search`), so it costs the same one call per
    /// email and answers less exactly; `GET /lists/{id}/members?since_last_changed=` selects the
    /// members changed *in Mailchimp*, not the ones the source changed, so it would miss every
    /// member we need that nobody touched in Mailchimp; batch operations (`POST /batches`) are
    /// asynchronous, a write call, and still one operation per member. A look-up is one small
    /// call, and they run concurrently under the key's 10-connection budget. When the look-ups
    /// would take more calls than reading the whole audience (`total_items / 1000` live pages
    /// and at least one archived page), the audience is read instead and filtered. A 404 is
    /// "not a member" (the caller has just read the audience's facts, so the list exists).
    ///
    /// [`Target::members_by_email`]: audience_core::Target::members_by_email
    pub(crate) async fn members_by_email(
        &self,
        emails: &[Email],
    ) -> Result<Vec<TargetMember>, ConnectorError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let size = match self.known_size() {
            Some(size) => size,
            None => self.info().await?.member_count,
        };
        let full_read_calls = size.div_ceil(PAGE_SIZE).max(1) + 1;
        if emails.len() as u64 > full_read_calls {
            let wanted: std::collections::HashSet<&Email> = emails.iter().collect();
            let mut found = Vec::new();
            let mut pages = self.members(None);
            while let Some(page) = pages.next().await {
                found.extend(page?.into_iter().filter(|m| wanted.contains(&m.email)));
            }
            return Ok(found);
        }
        // Boxed so the stream's item type names no closure lifetime (an async-trait future must
        // be `Send` for every borrow).
        let lookups: Vec<BoxFuture<'_, Result<Option<TargetMember>, ConnectorError>>> = emails
            .iter()
            .map(|email| Box::pin(self.member_by_email(email)) as BoxFuture<'_, _>)
            .collect();
        let lookups = stream::iter(lookups).buffer_unordered(super::MAX_CONNECTIONS);
        let found: Vec<Option<TargetMember>> = lookups.try_collect().await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn member_by_email(&self, email: &Email) -> Result<Option<TargetMember>, ConnectorError> {
        let hash = wire::subscriber_hash(email.as_str());
        let call = Call::new(
            Method::GET,
            MEMBER,
            format!("{}/members/{hash}", self.list_path()),
        )
        .query("fields", "email_address,status,merge_fields,tags");
        let response = match self.client.send_raw(&call).await? {
            Ok(response) => response,
            Err(refused) if refused.status == reqwest::StatusCode::NOT_FOUND => return Ok(None),
            Err(refused) => return Err(refused.error),
        };
        let member: wire::WireMember = crate::http::json_body(VENDOR, MEMBER, response)
            .await
            .map_err(|e| self.client.redact(e))?;
        match member.into_member(None) {
            Ok(member) => Ok(Some(member)),
            Err(MemberProblem::InvalidEmail) => Ok(None),
            Err(MemberProblem::UnknownStatus(word)) => Err(invalid_response(
                VENDOR,
                MEMBER,
                format!(
                    "member status {:?} is not one the API defines",
                    truncate(&word, 40)
                ),
            )),
        }
    }

    fn known_size(&self) -> Option<u64> {
        match self.size.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            size => Some(size),
        }
    }

    /// Name and size (members that are not archived: they count towards the contact limit).
    pub(crate) async fn info(&self) -> Result<audience_core::TargetInfo, ConnectorError> {
        let not_found = self.list_not_found();
        let list = Call::new(Method::GET, LIST, self.list_path())
            .query("fields", "name")
            .not_found(&not_found);
        // The default listing leaves archived members out, so its total is the size; one member
        // is enough to learn it.
        let count = Call::new(
            Method::GET,
            MEMBERS,
            format!("{}/members", self.list_path()),
        )
        .query("count", "1")
        .query("fields", "total_items")
        .not_found(&not_found);
        let (list, count) = futures::try_join!(
            self.client.json::<wire::ListInfo>(&list),
            self.client.json::<TotalOnly>(&count)
        )?;
        self.size
            .store(count.total_items, std::sync::atomic::Ordering::Relaxed);
        Ok(audience_core::TargetInfo {
            name: list.name,
            member_count: count.total_items,
        })
    }

    /// The static segment (tag) called `name`: exact name first, otherwise case-insensitively (as
    /// Mailchimp compares tag names). Answers from the cache when it can.
    pub(crate) async fn find_segment(&self, name: &str) -> Result<Option<u64>, ConnectorError> {
        if let Some(id) = self.cached_segment(name) {
            return Ok(Some(id));
        }
        let found = self.find_segments(&[name]).await?;
        Ok(found.into_iter().next().flatten())
    }

    fn cached_segment(&self, name: &str) -> Option<u64> {
        let cache = self.segments.lock().expect("segment cache lock");
        cache.get(name).copied().or_else(|| {
            cache
                .iter()
                .find(|(n, _)| n.to_lowercase() == name.to_lowercase())
                .map(|(_, id)| *id)
        })
    }

    pub(crate) fn forget_segment(&self, id: u64) {
        self.segments
            .lock()
            .expect("segment cache lock")
            .retain(|_, cached| *cached != id);
    }

    pub(crate) fn remember_segment(&self, segment: &WireSegment) {
        self.segments
            .lock()
            .expect("segment cache lock")
            .insert(segment.name.clone(), segment.id);
    }

    /// Looks up several static segments by name, reading the segment listing once (page by page,
    /// stopping as soon as every name is found). Answers in the order of `names`.
    pub(crate) async fn find_segments(
        &self,
        names: &[&str],
    ) -> Result<Vec<Option<u64>>, ConnectorError> {
        let mut found: Vec<Option<u64>> = names.iter().map(|n| self.cached_segment(n)).collect();
        let not_found = self.list_not_found();
        let mut offset = 0u64;
        while found.iter().any(Option::is_none) {
            let call = Call::new(
                Method::GET,
                SEGMENTS,
                format!("{}/segments", self.list_path()),
            )
            .query("type", "static")
            .query("count", PAGE_SIZE.to_string())
            .query("offset", offset.to_string())
            .query("fields", "segments.id,segments.name,total_items")
            .not_found(&not_found);
            let page: SegmentsPage = self.client.json(&call).await?;
            let received = page.segments.len() as u64;
            for segment in &page.segments {
                self.remember_segment(segment);
            }
            for (slot, name) in found.iter_mut().zip(names) {
                if slot.is_none() {
                    *slot = page
                        .segments
                        .iter()
                        .find(|s| s.name == *name)
                        .or_else(|| {
                            page.segments
                                .iter()
                                .find(|s| s.name.to_lowercase() == name.to_lowercase())
                        })
                        .map(|s| s.id);
                }
            }
            offset += PAGE_SIZE;
            if received == 0 || offset >= page.total_items {
                break;
            }
        }
        Ok(found)
    }

    /// Every member of a static segment, archived and unsubscribed ones included.
    pub(crate) async fn segment_members(
        &self,
        name: &str,
    ) -> Result<Option<Vec<Email>>, ConnectorError> {
        for attempt in 0..2 {
            let Some(id) = self.find_segment(name).await? else {
                return Ok(None);
            };
            match self.segment_member_emails(id).await {
                Err(e) if e.kind == ErrorKind::NotFound && attempt == 0 => {
                    // A cached id of a segment deleted since: look it up again.
                    self.forget_segment(id);
                }
                other => return other.map(Some),
            }
        }
        Ok(None)
    }

    async fn segment_member_emails(&self, id: u64) -> Result<Vec<Email>, ConnectorError> {
        let pages = paged(self.read_ahead, move |offset| {
            Box::pin(async move {
                let not_found = format!("segment {id} of audience (list) {}", self.list_id);
                let call = Call::new(
                    Method::GET,
                    SEGMENT_MEMBERS,
                    format!("{}/segments/{id}/members", self.list_path()),
                )
                .query("count", PAGE_SIZE.to_string())
                .query("offset", offset.to_string())
                .query("fields", "members.email_address,total_items")
                .query("include_cleaned", "true")
                .query("include_transactional", "true")
                .query("include_unsubscribed", "true")
                .not_found(&not_found);
                let page: SegmentMembersPage = self.client.json(&call).await?;
                let emails = page
                    .members
                    .into_iter()
                    .filter_map(|m| Email::parse(&m.email_address).ok())
                    .collect();
                Ok((emails, page.total_items))
            })
        });
        let mut pages = pages;
        let mut emails: Vec<Email> = Vec::new();
        while let Some(page) = pages.next().await {
            emails.extend(page?);
        }
        emails.sort();
        emails.dedup();
        Ok(emails)
    }
}

#[derive(serde::Deserialize)]
struct TotalOnly {
    total_items: u64,
}
