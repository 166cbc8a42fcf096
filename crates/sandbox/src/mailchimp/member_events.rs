//! Member events and email activity of one list member:
//! - `POST /lists/{list_id}/members/{subscriber_hash}/events` (body `Events`: `name` required,
//!   2–30 characters; `properties` an object of **string** values; `is_syncing` boolean;
//!   `occurred_at` date-time) → 204 with no body; `GET …/events` (`Collection_of_Events`,
//!   `count`/`offset` paging, newest first);
//! - `GET /lists/{list_id}/members/{subscriber_hash}/activity-feed` (`Member_Activity_Events_1`:
//!   `activity[{activity_type, created_at_timestamp, campaign_id, campaign_title,
//!   link_clicked?}]`, newest first, `count` (default 10, max 1000) / `offset`, and
//!   `activity_filters` naming activity types). The feed holds what the sandbox recorded when
//!   it "sent" a campaign and the person opened or clicked it ([`Mailchimp::send_campaign`],
//!   [`Mailchimp::record_open`], [`Mailchimp::record_click`]).
//!
//! Both need the member to exist in the audience (404 "Resource Not Found" otherwise, archived
//! members included: they cannot receive events).
//!
//! Assumptions ([U]):
//! - [U] Event names may hold only letters, digits, `_` and `-` (Mailchimp's event docs say
//!   "alphanumeric, underscores and dashes"; the 3.0.55 spec says only 2–30 characters). A name
//!   outside those rules is 400 Invalid Resource with an `errors` entry on `name`.
//! - [U] `occurred_at` in the future is accepted as given; a missing one is the time of the
//!   call.
//! - [U] The feed's `activity_filters` accepts the activity types of the spec's `x-oneOf`
//!   (`open`, `click`, `sent`, `bounce`, `unsub`, …); an unknown filter is 400.
//! - [U] An open or click needs the campaign to have been sent to that member first (the
//!   helpers refuse otherwise), so a test cannot record activity Mailchimp could never report.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::error::{ApiError, FieldError};
use super::params::{Fields, Params, json_object};
use super::render::{self, Links};
use super::state::State as Account;
use super::{Mailchimp, respond, subscriber_hash};

/// The activity types the feed's schema names (`x-value` of each `x-oneOf` entry).
pub const ACTIVITY_TYPES: &[&str] = &[
    "bounce",
    "click",
    "conversation",
    "ecommerce_signup",
    "event",
    "generic_signup",
    "inbox_thread",
    "landing_page_signup",
    "marketing_permission",
    "note",
    "open",
    "order",
    "postcard_sent",
    "qbo_payment_link",
    "sent",
    "sms_bulk_sent",
    "squatter_signup",
    "survey_response",
    "unsub",
    "video_call_transcripts",
    "website_signup",
];

/// One member event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberEvent {
    pub name: String,
    pub properties: Map<String, Value>,
    pub is_syncing: bool,
    pub occurred_at: DateTime<Utc>,
}

/// One entry of a member's activity feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// `sent`, `open` or `click`.
    pub activity_type: String,
    pub at: DateTime<Utc>,
    pub campaign_id: String,
    pub campaign_title: String,
    pub link_clicked: Option<String>,
}

/// Events and activity, by `(list_id, subscriber_hash)`, oldest first.
#[derive(Debug, Default)]
pub struct Store {
    pub events: HashMap<(String, String), Vec<MemberEvent>>,
    pub activity: HashMap<(String, String), Vec<Activity>>,
    /// Campaigns sent, oldest first (see [`super::reports`]).
    pub campaigns: Vec<super::reports::SentCampaign>,
}

impl Store {
    /// A member's activity feed, oldest first.
    pub fn activity_of<'a>(
        &'a self,
        list_id: &str,
        hash: &str,
    ) -> impl Iterator<Item = &'a Activity> {
        self.activity
            .get(&(list_id.to_string(), hash.to_string()))
            .into_iter()
            .flatten()
    }
}

fn existing_member(state: &Account, list_id: &str, segment: &str) -> Result<String, ApiError> {
    let list = state.list(list_id)?;
    let hash = Account::resolve_hash(segment)?;
    match list.members.get(&hash) {
        Some(m) if !m.archived => Ok(hash),
        _ => Err(ApiError::NotFound),
    }
}

