//! Orders into events: the pure step of an OrderSync between reading orders ([`Order`]) and
//! sending events ([`OrderEvent`]) to a target. No I/O.
//!
//! # Which events (seed 003)
//! A completed order with a valid email and a non-zero total gives, of the kinds enabled:
//! - **Placed Order**, value = the order total; properties `Categories`, `DiscountCodes`,
//!   `EmailDomain`, `IsDiscounted`, `Items`, `ItemCount`, `Shop`, `ShopID`, `TotalDiscounts`;
//! - **Ordered Product**, one per line, value = unit price × quantity; properties `Category`,
//!   `EmailDomain`, `Name`, `ProductID`, `Quantity` and `Price` (the unit price);
//! - **Refunded Order**, one per refund, value = the amount refunded; properties `Categories`,
//!   `DiscountCodes`, `EmailDomain`, `IsDiscounted`, `Items`, `ItemCount`, `TotalDiscounts` of
//!   the refunded lines (all lines when the source names none);
//! - **Fulfilled Order** (Lightspeed R-Series: **Shipped Order**, as the seed names it), one per
//!   fulfilment, value = the order total; properties `Items`, `Collections`, `DiscountCodes`,
//!   `TotalDiscounts` of the shipped lines (all lines when the source names none).
//!
//! Money stays a [`Decimal`] in [`OrderEvent::value`]; properties are JSON numbers written from
//! the decimal's text (`10.10` → `10.1`), never computed in floating point.
//!
//! # What gives nothing
//! - Open and cancelled orders: nothing (counted as [`SkipReason::NotCompleted`] /
//!   [`SkipReason::Cancelled`]); a cancelled order already sent is not taken back.
//! - Seed 003's exceptions, checked in this order: no email ([`SkipReason::NoEmail`]), an email
//!   that is not an address ([`SkipReason::InvalidEmail`]), an order worth $0
//!   ([`SkipReason::ZeroValue`]; a Lightspeed shipment "not tied to a customer" is the no-email
//!   case). Skipped orders are counted by reason, not rejected: nothing is wrong with them.
//! - Malformed orders are [`Rejected`](OrderOutcome::Rejected) whole with a reason, never half
//!   sent and never a panic: no total, a negative total, an empty or unknown currency (ISO 4217
//!   from the `iso_currency` crate; the "no currency" and test codes XXX and XTS are refused),
//!   a line without a product or without an id, a negative quantity or price, two lines (refunds,
//!   fulfilments) with one id, a refund or fulfilment naming a line the order does not have, a
//!   negative refund, no order id or source, and a placed time before 1990 (Klaviyo refuses
//!   those times).
//!
//! # Unique ids, cursors and dedupe
//! Every event has a [`unique_id`](OrderEvent::unique_id) of the form
//! `source:order:kind[:line|refund|fulfilment]`, each part escaped (`%` → `%25`, `:` → `%3A`) so
//! two different events can never share an id. It depends on nothing else (no time, no amount,
//! no position), so the same event read again gets the same id.
//!
//! The run this supports (the controller's, not this module's):
//! 1. Read a page of orders after the saved cursor. A source re-reads a changed order whole (a
//!    refund or a shipment moves its `updated_at`).
//! 2. [`events_of_orders`] gives the page's events, an order's all together, each id once.
//! 3. [`crate::event_batches::plan_batches`] cuts them into target-sized batches on order
//!    boundaries; the sink sends them.
//! 4. Only when every batch of the page was accepted is the page's checkpoint saved.
//!
//! A crash anywhere leaves the cursor at the last page that was fully accepted, so the page is
//! read and sent again: nothing is lost. What was sent before the crash is sent again with the
//! same ids, and Klaviyo records an event once per profile, metric and `unique_id`, so nothing is
//! recorded twice. A changed order re-read whole likewise re-produces its old events with their
//! old ids: harmless at a target that dedupes, and skipped before sending when the caller passes
//! a [`SentLedger`] of ids already accepted (then only the new Refunded / Fulfilled Order goes
//! out, and a re-run of a fully sent page sends nothing). The ledger is an optimisation, never
//! the guarantee: it may be lost or cut short (it is bounded, and kept wherever the caller keeps
//! it: the controller in a ConfigMap per sync, `sync -f` in its state file) without
//! duplicating anything at a deduping target. The property tests in this module check both.
//!
//! # Backfill
//! An event that happened before [`EventOptions::live_from`] (the sync's start) is history:
//! `backfill: true`, so it fires no flows. The event's own time decides, not the order's: a
//! refund made today of last year's order is news and may start a flow; the order's Placed
//! Order is history.

