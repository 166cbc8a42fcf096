//! Webhook registration at Shopify (`webhooks.register`): `webhookSubscriptions` to list,
//! `webhookSubscriptionCreate(topic, webhookSubscription: {callbackUrl, format: JSON})` and
//! `webhookSubscriptionDelete(id)` (Admin GraphQL 2025-01). One subscription per topic; the
//! operator subscribes to the topics its receiver handles: the customer topics ([`TOPICS`]) for
//! an AudienceSync, the order topics ([`ORDER_TOPICS`]) for an OrderSync.

use audience_core::ConnectorError;
use audience_core::webhook_subscriptions::{Interest, WebhookRegistry, WebhookSubscription};
use serde::Deserialize;
use serde_json::json;

use super::{ShopifySource, VENDOR};
use crate::http;

/// The topics the operator's receiver acts on (`customers/create` … as GraphQL enum values).
pub const TOPICS: &[&str] = &[
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",
    "CUSTOMERS_DELETE",
    "CUSTOMERS_EMAIL_MARKETING_CONSENT_UPDATE",
];

/// The order topics (`orders/create` …): an order placed, changed (cancelled, edited), paid or
/// fulfilled, and a refund. `ORDERS_UPDATED` alone would cover most, but Shopify sends it for
/// changes an OrderSync does not care about as well; the specific topics name what happened.
pub const ORDER_TOPICS: &[&str] = &[
    "ORDERS_CREATE",
    "ORDERS_UPDATED",
    "ORDERS_PAID",
    "ORDERS_FULFILLED",
    "REFUNDS_CREATE",
];

/// Subscriptions per listing page (an app rarely has more than a few dozen).
const PAGE: u32 = 100;
/// What a mutation costs [D]; the query helper adds the base 2 to `first`.
const MUTATION_COST: u32 = 10;

const LIST: &str = "query Subs($first: Int!, $after: String) { webhookSubscriptions(first: $first, after: $after) { edges { node { id topic callbackUrl } } pageInfo { hasNextPage endCursor } } }";
const CREATE: &str = "mutation Create($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) { webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) { webhookSubscription { id topic } userErrors { field message } } }";
const DELETE: &str = "mutation Delete($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } } }";

#[derive(Deserialize)]
struct ListData {
    #[serde(rename = "webhookSubscriptions")]
    subscriptions: Connection,
}

#[derive(Deserialize)]
struct Connection {
    edges: Vec<Edge>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct PageInfo {
    #[serde(rename = "hasNextPage")]
    has_next_page: bool,
    #[serde(rename = "endCursor")]
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Edge {
    node: Node,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    topic: String,
    /// Deprecated in 2025-01 in favour of `endpoint` (a union), but still served; the plain
    /// field keeps the query free of fragments. Null-safe: only HTTP endpoints are the operator's.
    #[serde(default, rename = "callbackUrl")]
    callback_url: Option<String>,
}

#[derive(Deserialize)]
struct UserError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct CreatePayload {
    #[serde(rename = "webhookSubscription")]
    subscription: Option<CreatedNode>,
    #[serde(default, rename = "userErrors")]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct CreatedNode {
    id: String,
    topic: String,
}

#[derive(Deserialize)]
struct CreateData {
    #[serde(rename = "webhookSubscriptionCreate")]
    payload: Option<CreatePayload>,
}

#[derive(Deserialize)]
struct DeletePayload {
    #[serde(default, rename = "userErrors")]
    user_errors: Vec<UserError>,
}

#[derive(Deserialize)]
struct DeleteData {
    #[serde(rename = "webhookSubscriptionDelete")]
    payload: Option<DeletePayload>,
}

fn refused(op: &str, errors: &[UserError]) -> ConnectorError {
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    http::invalid_response(
        VENDOR,
        &format!("POST graphql {op}"),
        format!("Shopify refused: {}", messages.join("; ")),
    )
}

#[async_trait::async_trait]
impl WebhookRegistry for ShopifySource {
    fn topics(&self, interest: Interest) -> Vec<String> {
        let topics = match interest {
            Interest::Customers => TOPICS,
            Interest::Orders => ORDER_TOPICS,
        };
        topics.iter().map(|t| t.to_string()).collect()
    }

    async fn webhook_subscriptions(&self) -> Result<Vec<WebhookSubscription>, ConnectorError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data: ListData = self
                .query(
                    "webhookSubscriptions",
                    LIST,
                    json!({"first": PAGE, "after": after}),
                    PAGE,
                )
                .await?;
            let page = data.subscriptions;
            out.extend(page.edges.into_iter().filter_map(|e| {
                Some(WebhookSubscription {
                    url: e.node.callback_url?,
                    id: e.node.id,
                    topic: e.node.topic,
                })
            }));
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) => after = Some(cursor),
                _ => return Ok(out),
            }
        }
    }

    async fn create_webhook_subscription(
        &self,
        topic: &str,
        url: &str,
    ) -> Result<WebhookSubscription, ConnectorError> {
        let data: CreateData = self
            .query(
                "webhookSubscriptionCreate",
                CREATE,
                json!({"topic": topic, "sub": {"callbackUrl": url, "format": "JSON"}}),
                MUTATION_COST - 2,
            )
            .await?;
        let payload = data.payload.ok_or_else(|| {
            http::invalid_response(
                VENDOR,
                "POST graphql webhookSubscriptionCreate",
                "webhookSubscriptionCreate answered no payload",
            )
        })?;
        match payload.subscription {
            Some(node) if payload.user_errors.is_empty() => Ok(WebhookSubscription {
                id: node.id,
                topic: node.topic,
                url: url.to_string(),
            }),
            _ => Err(refused("webhookSubscriptionCreate", &payload.user_errors)),
        }
    }

    async fn delete_webhook_subscription(&self, id: &str) -> Result<(), ConnectorError> {
        let data: DeleteData = self
            .query(
                "webhookSubscriptionDelete",
                DELETE,
                json!({"id": id}),
                MUTATION_COST - 2,
            )
            .await?;
        let payload = data.payload.ok_or_else(|| {
            http::invalid_response(
                VENDOR,
                "POST graphql webhookSubscriptionDelete",
                "webhookSubscriptionDelete answered no payload",
            )
        })?;
        if payload.user_errors.is_empty() {
            Ok(())
        } else {
            Err(refused("webhookSubscriptionDelete", &payload.user_errors))
        }
    }
}
