//! A member's email activity (`GET /lists/{list_id}/members/{subscriber_hash}/activity-feed`,
//! `activity_filters=sent,open,click`): what Mailchimp → Shopify writes back as
//! `email_received` / `email_opened` / `email_clicked`.
//!
//! The feed is newest first and has no `total_items`, so it is paged with `count`/`offset`
//! until a short page, or until an entry at or before `since` (older entries were seen by an
//! earlier run). A 404 means the address is not a member: `None`.

use audience_core::ConnectorError;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::MailchimpTarget;
use super::client::{Call, VENDOR};
use super::read::{PAGE_SIZE, paged};
use super::wire::subscriber_hash;
use crate::http;

const ENDPOINT: &str = "GET /lists/{list_id}/members/{subscriber_hash}/activity-feed";
/// Entries per page (the spec's maximum is 1000; activity is small).
pub const PAGE: usize = 200;
/// Pages read at most per member and run, so one very active contact cannot hold a run.
const MAX_PAGES: usize = 5;

pub use audience_core::customer_events::{ActivityKind, EmailActivity};

#[derive(Deserialize)]
struct Feed {
    activity: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    activity_type: String,
    created_at_timestamp: String,
    #[serde(default)]
    campaign_id: Option<String>,
}

impl MailchimpTarget {
    /// The member's sends, opens and clicks after `since` (all of them when `None`), newest
    /// first; `None` when the audience has no such member.
    pub async fn email_activity(
        &self,
        email: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Vec<EmailActivity>>, ConnectorError> {
        let inner = &self.inner;
        let path = format!(
            "/lists/{}/members/{}/activity-feed",
            inner.list_id,
            subscriber_hash(email)
        );
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let call = Call::new(Method::GET, ENDPOINT, path.clone())
                .query("activity_filters", "sent,open,click")
                .query(
                    "fields",
                    "activity.activity_type,activity.created_at_timestamp,activity.campaign_id",
                )
                .query("count", PAGE.to_string())
                .query("offset", (page * PAGE).to_string());
            let response = match inner.client.send_raw(&call).await? {
                Ok(response) => response,
                Err(refused) if refused.status == StatusCode::NOT_FOUND => return Ok(None),
                Err(refused) => return Err(refused.error),
            };
            let feed: Feed = http::json_body(VENDOR, ENDPOINT, response)
                .await
                .map_err(|e| inner.client.redact(e))?;
            let len = feed.activity.len();
            for entry in feed.activity {
                let kind = match entry.activity_type.as_str() {
                    "sent" => ActivityKind::Received,
                    "open" => ActivityKind::Opened,
                    "click" => ActivityKind::Clicked,
                    // Asked for these three only; anything else is skipped, not guessed at.
                    _ => continue,
                };
                let at = DateTime::parse_from_rfc3339(&entry.created_at_timestamp)
                    .map_err(|_| {
                        http::invalid_response(
                            VENDOR,
                            ENDPOINT,
                            "an activity entry's created_at_timestamp is not a date-time",
                        )
                    })?
                    .with_timezone(&Utc);
                if since.is_some_and(|s| at <= s) {
                    return Ok(Some(out));
                }
                out.push(EmailActivity {
                    kind,
                    at,
                    campaign_id: entry.campaign_id.unwrap_or_default(),
                });
            }
            if len < PAGE {
                break;
            }
        }
        Ok(Some(out))
    }
}

/// How far back a sent campaign's opens and clicks are looked for ([U]: almost all of a
/// campaign's activity comes in its first days; an open of a campaign older than this is not
/// written back until the contact's next activity in a newer one, which rereads the whole feed).
pub const CAMPAIGN_WINDOW_DAYS: i64 = 90;

#[derive(Deserialize)]
struct Campaigns {
    campaigns: Vec<CampaignEntry>,
    total_items: usize,
}

#[derive(Deserialize)]
struct CampaignEntry {
    id: String,
    #[serde(default)]
    send_time: String,
}

#[derive(Deserialize)]
struct SentTo {
    sent_to: Vec<Recipient>,
    total_items: usize,
}

#[derive(Deserialize)]
struct Recipient {
    email_address: String,
}

#[derive(Deserialize)]
struct ReportActivity {
    emails: Vec<ActiveMember>,
    total_items: usize,
}

#[derive(Deserialize)]
struct ActiveMember {
    email_address: String,
    #[serde(default)]
    activity: Vec<Action>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    action: String,
    #[serde(default)]
    timestamp: String,
}