use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use xxhash_rust::xxh3::xxh3_64;

use crate::email::Email;
use crate::event::{EventPerson, OrderEvent, OrderEventKind};
use crate::order::{Decimal, Order, OrderLine, OrderStatus};

/// Which kinds of events a sync sends (default: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventKinds {
    pub placed_order: bool,
    pub ordered_product: bool,
    pub refunded_order: bool,
    pub fulfilled_order: bool,
}

impl Default for EventKinds {
    fn default() -> Self {
        EventKinds::all()
    }
}

impl EventKinds {
    pub const fn all() -> Self {
        EventKinds {
            placed_order: true,
            ordered_product: true,
            refunded_order: true,
            fulfilled_order: true,
        }
    }

    pub const fn none() -> Self {
        EventKinds {
            placed_order: false,
            ordered_product: false,
            refunded_order: false,
            fulfilled_order: false,
        }
    }

    pub fn only(kinds: &[OrderEventKind]) -> Self {
        let mut out = EventKinds::none();
        for kind in kinds {
            out.set(*kind, true);
        }
        out
    }

    pub fn contains(&self, kind: OrderEventKind) -> bool {
        match kind {
            OrderEventKind::PlacedOrder => self.placed_order,
            OrderEventKind::OrderedProduct => self.ordered_product,
            OrderEventKind::RefundedOrder => self.refunded_order,
            OrderEventKind::FulfilledOrder => self.fulfilled_order,
        }
    }

    pub fn set(&mut self, kind: OrderEventKind, on: bool) {
        match kind {
            OrderEventKind::PlacedOrder => self.placed_order = on,
            OrderEventKind::OrderedProduct => self.ordered_product = on,
            OrderEventKind::RefundedOrder => self.refunded_order = on,
            OrderEventKind::FulfilledOrder => self.fulfilled_order = on,
        }
    }
}

/// How orders become events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOptions {
    pub kinds: EventKinds,
    /// Events that happened before this time are history (`backfill: true`, no flows): the
    /// sync's start. `None`: every event is live.
    pub live_from: Option<DateTime<Utc>>,
}

/// Why an order gave no events (not an error: seed 003 skips these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// Not completed yet (open sale, draft, layby).
    NotCompleted,
    Cancelled,
    /// "Beställningar utan e-postadress synkas inte."
    NoEmail,
    /// An email that is not an address: no profile can be found or created with it.
    InvalidEmail,
    /// "Beställningar med ett värde på $0 kommer inte att synkroniseras."
    ZeroValue,
}

impl SkipReason {
    /// What status counts show (`noEmail` …).
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotCompleted => "notCompleted",
            SkipReason::Cancelled => "cancelled",
            SkipReason::NoEmail => "noEmail",
            SkipReason::InvalidEmail => "invalidEmail",
            SkipReason::ZeroValue => "zeroValue",
        }
    }
}

/// A malformed order: none of its events is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRejection {
    pub source: String,
    pub order_id: String,
    pub reason: String,
}

/// What one order gives.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderOutcome {
    /// The order's events of the enabled kinds (possibly none, e.g. only refunds enabled and no
    /// refund yet), in a fixed order: placed, products by line, refunds, fulfilments.
    Events(Vec<OrderEvent>),
    Skipped(SkipReason),
    Rejected(String),
}

/// What a page of orders gives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderEvents {
    /// Each unique id once; an order's events next to each other.
    pub events: Vec<OrderEvent>,
    pub skipped: BTreeMap<SkipReason, u64>,
    pub rejected: Vec<OrderRejection>,
    /// Events left out because the [`SentLedger`] had them (or an earlier order in the same
    /// input gave the same id: a source that listed one order twice).
    pub already_sent: u64,
    /// Orders that gave events.
    pub orders: u64,
}

