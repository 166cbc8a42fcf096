//! The seams between the pure core and the outside world: a [`Source`] reads customers, a
//! [`Target`] holds an audience. Connectors implement them; the core never performs I/O itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::contact::SourceContact;
use crate::email::Email;
use crate::event::OrderEvent;
use crate::mapping::FieldMapping;
use crate::member::TargetMember;
use crate::new_customers::{AudienceMember, CustomerCreate};
use crate::order::Order;
use crate::plan::Plan;
use crate::segment::SegmentPlan;
use crate::sms::{ShopCustomer, SmsWrite};
use crate::two_way::{ConsentWrite, MemberConsent};

/// An opaque, vendor-defined position in a source's change feed (a Lightspeed version, a Shopify
/// `updated_at` with its time zone, a RetailCRM history id). Saved only after the changes it covers
/// were applied downstream, so a crash never loses an update.
pub type Checkpoint = String;

/// What to read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadScope {
    /// Every customer (needed to notice deletions, which sources rarely announce).
    Full,
    /// Customers changed after the checkpoint.
    ChangedSince(Checkpoint),
    /// The members of one source segment (RetailCRM segment code, Shopify segment id).
    Segment(String),
}

/// One page read from a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourcePage {
    pub contacts: Vec<SourceContact>,
    /// Source ids the source reports deleted (incremental reads only).
    pub deleted: Vec<String>,
    /// The checkpoint to save once everything up to and including this page is applied.
    pub checkpoint: Option<Checkpoint>,
}

/// A segment a source offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentInfo {
    /// What a SegmentSync names it by (RetailCRM code, Shopify segment gid).
    pub id: String,
    pub name: String,
    pub size: Option<u64>,
}

/// Facts about a target audience that plans are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    pub name: String,
    /// Members counting towards the plan's contact limit (archived members do not).
    pub member_count: u64,
}

/// A record the target refused inside an otherwise successful call: final, not retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRejection {
    pub email: String,
    /// The vendor's words, e.g. "Member In Compliance State".
    pub reason: String,
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub created: u64,
    pub updated: u64,
    pub archived: u64,
    pub unsubscribed: u64,
    /// Existing members given the owner tag with no other change ([`Plan::is_adoption`]); not
    /// counted in `updated`.
    #[serde(default)]
    pub adopted: u64,
    pub segment_added: u64,
    pub segment_removed: u64,
    pub rejected: Vec<RecordRejection>,
    /// Write calls made to the vendor.
    pub write_calls: u64,
    /// True when a stop was requested and the apply ended at a safe point before finishing.
    pub stopped_early: bool,
}

impl ApplyReport {
    pub fn merge(&mut self, other: ApplyReport) {
        self.created += other.created;
        self.updated += other.updated;
        self.archived += other.archived;
        self.unsubscribed += other.unsubscribed;
        self.adopted += other.adopted;
        self.segment_added += other.segment_added;
        self.segment_removed += other.segment_removed;
        self.rejected.extend(other.rejected);
        self.write_calls += other.write_calls;
        self.stopped_early |= other.stopped_early;
    }
}

/// Progress callback (`done`, `total` records) and a stop flag checked between batches.
#[derive(Clone, Default)]
pub struct ApplyControl {
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    pub stop: Arc<AtomicBool>,
}

impl ApplyControl {
    pub fn report(&self, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(done, total);
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for ApplyControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplyControl")
            .field("stop", &self.stop_requested())
            .finish()
    }
}

/// Why a connector call failed. The category decides what the controller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// 401/403: the credentials are wrong or lack a scope. Retry slowly; a person must act.
    Auth,
    /// Still rate limited after the bounded retries.
    RateLimited,
    /// The plan would exceed the target's contact limit.
    CapacityExceeded,
    /// A list, segment, shop or account that does not exist.
    NotFound,
    /// The vendor answered with something we cannot read.
    InvalidResponse,
    /// Network failure or timeout.
    Transport,
    /// 5xx after the bounded retries.
    Server,
    /// The vendor refused the request itself (4xx other than auth, rate limit and not found).
    Rejected,
    /// This connector cannot do that (e.g. segments on a source that has none).
    Unsupported,
    /// The connection settings are unusable (bad id, bad URL).
    InvalidConfig,
    /// The credentials are unusable as given (empty, spaces, a key of the wrong form), found
    /// before any call: a person must fix the Secret.
    InvalidCredentials,
}

