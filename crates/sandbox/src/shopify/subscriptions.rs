//! Webhook subscriptions: the query `webhookSubscriptions(first, after, callbackUrl, topics)` and
//! the mutations `webhookSubscriptionCreate(topic, webhookSubscription: {callbackUrl, format})`
//! and `webhookSubscriptionDelete(id)` (Admin GraphQL 2025-01). A subscription's topic is posted
//! to its `callbackUrl`, signed with the app's client secret ([`Shopify::set_app`]), beside the
//! one URL [`Shopify::send_webhooks_to`] configures.
//!
//! Rules:
//! - `topic` is one of the spec's `WebhookSubscriptionTopic` values (`webhook_topics.txt`, copied
//!   from the schema); anything else is a variable-coercion error, as GraphQL answers it;
//! - `callbackUrl` must be an absolute `https` URL [D: Shopify refuses plain http]; [U] the
//!   sandbox also takes `http` for loopback hosts (`127.0.0.1`, `localhost`, `[::1]`) so tests
//!   can register a local receiver;
//! - the same topic and URL twice is a `userErrors` "Address for this topic has already been
//!   taken" [U: Shopify's wording in its REST admin];
//! - `webhookSubscriptionDelete` of an unknown id answers `userErrors` "Webhook subscription
//!   does not exist" [U] and a null `deletedWebhookSubscriptionId`;
//! - [U] only `format: JSON` is simulated (XML is a user error), `filter`, `includeFields` and
//!   `metafieldNamespaces` are kept but not applied; only the customer topics and the order
//!   topics of [`super::webhooks`] are ever sent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::graphql::Field;
use super::{MUTATION_COST, Shopify, State, error, now_secs, ts};
use crate::webhooks::Outbox;

const TOPICS: &str = include_str!("webhook_topics.txt");

/// One registered subscription.
pub struct Subscription {
    pub id: u64,
    /// The GraphQL topic (`CUSTOMERS_UPDATE`).
    pub topic: String,
    pub callback_url: String,
    pub created_at: DateTime<Utc>,
    pub(super) outbox: Outbox,
}

impl Subscription {
    /// The REST topic the deliveries carry in `X-Shopify-Topic` (`customers/update`).
    pub fn rest_topic(&self) -> String {
        rest_topic(&self.topic)
    }

    fn gid(&self) -> String {
        format!("gid://shopify/WebhookSubscription/{}", self.id)
    }

    fn json(&self) -> Value {
        json!({
            "__typename": "WebhookSubscription",
            "id": self.gid(),
            "legacyResourceId": self.id.to_string(),
            "topic": self.topic,
            "callbackUrl": self.callback_url,
            "endpoint": {"__typename": "WebhookHttpEndpoint", "callbackUrl": self.callback_url},
            "format": "JSON",
            "apiVersion": {"__typename": "ApiVersion", "handle": super::API_VERSION},
            "includeFields": [],
            "metafieldNamespaces": [],
            "filter": null,
            "createdAt": ts(&self.created_at),
            "updatedAt": ts(&self.created_at),
        })
    }
}

/// `CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE` → `customers_email_marketing_consent/update`.
pub fn rest_topic(topic: &str) -> String {
    let lower = topic.to_ascii_lowercase();
    match lower.rsplit_once('_') {
        Some((resource, action)) => format!("{resource}/{action}"),
        None => lower,
    }
}

fn known_topic(topic: &str) -> bool {
    TOPICS.lines().any(|t| t.trim() == topic)
}

fn callback_ok(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
        _ => false,
    }
}

/// The registered subscriptions of the shop, by id.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) subscriptions: BTreeMap<u64, Subscription>,
    next_id: u64,
}

impl Shopify {
    /// `(REST topic, callback URL)` of every registered subscription, in id order.
    pub fn webhook_subscriptions(&self) -> Vec<(String, String)> {
        self.lock()
            .webhooks
            .registry
            .subscriptions
            .values()
            .map(|s| (s.rest_topic(), s.callback_url.clone()))
            .collect()
    }

    /// Someone other than the operator (another app of the shop, the merchant's own endpoint)
    /// subscribes `topic` (GraphQL name, `PRODUCTS_CREATE`) to `url`; the sandbox lists it with
    /// the rest [U: Shopify lists an app only its own subscriptions]. False for an unknown topic
    /// or one already subscribed to that URL. Call from async code (see [`Outbox::send_to`]).
    pub fn add_foreign_webhook_subscription(&self, topic: &str, url: &str) -> bool {
        let mut state = self.lock();
        let registry = &mut state.webhooks.registry;
        if !known_topic(topic)
            || registry
                .subscriptions
                .values()
                .any(|s| s.topic == topic && s.callback_url == url)
        {
            return false;
        }
        registry.next_id += 1;
        let id = 1_000_000 + registry.next_id;
        let outbox = Outbox::default();
        outbox.send_to(url);
        registry.subscriptions.insert(
            id,
            Subscription {
                id,
                topic: topic.to_string(),
                callback_url: url.to_string(),
                created_at: now_secs(),
                outbox,
            },
        );
        true
    }

    /// The merchant deletes the subscription of this REST topic (e.g. `customers/update`) by
    /// hand; false when there is none.
    pub fn delete_webhook_subscription(&self, rest_topic: &str) -> bool {
        let mut state = self.lock();
        let subscriptions = &mut state.webhooks.registry.subscriptions;
        let Some(id) = subscriptions
            .iter()
            .find(|(_, s)| s.rest_topic() == rest_topic)
            .map(|(id, _)| *id)
        else {
            return false;
        };
        subscriptions.remove(&id).is_some()
    }
}