/// Why an event name is refused, if it is.
fn name_error(name: &str) -> Option<FieldError> {
    let len = name.chars().count();
    if !(2..=30).contains(&len) {
        return Some(FieldError::new(
            "name",
            "Event name must be 2-30 characters in length",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Some(FieldError::new(
            "name",
            "Event name may contain only letters, numbers, underscores and dashes",
        ));
    }
    None
}

/// `POST /lists/{list_id}/members/{subscriber_hash}/events`.
pub async fn post_event(
    State(sim): State<Mailchimp>,
    Path((list_id, segment)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (hash, now) = {
        let state = sim.lock();
        (existing_member(&state, &list_id, &segment)?, state.now())
    };
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let name = fields.required_string("name");
    let is_syncing = fields.boolean("is_syncing").unwrap_or(false);
    let occurred_at = fields.string("occurred_at");
    let properties = fields.object("properties").cloned().unwrap_or_default();
    for (key, value) in &properties {
        if !value.is_string() {
            fields.errors.push(FieldError::new(
                format!("properties.{key}"),
                "Schema describes string, another type found instead",
            ));
        }
    }
    if let Some(error) = name.as_deref().and_then(name_error) {
        fields.errors.push(error);
    }
    let occurred_at = match occurred_at.as_deref() {
        None => Some(now),
        Some(text) => match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                fields.errors.push(FieldError::new(
                    "occurred_at",
                    "Data did not match the date-time format",
                ));
                None
            }
        },
    };
    fields.into_result()?;
    let (Some(name), Some(occurred_at)) = (name, occurred_at) else {
        return Err(ApiError::InvalidResource("name is required".into()));
    };
    sim.events_lock()
        .events
        .entry((list_id, hash))
        .or_default()
        .push(MemberEvent {
            name,
            properties,
            is_syncing,
            occurred_at,
        });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /lists/{list_id}/members/{subscriber_hash}/events`.
pub async fn get_events(
    State(sim): State<Mailchimp>,
    Path((list_id, segment)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let hash = existing_member(&sim.lock(), &list_id, &segment)?;
    let store = sim.events_lock();
    let all = store
        .events
        .get(&(list_id.clone(), hash.clone()))
        .cloned()
        .unwrap_or_default();
    let page: Vec<Value> = all
        .iter()
        .rev()
        .skip(offset)
        .take(count)
        .map(|e| {
            json!({
                "name": e.name,
                "properties": e.properties,
                "occurred_at": render::timestamp(e.occurred_at),
            })
        })
        .collect();
    let path = format!("/lists/{list_id}/members/{hash}/events");
    let doc = json!({
        "events": page,
        "total_items": all.len(),
        "_links": links.collection(&path, &format!("/lists/{list_id}/members/{hash}"), true),
    });
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/members/{subscriber_hash}/activity-feed`.
pub async fn activity_feed(
    State(sim): State<Mailchimp>,
    Path((list_id, segment)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let filters: Option<Vec<String>> = params.get("activity_filters").map(|f| {
        f.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    });
    if let Some(bad) = filters
        .iter()
        .flatten()
        .find(|f| !ACTIVITY_TYPES.contains(&f.as_str()))
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "activity_filters",
            format!("{bad:?} is not a valid activity filter"),
        )]));
    }
    let hash = existing_member(&sim.lock(), &list_id, &segment)?;
    let store = sim.events_lock();
    let all = store
        .activity
        .get(&(list_id.clone(), hash.clone()))
        .cloned()
        .unwrap_or_default();
    let page: Vec<Value> = all
        .iter()
        .rev()
        .filter(|a| {
            filters
                .as_ref()
                .is_none_or(|f| f.contains(&a.activity_type))
        })
        .skip(offset)
        .take(count)
        .map(|a| {
            let mut item = json!({
                "activity_type": a.activity_type,
                "created_at_timestamp": render::timestamp(a.at),
                "campaign_id": a.campaign_id,
                "campaign_title": a.campaign_title,
            });
            if let Some(link) = &a.link_clicked {
                item["link_clicked"] = json!(link);
            }
            item
        })
        .collect();
    let path = format!("/lists/{list_id}/members/{hash}/activity-feed");
    let doc = json!({
        "activity": page,
        "email_id": hash,
        "list_id": list_id,
        "_links": links.collection(&path, &format!("/lists/{list_id}/members/{hash}"), false),
    });
    Ok(respond(doc, &params))
}

