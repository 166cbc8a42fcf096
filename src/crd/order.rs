//! `OrderSync`: a source's orders (sales, refunds, shipments) as Klaviyo metric events (seed 003).

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use audience_core::{EventKinds, OrderEventKind};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Schedule, SecretKeyRef, SourceSpec, schedule_default};
use super::status::SyncStatus;

/// A Klaviyo account whose metrics receive the events.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KlaviyoEventTarget {
    /// Secret holding the private API key (key `apiKey` unless `key` says otherwise); it needs
    /// the `events:write` scope.
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator). Defaults to `https://a.klaviyo.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
}

/// Where the events go. Only Klaviyo for now (Mailchimp e-commerce is not built yet).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.klaviyo)").message("give a target: klaviyo (Mailchimp e-commerce targets are not supported yet)"))]
pub struct OrderTarget {
    /// Klaviyo metrics (Placed Order, Ordered Product, Refunded Order, Fulfilled/Shipped Order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub klaviyo: Option<KlaviyoEventTarget>,
}

/// The connection of an OrderSync's target, as every event-sink dispatch `match`es on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTargetRef<'a> {
    Klaviyo {
        credentials: &'a SecretKeyRef,
        endpoint: Option<&'a str>,
    },
}

impl EventTargetRef<'_> {
    pub fn credentials(&self) -> &SecretKeyRef {
        match self {
            EventTargetRef::Klaviyo { credentials, .. } => credentials,
        }
    }

    pub fn kind_str(&self) -> &'static str {
        match self {
            EventTargetRef::Klaviyo { .. } => "klaviyo",
        }
    }
}

impl OrderTarget {
    pub fn get(&self) -> Option<EventTargetRef<'_>> {
        let k = self.klaviyo.as_ref()?;
        Some(EventTargetRef::Klaviyo {
            credentials: &k.credentials_secret_ref,
            endpoint: k.endpoint.as_deref(),
        })
    }
}

/// One kind of event an OrderSync sends.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum OrderEventKindSpec {
    /// `Placed Order`, one per completed order, value = the order total.
    PlacedOrder,
    /// `Ordered Product`, one per line.
    OrderedProduct,
    /// `Refunded Order`, one per refund.
    RefundedOrder,
    /// `Fulfilled Order` (Lightspeed R-Series: `Shipped Order`), one per fulfilment.
    FulfilledOrder,
}

impl OrderEventKindSpec {
    pub fn to_core(self) -> OrderEventKind {
        match self {
            OrderEventKindSpec::PlacedOrder => OrderEventKind::PlacedOrder,
            OrderEventKindSpec::OrderedProduct => OrderEventKind::OrderedProduct,
            OrderEventKindSpec::RefundedOrder => OrderEventKind::RefundedOrder,
            OrderEventKindSpec::FulfilledOrder => OrderEventKind::FulfilledOrder,
        }
    }
}

fn all_events() -> Vec<OrderEventKindSpec> {
    vec![
        OrderEventKindSpec::PlacedOrder,
        OrderEventKindSpec::OrderedProduct,
        OrderEventKindSpec::RefundedOrder,
        OrderEventKindSpec::FulfilledOrder,
    ]
}

/// History to import once, on the first run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackfillSpec {
    /// The first day (UTC) of orders to import, e.g. `2024-01-01`. Events before the sync was
    /// created are sent marked as backfill, so they fire no flows.
    #[schemars(
        length(min = 10, max = 10),
        regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    )]
    pub since: String,
}

impl BackfillSpec {
    /// `since` as the start of that day in UTC.
    pub fn since_time(&self) -> Result<chrono::DateTime<chrono::Utc>, String> {
        let day = chrono::NaiveDate::parse_from_str(self.since.trim(), "%Y-%m-%d")
            .map_err(|_| format!("backfill.since {:?} is not a date (YYYY-MM-DD)", self.since))?;
        Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
    }
}

/// Sends a source's orders as Klaviyo metric events: Placed Order, Ordered Product, Refunded
/// Order and Fulfilled Order (Lightspeed R-Series: Shipped Order), each once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sync.audience-operator.io",
    version = "v1alpha1",
    kind = "OrderSync",
    plural = "ordersyncs",
    singular = "ordersync",
    namespaced,
    status = "SyncStatus",
    shortname = "os",
    shortname = "ordersync",
    category = "audience",
    doc = "Sends a commerce system's orders to Klaviyo as metric events.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Placed",
        type_ = "integer",
        json_path = ".status.lastRun.counts.events.placedOrder"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OrderSyncSpec {
    /// Where orders come from (exactly one kind).
    pub source: SourceSpec,
    /// Where the events go.
    pub target: OrderTarget,
    /// Which events to send: `placedOrder`, `orderedProduct`, `refundedOrder`, `fulfilledOrder`.
    /// Defaults to all four.
    #[serde(default = "all_events")]
    #[schemars(length(min = 1, max = 4))]
    #[x_kube(validation = Rule::new("self.all(k, self.filter(j, j == k).size() == 1)").message("events: name each kind once"))]
    pub events: Vec<OrderEventKindSpec>,
    /// History to import on the first run. Without it the first run starts at the sync's
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillSpec>,
    /// When to run. Defaults to every hour.
    #[serde(default = "schedule_default")]
    pub schedule: Schedule,
    /// Stop scheduling runs (a run under way finishes).
    #[serde(default)]
    pub suspend: bool,
    /// Count only: read orders and report the events a run would send, send nothing and keep
    /// the cursor where it is.
    #[serde(default)]
    pub dry_run: bool,
}

impl OrderSyncSpec {
    /// The enabled kinds.
    pub fn event_kinds(&self) -> EventKinds {
        let kinds: Vec<OrderEventKind> = self.events.iter().map(|k| k.to_core()).collect();
        EventKinds::only(&kinds)
    }
}
