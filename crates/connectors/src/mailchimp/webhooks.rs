//! Webhook registration at Mailchimp (`webhooks.register`): `GET`, `POST` and
//! `DELETE /lists/{list_id}/webhooks[/{webhook_id}]`. Mailchimp keeps one webhook per URL for
//! all its events, so the registry has a single topic ([`TOPIC`]). The webhook asks for the
//! member events the operator's receiver handles (`subscribe`, `unsubscribe`, `profile`,
//! `cleaned`, `upemail`) from the `user` and `admin` sources, never `api`: the operator's own
//! writes would come back to it as webhooks.
//!
//! Mailchimp checks a new webhook's URL with a GET before creating it, which the operator's
//! receiver answers; an unreachable URL is refused with 400.

use audience_core::ConnectorError;
use audience_core::webhook_subscriptions::{Interest, WebhookRegistry, WebhookSubscription};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::MailchimpTarget;
use super::client::Call;

/// The registry's one topic: the list webhook with every member event.
pub const TOPIC: &str = "list";
const WEBHOOKS: &str = "/lists/{list_id}/webhooks";
const WEBHOOK: &str = "/lists/{list_id}/webhooks/{webhook_id}";

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    webhooks: Vec<Hook>,
}

#[derive(Deserialize)]
struct Hook {
    id: String,
    #[serde(default)]
    url: String,
}

#[async_trait::async_trait]
impl WebhookRegistry for MailchimpTarget {
    /// The list webhook for customer syncs; an e-commerce store sends no webhooks.
    fn topics(&self, interest: Interest) -> Vec<String> {
        match interest {
            Interest::Customers => vec![TOPIC.to_string()],
            Interest::Orders => Vec::new(),
        }
    }

    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>, ConnectorError> {
        let inner = &self.inner;
        let call = Call::new(
            Method::GET,
            WEBHOOKS,
            format!("{}/webhooks", inner.list_path()),
        );
        let listing: Listing = inner.client.json(&call).await?;
        Ok(listing
            .webhooks
            .into_iter()
            .map(|h| WebhookSubscription {
                id: h.id,
                topic: TOPIC.to_string(),
                url: h.url,
            })
            .collect())
    }

    async fn create_webhook_subscription(
        &self,
        _topic: &str,
        url: &str,
    ) -> Result<WebhookSubscription, ConnectorError> {
        let inner = &self.inner;
        let body = json!({
            "url": url,
            "events": {"subscribe": true, "unsubscribe": true, "profile": true,
                       "cleaned": true, "upemail": true, "campaign": false},
            "sources": {"user": true, "admin": true, "api": false},
        });
        let call = Call::new(
            Method::POST,
            WEBHOOKS,
            format!("{}/webhooks", inner.list_path()),
        )
        .json(&body)?;
        let hook: Hook = inner.client.json(&call).await?;
        Ok(WebhookSubscription {
            id: hook.id,
            topic: TOPIC.to_string(),
            url: url.to_string(),
        })
    }

    async fn delete_webhook_subscription(&self, id: &str) -> Result<(), ConnectorError> {
        let inner = &self.inner;
        let call = Call::new(
            Method::DELETE,
            WEBHOOK,
            format!("{}/webhooks/{}", inner.list_path(), urlencode(id)),
        );
        inner.client.send(&call).await.map(|_| ())
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