impl Mailchimp {
    pub(super) fn events_lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.member_events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events posted for a member (any case of the address), oldest first.
    pub fn member_events(&self, list_id: &str, email: &str) -> Vec<MemberEvent> {
        self.events_lock()
            .events
            .get(&(list_id.to_string(), subscriber_hash(email)))
            .cloned()
            .unwrap_or_default()
    }

    /// Events posted to every member of an audience.
    pub fn member_event_count(&self, list_id: &str) -> usize {
        self.events_lock()
            .events
            .iter()
            .filter(|((l, _), _)| l == list_id)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// The sandbox "sends" a campaign: each address that is a subscribed member gets a `sent`
    /// entry in its activity feed, at the simulator's clock. Returns the addresses it went to.
    pub fn send_campaign(
        &self,
        list_id: &str,
        campaign_id: &str,
        title: &str,
        emails: &[&str],
    ) -> Vec<String> {
        let (now, recipients) = {
            let state = self.lock();
            let Some(list) = state.lists.get(list_id) else {
                return Vec::new();
            };
            let recipients: Vec<(String, String)> = emails
                .iter()
                .filter_map(|e| {
                    let hash = subscriber_hash(e);
                    list.members
                        .get(&hash)
                        .filter(|m| {
                            !m.archived && m.visible_status() == super::MemberStatus::Subscribed
                        })
                        .map(|m| (hash, m.email_address.clone()))
                })
                .collect();
            (state.now(), recipients)
        };
        let mut store = self.events_lock();
        for (hash, _) in &recipients {
            store
                .activity
                .entry((list_id.to_string(), hash.clone()))
                .or_default()
                .push(Activity {
                    activity_type: "sent".into(),
                    at: now,
                    campaign_id: campaign_id.into(),
                    campaign_title: title.into(),
                    link_clicked: None,
                });
        }
        match store.campaigns.iter_mut().find(|c| c.id == campaign_id) {
            // [U] Sending the same campaign again reaches the new addresses only.
            Some(campaign) => {
                for recipient in &recipients {
                    if !campaign.recipients.iter().any(|(h, _)| *h == recipient.0) {
                        campaign.recipients.push(recipient.clone());
                    }
                }
            }
            None => store.campaigns.push(super::reports::SentCampaign {
                id: campaign_id.into(),
                list_id: list_id.into(),
                title: title.into(),
                send_time: now,
                recipients: recipients.clone(),
            }),
        }
        recipients.into_iter().map(|(_, e)| e).collect()
    }

    /// The person opened the campaign (at the simulator's clock). False when the campaign was
    /// not sent to them.
    pub fn record_open(&self, list_id: &str, email: &str, campaign_id: &str) -> bool {
        self.record(list_id, email, campaign_id, "open", None)
    }

    /// The person clicked `url` in the campaign. False when the campaign was not sent to them.
    pub fn record_click(&self, list_id: &str, email: &str, campaign_id: &str, url: &str) -> bool {
        self.record(list_id, email, campaign_id, "click", Some(url))
    }

    /// When the person last had activity `kind` ("sent", "open", "click") in the campaign, as
    /// the simulator recorded it (tests compare with this, not with a clock that keeps moving).
    pub fn last_activity_at(
        &self,
        list_id: &str,
        email: &str,
        campaign_id: &str,
        kind: &str,
    ) -> Option<DateTime<Utc>> {
        let store = self.events_lock();
        store
            .activity
            .get(&(list_id.to_string(), subscriber_hash(email)))?
            .iter()
            .filter(|a| a.activity_type == kind && a.campaign_id == campaign_id)
            .map(|a| a.at)
            .max()
    }

    fn record(
        &self,
        list_id: &str,
        email: &str,
        campaign_id: &str,
        kind: &str,
        url: Option<&str>,
    ) -> bool {
        let now = self.now();
        let mut store = self.events_lock();
        let Some(feed) = store
            .activity
            .get_mut(&(list_id.to_string(), subscriber_hash(email)))
        else {
            return false;
        };
        let Some(sent) = feed
            .iter()
            .find(|a| a.activity_type == "sent" && a.campaign_id == campaign_id)
            .cloned()
        else {
            return false;
        };
        feed.push(Activity {
            activity_type: kind.into(),
            at: now,
            campaign_id: campaign_id.into(),
            campaign_title: sent.campaign_title,
            link_clicked: url.map(str::to_string),
        });
        true
    }
}