fn parse_time(
    endpoint: &'static str,
    value: &str,
    what: &str,
) -> Result<DateTime<Utc>, ConnectorError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| http::invalid_response(VENDOR, endpoint, format!("{what} is not a date-time")))
}

pub use audience_core::customer_events::ActiveContacts;

impl MailchimpTarget {
    /// Every item of an offset-paged report collection, through the shared reader
    /// ([`paged`]: 1,000 a page, pages read ahead, a bogus `total_items` cut off by an empty
    /// page). `split` takes a page apart into its items and `total_items`.
    async fn all_pages<W, T>(
        &self,
        endpoint: &'static str,
        path: String,
        query: Vec<(&'static str, String)>,
        split: fn(W) -> (Vec<T>, u64),
    ) -> Result<Vec<T>, ConnectorError>
    where
        W: serde::de::DeserializeOwned + Send,
        T: Send,
    {
        let inner = &self.inner;
        let mut pages = paged(inner.read_ahead, move |offset| {
            let (path, query) = (path.clone(), query.clone());
            Box::pin(async move {
                let mut call = Call::new(Method::GET, endpoint, path)
                    .query("count", PAGE_SIZE.to_string())
                    .query("offset", offset.to_string());
                for (name, value) in query {
                    call = call.query(name, value);
                }
                let page: W = inner.client.json(&call).await?;
                Ok(split(page))
            })
        });
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            out.extend(page?);
        }
        Ok(out)
    }

    /// The audience's contacts with email activity after `since` (every contact with any when
    /// `None`), read from the campaign reports rather than contact by contact: the audience's
    /// sent campaigns (those sent in the [`CAMPAIGN_WINDOW_DAYS`] before `since`, or all), the
    /// recipients of those sent after `since` (each got an `email_received`), and each
    /// campaign's opens and clicks after `since`. Calls: one per 1,000 campaigns, plus one per
    /// 1,000 active contacts of each campaign — nothing per quiet contact.
    pub async fn active_contacts(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<ActiveContacts, ConnectorError> {
        const CAMPAIGNS: &str = "GET /campaigns";
        const SENT_TO: &str = "GET /reports/{campaign_id}/sent-to";
        const ACTIVITY: &str = "GET /reports/{campaign_id}/email-activity";
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut query = vec![
            ("list_id", self.inner.list_id.clone()),
            ("status", "sent".to_string()),
            (
                "fields",
                "campaigns.id,campaigns.send_time,total_items".to_string(),
            ),
            ("sort_field", "send_time".to_string()),
            ("sort_dir", "ASC".to_string()),
        ];
        if let Some(since) = since {
            let from = since - chrono::Duration::days(CAMPAIGN_WINDOW_DAYS);
            query.push(("since_send_time", at(from)));
        }
        let campaigns = self
            .all_pages(CAMPAIGNS, "/campaigns".into(), query, |p: Campaigns| {
                (p.campaigns, p.total_items as u64)
            })
            .await?;
        let mut found = ActiveContacts::default();
        for campaign in campaigns {
            let sent_at = parse_time(CAMPAIGNS, &campaign.send_time, "a campaign's send_time")?;
            let id = campaign.id;
            if since.is_none_or(|s| sent_at > s) {
                let query = vec![("fields", "sent_to.email_address,total_items".to_string())];
                let recipients = self
                    .all_pages(
                        SENT_TO,
                        format!("/reports/{id}/sent-to"),
                        query,
                        |p: SentTo| (p.sent_to, p.total_items as u64),
                    )
                    .await?;
                found.note(recipients.into_iter().map(|r| r.email_address), sent_at);
            }
            let mut query = vec![(
                "fields",
                "emails.email_address,emails.activity.action,emails.activity.timestamp,total_items"
                    .to_string(),
            )];
            if let Some(since) = since {
                query.push(("since", at(since)));
            }
            let members = self
                .all_pages(
                    ACTIVITY,
                    format!("/reports/{id}/email-activity"),
                    query,
                    |p: ReportActivity| (p.emails, p.total_items as u64),
                )
                .await?;
            for member in members {
                for action in member.activity {
                    if action.action != "open" && action.action != "click" {
                        continue;
                    }
                    let when = parse_time(ACTIVITY, &action.timestamp, "an action's timestamp")?;
                    if since.is_none_or(|s| when > s) {
                        found.note([member.email_address.clone()], when);
                    }
                }
            }
        }
        Ok(found)
    }
}
