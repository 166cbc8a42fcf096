//! Order events: an append-only stream beside the contact set, for targets that take events
//! (Klaviyo metrics, Mailchimp e-commerce), derived from [`crate::order::Order`]s by
//! [`crate::order_events`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::order::Decimal;

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrderEventKind {
    PlacedOrder,
    OrderedProduct,
    FulfilledOrder,
    RefundedOrder,
}

impl OrderEventKind {
    pub const ALL: [OrderEventKind; 4] = [
        OrderEventKind::PlacedOrder,
        OrderEventKind::OrderedProduct,
        OrderEventKind::RefundedOrder,
        OrderEventKind::FulfilledOrder,
    ];

    /// The kind's name in an OrderSync's `events` list (`placedOrder` …).
    pub fn spec_name(self) -> &'static str {
        match self {
            OrderEventKind::PlacedOrder => "placedOrder",
            OrderEventKind::OrderedProduct => "orderedProduct",
            OrderEventKind::FulfilledOrder => "fulfilledOrder",
            OrderEventKind::RefundedOrder => "refundedOrder",
        }
    }

    /// The kind a spec name names, if any.
    pub fn from_spec_name(name: &str) -> Option<Self> {
        OrderEventKind::ALL
            .into_iter()
            .find(|k| k.spec_name() == name.trim())
    }

    /// The kind's part of a unique id. Never changes: ids already recorded at a target depend
    /// on it.
    pub fn tag(self) -> &'static str {
        match self {
            OrderEventKind::PlacedOrder => "placed",
            OrderEventKind::OrderedProduct => "product",
            OrderEventKind::FulfilledOrder => "fulfilled",
            OrderEventKind::RefundedOrder => "refunded",
        }
    }

    /// The metric name seed 003 gives the kind for orders of `source`: Lightspeed R-Series
    /// calls a fulfilment "Shipped Order" ("Skickade beställning … Shipped Order-händelser").
    pub fn metric_name(self, source: &str) -> &'static str {
        match self {
            OrderEventKind::PlacedOrder => "Placed Order",
            OrderEventKind::OrderedProduct => "Ordered Product",
            OrderEventKind::RefundedOrder => "Refunded Order",
            OrderEventKind::FulfilledOrder if source == "lightspeed-r" => "Shipped Order",
            OrderEventKind::FulfilledOrder => "Fulfilled Order",
        }
    }
}

/// Who an event is about, as far as the order knows: what a target may create a new profile
/// with (never consent: an order is not a subscription). Empty strings are unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPerson {
    pub first_name: String,
    pub last_name: String,
    pub city: String,
    pub region: String,
    pub country: String,
    pub postal_code: String,
}

impl EventPerson {
    pub fn is_empty(&self) -> bool {
        self == &EventPerson::default()
    }
}

/// One event about one order, for one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    /// Deduplication key: the same event sent twice is recorded once. Stable across runs: built
    /// from the source, the order id, the kind and the line / refund / fulfilment id only.
    pub unique_id: String,
    pub kind: OrderEventKind,
    /// The metric name (`Placed Order`, `Shipped Order` …), see [`OrderEventKind::metric_name`].
    pub metric: String,
    /// The order's source (`shopify`, `lightspeed-r` …).
    pub source: String,
    pub email: Email,
    pub person: EventPerson,
    pub order_id: String,
    /// Monetary value in `currency` (a decimal, never a float: vendors take decimal strings).
    pub value: Decimal,
    /// ISO 4217, upper case.
    pub currency: String,
    pub occurred_at: DateTime<Utc>,
    /// True for history imported after the fact: such events must not trigger flows.
    pub backfill: bool,
    /// The seed's properties of the metric (a JSON object).
    pub properties: serde_json::Value,
}