impl ErrorKind {
    /// Worth retrying soon with backoff.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Transport | ErrorKind::Server
        )
    }
}

/// A connector failure naming the vendor and endpoint. Never contains a secret: connectors build
/// messages from status codes and vendor error documents, never from request headers or URLs with keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{vendor} {endpoint}: {message}")]
pub struct ConnectorError {
    pub vendor: &'static str,
    /// Method and route template, e.g. `GET /lists/{list_id}/members`.
    pub endpoint: String,
    pub kind: ErrorKind,
    pub message: String,
    /// When the vendor said when to come back.
    pub retry_after: Option<Duration>,
}

impl ConnectorError {
    pub fn new(
        vendor: &'static str,
        endpoint: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        ConnectorError {
            vendor,
            endpoint: endpoint.into(),
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unsupported(vendor: &'static str, what: &str) -> Self {
        ConnectorError::new(
            vendor,
            what,
            ErrorKind::Unsupported,
            format!("{vendor} does not support {what}"),
        )
    }
}

/// A system customers come from.
#[async_trait]
pub trait Source: Send + Sync {
    /// `shopify`, `lightspeed-x`, `lightspeed-r`, `retailcrm`.
    fn vendor(&self) -> &'static str;

    /// Forgets what a run learnt that the next run must read afresh (sizes, name-to-id maps,
    /// vendor reference data). The operator keeps a sync's connectors between its runs and calls
    /// this before and after each, so no run trusts what an earlier one saw and a big run's
    /// memory is not held between runs. What cannot go stale (a list's id, query costs) is kept.
    async fn reset_run_state(&self) {}

    /// Pages of customers in `scope`, in the source's order, each carrying the checkpoint to save
    /// once it has been applied.
    fn read(&self, scope: ReadScope) -> BoxStream<'_, Result<SourcePage, ConnectorError>>;

    /// The segments this source offers.
    async fn segments(&self) -> Result<Vec<SegmentInfo>, ConnectorError> {
        Err(ConnectorError::unsupported(self.vendor(), "segments"))
    }

    /// A cheap fingerprint of one segment's own metadata (its size, its update time), read in
    /// about one call without reading members: when it is what the last applied run saw, the
    /// segment has not been recomputed since. `None`: this source has no such metadata (or no
    /// such segment), so only reading the members tells.
    async fn segment_stamp(&self, id: &str) -> Result<Option<String>, ConnectorError> {
        let _ = id;
        Ok(None)
    }

    /// The way to write email consent back to this source (two-way consent), if it has one.
    fn consent_writer(&self) -> Option<&dyn ConsentWriter> {
        None
    }

    /// The way to set metafields on this source's customers (customer events), if it has one.
    fn metafield_writer(&self) -> Option<&dyn crate::customer_events::MetafieldWriter> {
        None
    }
    /// Every customer with their phone and SMS consent (the SMS and write-back passes), page by
    /// page.
    fn shop_customers(&self) -> BoxStream<'_, Result<Vec<ShopCustomer>, ConnectorError>> {
        let vendor = self.vendor();
        Box::pin(futures::stream::once(async move {
            Err(ConnectorError::unsupported(vendor, "SMS consent"))
        }))
    }

    /// The way to create customers in this source (`writeBack.createCustomers`), if it has one.
    fn customer_creator(&self) -> Option<&dyn CustomerCreator> {
        None
    }

    /// The way to find a few customers by address or id without a full read, if it has one.
    fn customer_lookup(&self) -> Option<&dyn crate::customer_events::CustomerLookup> {
        None
    }

    /// The way to register webhook subscriptions at this source (`webhooks.register`), if any.
    fn webhook_registry(&self) -> Option<&dyn crate::webhook_subscriptions::WebhookRegistry> {
        None
    }
}

/// A source that takes new customers (Shopify's `customerCreate`).
#[async_trait]
pub trait CustomerCreator: Send + Sync {
    /// Creates each customer, in as few calls as the source's budget allows. A customer the
    /// source refuses (e.g. "Email has already been taken") is a rejection, never retried.
    async fn create_customers(
        &self,
        creates: &[CustomerCreate],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError>;
}

/// What writing consent back to a source did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentWriteReport {
    /// Customers whose consent the source took.
    pub written: u64,
    /// Customers the source refused (its `userErrors`): final, not retried this run.
    pub rejected: Vec<RecordRejection>,
    pub write_calls: u64,
    pub stopped_early: bool,
}

/// A source that takes email consent writes (Shopify's `customerEmailMarketingConsentUpdate`).
#[async_trait]
pub trait ConsentWriter: Send + Sync {
    /// Writes each customer's consent, in as few calls as the source's budget allows.
    async fn write_consent(
        &self,
        writes: &[ConsentWrite],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError>;
}

/// A system that holds an audience (a Mailchimp audience, a Klaviyo list).
#[async_trait]
pub trait Target: Send + Sync {
    /// `mailchimp`, `klaviyo`.
    fn vendor(&self) -> &'static str;