/// The query `webhookSubscriptions`: filters `callbackUrl` and `topics`, forward paging by id.
pub(super) fn list(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    let url = field.args.get("callbackUrl").and_then(Value::as_str);
    let topics: Option<Vec<&str>> = field
        .args
        .get("topics")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    let items: Vec<((i64, u64), Value)> = state
        .webhooks
        .registry
        .subscriptions
        .values()
        .filter(|s| url.is_none_or(|u| u == s.callback_url))
        .filter(|s| {
            topics
                .as_ref()
                .is_none_or(|t| t.contains(&s.topic.as_str()))
        })
        .map(|s| ((s.id as i64, s.id), s.json()))
        .collect();
    let (rows, has_next, has_prev) = super::page(items, field)?;
    let returned = rows.len() as f64;
    Ok((
        super::connection("WebhookSubscriptionConnection", rows, has_next, has_prev),
        2.0 + returned,
    ))
}

fn payload(type_name: &str, key: &str, value: Value, errors: Vec<Value>) -> (Value, f64) {
    (
        json!({"__typename": type_name, key: value, "userErrors": errors}),
        MUTATION_COST,
    )
}

fn user_error(field: &[&str], message: &str) -> Value {
    json!({"__typename": "UserError", "field": field, "message": message})
}

/// The mutation `webhookSubscriptionCreate`.
pub(super) fn create(state: &mut State, field: &Field) -> Result<(Value, f64), Value> {
    const TYPE: &str = "WebhookSubscriptionCreatePayload";
    const KEY: &str = "webhookSubscription";
    let Some(topic) = field.args.get("topic").and_then(Value::as_str) else {
        return Err(error(
            "Field 'webhookSubscriptionCreate' is missing required arguments: topic",
            "missingRequiredArguments",
        ));
    };
    if !known_topic(topic) {
        return Err(error(
            format!(
                "Argument 'topic' on Field 'webhookSubscriptionCreate' has an invalid value ({topic}). Expected type 'WebhookSubscriptionTopic!'."
            ),
            "argumentLiteralsIncompatible",
        ));
    }
    let Some(input) = field
        .args
        .get("webhookSubscription")
        .and_then(Value::as_object)
    else {
        return Err(error(
            "Field 'webhookSubscriptionCreate' is missing required arguments: webhookSubscription",
            "missingRequiredArguments",
        ));
    };
    let url = input
        .get("callbackUrl")
        .and_then(Value::as_str)
        .unwrap_or("");
    let err = |field: &[&str], message: &str| {
        Ok(payload(
            TYPE,
            KEY,
            Value::Null,
            vec![user_error(field, message)],
        ))
    };
    if !callback_ok(url) {
        return err(
            &["webhookSubscription", "callbackUrl"],
            "Address is invalid",
        );
    }
    if input
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f != "JSON")
    {
        return err(
            &["webhookSubscription", "format"],
            "The sandbox sends JSON webhooks only",
        );
    }
    let registry = &mut state.webhooks.registry;
    if registry
        .subscriptions
        .values()
        .any(|s| s.topic == topic && s.callback_url == url)
    {
        return err(
            &["webhookSubscription", "callbackUrl"],
            "Address for this topic has already been taken",
        );
    }
    registry.next_id += 1;
    let id = 1_000_000 + registry.next_id;
    let outbox = Outbox::default();
    outbox.send_to(url);
    let subscription = Subscription {
        id,
        topic: topic.to_string(),
        callback_url: url.to_string(),
        created_at: now_secs(),
        outbox,
    };
    let json = subscription.json();
    registry.subscriptions.insert(id, subscription);
    Ok(payload(TYPE, KEY, json, Vec::new()))
}

/// The mutation `webhookSubscriptionDelete`.
pub(super) fn delete(state: &mut State, field: &Field) -> Result<(Value, f64), Value> {
    const TYPE: &str = "WebhookSubscriptionDeletePayload";
    const KEY: &str = "deletedWebhookSubscriptionId";
    let Some(gid) = field.args.get("id").and_then(Value::as_str) else {
        return Err(error(
            "Field 'webhookSubscriptionDelete' is missing required arguments: id",
            "missingRequiredArguments",
        ));
    };
    let id = gid
        .strip_prefix("gid://shopify/WebhookSubscription/")
        .and_then(|n| n.parse::<u64>().ok());
    match id.and_then(|id| state.webhooks.registry.subscriptions.remove(&id)) {
        Some(removed) => {
            removed.outbox.stop();
            Ok(payload(TYPE, KEY, json!(gid), Vec::new()))
        }
        None => Ok(payload(
            TYPE,
            KEY,
            Value::Null,
            vec![user_error(&["id"], "Webhook subscription does not exist")],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_their_rest_names_and_come_from_the_schema() {
        assert_eq!(rest_topic("CUSTOMERS_UPDATE"), "customers/update");
        assert_eq!(
            rest_topic("CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE"),
            "customers_email_marketing_consent/update"
        );
        assert!(known_topic("CUSTOMERS_DELETE"));
        assert!(!known_topic("CUSTOMERS_EXPLODE"));
        assert_eq!(TOPICS.lines().count(), 195);
    }

    #[test]
    fn callbacks_are_https_or_loopback_http() {
        assert!(callback_ok("https://hooks.example.com/webhooks/shopify"));
        assert!(callback_ok("http://127.0.0.1:9000/webhooks/shopify"));
        assert!(!callback_ok("http://hooks.example.com/webhooks/shopify"));
        assert!(!callback_ok("not a url"));
    }
}
