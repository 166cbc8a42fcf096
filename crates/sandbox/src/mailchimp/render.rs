//! Response documents, with the field names of the spec's schemas (`List_Members`,
//! `List_Members_1`, `Subscriber_List`, `Merge_Field`, `List_7`, `Collection_of_Tags`, …).

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::state::{List, Member, MemberStatus, MergeField, Segment};

/// Mailchimp's timestamp format: ISO 8601 with an explicit offset, `2015-10-21T15:41:36+00:00`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn optional_timestamp(at: Option<DateTime<Utc>>) -> String {
    at.map(timestamp).unwrap_or_default()
}

/// Builds `_links` (spec `Resource_Link`: `rel`, `href`, `method`) pointing back at this
/// simulator, so a client following them stays in the sandbox.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Links {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string();
        // Nested under `/mailchimp`, the router sees the path without its mount prefix.
        let inner = parts.uri.path().to_string();
        let prefix = parts
            .extensions
            .get::<OriginalUri>()
            .and_then(|o| o.0.path().strip_suffix(inner.as_str()).map(str::to_string))
            .unwrap_or_default();
        Ok(Links {
            base: format!("http://{host}{prefix}/3.0"),
        })
    }
}

impl Links {
    pub fn link(&self, rel: &str, method: &str, path: &str) -> Value {
        json!({"rel": rel, "href": format!("{}{}", self.base, path), "method": method})
    }

    /// `self` + `parent` links of a collection, plus `create` when it accepts POST.
    pub fn collection(&self, path: &str, parent: &str, create: bool) -> Value {
        let mut links = vec![
            self.link("self", "GET", path),
            self.link("parent", "GET", parent),
        ];
        if create {
            links.push(self.link("create", "POST", path));
        }
        Value::Array(links)
    }
}

/// One list member: the union of the spec's two member schemas (`List_Members`, returned by
/// batch subscribe and segment updates, and `List_Members_1`, returned by segment reads, which
/// adds `full_name`). The single-member and member-collection responses point at
/// `List_Members_2`, a generator artefact whose items refer to itself, so they use the same
/// member document.
pub fn member(list: &List, hash: &str, member: &Member, links: &Links) -> Value {
    let tags: Vec<Value> = list
        .tags_of(hash)
        .into_iter()
        .map(|(segment, _)| json!({"id": segment.id, "name": segment.name}))
        .collect();
    let path = format!("/lists/{}/members/{hash}", list.id);
    json!({
        "id": hash,
        "email_address": member.email_address,
        "unique_email_id": super::email::unique_email_id(&member.email_address),
        "full_name": member.full_name(),
        "email_type": member.email_type,
        "status": member.visible_status().as_str(),
        "merge_fields": merge_values(list, member),
        "interests": member.interests,
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": member.ip_signup,
        "timestamp_signup": optional_timestamp(member.timestamp_signup),
        "ip_opt": member.ip_opt,
        "timestamp_opt": optional_timestamp(member.timestamp_opt),
        "member_rating": member.member_rating,
        "last_changed": timestamp(member.last_changed),
        "language": member.language,
        "vip": member.vip,
        "sms_phone_number": member.sms_phone_number,
        "sms_subscription_status": member.sms_subscription_status.as_deref().unwrap_or(""),
        "sms_subscription_last_updated": optional_timestamp(member.sms_subscription_last_updated),
        // [U] Read-only; Mailchimp does not say when it is false for an API-added contact.
        "consents_to_one_to_one_messaging": true,
        "email_client": "",
        "location": {
            "latitude": member.latitude,
            "longitude": member.longitude,
            "gmtoff": 0,
            "dstoff": 0,
            "country_code": "",
            "timezone": "",
        },
        "tags_count": tags.len(),
        "tags": tags,
        "list_id": list.id,
        "_links": [
            links.link("self", "GET", &path),
            links.link("parent", "GET", &format!("/lists/{}/members", list.id)),
            links.link("update", "PATCH", &path),
            links.link("upsert", "PUT", &path),
            links.link("delete", "DELETE", &path),
        ],
    })
}

/// Every merge field of the audience, keyed by tag: the member's value, or `""` when unset
/// (an unset `ADDRESS` is `""`, a set one an object).
fn merge_values(list: &List, member: &Member) -> Value {
    let mut fields: Vec<&MergeField> = list.merge_fields.iter().collect();
    fields.sort_by_key(|f| f.display_order);
    Value::Object(
        fields
            .into_iter()
            .map(|f| {
                let value = member
                    .merge_fields
                    .get(&f.tag)
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()));
                (f.tag.clone(), value)
            })
            .collect(),
    )
}