    /// See [`Source::reset_run_state`].
    async fn reset_run_state(&self) {}

    /// Contact events and email activity (customer events), if this target has them.
    fn customer_events(&self) -> Option<&dyn crate::customer_events::CustomerEventsTarget> {
        None
    }

    /// The way to register webhook subscriptions at this target (`webhooks.register`), if any.
    fn webhook_registry(&self) -> Option<&dyn crate::webhook_subscriptions::WebhookRegistry> {
        None
    }

    /// Name and size of the audience.
    async fn info(&self) -> Result<TargetInfo, ConnectorError>;

    /// Every member (archived ones included, so they are not created twice), page by page.
    fn members(&self) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>>;

    /// The members with these emails (archived ones included), in any order; an email that is
    /// not a member is absent from the answer. Incremental runs plan against these alone.
    ///
    /// The default streams [`Target::members`] and keeps the asked-for emails: correct for any
    /// target, as costly as a full read. Connectors override it with look-ups by email when those
    /// take fewer calls.
    async fn members_by_email(
        &self,
        emails: &[Email],
    ) -> Result<Vec<TargetMember>, ConnectorError> {
        use futures::StreamExt;
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: std::collections::HashSet<&Email> = emails.iter().collect();
        let mut found = Vec::new();
        let mut pages = self.members();
        while let Some(page) = pages.next().await {
            found.extend(page?.into_iter().filter(|m| wanted.contains(&m.email)));
        }
        Ok(found)
    }

    /// Every member with its consent and the times the target records for it (two-way
    /// consent compares them with the source's), page by page.
    fn members_with_consent(
        &self,
    ) -> BoxStream<'_, Result<Vec<(TargetMember, MemberConsent)>, ConnectorError>> {
        let vendor = self.vendor();
        Box::pin(futures::stream::once(async move {
            Err(ConnectorError::unsupported(vendor, "consent times"))
        }))
    }

    /// Every live member with its tags, names, opt-in time and SMS fields (the SMS and
    /// write-back passes), page by page.
    fn audience_members(&self) -> BoxStream<'_, Result<Vec<AudienceMember>, ConnectorError>> {
        let vendor = self.vendor();
        Box::pin(futures::stream::once(async move {
            Err(ConnectorError::unsupported(vendor, "SMS fields"))
        }))
    }