/// Unique ids a target has already accepted, kept as 64-bit fingerprints (8 bytes an event), so
/// a changed order re-read whole sends only its new events. Optional: losing it duplicates
/// nothing at a target that dedupes by unique id (see the module docs).
///
/// Bounded: at most [`capacity`](Self::capacity) ids, the oldest recorded forgotten first, so a
/// sync's ledger fits in a Kubernetes object whatever its history ([`Self::to_bytes`]: 8 bytes an
/// id, oldest first). What falls out is only an old order's events, and a change to that order
/// sends them again (with their ids: recorded once at a deduping target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentLedger {
    seen: HashSet<u64>,
    /// The same fingerprints, oldest first: who goes when the ledger is full.
    order: VecDeque<u64>,
    capacity: usize,
}

impl Default for SentLedger {
    fn default() -> Self {
        SentLedger::with_capacity(SentLedger::DEFAULT_CAPACITY)
    }
}

impl SentLedger {
    /// Ids a ledger keeps by default: 60,000 (480 KB as bytes, 640 KB in a ConfigMap's base64),
    /// about 15,000 orders of three or four events each.
    pub const DEFAULT_CAPACITY: usize = 60_000;

    pub fn new() -> Self {
        SentLedger::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        SentLedger {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn key(unique_id: &str) -> u64 {
        xxh3_64(unique_id.as_bytes())
    }

    pub fn contains(&self, unique_id: &str) -> bool {
        self.seen.contains(&Self::key(unique_id))
    }

    /// Records an accepted event; true when it was not there yet. A full ledger forgets its
    /// oldest id to make room.
    pub fn insert(&mut self, unique_id: &str) -> bool {
        self.insert_key(Self::key(unique_id))
    }

    fn insert_key(&mut self, key: u64) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// Records every event of a batch the target accepted.
    pub fn record<'a>(&mut self, events: impl IntoIterator<Item = &'a OrderEvent>) {
        for event in events {
            self.insert(&event.unique_id);
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The ledger as stored: each fingerprint as 8 little-endian bytes, oldest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.order.iter().flat_map(|k| k.to_le_bytes()).collect()
    }

    /// A ledger stored by [`Self::to_bytes`], keeping the newest `capacity` ids. `None` when the
    /// bytes are not whole fingerprints (a damaged store: the caller starts afresh, which
    /// duplicates nothing at a deduping target).
    pub fn from_bytes(bytes: &[u8], capacity: usize) -> Option<Self> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let mut ledger = SentLedger::with_capacity(capacity);
        for chunk in bytes.chunks_exact(8) {
            let mut key = [0u8; 8];
            key.copy_from_slice(chunk);
            ledger.insert_key(u64::from_le_bytes(key));
        }
        Some(ledger)
    }
}

/// Escapes a unique-id part so the parts can be joined with `:` without ambiguity.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out
}

/// The stable id of an event: `source:order:kind[:sub]`, parts escaped.
pub fn unique_id(source: &str, order_id: &str, kind: OrderEventKind, sub: Option<&str>) -> String {
    let mut id = format!("{}:{}:{}", escape(source), escape(order_id), kind.tag());
    if let Some(sub) = sub {
        id.push(':');
        id.push_str(&escape(sub));
    }
    id
}

/// A decimal as a JSON number, from its text (never through arithmetic in floats).
pub fn decimal_json(value: Decimal) -> Value {
    let text = value.normalize().to_string();
    text.parse::<serde_json::Number>()
        .map(Value::Number)
        .unwrap_or(Value::String(text))
}

/// A currency Klaviyo and Mailchimp can record: an ISO 4217 code of a real currency.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && !matches!(code, "XXX" | "XTS")
        && iso_currency::Currency::from_code(code).is_some()
}

