//! Sent campaigns and their reports, as far as email activity needs them:
//! - `GET /campaigns` (`getCampaigns_200_response`: `campaigns[{id, type, status, send_time,
//!   recipients{list_id}, settings{title}}]`, `total_items`), with `list_id`, `status`,
//!   `since_send_time` / `before_send_time`, `sort_field` (`create_time`, `send_time`) and
//!   `sort_dir` (`ASC`, `DESC`), `count`/`offset` paging;
//! - `GET /reports/{campaign_id}/sent-to` (`Sent_To`: `sent_to[{email_id, email_address, status,
//!   open_count, last_open, campaign_id, list_id}]`, `total_items`);
//! - `GET /reports/{campaign_id}/email-activity` (`Email_Activity`: `emails[{campaign_id,
//!   list_id, email_id, email_address, activity[{action, timestamp, url?}]}]`, `total_items`),
//!   with `since` (activity after that time only).
//!
//! The campaigns are those the sandbox "sent" ([`Mailchimp::send_campaign`]); opens and clicks
//! are what [`Mailchimp::record_open`] / [`Mailchimp::record_click`] recorded.
//!
//! Assumptions ([U]):
//! - [U] `since` on email-activity keeps, per member, only the actions after it and leaves out
//!   members with none (the spec: "Restrict results to email activity events that occur after a
//!   specific time"); `total_items` counts the members kept.
//! - [U] Members are listed in the order the campaign reached them; the spec names no order.
//! - [U] An unknown campaign id is 404 Resource Not Found, as for other ids.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::error::ApiError;
use super::member_events::Activity;
use super::params::Params;
use super::render::{self, Links};
use super::{Mailchimp, respond};

/// A campaign the sandbox sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentCampaign {
    pub id: String,
    pub list_id: String,
    pub title: String,
    pub send_time: DateTime<Utc>,
    /// `(subscriber_hash, email_address)` in the order it reached them.
    pub recipients: Vec<(String, String)>,
}

/// `GET /campaigns`.
pub async fn list_campaigns(
    State(sim): State<Mailchimp>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let status = params.one_of("status", &["save", "paused", "schedule", "sending", "sent"])?;
    let since = params.timestamp("since_send_time")?;
    let before = params.timestamp("before_send_time")?;
    params.one_of("sort_field", &["create_time", "send_time"])?;
    let descending = params.one_of("sort_dir", &["ASC", "DESC"])?.as_deref() == Some("DESC");
    let list_id = params.get("list_id");
    let store = sim.events_lock();
    // Every campaign here has been sent: any other status filter matches none.
    let mut matching: Vec<&SentCampaign> = store
        .campaigns
        .iter()
        .filter(|_| status.as_deref().is_none_or(|s| s == "sent"))
        .filter(|c| list_id.as_deref().is_none_or(|l| l == c.list_id))
        .filter(|c| since.is_none_or(|t| c.send_time > t))
        .filter(|c| before.is_none_or(|t| c.send_time < t))
        .collect();
    matching.sort_by_key(|c| c.send_time);
    if descending {
        matching.reverse();
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(count)
        .map(|c| {
            json!({
                "id": c.id,
                "type": "regular",
                "status": "sent",
                "send_time": render::timestamp(c.send_time),
                "emails_sent": c.recipients.len(),
                "recipients": {"list_id": c.list_id},
                "settings": {"title": c.title},
            })
        })
        .collect();
    let doc = json!({
        "campaigns": page,
        "total_items": matching.len(),
        "_links": links.collection("/campaigns", "/", true),
    });
    Ok(respond(doc, &params))
}

fn campaign<'a>(campaigns: &'a [SentCampaign], id: &str) -> Result<&'a SentCampaign, ApiError> {
    campaigns
        .iter()
        .find(|c| c.id == id)
        .ok_or(ApiError::NotFound)
}

/// `GET /reports/{campaign_id}/sent-to`.
pub async fn sent_to(
    State(sim): State<Mailchimp>,
    Path(campaign_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let store = sim.events_lock();
    let sent = campaign(&store.campaigns, &campaign_id)?;
    let page: Vec<Value> = sent
        .recipients
        .iter()
        .skip(offset)
        .take(count)
        .map(|(hash, email)| {
            let opens: Vec<&Activity> = store
                .activity_of(&sent.list_id, hash)
                .filter(|a| a.campaign_id == sent.id && a.activity_type == "open")
                .collect();
            json!({
                "email_id": hash,
                "email_address": email,
                "status": "sent",
                "open_count": opens.len(),
                "last_open": opens.iter().map(|a| a.at).max().map(render::timestamp).unwrap_or_default(),
                "campaign_id": sent.id,
                "list_id": sent.list_id,
                "list_is_active": true,
            })
        })
        .collect();
    let path = format!("/reports/{campaign_id}/sent-to");
    let doc = json!({
        "sent_to": page,
        "campaign_id": campaign_id,
        "total_items": sent.recipients.len(),
        "_links": links.collection(&path, &format!("/reports/{campaign_id}"), false),
    });
    Ok(respond(doc, &params))
}

/// `GET /reports/{campaign_id}/email-activity`.
pub async fn email_activity(
    State(sim): State<Mailchimp>,
    Path(campaign_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let since = params.timestamp("since")?;
    let store = sim.events_lock();
    let sent = campaign(&store.campaigns, &campaign_id)?;
    let mut members: BTreeMap<usize, Value> = BTreeMap::new();
    for (position, (hash, email)) in sent.recipients.iter().enumerate() {
        let actions: Vec<Value> = store
            .activity_of(&sent.list_id, hash)
            .filter(|a| a.campaign_id == sent.id)
            .filter(|a| a.activity_type == "open" || a.activity_type == "click")
            .filter(|a| since.is_none_or(|t| a.at > t))
            .map(|a| {
                let mut action = json!({
                    "action": a.activity_type,
                    "timestamp": render::timestamp(a.at),
                    "ip": "",
                });
                if let Some(url) = &a.link_clicked {
                    action["url"] = json!(url);
                }
                action
            })
            .collect();
        // Without `since` every recipient is listed (with no actions when none); with it, only
        // those with something after it.
        if since.is_some() && actions.is_empty() {
            continue;
        }
        members.insert(
            position,
            json!({
                "campaign_id": sent.id,
                "list_id": sent.list_id,
                "list_is_active": true,
                "email_id": hash,
                "email_address": email,
                "activity": actions,
            }),
        );
    }
    let total = members.len();
    let page: Vec<Value> = members.into_values().skip(offset).take(count).collect();
    let path = format!("/reports/{campaign_id}/email-activity");
    let doc = json!({
        "emails": page,
        "campaign_id": campaign_id,
        "total_items": total,
        "_links": links.collection(&path, &format!("/reports/{campaign_id}"), false),
    });
    Ok(respond(doc, &params))
}