    /// Writes members' SMS fields (and nothing else of them).
    async fn write_sms(
        &self,
        writes: &[SmsWrite],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError> {
        let _ = (writes, control);
        Err(ConnectorError::unsupported(self.vendor(), "SMS fields"))
    }

    /// Creates the target fields the mapping writes when they are missing.
    async fn ensure_fields(&self, mapping: &FieldMapping) -> Result<(), ConnectorError>;

    /// Applies an audience plan with the fewest calls the vendor allows.
    async fn apply(
        &self,
        plan: &Plan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError>;

    /// The members of a named segment (static segment, tag or list), or `None` when it does not exist.
    async fn segment_members(&self, segment: &str) -> Result<Option<Vec<Email>>, ConnectorError>;

    /// Applies a segment plan, creating the segment when it is missing.
    async fn apply_segment(
        &self,
        segment: &str,
        plan: &SegmentPlan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError>;
}

/// Which orders to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderScope {
    /// Orders completed or changed at or after this time (a backfill's `since`, a first run).
    Since(chrono::DateTime<chrono::Utc>),
    /// Orders changed after the checkpoint a previous page handed out.
    ChangedSince(Checkpoint),
}

/// One page of orders, oldest change first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// The checkpoint to save once every order up to and including this page was accepted by
    /// the target.
    pub checkpoint: Option<Checkpoint>,
}

/// A system orders come from (the order half of a source connector).
#[async_trait]
pub trait OrderSource: Send + Sync {
    /// `shopify`, `lightspeed-x`, `lightspeed-r`, `retailcrm`.
    fn vendor(&self) -> &'static str;

    /// See [`Source::reset_run_state`].
    async fn reset_run_state(&self) {}

    /// Pages of orders in `scope`, each with the checkpoint to save once it is applied. An order
    /// changed after it was first read (a refund, a shipment) is read again, whole.
    fn orders(&self, scope: OrderScope) -> BoxStream<'_, Result<OrderPage, ConnectorError>>;

    /// The account's IANA time zone (`Europe/Berlin`), where the source has one.
    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }

    /// The way to register webhook subscriptions at this source (an OrderSync's
    /// `webhooks.register`), if any.
    fn webhook_registry(&self) -> Option<&dyn crate::webhook_subscriptions::WebhookRegistry> {
        None
    }

    /// The shop's discount codes with their rules (Shopify's code discounts: active, scheduled
    /// and expired), or `None` when the source has no such list.
    async fn promotions(&self) -> Result<Option<Vec<crate::order::Promotion>>, ConnectorError> {
        Ok(None)
    }
}

/// What syncing a shop's promotions into a target did, code by code.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReport {
    /// Codes read from the shop and offered to the target.
    pub codes: u64,
    /// Codes (with their rules) created at the target.
    pub created: u64,
    /// Codes whose rule or code changed at the target (amount, dates, enabled).
    pub updated: u64,
    /// Codes already at the target exactly as the shop has them: no write.
    pub unchanged: u64,
    /// Codes the target refused: (code, the vendor's words). Tried again next time.
    pub refused: Vec<(String, String)>,
    /// Write calls made to the vendor.
    pub write_calls: u64,
}

/// An event the target refused inside an otherwise successful call: final, not retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRejection {
    pub unique_id: String,
    /// The vendor's words.
    pub reason: String,
}

/// What sending events did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// Events the target accepted (its own dedupe may still drop repeats).
    pub accepted: u64,
    pub rejected: Vec<EventRejection>,
    /// Write calls made to the vendor.
    pub write_calls: u64,
    /// True when a stop was requested and sending ended at a batch boundary before finishing.
    pub stopped_early: bool,
}

/// A system that records order events (Klaviyo metrics, Mailchimp e-commerce).
#[async_trait]
pub trait EventSink: Send + Sync {
    /// `klaviyo`, `mailchimp`.
    fn vendor(&self) -> &'static str;

    /// See [`Source::reset_run_state`].
    async fn reset_run_state(&self) {}

    /// Records events in as few calls as the vendor allows. Events carry a stable
    /// [`OrderEvent::unique_id`], so sending one twice records it once.
    async fn send_events(
        &self,
        events: &[OrderEvent],
        control: &ApplyControl,
    ) -> Result<EventReport, ConnectorError>;