fn earliest_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Checks everything an order's events need; the reason when it is malformed.
fn malformed(order: &Order) -> Option<String> {
    if order.source.trim().is_empty() {
        return Some("the order has no source".into());
    }
    if order.order_id.trim().is_empty() {
        return Some("the order has no id".into());
    }
    let total = match order.total {
        None => return Some("the order has no total".into()),
        Some(total) => total,
    };
    if total.is_sign_negative() && !total.is_zero() {
        return Some(format!("the order total {total} is negative"));
    }
    if order.currency.trim().is_empty() {
        return Some("the order has no currency".into());
    }
    if !valid_currency(&order.currency) {
        return Some(format!(
            "the currency {:?} is not an ISO 4217 code",
            short(&order.currency, 16)
        ));
    }
    if order.total_discounts.is_sign_negative() && !order.total_discounts.is_zero() {
        return Some(format!(
            "the total discounts {} are negative",
            order.total_discounts
        ));
    }
    if order.placed_at < earliest_time() {
        return Some(format!(
            "the order was placed at {}, before 1990",
            order.placed_at
        ));
    }
    let mut line_ids = HashSet::new();
    // Decimal arithmetic panics on overflow: sums and products are checked here first.
    let mut count = Some(Decimal::ZERO);
    for (i, line) in order.lines.iter().enumerate() {
        let name = if line.line_id.is_empty() {
            format!("line {}", i + 1)
        } else {
            format!("line {:?}", short(&line.line_id, 40))
        };
        if line.line_id.trim().is_empty() {
            return Some(format!("{name} has no id"));
        }
        if !line_ids.insert(line.line_id.as_str()) {
            return Some(format!("{name} appears twice"));
        }
        if line.product_id.trim().is_empty() {
            return Some(format!("{name} has no product"));
        }
        if line.quantity.is_sign_negative() && !line.quantity.is_zero() {
            return Some(format!("{name} has a negative quantity {}", line.quantity));
        }
        if line.unit_price.is_sign_negative() && !line.unit_price.is_zero() {
            return Some(format!("{name} has a negative price {}", line.unit_price));
        }
        count = count.and_then(|c| c.checked_add(line.quantity));
        if count.is_none() || line.unit_price.checked_mul(line.quantity).is_none() {
            return Some(format!("{name}'s quantity or price is out of range"));
        }
    }
    let mut refund_ids = HashSet::new();
    for refund in &order.refunds {
        if refund.refund_id.trim().is_empty() {
            return Some("a refund has no id".into());
        }
        if !refund_ids.insert(refund.refund_id.as_str()) {
            return Some(format!(
                "refund {:?} appears twice",
                short(&refund.refund_id, 40)
            ));
        }
        if refund.amount.is_sign_negative() && !refund.amount.is_zero() {
            return Some(format!(
                "refund {:?} has a negative amount {}",
                short(&refund.refund_id, 40),
                refund.amount
            ));
        }
        if let Some(unknown) = refund
            .line_ids
            .iter()
            .find(|l| !line_ids.contains(l.as_str()))
        {
            return Some(format!(
                "refund {:?} names line {:?}, which the order does not have",
                short(&refund.refund_id, 40),
                short(unknown, 40)
            ));
        }
    }
    let mut fulfillment_ids = HashSet::new();
    for fulfillment in &order.fulfillments {
        if fulfillment.fulfillment_id.trim().is_empty() {
            return Some("a fulfilment has no id".into());
        }
        if !fulfillment_ids.insert(fulfillment.fulfillment_id.as_str()) {
            return Some(format!(
                "fulfilment {:?} appears twice",
                short(&fulfillment.fulfillment_id, 40)
            ));
        }
        if let Some(unknown) = fulfillment
            .line_ids
            .iter()
            .find(|l| !line_ids.contains(l.as_str()))
        {
            return Some(format!(
                "fulfilment {:?} names line {:?}, which the order does not have",
                short(&fulfillment.fulfillment_id, 40),
                short(unknown, 40)
            ));
        }
    }
    None
}

/// At most `max` characters of a source value quoted in a reason (a hostile source cannot make
/// a status message huge).
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// Distinct values in first-seen order.
fn distinct<'a>(values: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    values
        .filter(|v| !v.trim().is_empty())
        .filter(|v| seen.insert(v.as_str()))
        .cloned()
        .collect()
}

/// The lines named by `ids` (all lines when empty).
fn selected<'a>(order: &'a Order, ids: &[String]) -> Vec<&'a OrderLine> {
    if ids.is_empty() {
        return order.lines.iter().collect();
    }
    order
        .lines
        .iter()
        .filter(|l| ids.iter().any(|id| id == &l.line_id))
        .collect()
}

fn is_discounted(order: &Order, lines: &[&OrderLine]) -> bool {
    !order.total_discounts.is_zero()
        || !order.discount_codes.is_empty()
        || lines.iter().any(|l| !l.discount.is_zero())
}

