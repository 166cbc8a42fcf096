//! `OrderSync`: a source's orders (sales, refunds, shipments) as Klaviyo metric events (seed 003)
//! or as orders in a Mailchimp e-commerce store (seed 004).

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

/// A Mailchimp e-commerce store whose orders, customers and products receive the orders.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MailchimpOrderTarget {
    /// The store's id in Mailchimp (created, connected to `audienceId`, when missing; one store
    /// per id). A store already connected to another audience is an error.
    #[schemars(length(min = 1, max = 50), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub store_id: String,
    /// The audience (list) id the store is connected to: buyers become its contacts
    /// (transactional unless they opted in; nobody is resubscribed).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub audience_id: String,
    /// The shop's domain (`shop.example.com`): the store's domain and the promo codes'
    /// redemption URL (`https://{domain}/discount/{code}`). Without it no promo codes are made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.-]+$"))]
    pub domain: Option<String>,
    /// Secret holding the API key (key `apiKey` unless `key` says otherwise), as for an
    /// AudienceSync's Mailchimp target.
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator). Defaults to `https://{dc}.api.mailchimp.com/3.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// The shop's discount codes as the store's promo rules and codes, synced every few hours
    /// (not only the codes seen on orders). Needs `domain`; Shopify sources only.
    #[serde(default)]
    pub promo_codes: PromoCodesSpec,
}

/// `target.mailchimp.promoCodes`: how often the shop's discount codes are synced.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PromoCodesSpec {
    /// Sync the shop's discount codes (default true). Off: only codes seen on orders become
    /// promo codes.
    #[serde(default = "promo_codes_enabled")]
    pub enabled: bool,
    /// The least time between two syncs of the shop's codes, e.g. `6h` (the default), `90m`
    /// (units s, m, h; at least 1m). A run within it makes no promo call; the time of the
    /// last sync is kept in `status.promoCodesSyncedAt`.
    #[serde(default = "promo_codes_every")]
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]+(s|m|h))+$') || duration(self) >= duration('60s')").message("promoCodes.every must be at least 1m"))]
    pub every: String,
}

fn promo_codes_enabled() -> bool {
    true
}

fn promo_codes_every() -> String {
    "6h".into()
}

impl Default for PromoCodesSpec {
    fn default() -> Self {
        PromoCodesSpec {
            enabled: promo_codes_enabled(),
            every: promo_codes_every(),
        }
    }
}

impl PromoCodesSpec {
    /// `every` as a duration.
    pub fn interval(&self) -> Result<std::time::Duration, String> {
        let every = crate::schedule::parse_interval(self.every.trim())
            .map_err(|e| format!("promoCodes.every: {e}"))?;
        if every < crate::schedule::MIN_INTERVAL {
            return Err("promoCodes.every must be at least 1m".into());
        }
        Ok(every)
    }
}

/// Where the orders go: Klaviyo metric events or a Mailchimp e-commerce store (exactly one).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.mailchimp), has(self.klaviyo)].exists_one(x, x)").message("give exactly one target: klaviyo or mailchimp"))]
pub struct OrderTarget {
    /// Klaviyo metrics (Placed Order, Ordered Product, Refunded Order, Fulfilled/Shipped Order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub klaviyo: Option<KlaviyoEventTarget>,
    /// Mailchimp e-commerce: orders with their lines, refund and fulfilment state, customers,
    /// products and promo codes, upserted by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailchimp: Option<MailchimpOrderTarget>,
}

/// The connection of an OrderSync's target, as every sink dispatch `match`es on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTargetRef<'a> {
    Klaviyo {
        credentials: &'a SecretKeyRef,
        endpoint: Option<&'a str>,
    },
    Mailchimp(&'a MailchimpOrderTarget),
}

impl EventTargetRef<'_> {
    pub fn credentials(&self) -> &SecretKeyRef {
        match self {
            EventTargetRef::Klaviyo { credentials, .. } => credentials,
            EventTargetRef::Mailchimp(m) => &m.credentials_secret_ref,
        }
    }

    pub fn kind_str(&self) -> &'static str {
        match self {
            EventTargetRef::Klaviyo { .. } => "klaviyo",
            EventTargetRef::Mailchimp(_) => "mailchimp",
        }
    }

    /// What the vendor's account is called in status messages.
    pub fn vendor_title(&self) -> &'static str {
        match self {
            EventTargetRef::Klaviyo { .. } => "Klaviyo",
            EventTargetRef::Mailchimp(_) => "Mailchimp",
        }
    }
}

impl OrderTarget {
    /// The target, when exactly one is given.
    pub fn get(&self) -> Option<EventTargetRef<'_>> {
        match (&self.klaviyo, &self.mailchimp) {
            (Some(k), None) => Some(EventTargetRef::Klaviyo {
                credentials: &k.credentials_secret_ref,
                endpoint: k.endpoint.as_deref(),
            }),
            (None, Some(m)) => Some(EventTargetRef::Mailchimp(m)),
            _ => None,
        }
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

/// Sends a source's orders as Klaviyo metric events (Placed Order, Ordered Product, Refunded
/// Order and Fulfilled Order; Lightspeed R-Series: Shipped Order, each once), or into a
/// Mailchimp e-commerce store (orders, customers, products, promo codes, upserted by id).
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
    doc = "Sends a commerce system's orders to Klaviyo as metric events or into a Mailchimp e-commerce store.",
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
    /// Where the orders go.
    pub target: OrderTarget,
    /// Which events to send: `placedOrder`, `orderedProduct`, `refundedOrder`, `fulfilledOrder`.
    /// Defaults to all four. Mailchimp: without `placedOrder` nothing is sent (the store holds
    /// orders), without `refundedOrder` / `fulfilledOrder` no refund / fulfilment state is sent
    /// (an order's lines always go with it).
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
    /// The activity log: the orders each run recorded at the target (and those it refused), by
    /// address, in a ConfigMap `NAME-activity` owned by the sync (`audience-operator activity
    /// --kind order NAME --email ADDRESS`).
    #[serde(default)]
    pub activity_log: crate::crd::audience::ActivityLogSpec,
    /// Shopify webhooks for this sync: with `register: true` and the operator's public URL set
    /// (`--webhook-public-url`), the operator subscribes to the shop's order topics
    /// (`orders/create`, `orders/updated`, `orders/paid`, `orders/fulfilled`, `refunds/create`)
    /// at `<publicUrl>/webhooks/shopify`, so an order starts a run within seconds, and removes
    /// them when the sync is deleted or `register` turns false. The source's credentials Secret
    /// needs the key `webhookSecret` (the Shopify app's client secret). Other sources: nothing is
    /// registered. Absent: none (webhooks set up by hand still reach the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<crate::crd::audience::WebhooksSpec>,
}

impl OrderSyncSpec {
    /// The enabled kinds.
    pub fn event_kinds(&self) -> EventKinds {
        let kinds: Vec<OrderEventKind> = self.events.iter().map(|k| k.to_core()).collect();
        EventKinds::only(&kinds)
    }
}