    /// The account's IANA time zone, where the target has one (Klaviyo `GET /api/accounts`).
    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }
}

/// How a page of orders is sent to an [`OrderSink`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSendOptions {
    /// Which parts of an order the sync sends (`refundedOrder` off: refunds are not sent, …).
    pub kinds: crate::order_events::EventKinds,
    /// Orders placed and last changed before this time are history (the backfill): the target
    /// loads them so they fire no automations. `None`: everything is live.
    pub live_from: Option<chrono::DateTime<chrono::Utc>>,
}

/// What sending orders did, by what changed at the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderReport {
    /// Orders created at the target.
    pub orders_created: u64,
    /// Lines of the orders created.
    pub lines_created: u64,
    /// Existing orders whose refund state changed.
    pub refunds: u64,
    /// Existing or new orders sent with a fulfilment state.
    pub fulfillments: u64,
    /// Existing orders changed otherwise (totals, promos).
    pub orders_updated: u64,
    /// Orders already at the target exactly as sent: no write.
    pub unchanged: u64,
    pub customers_written: u64,
    pub products_written: u64,
    pub promo_codes_written: u64,
    /// Orders the target or the sink refused, whole: nothing of them was written.
    pub rejected: Vec<crate::order_events::OrderRejection>,
    /// Write calls made to the vendor.
    pub write_calls: u64,
    pub stopped_early: bool,
}

/// A system that stores whole orders (Mailchimp e-commerce), unlike an [`EventSink`] that
/// records one event per thing that happened. A separate trait rather than a generalised
/// `EventSink`: an order store upserts the order's current state by id (placed, refunded,
/// shipped are fields of one record), so it needs the order, not its events, and the two
/// kinds of target share nothing but the vendor name and the time zone.
#[async_trait]
pub trait OrderSink: Send + Sync {
    /// `mailchimp`.
    fn vendor(&self) -> &'static str;

    /// See [`Source::reset_run_state`].
    async fn reset_run_state(&self) {}

    /// Upserts the page's sendable orders (and what they reference: customers, products,
    /// promo codes) by id, writing only what differs from the target. Orders the core's
    /// [`crate::order_events::sendable`] skips are counted by the caller and not sent.
    async fn send_orders(
        &self,
        orders: &[Order],
        options: &OrderSendOptions,
        control: &ApplyControl,
    ) -> Result<OrderReport, ConnectorError>;

    /// Ends the run: history loading is over (Mailchimp: the store's `is_syncing` back to
    /// false). Called once after the last page, also after a failed or stopped run.
    async fn finish(&self) -> Result<u64, ConnectorError> {
        Ok(0)
    }

    /// The target account's IANA time zone, where it has one.
    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }

    /// Upserts a shop's promotions (Mailchimp: a promo rule and code per code) by id, writing
    /// only what differs from the target.
    async fn sync_promotions(
        &self,
        promotions: &[crate::order::Promotion],
    ) -> Result<PromotionReport, ConnectorError> {
        let _ = promotions;
        Err(ConnectorError::unsupported(self.vendor(), "promotions"))
    }
}

/// Where an OrderSync sends: events (Klaviyo metrics) or whole orders (Mailchimp e-commerce).
pub enum OrderDestination {
    Events(Box<dyn EventSink>),
    Orders(Box<dyn OrderSink>),
}

impl OrderDestination {
    pub fn vendor(&self) -> &'static str {
        match self {
            OrderDestination::Events(s) => s.vendor(),
            OrderDestination::Orders(s) => s.vendor(),
        }
    }

    /// See [`Source::reset_run_state`].
    pub async fn reset_run_state(&self) {
        match self {
            OrderDestination::Events(s) => s.reset_run_state().await,
            OrderDestination::Orders(s) => s.reset_run_state().await,
        }
    }
}

impl fmt::Debug for OrderDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OrderDestination")
            .field(&self.vendor())
            .finish()
    }
}
