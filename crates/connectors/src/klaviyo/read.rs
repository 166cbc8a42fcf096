//! Reads: the list (found by id or name, created on the first write when missing), its members
//! with their consent (`additional-fields[profile]=subscriptions`, cursor pages of 100, the API's
//! maximum), account profiles by email (consent look-ups before a subscribe) and segment lists.
//! Cursor pages are read one after the other: each cursor comes with the page before it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use audience_core::{ConnectorError, Email, ErrorKind, TargetInfo, TargetMember};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Method;

use super::Inner;
use super::client::{Call, VENDOR, truncate};
use super::wire::{
    self, ListDocument, ListsPage, ProfilesPage, Standing, WireProfile, cursor_of, fields_of,
};
use super::{ListRef, invalid_config};
use crate::http::invalid_response;

/// Profiles per page (the API's maximum).
pub(crate) const PAGE_SIZE: usize = 100;

pub(crate) const LISTS: &str = "GET /api/lists";
pub(crate) const CREATE_LIST: &str = "POST /api/lists";
pub(crate) const LIST: &str = "GET /api/lists/{id}";
/// The pacing window of `GET /api/lists/{id}` with `additional-fields[list]=profile_count`.
pub(crate) const LIST_WITH_COUNT: &str =
    "GET /api/lists/{id}?additional-fields[list]=profile_count";
pub(crate) const LIST_PROFILES: &str = "GET /api/lists/{id}/profiles";
pub(crate) const PROFILES: &str = "GET /api/profiles";

/// Named lists' ids found (or created) by earlier runs, per account and name, so a sync's run
/// does not look its list up again (`GET /api/lists?filter=…` has one of Klaviyo's smallest
/// budgets, shared by every sync on the key). Forgotten when the list turns out deleted.
fn lists_found_before() -> &'static Mutex<HashMap<u64, String>> {
    static FOUND: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    FOUND.get_or_init(Default::default)
}

impl Inner {
    pub(crate) fn known_list_id(&self) -> Option<String> {
        self.list_id.lock().expect("list id lock").clone()
    }

    fn found_before_key(&self, name: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{name}", self.client.account()).as_bytes())
    }

    /// A named list's id from an earlier run (remembered as this connector's own).
    fn list_found_before(&self) -> Option<String> {
        let ListRef::Name(name) = &self.list else {
            return None;
        };
        let id = lists_found_before()
            .lock()
            .expect("found lists lock")
            .get(&self.found_before_key(name))
            .cloned()?;
        *self.list_id.lock().expect("list id lock") = Some(id.clone());
        Some(id)
    }

    fn remember_list(&self, id: &str) {
        *self.list_id.lock().expect("list id lock") = Some(id.to_string());
        if let ListRef::Name(name) = &self.list {
            lists_found_before()
                .lock()
                .expect("found lists lock")
                .insert(self.found_before_key(name), id.to_string());
        }
    }

    /// The list `id` is gone: a named list is looked up again (by this run and the next ones).
    fn forget_list(&self, id: &str) {
        if let ListRef::Name(name) = &self.list {
            let key = self.found_before_key(name);
            let mut found = lists_found_before().lock().expect("found lists lock");
            if found.get(&key).map(String::as_str) == Some(id) {
                found.remove(&key);
            }
            *self.list_id.lock().expect("list id lock") = None;
        }
    }

    pub(crate) fn list_not_found(id: &str) -> String {
        format!("list {id} does not exist in this Klaviyo account")
    }

    /// The audience list's id: given, or found by name, or (when `create`) created. `None` when a
    /// named list does not exist and `create` is false (reads of a list not made yet).
    pub(crate) async fn resolve_list(
        &self,
        create: bool,
    ) -> Result<Option<String>, ConnectorError> {
        if let Some(id) = self.known_list_id().or_else(|| self.list_found_before()) {
            return Ok(Some(id));
        }
        let ListRef::Name(name) = &self.list else {
            unreachable!("a list given by id is known from the start")
        };
        let found = self.find_or_create_list(name, create).await?;
        if let Some((id, _)) = &found {
            self.remember_list(id);
        }
        Ok(found.map(|(id, _)| id))
    }