/// The properties the order-level metrics share, over `lines`.
fn order_properties(order: &Order, email: &Email, lines: &[&OrderLine]) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert(
        "Categories".into(),
        json!(distinct(lines.iter().flat_map(|l| l.categories.iter()))),
    );
    props.insert("DiscountCodes".into(), json!(order.discount_codes));
    props.insert("EmailDomain".into(), json!(email.domain()));
    props.insert(
        "IsDiscounted".into(),
        Value::Bool(is_discounted(order, lines)),
    );
    props.insert(
        "Items".into(),
        json!(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>()),
    );
    props.insert(
        "ItemCount".into(),
        decimal_json(lines.iter().map(|l| l.quantity).sum()),
    );
    props.insert("TotalDiscounts".into(), decimal_json(order.total_discounts));
    props
}

/// Why an order is not sent to any target: skipped (nothing wrong with it) or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsendable {
    Skipped(SkipReason),
    Rejected(String),
}

/// Whether an order may go to a target at all, and the buyer's parsed email when it may: the
/// skip rules (not completed, cancelled, no or invalid email, $0) and the malformed-order checks
/// every target shares. Event targets ([`order_events`]) and order targets (Mailchimp
/// e-commerce) both decide with this, so the rules live in one place.
pub fn sendable(order: &Order) -> Result<Email, Unsendable> {
    match order.status {
        OrderStatus::Completed => {}
        OrderStatus::Open => return Err(Unsendable::Skipped(SkipReason::NotCompleted)),
        OrderStatus::Cancelled => return Err(Unsendable::Skipped(SkipReason::Cancelled)),
    }
    if order.customer.email.trim().is_empty() {
        return Err(Unsendable::Skipped(SkipReason::NoEmail));
    }
    let Ok(email) = Email::parse(&order.customer.email) else {
        return Err(Unsendable::Skipped(SkipReason::InvalidEmail));
    };
    // No total is malformed; a zero total is seed 003's "$0 order", skipped.
    if order.total.is_some_and(|t| t.is_zero()) {
        return Err(Unsendable::Skipped(SkipReason::ZeroValue));
    }
    if let Some(reason) = malformed(order) {
        return Err(Unsendable::Rejected(reason));
    }
    Ok(email)
}

/// The events of one order, or why it has none.
pub fn order_events(order: &Order, options: &EventOptions) -> OrderOutcome {
    let email = match sendable(order) {
        Ok(email) => email,
        Err(Unsendable::Skipped(reason)) => return OrderOutcome::Skipped(reason),
        Err(Unsendable::Rejected(reason)) => return OrderOutcome::Rejected(reason),
    };
    let total = order.total.unwrap_or_default();
    let customer = &order.customer;
    let person = EventPerson {
        first_name: customer.first_name.trim().to_string(),
        last_name: customer.last_name.trim().to_string(),
        city: customer.city.trim().to_string(),
        region: customer.region.trim().to_string(),
        country: customer.country.trim().to_string(),
        postal_code: customer.postal_code.trim().to_string(),
    };
    let currency = order.currency.clone();
    let make = |kind: OrderEventKind,
                sub: Option<&str>,
                value: Decimal,
                at: DateTime<Utc>,
                properties: Map<String, Value>| OrderEvent {
        unique_id: unique_id(&order.source, &order.order_id, kind, sub),
        kind,
        metric: kind.metric_name(&order.source).to_string(),
        source: order.source.clone(),
        email: email.clone(),
        person: person.clone(),
        order_id: order.order_id.clone(),
        value,
        currency: currency.clone(),
        occurred_at: at,
        backfill: options.live_from.is_some_and(|live| at < live),
        properties: Value::Object(properties),
    };
    let all: Vec<&OrderLine> = order.lines.iter().collect();
    let mut events = Vec::new();
    if options.kinds.placed_order {
        let mut props = order_properties(order, &email, &all);
        props.insert("Shop".into(), json!(order.shop_name));
        props.insert("ShopID".into(), json!(order.shop_id));
        events.push(make(
            OrderEventKind::PlacedOrder,
            None,
            total,
            order.placed_at,
            props,
        ));
    }
    if options.kinds.ordered_product {
        for line in &order.lines {
            let mut props = Map::new();
            props.insert(
                "Category".into(),
                json!(line.categories.first().map(String::as_str).unwrap_or("")),
            );
            props.insert("EmailDomain".into(), json!(email.domain()));
            props.insert("Name".into(), json!(line.name));
            props.insert("ProductID".into(), json!(line.product_id));
            props.insert("Quantity".into(), decimal_json(line.quantity));
            props.insert("Price".into(), decimal_json(line.unit_price));
            events.push(make(
                OrderEventKind::OrderedProduct,
                Some(&line.line_id),
                line.unit_price * line.quantity,
                order.placed_at,
                props,
            ));
        }
    }
    if options.kinds.refunded_order {
        for refund in &order.refunds {
            let lines = selected(order, &refund.line_ids);
            events.push(make(
                OrderEventKind::RefundedOrder,
                Some(&refund.refund_id),
                refund.amount,
                refund.refunded_at,
                order_properties(order, &email, &lines),
            ));
        }
    }
    if options.kinds.fulfilled_order {
        for fulfillment in &order.fulfillments {
            let lines = selected(order, &fulfillment.line_ids);
            let mut props = Map::new();
            props.insert(
                "Items".into(),
                json!(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>()),
            );
            props.insert(
                "Collections".into(),
                json!(distinct(lines.iter().flat_map(|l| l.collections.iter()))),
            );
            props.insert("DiscountCodes".into(), json!(order.discount_codes));
            props.insert("TotalDiscounts".into(), decimal_json(order.total_discounts));
            events.push(make(
                OrderEventKind::FulfilledOrder,
                Some(&fulfillment.fulfillment_id),
                total,
                fulfillment.fulfilled_at,
                props,
            ));
        }
    }
    OrderOutcome::Events(events)
}

