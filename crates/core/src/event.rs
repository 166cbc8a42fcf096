//! Order events: an append-only stream beside the contact set, for targets that take events
//! (Klaviyo metrics, Mailchimp e-commerce), derived from [`crate::order::Order`]s.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::order::Decimal;

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderEventKind {
    PlacedOrder,
    OrderedProduct,
    FulfilledOrder,
    RefundedOrder,
}

/// One event about one order, for one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// Deduplication key: the same event sent twice is recorded once.
    pub unique_id: String,
    pub kind: OrderEventKind,
    pub email: Email,
    pub order_id: String,
    /// Monetary value in `currency` (a decimal, never a float: vendors take decimal strings).
    pub value: Decimal,
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    /// True for history imported after the fact: such events must not trigger flows.
    pub backfill: bool,
    pub properties: serde_json::Value,
}
