//! Member events (`POST /lists/{list_id}/members/{subscriber_hash}/events`): Shopify shopper
//! events recorded on the Mailchimp contact, for journeys and segments.
//!
//! The body is the spec's `Events`: `name` (2–30 characters; letters, digits, `_`, `-` [U: the
//! charset is Mailchimp's event docs, not the 3.0.55 spec]), `properties` (string values only),
//! `is_syncing` (true: the event triggers no automation) and `occurred_at`. Mailchimp answers
//! 204. A 404 means the address is not a member of the audience: the event is for an unknown
//! contact and is dropped by the caller ([`EventOutcome::UnknownContact`]), never created.
//! Calls go through the key's shared budget like every other call on the key.

use audience_core::{ConnectorError, ErrorKind};
use chrono::SecondsFormat;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::MailchimpTarget;
use super::client::{Call, VENDOR};
use super::wire::subscriber_hash;

const ENDPOINT: &str = "POST /lists/{list_id}/members/{subscriber_hash}/events";

pub use audience_core::customer_events::{EventOutcome, MemberEvent};

/// Whether Mailchimp takes this event name (2–30 of letters, digits, `_`, `-`).
pub fn valid_event_name(name: &str) -> bool {
    (2..=30).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl MailchimpTarget {
    /// Records `event` on the member with this address (see the module docs).
    pub async fn post_member_event(
        &self,
        email: &str,
        event: &MemberEvent,
    ) -> Result<EventOutcome, ConnectorError> {
        if !valid_event_name(&event.name) {
            return Err(ConnectorError::new(
                VENDOR,
                ENDPOINT,
                ErrorKind::Rejected,
                format!(
                    "event name {:?} is not 2-30 letters, digits, '_' or '-'",
                    super::client::truncate(&event.name, 40)
                ),
            ));
        }
        let inner = &self.inner;
        let path = format!(
            "/lists/{}/members/{}/events",
            inner.list_id,
            subscriber_hash(email)
        );
        let body = json!({
            "name": event.name,
            "properties": event.properties,
            "is_syncing": event.is_syncing,
            "occurred_at": event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        let call = Call::new(Method::POST, ENDPOINT, path).json(&body)?;
        match inner.client.send_raw(&call).await? {
            Ok(_) => Ok(EventOutcome::Sent),
            Err(refused) if refused.status == StatusCode::NOT_FOUND => {
                Ok(EventOutcome::UnknownContact)
            }
            Err(refused) => Err(refused.error),
        }
    }
}

#[async_trait::async_trait]
impl audience_core::customer_events::CustomerEventsTarget for MailchimpTarget {
    async fn post_member_event(
        &self,
        email: &str,
        event: &MemberEvent,
    ) -> Result<EventOutcome, ConnectorError> {
        MailchimpTarget::post_member_event(self, email, event).await
    }

    async fn email_activity(
        &self,
        email: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<Vec<audience_core::customer_events::EmailActivity>>, ConnectorError> {
        MailchimpTarget::email_activity(self, email, since).await
    }

    async fn active_contacts(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<audience_core::customer_events::ActiveContacts, ConnectorError> {
        MailchimpTarget::active_contacts(self, since).await
    }
}