/// The events of a page of orders: each unique id once (the first order that gives it wins),
/// none the ledger has, skips counted by reason, malformed orders rejected whole.
pub fn events_of_orders(
    orders: &[Order],
    options: &EventOptions,
    sent: Option<&SentLedger>,
) -> OrderEvents {
    let mut out = OrderEvents::default();
    let mut ids: HashSet<String> = HashSet::new();
    for order in orders {
        match order_events(order, options) {
            OrderOutcome::Skipped(reason) => *out.skipped.entry(reason).or_default() += 1,
            OrderOutcome::Rejected(reason) => out.rejected.push(OrderRejection {
                source: order.source.clone(),
                order_id: order.order_id.clone(),
                reason,
            }),
            OrderOutcome::Events(events) => {
                let before = out.events.len();
                for event in events {
                    if sent.is_some_and(|s| s.contains(&event.unique_id))
                        || !ids.insert(event.unique_id.clone())
                    {
                        out.already_sent += 1;
                        continue;
                    }
                    out.events.push(event);
                }
                if out.events.len() > before {
                    out.orders += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod ledger_tests {
    use super::SentLedger;

    #[test]
    fn a_full_ledger_forgets_the_oldest_id_first() {
        let mut ledger = SentLedger::with_capacity(3);
        for id in ["a", "b", "c"] {
            assert!(ledger.insert(id));
        }
        assert!(!ledger.insert("a"), "already there: no change of order");
        assert!(ledger.insert("d"));
        assert_eq!(ledger.len(), 3);
        assert!(!ledger.contains("a"), "the oldest went");
        assert!(["b", "c", "d"].iter().all(|id| ledger.contains(id)));
    }

    #[test]
    fn a_stored_ledger_comes_back_whole_or_not_at_all() {
        let mut ledger = SentLedger::with_capacity(10);
        for id in [
            "shopify:1:placed",
            "shopify:1:refunded:9",
            "lightspeed-r:5:placed",
        ] {
            ledger.insert(id);
        }
        let bytes = ledger.to_bytes();
        assert_eq!(bytes.len(), 24);
        assert_eq!(SentLedger::from_bytes(&bytes, 10), Some(ledger.clone()));
        // Stored with more ids than the new capacity: the newest are kept.
        let small = SentLedger::from_bytes(&bytes, 2).unwrap();
        assert!(!small.contains("shopify:1:placed"));
        assert!(small.contains("lightspeed-r:5:placed"));
        assert_eq!(SentLedger::from_bytes(&bytes[..23], 10), None, "torn bytes");
        assert_eq!(
            SentLedger::from_bytes(&[], 10),
            Some(SentLedger::with_capacity(10))
        );
    }
}