    /// The audience list's id for a write, created when missing; true when this call created it.
    pub(crate) async fn list_for_write(&self) -> Result<(String, bool), ConnectorError> {
        if let Some(id) = self.known_list_id().or_else(|| self.list_found_before()) {
            return Ok((id, false));
        }
        let ListRef::Name(name) = &self.list else {
            unreachable!("a list given by id is known from the start")
        };
        let (id, created) = self
            .find_or_create_list(name, true)
            .await?
            .expect("created when missing");
        self.remember_list(&id);
        Ok((id, created))
    }

    /// A list by exact name, created when missing and `create` is set (then the flag is true).
    /// Finds and creations are serialised, so concurrent writers create one list.
    pub(crate) async fn find_or_create_list(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<(String, bool)>, ConnectorError> {
        let _creating = self.list_creation.lock().await;
        if let Some(id) = self.find_list(name).await? {
            return Ok(Some((id, false)));
        }
        if !create {
            return Ok(None);
        }
        let call = Call::new(Method::POST, CREATE_LIST, "/api/lists".into())
            .json(&wire::new_list(name))?;
        let created: ListDocument = self.client.json(&call).await?;
        if created.data.id.is_empty() {
            return Err(invalid_response(
                VENDOR,
                CREATE_LIST,
                "a created list without an id",
            ));
        }
        tracing::info!(vendor = VENDOR, list = %name, id = %created.data.id, "created list");
        Ok(Some((created.data.id, true)))
    }

    /// The id of the list called exactly `name` (the first one, if the account has several).
    async fn find_list(&self, name: &str) -> Result<Option<String>, ConnectorError> {
        let filter = wire::name_equals(name);
        let mut cursor: Option<String> = None;
        loop {
            let mut call = Call::new(Method::GET, LISTS, "/api/lists".into())
                .query("filter", filter.clone())
                .query("fields[list]", "name");
            if let Some(cursor) = &cursor {
                call = call.query("page[cursor]", cursor.clone());
            }
            let page: ListsPage = self.client.json(&call).await?;
            if let Some(list) = page
                .data
                .iter()
                .find(|l| l.attributes.name.as_deref() == Some(name))
            {
                return Ok(Some(list.id.clone()));
            }
            cursor = page.links.and_then(|l| l.next).and_then(|n| cursor_of(&n));
            if cursor.is_none() {
                return Ok(None);
            }
        }
    }

    /// Name and size of the list (a named list not created yet is empty).
    /// A named list whose remembered id is gone (deleted at Klaviyo since an earlier run) is
    /// looked up by name again, once.
    pub(crate) async fn info(&self) -> Result<TargetInfo, ConnectorError> {
        let mut looked_up_again = false;
        loop {
            let Some(id) = self.resolve_list(false).await? else {
                let ListRef::Name(name) = &self.list else {
                    unreachable!()
                };
                return Ok(TargetInfo {
                    name: name.clone(),
                    member_count: 0,
                });
            };
            let not_found = Self::list_not_found(&id);
            let call = Call::new(Method::GET, LIST, format!("/api/lists/{id}"))
                .window(LIST_WITH_COUNT)
                .query("additional-fields[list]", "profile_count")
                .not_found(&not_found);
            let list: ListDocument = match self.client.json(&call).await {
                Err(e)
                    if e.kind == ErrorKind::NotFound
                        && matches!(self.list, ListRef::Name(_))
                        && !looked_up_again =>
                {
                    self.forget_list(&id);
                    looked_up_again = true;
                    continue;
                }
                answer => answer?,
            };
            return Ok(TargetInfo {
                name: list.data.attributes.name.unwrap_or_default(),
                member_count: list.data.attributes.profile_count.ok_or_else(|| {
                    invalid_response(VENDOR, LIST, "a list without the profile_count asked for")
                })?,
            });
        }
    }

    /// Every member of the list, a page of up to 100 at a time.
    pub(crate) fn members(&self) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>> {
        enum State {
            Start,
            Next(String, Option<String>),
            Done,
        }
        stream::unfold(State::Start, move |state| async move {
            let (list_id, cursor) = match state {
                State::Done => return None,
                State::Start => match self.resolve_list(false).await {
                    Ok(Some(id)) => (id, None),
                    Ok(None) => return None,
                    Err(e) => return Some((Err(e), State::Done)),
                },
                State::Next(id, cursor) => (id, cursor),
            };
            match self.member_page(&list_id, None, cursor).await {
                Ok((members, Some(next))) => Some((Ok(members), State::Next(list_id, Some(next)))),
                Ok((members, None)) => Some((Ok(members), State::Done)),
                Err(e) => Some((Err(e), State::Done)),
            }
        })
        .filter(|page| futures::future::ready(!matches!(page, Ok(members) if members.is_empty())))
        .boxed()
    }

    /// The list members with these emails (see `Target::members_by_email`): the list's own
    /// profile listing filtered by `any(email,[…])`, 100 emails to a call (a page holds 100, so
    /// each call is one page). That answers membership and consent in one call, where
    /// `GET /api/profiles?filter=any(email,…)` would find account profiles and still need a
    /// second call to learn which of them are in the list. A named list not created yet has no
    /// members, and no call is made.
    pub(crate) async fn members_by_email(
        &self,
        emails: &[Email],
    ) -> Result<Vec<TargetMember>, ConnectorError> {
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let Some(list_id) = self.resolve_list(false).await? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for chunk in emails.chunks(PAGE_SIZE) {
            let chunk: Vec<&str> = chunk.iter().map(Email::as_str).collect();
            let filter = wire::any_email(&chunk);
            let mut cursor = None;
            loop {
                let (members, next) = self.member_page(&list_id, Some(&filter), cursor).await?;
                found.extend(members);
                cursor = next;
                if cursor.is_none() {
                    break;
                }
            }
        }
        Ok(found)
    }

    async fn member_page(
        &self,
        list_id: &str,
        filter: Option<&str>,
        cursor: Option<String>,
    ) -> Result<(Vec<TargetMember>, Option<String>), ConnectorError> {
        let not_found = Self::list_not_found(list_id);
        let mut call = Call::new(
            Method::GET,
            LIST_PROFILES,
            format!("/api/lists/{list_id}/profiles"),
        )
        .query("page[size]", PAGE_SIZE.to_string())
        .query("additional-fields[profile]", "subscriptions")
        .not_found(&not_found);
        if let Some(filter) = filter {
            call = call.query("filter", filter.to_string());
        }
        if let Some(cursor) = cursor {
            call = call.query("page[cursor]", cursor);
        }
        let page: ProfilesPage = self.client.json(&call).await?;
        let next = next_cursor(&page);
        let mut members = Vec::with_capacity(page.data.len());
        let mut invalid = 0usize;
        for profile in &page.data {
            let Some(email) = profile_email(profile) else {
                invalid += 1;
                continue;
            };
            let standing = profile
                .standing(Some(list_id))
                .map_err(|what| invalid_response(VENDOR, LIST_PROFILES, what))?;
            self.remember_id(&email, &profile.id);
            members.push(TargetMember {
                email,
                status: standing.status(),
                fields: fields_of(&profile.attributes),
                tags: wire::tags_of(&profile.attributes),
            });
        }
        if invalid > 0 {
            // Profiles known by phone only, or with an address the core refuses: not this sync's.
            tracing::debug!(
                vendor = VENDOR,
                list = %list_id,
                count = invalid,
                "skipped list members without a usable email"
            );
        }
        Ok((members, next))
    }

    pub(crate) fn remember_id(&self, email: &Email, id: &str) {
        if id.is_empty() {
            return;
        }
        self.ids
            .lock()
            .expect("id cache lock")
            .insert(email.as_str().to_string(), id.to_string());
    }

    pub(crate) fn cached_id(&self, email: &str) -> Option<String> {
        self.ids.lock().expect("id cache lock").get(email).cloned()
    }

    /// Account profiles (in any list or none) with these emails (at most 100), with their id and
    /// standing (counting suppressions from `list_id`). Emails without a profile are absent.
    pub(crate) async fn account_profiles(
        &self,
        emails: &[&str],
        list_id: &str,
    ) -> Result<HashMap<String, (String, Standing)>, ConnectorError> {
        let profiles = self
            .profiles_matching(PROFILES, "/api/profiles".into(), emails, true, None)
            .await?;
        let mut found = HashMap::with_capacity(profiles.len());
        for profile in profiles {
            let Some(email) = profile_email(&profile) else {
                continue;
            };
            let standing = profile
                .standing(Some(list_id))
                .map_err(|what| invalid_response(VENDOR, PROFILES, what))?;
            self.remember_id(&email, &profile.id);
            found.insert(email.as_str().to_string(), (profile.id.clone(), standing));
        }
        Ok(found)
    }

    /// Ids of the members of `list_id` with these emails (at most 100).
    pub(crate) async fn list_member_ids(
        &self,
        list_id: &str,
        emails: &[&str],
    ) -> Result<HashMap<String, String>, ConnectorError> {
        let not_found = Self::list_not_found(list_id);
        let profiles = self
            .profiles_matching(
                LIST_PROFILES,
                format!("/api/lists/{list_id}/profiles"),
                emails,
                false,
                Some(&not_found),
            )
            .await?;
        let mut found = HashMap::with_capacity(profiles.len());
        for profile in profiles {
            let Some(email) = profile_email(&profile) else {
                continue;
            };
            self.remember_id(&email, &profile.id);
            found.insert(email.as_str().to_string(), profile.id);
        }
        Ok(found)
    }

    async fn profiles_matching(
        &self,
        endpoint: &'static str,
        path: String,
        emails: &[&str],
        subscriptions: bool,
        not_found: Option<&str>,
    ) -> Result<Vec<WireProfile>, ConnectorError> {
        let filter = wire::any_email(emails);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut call = Call::new(Method::GET, endpoint, path.clone())
                .query("filter", filter.clone())
                .query("page[size]", PAGE_SIZE.to_string());
            if subscriptions {
                call = call.query("additional-fields[profile]", "subscriptions");
            }
            if let Some(meaning) = not_found {
                call = call.not_found(meaning);
            }
            if let Some(cursor) = &cursor {
                call = call.query("page[cursor]", cursor.clone());
            }
            let page: ProfilesPage = self.client.json(&call).await?;
            cursor = next_cursor(&page);
            out.extend(page.data);
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// The segment list called `name`, from the cache or a look-up (created when missing and
    /// `create` is set; the flag says this call created it).
    pub(crate) async fn segment_list(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<(String, bool)>, ConnectorError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid_config(
                "segment",
                "the segment (list) name is empty",
            ));
        }
        if let Some(id) = self.segment_lists.lock().expect("segment lock").get(name) {
            return Ok(Some((id.clone(), false)));
        }
        let id = self.find_or_create_list(name, create).await?;
        if let Some((id, _)) = &id {
            self.segment_lists
                .lock()
                .expect("segment lock")
                .insert(name.to_string(), id.clone());
        }
        Ok(id)
    }