/// One audience (spec `Subscriber_List`).
pub fn list(list: &List, include_total_contacts: bool, links: &Links) -> Value {
    let setting = |key: &str, default: Value| list.settings.get(key).cloned().unwrap_or(default);
    let subscribed = list.count_status(MemberStatus::Subscribed);
    let unsubscribed = list.count_status(MemberStatus::Unsubscribed);
    let cleaned = list.count_status(MemberStatus::Cleaned);
    let mut stats = json!({
        "member_count": subscribed,
        "unsubscribe_count": unsubscribed,
        "cleaned_count": cleaned,
        "member_count_since_send": subscribed,
        "unsubscribe_count_since_send": unsubscribed,
        "cleaned_count_since_send": cleaned,
        "campaign_count": 0,
        "campaign_last_sent": "",
        "merge_field_count": list.merge_fields.len(),
        "avg_sub_rate": 0,
        "avg_unsub_rate": 0,
        "target_sub_rate": 0,
        "open_rate": 0,
        "click_rate": 0,
        "last_sub_date": optional_timestamp(list.last_sub_date),
        "last_unsub_date": optional_timestamp(list.last_unsub_date),
    });
    if include_total_contacts {
        // "The number of contacts in the list, including subscribed, unsubscribed, pending,
        // cleaned, deleted, transactional, and those that need to be reconfirmed."
        stats["total_contacts"] = json!(list.members.len());
    }
    let path = format!("/lists/{}", list.id);
    json!({
        "id": list.id,
        "web_id": list.web_id,
        "name": list.name(),
        "contact": setting("contact", json!({})),
        "permission_reminder": setting("permission_reminder", json!("")),
        "use_archive_bar": setting("use_archive_bar", json!(true)),
        "campaign_defaults": setting("campaign_defaults", json!({})),
        "notify_on_subscribe": setting("notify_on_subscribe", json!("")),
        "notify_on_unsubscribe": setting("notify_on_unsubscribe", json!("")),
        "date_created": timestamp(list.date_created),
        "list_rating": 0,
        "email_type_option": setting("email_type_option", json!(false)),
        "subscribe_url_short": format!("http://eepurl.com/sandbox{}", list.web_id),
        "subscribe_url_long": format!("https://sandbox.list-manage.com/subscribe?u=sandbox&id={}", list.id),
        "beamer_address": format!("us1-{}@inbound.mailchimp.com", list.id),
        "visibility": setting("visibility", json!("prv")),
        "double_optin": setting("double_optin", json!(false)),
        "has_welcome": false,
        "marketing_permissions": setting("marketing_permissions", json!(false)),
        "modules": [],
        "stats": stats,
        "_links": [
            links.link("self", "GET", &path),
            links.link("parent", "GET", "/lists"),
            links.link("batch-sub-unsub-members", "POST", &path),
            links.link("members", "GET", &format!("{path}/members")),
            links.link("merge-fields", "GET", &format!("{path}/merge-fields")),
            links.link("segments", "GET", &format!("{path}/segments")),
        ],
    })
}

/// One merge field (spec `Merge_Field`).
pub fn merge_field(list_id: &str, field: &MergeField, links: &Links) -> Value {
    let path = format!("/lists/{list_id}/merge-fields/{}", field.merge_id);
    json!({
        "merge_id": field.merge_id,
        "tag": field.tag,
        "name": field.name,
        "type": field.kind,
        "required": field.required,
        "default_value": field.default_value,
        "public": field.public,
        "display_order": field.display_order,
        "options": Value::Object(field.options.clone()),
        "help_text": field.help_text,
        "list_id": list_id,
        "_links": [
            links.link("self", "GET", &path),
            links.link("parent", "GET", &format!("/lists/{list_id}/merge-fields")),
        ],
    })
}

/// One segment (spec `List_7`). Every segment here is static (a tag); `member_count` is "The
/// number of active subscribers currently included in the segment".
pub fn segment(list: &List, segment: &Segment, links: &Links) -> Value {
    let member_count = segment
        .members
        .keys()
        .filter_map(|h| list.members.get(h))
        .filter(|m| m.visible_status() == MemberStatus::Subscribed)
        .count();
    let path = format!("/lists/{}/segments/{}", list.id, segment.id);
    json!({
        "id": segment.id,
        "name": segment.name,
        "member_count": member_count,
        "type": "static",
        "created_at": timestamp(segment.created_at),
        "updated_at": timestamp(segment.updated_at),
        "list_id": list.id,
        "_links": [
            links.link("self", "GET", &path),
            links.link("parent", "GET", &format!("/lists/{}/segments", list.id)),
            links.link("members", "GET", &format!("{path}/members")),
        ],
    })
}

/// The account behind the API key (spec `API_Root`).
pub fn account(
    total_subscribers: usize,
    free_plan: bool,
    since: DateTime<Utc>,
    links: &Links,
) -> Value {
    json!({
        "account_id": "5a0e9e4d1a6c3b2f8e7d6c5b4",
        "login_id": "900001",
        "account_name": "Audience Operator Sandbox",
        "email": "owner@audience-sandbox.dev",
        "first_name": "Sandbox",
        "last_name": "Owner",
        "username": "audience-sandbox",
        "avatar_url": "",
        "role": "owner",
        "member_since": timestamp(since),
        "pricing_plan_type": if free_plan { "forever_free" } else { "monthly" },
        "first_payment": "",
        "account_timezone": "UTC",
        "account_industry": "Retail",
        "contact": {
            "company": "Audience Operator Sandbox",
            "addr1": "1 Simulator Way",
            "addr2": "",
            "city": "Atlanta",
            "state": "GA",
            "zip": "30308",
            "country": "US",
        },
        "pro_enabled": false,
        "last_login": timestamp(since),
        "total_subscribers": total_subscribers,
        "industry_stats": {"open_rate": 0, "bounce_rate": 0, "click_rate": 0},
        "_links": [
            links.link("self", "GET", "/"),
            links.link("lists", "GET", "/lists"),
            links.link("ping", "GET", "/ping"),
        ],
    })
}

/// A `Map` from an object value (empty for anything else).
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
