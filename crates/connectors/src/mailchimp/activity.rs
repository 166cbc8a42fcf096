//! A member's email activity (`GET /lists/{list_id}/members/{subscriber_hash}/activity-feed`,
//! `activity_filters=sent,open,click`): what Mailchimp → Shopify writes back as
//! `email_received` / `email_opened` / `email_clicked`.
//!
//! The feed is newest first and has no `total_items`, so it is paged with `count`/`offset`
//! until a short page, or until an entry at or before `since` (older entries were seen by an
//! earlier run). A 404 means the address is not a member: `None`.

use audience_core::ConnectorError;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::MailchimpTarget;
use super::client::{Call, VENDOR};
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