    pub(crate) fn forget_segment_list(&self, name: &str) {
        self.segment_lists
            .lock()
            .expect("segment lock")
            .remove(name.trim());
    }

    /// Every member email of the segment list called `name`, or `None` when there is no such list.
    pub(crate) async fn segment_members(
        &self,
        name: &str,
    ) -> Result<Option<Vec<Email>>, ConnectorError> {
        for attempt in 0..2 {
            let Some((id, _)) = self.segment_list(name, false).await? else {
                return Ok(None);
            };
            match self.list_emails(&id).await {
                Err(e) if e.kind == audience_core::ErrorKind::NotFound && attempt == 0 => {
                    // A cached id of a list deleted since: look it up again.
                    self.forget_segment_list(name);
                }
                other => return other.map(Some),
            }
        }
        Ok(None)
    }

    async fn list_emails(&self, list_id: &str) -> Result<Vec<Email>, ConnectorError> {
        let not_found = Self::list_not_found(list_id);
        let mut emails = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut call = Call::new(
                Method::GET,
                LIST_PROFILES,
                format!("/api/lists/{list_id}/profiles"),
            )
            .query("page[size]", PAGE_SIZE.to_string())
            .query("fields[profile]", "email")
            .not_found(&not_found);
            if let Some(cursor) = &cursor {
                call = call.query("page[cursor]", cursor.clone());
            }
            let page: ProfilesPage = self.client.json(&call).await?;
            cursor = next_cursor(&page);
            for profile in &page.data {
                if let Some(email) = profile_email(profile) {
                    self.remember_id(&email, &profile.id);
                    emails.push(email);
                }
            }
            if cursor.is_none() {
                break;
            }
        }
        emails.sort();
        emails.dedup();
        Ok(emails)
    }
}

fn profile_email(profile: &WireProfile) -> Option<Email> {
    Email::parse(profile.attributes.email.as_deref()?).ok()
}

fn next_cursor(page: &ProfilesPage) -> Option<String> {
    let next = page.links.as_ref()?.next.as_deref()?;
    let cursor = cursor_of(next);
    if cursor.is_none() {
        tracing::warn!(
            vendor = VENDOR,
            next = %truncate(next, 80),
            "a next link without a page cursor: reading stops there"
        );
    }
    cursor
}
