//! Shopify source: customers and segments through the Admin GraphQL API (version 2025-01).
//!
//! Reads `customers(first: 250, sortKey: UPDATED_AT)` page by page (one call per 250 customers),
//! `segments` and `customerSegmentMembers`.
//!
//! **Checkpoints.** A checkpoint is the RFC 3339 `updatedAt` (in UTC, with its `Z`) of the last
//! customer delivered, optionally followed by `|` and the numeric ids of the customers delivered with
//! exactly that `updatedAt`, e.g. `2025-03-01T10:00:00Z|7000012,7000019`. Incremental reads ask for
//! `updated_at:>='…'`: Shopify's times have one-second precision, so `>` would lose a customer edited
//! in the same second as the last one read but after the read finished; `>=` reads that second again,
//! and the ids in the checkpoint drop the customers already delivered, so an unchanged customer is
//! never delivered twice. (When more than [`MAX_BOUNDARY_IDS`] customers share that second, or the
//! second is less than a minute old and a customer may still be edited within it, the ids are
//! left out and they are delivered again, which is harmless.) Because pages are in `updatedAt` order,
//! every page of a full or incremental read carries a valid checkpoint: saving it after the page was
//! applied never skips a change. A customer edited during a read moves to the end of the order and is
//! read again there. Shopify announces deletions only by webhook, so deletions are found by the
//! engine's full diff; `SourcePage::deleted` stays empty here.
//!
//! **Rate limits.** Shopify's GraphQL limit is a leaky bucket of query-cost points per app and shop.
//! Every answer carries `extensions.cost` (`requestedQueryCost`, `throttleStatus{maximumAvailable,
//! currentlyAvailable, restoreRate}`); the connector keeps that estimate per shop and token (shared
//! by every sync in the process) and, before each query, waits until the bucket has restored enough
//! for the query's cost, reserving it until the answer comes (so two reads sharing a token never
//! spend the same points twice). The cost used is the `requestedQueryCost` the shop reported for
//! the same query before (Shopify also counts nested objects, so `2 + first` is only a first guess). A
//! `THROTTLED` answer (HTTP 200) pauses every request on the key for
//! `(requested − currentlyAvailable) / restoreRate` seconds and the query is retried, at most
//! [`ShopifyConfig::max_throttle_retries`] times; then the read fails with `ErrorKind::RateLimited`.
//! HTTP 429/5xx and transport failures are retried by [`crate::http::send`].
//!
//! **Consent** (`emailMarketingConsent.marketingState`): SUBSCRIBED → Subscribed, PENDING → Pending
//! (double opt-in not yet confirmed), UNSUBSCRIBED → Unsubscribed, NOT_SUBSCRIBED → NotSubscribed;
//! REDACTED (the customer's data was erased on request) and INVALID (the address cannot receive
//! mail) both map to Cleaned: neither may ever be mailed again and neither may be resubscribed by a
//! sync, which is exactly what Cleaned means downstream. A customer without an email has no consent
//! object and is NotSubscribed.
//!
//! **Segments** are read with `customerSegmentMembers(segmentId:)`, one call per 250 members, mapping
//! each member's `defaultEmailAddress.marketingState` like the customer's consent. Not handled [U]:
//! Shopify may answer a complex segment asynchronously (since 2023-01, via
//! `customerSegmentMembersQueryCreate` and polling); such an answer is a GraphQL error here, reported
//! as `ErrorKind::Rejected` with Shopify's message.
//!
//! `Customer.email` and `Customer.emailMarketingConsent` are deprecated in 2025-01's schema in
//! favour of `defaultEmailAddress`, which that version's `Customer` does not have yet (it exists only
//! on `CustomerSegmentMember`), so the deprecated fields are the ones to read in 2025-01.
//!
//! The access token travels only in the `X-Shopify-Access-Token` header; errors name the vendor,
//! the endpoint and the GraphQL root field, never the token.
//!
//! Orders are read by the same source ([`audience_core::OrderSource`], in [`orders`]).

mod channels;
mod consent;
mod lookup;
pub mod metafields;
mod orders;
mod promotions;
pub mod webhook_subscriptions;

pub use consent::BATCH as CONSENT_BATCH;

pub use orders::ORDERS_PER_PAGE;
pub use promotions::{CODES_PER_DISCOUNT, DISCOUNTS_PER_PAGE, MAX_CODES_PER_DISCOUNT};

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use audience_core::{
    Address, Checkpoint, ConnectorError, Consent, ErrorKind, ReadScope, SegmentInfo, Source,
    SourceContact, SourcePage,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

use crate::config::{checked_secret, invalid_config};
use crate::http::{self, KeyBudget, RetryPolicy};
use crate::vendor::VendorDescriptor;

pub const VENDOR: &str = "shopify";
/// What the operator needs to know about Shopify.
pub const DESCRIPTOR: VendorDescriptor = VendorDescriptor {
    name: VENDOR,
    default_secret_key: "accessToken",
    credential_name: "access token",
    hosts: &["*.myshopify.com"],
};
/// The Admin API version this connector is written against.
pub const API_VERSION: &str = "2025-01";
/// The largest page Shopify serves [D].
pub const MAX_PAGE_SIZE: u32 = 250;
/// Boundary ids kept in a checkpoint at most.
pub const MAX_BOUNDARY_IDS: usize = 100;
/// How long after its second an `updatedAt` may still be handed out (edits within that second,
/// and clock skew between Shopify and us): a boundary this recent keeps no ids (see
/// [`Boundary::checkpoint`]).
const SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// How to reach one shop.
#[derive(Clone)]
pub struct ShopifyConfig {
    /// `my-shop` or `my-shop.myshopify.com`.
    pub shop: String,
    /// Replaces `https://{shop}.myshopify.com` (e.g. a sandbox's `http://127.0.0.1:PORT/shopify`).
    pub base_url: Option<String>,
    /// The Admin API access token (`shpat_…`). Never logged.
    pub access_token: String,
    /// Customers per call (1..=250; default 250).
    pub page_size: u32,
    /// Requests in flight on this token at once (every sync in the process shares it).
    pub max_concurrent: usize,
    /// THROTTLED answers retried per query before giving up.
    pub max_throttle_retries: u32,
    pub retry: RetryPolicy,
}

impl ShopifyConfig {
    pub fn new(shop: impl Into<String>, access_token: impl Into<String>) -> Self {
        ShopifyConfig {
            shop: shop.into(),
            base_url: None,
            access_token: access_token.into(),
            page_size: MAX_PAGE_SIZE,
            max_concurrent: 2,
            max_throttle_retries: 10,
            retry: RetryPolicy::default(),
        }
    }

    /// A config pointing at `base_url` (e.g. the sandbox), with `shop` only used for display.
    pub fn with_base_url(base_url: impl Into<String>, access_token: impl Into<String>) -> Self {
        let mut config = ShopifyConfig::new("sandbox", access_token);
        config.base_url = Some(base_url.into());
        config
    }
}

impl fmt::Debug for ShopifyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifyConfig")
            .field("shop", &self.shop)
            .field("base_url", &self.base_url)
            .field("access_token", &"<redacted>")
            .field("page_size", &self.page_size)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_throttle_retries", &self.max_throttle_retries)
            .finish()
    }
}

/// What the connector believes the shop's cost bucket holds.
#[derive(Debug)]
struct BucketEstimate {
    known: bool,
    /// Points reserved by queries sent but not answered yet (of every source sharing the estimate).
    in_flight: f64,
    available: f64,
    maximum: f64,
    restore_rate: f64,
    at: Instant,
}

impl BucketEstimate {
    fn available_now(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.available + elapsed * self.restore_rate).min(self.maximum)
    }
}

/// Points a query holds in the estimate until its answer is read (released on drop, whatever happened).
struct Reservation<'a> {
    bucket: &'a Mutex<BucketEstimate>,
    cost: f64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut bucket) = self.bucket.lock() {
            bucket.in_flight = (bucket.in_flight - self.cost).max(0.0);
        }
    }
}

/// The estimate shared by every source reading one shop with one token.
fn bucket_for(url: &str, token: &str) -> Arc<Mutex<BucketEstimate>> {
    type Buckets = Mutex<HashMap<u64, Arc<Mutex<BucketEstimate>>>>;
    static BUCKETS: OnceLock<Buckets> = OnceLock::new();
    let id = xxh3_64(format!("{url}\u{0}{token}").as_bytes());
    BUCKETS
        .get_or_init(Default::default)
        .lock()
        .expect("buckets lock")
        .entry(id)
        .or_insert_with(|| {
            Arc::new(Mutex::new(BucketEstimate {
                known: false,
                in_flight: 0.0,
                available: 0.0,
                maximum: 0.0,
                restore_rate: 0.0,
                at: Instant::now(),
            }))
        })
        .clone()
}

/// A Shopify source.
pub struct ShopifySource {
    url: String,
    token: String,
    page_size: u32,
    max_throttle_retries: u32,
    retry: RetryPolicy,
    budget: Arc<KeyBudget>,
    bucket: Arc<Mutex<BucketEstimate>>,
    /// Last reported `requestedQueryCost` per root field.
    costs: Mutex<HashMap<&'static str, f64>>,
    client: reqwest::Client,
}

impl fmt::Debug for ShopifySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopifySource")
            .field("url", &self.url)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    invalid_config(VENDOR, message)
}

/// The shop origin the connector takes as `base_url` for an `endpoint` override: the URL as
/// given, or its origin part when it was written as the full GraphQL URL (the connector adds
/// `/admin/api/{version}/graphql.json`).
pub fn base_url_for_endpoint(endpoint: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    match base.find("/admin/api/") {
        Some(at) => base[..at].to_string(),
        None => base.to_string(),
    }
}

impl ShopifySource {
    pub fn new(config: ShopifyConfig) -> Result<Self, ConnectorError> {
        let token = checked_secret(VENDOR, DESCRIPTOR.credential_name, &config.access_token)?;
        if !(1..=MAX_PAGE_SIZE).contains(&config.page_size) {
            return Err(config_error(format!(
                "page size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let base = match &config.base_url {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => {
                let shop = config
                    .shop
                    .trim()
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .trim_end_matches(".myshopify.com");
                let valid =
                    !shop.is_empty() && shop.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(config_error(format!(
                        "invalid shop {:?} (expected `name` or `name.myshopify.com`)",
                        config.shop
                    )));
                }
                format!("https://{shop}.myshopify.com")
            }
        };
        let url = format!("{base}/admin/api/{API_VERSION}/graphql.json");
        url::Url::parse(&url).map_err(|_| config_error("invalid base URL"))?;
        Ok(ShopifySource {
            budget: http::budget_for(VENDOR, &token, config.max_concurrent),
            bucket: bucket_for(&url, &token),
            url,
            token,
            page_size: config.page_size,
            max_throttle_retries: config.max_throttle_retries,
            retry: config.retry,
            costs: Mutex::new(HashMap::new()),
            client: http::client(),
        })
    }

    fn endpoint(op: &str) -> String {
        format!("POST /admin/api/{API_VERSION}/graphql.json ({op})")
    }

    /// Waits until the estimated bucket holds `cost`, then reserves it until the answer comes.
    async fn wait_for_points(
        &self,
        op: &'static str,
        cost: f64,
    ) -> Result<Reservation<'_>, ConnectorError> {
        let reserve = |bucket: &mut BucketEstimate| {
            bucket.in_flight += cost;
            Reservation {
                bucket: &self.bucket,
                cost,
            }
        };
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().expect("bucket lock");
                if !bucket.known {
                    return Ok(reserve(&mut bucket));
                }
                if cost > bucket.maximum {
                    return Err(ConnectorError::new(
                        VENDOR,
                        Self::endpoint(op),
                        ErrorKind::InvalidConfig,
                        format!(
                            "a page costs {cost} points but the shop's bucket holds only {}; lower the page size",
                            bucket.maximum
                        ),
                    ));
                }
                let now = Instant::now();
                let available = bucket.available_now(now);
                if available >= cost {
                    bucket.available = available - cost;
                    bucket.at = now;
                    return Ok(reserve(&mut bucket));
                }
                if bucket.restore_rate <= 0.0 {
                    return Err(ConnectorError::new(
                        VENDOR,
                        Self::endpoint(op),
                        ErrorKind::InvalidResponse,
                        "the shop reported a restore rate of 0",
                    ));
                }
                // The shop's numbers may be absurd (a restore rate of 1e-300): capped, never a panic.
                http::capped_secs((cost - available) / bucket.restore_rate)
            };
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
        }
    }

    /// Takes the shop's figures after an answer. Queries of other reads still in flight may not be
    /// counted in them yet, so their reservations are subtracted: the estimate errs on the side of
    /// waiting, never of being throttled.
    fn learn(&self, op: &'static str, cost: &Cost, own: &Reservation<'_>) {
        if let Some(requested) = cost.requested_query_cost {
            self.costs.lock().expect("costs lock").insert(op, requested);
        }
        if let Some(status) = &cost.throttle_status {
            let mut bucket = self.bucket.lock().expect("bucket lock");
            bucket.known = true;
            let others = (bucket.in_flight - own.cost).max(0.0);
            bucket.available = status.currently_available - others;
            bucket.maximum = status.maximum_available;
            bucket.restore_rate = status.restore_rate;
            bucket.at = Instant::now();
        }
    }

    /// Runs one GraphQL query and returns its `data`, waiting for the cost bucket and retrying THROTTLED.
    /// Whatever the shop's error text echoes, the access token never leaves in an error.
    async fn query<T: DeserializeOwned>(
        &self,
        op: &'static str,
        document: &str,
        variables: Value,
        first: u32,
    ) -> Result<T, ConnectorError> {
        self.query_unredacted(op, document, variables, first)
            .await
            .map_err(|e| http::redact_error(e, &[&self.token]))
    }

    async fn query_unredacted<T: DeserializeOwned>(
        &self,
        op: &'static str,
        document: &str,
        variables: Value,
        first: u32,
    ) -> Result<T, ConnectorError> {
        let endpoint = Self::endpoint(op);
        let body = json!({"query": document, "variables": variables});
        let mut throttled = 0;
        loop {
            let cost = self
                .costs
                .lock()
                .expect("costs lock")
                .get(op)
                .copied()
                .unwrap_or(2.0 + f64::from(first));
            let reservation = self.wait_for_points(op, cost).await?;
            let response = http::send(
                VENDOR,
                &endpoint,
                &self.budget,
                &self.retry,
                || {
                    self.client
                        .post(&self.url)
                        .header("X-Shopify-Access-Token", &self.token)
                        .json(&body)
                },
                http::default_verdict,
            )
            .await?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(http::status_error(
                    VENDOR,
                    &endpoint,
                    status,
                    &rest_error_message(&text),
                ));
            }
            let envelope: Envelope<T> = http::json_body(VENDOR, &endpoint, response).await?;
            if let Some(cost) = envelope.extensions.as_ref().and_then(|e| e.cost.as_ref()) {
                self.learn(op, cost, &reservation);
            }
            if let Some(errors) = envelope.errors.filter(|e| !e.is_empty()) {
                if errors.iter().any(|e| e.code() == Some("THROTTLED")) {
                    throttled += 1;
                    let wait = throttle_wait(envelope.extensions.as_ref(), cost);
                    if throttled > self.max_throttle_retries {
                        let mut error = ConnectorError::new(
                            VENDOR,
                            &endpoint,
                            ErrorKind::RateLimited,
                            format!(
                                "still THROTTLED after {} retries",
                                self.max_throttle_retries
                            ),
                        );
                        error.retry_after = Some(wait);
                        return Err(error);
                    }
                    tracing::debug!(
                        vendor = VENDOR,
                        op,
                        wait_ms = wait.as_millis() as u64,
                        "throttled"
                    );
                    self.budget.pause_for(wait);
                    continue;
                }
                return Err(graphql_error(&endpoint, &errors));
            }
            return envelope.data.ok_or_else(|| {
                http::invalid_response(VENDOR, &endpoint, "neither data nor errors in the answer")
            });
        }
    }

    async fn customers_page(
        &self,
        filter: Option<&str>,
        after: Option<&str>,
    ) -> Result<Connection<CustomerNode>, ConnectorError> {
        let data: CustomersData = self
            .query(
                "customers",
                CUSTOMERS_QUERY,
                json!({"first": self.page_size, "after": after, "query": filter}),
                self.page_size,
            )
            .await?;
        Ok(data.customers)
    }

    async fn members_page(
        &self,
        segment: &str,
        after: Option<&str>,
    ) -> Result<Connection<MemberNode>, ConnectorError> {
        let data: MembersData = self
            .query(
                "customerSegmentMembers",
                MEMBERS_QUERY,
                json!({"segmentId": segment, "first": self.page_size, "after": after}),
                self.page_size,
            )
            .await?;
        Ok(data.customer_segment_members)
    }

    async fn next_page(&self, read: &mut ReadState) -> Result<SourcePage, ConnectorError> {
        match &read.mode {
            Mode::Customers { filter } => {
                let page = self
                    .customers_page(filter.as_deref(), read.cursor.as_deref())
                    .await?;
                let endpoint = Self::endpoint("customers");
                let mut contacts = Vec::with_capacity(page.edges.len());
                for edge in page.edges {
                    let contact = customer_contact(edge.node, &endpoint)?;
                    read.boundary.observe(&contact);
                    if read.skip.contains(&contact) {
                        continue;
                    }
                    contacts.push(contact);
                }
                read.advance(page.page_info, &endpoint)?;
                Ok(SourcePage {
                    contacts,
                    deleted: Vec::new(),
                    checkpoint: read
                        .boundary
                        .checkpoint(Utc::now())
                        .or(read.start_checkpoint.clone()),
                })
            }
            Mode::Segment { id } => {
                let page = self.members_page(id, read.cursor.as_deref()).await?;
                let endpoint = Self::endpoint("customerSegmentMembers");
                let contacts = page
                    .edges
                    .into_iter()
                    .map(|edge| member_contact(edge.node, &endpoint))
                    .collect::<Result<Vec<_>, _>>()?;
                read.advance(page.page_info, &endpoint)?;
                Ok(SourcePage {
                    contacts,
                    deleted: Vec::new(),
                    checkpoint: None,
                })
            }
        }
    }
}

/// The boundary of a read in `updatedAt` order: the last time seen and the ids seen at it.
#[derive(Debug, Default, Clone, PartialEq)]
struct Boundary {
    at: Option<DateTime<Utc>>,
    ids: Vec<u64>,
    overflow: bool,
}

impl Boundary {
    fn observe(&mut self, contact: &SourceContact) {
        let id = numeric_id(&contact.source_id);
        match self.at {
            Some(at) if contact.updated_at < at => {} // out of order: cannot move the boundary back
            Some(at) if contact.updated_at == at => {
                if let Some(id) = id.filter(|id| !self.ids.contains(id)) {
                    if self.ids.len() < MAX_BOUNDARY_IDS {
                        self.ids.push(id);
                    } else {
                        self.overflow = true;
                    }
                }
            }
            _ => {
                self.at = Some(contact.updated_at);
                self.ids = id.into_iter().collect();
                self.overflow = false;
            }
        }
    }

    /// The boundary as a checkpoint. The ids say "already delivered at this second", which holds
    /// only once the second is over: a customer delivered at 10:00:01 and edited again at
    /// 10:00:01.8 still carries 10:00:01 (one-second precision), and skipping its id would lose
    /// that edit until the next full run. So while the boundary is within [`SETTLE`] of `now`
    /// the ids are left out and the next read delivers that second again (harmless repeats).
    fn checkpoint(&self, now: DateTime<Utc>) -> Option<Checkpoint> {
        let boundary = self.at?;
        let at = boundary.to_rfc3339_opts(SecondsFormat::Secs, true);
        if self.overflow || self.ids.is_empty() || boundary + SETTLE > now {
            return Some(at);
        }
        let ids: Vec<String> = self.ids.iter().map(u64::to_string).collect();
        Some(format!("{at}|{}", ids.join(",")))
    }

    fn parse(checkpoint: &str) -> Result<Boundary, ConnectorError> {
        let bad = || {
            ConnectorError::new(
                VENDOR,
                "checkpoint",
                ErrorKind::InvalidConfig,
                format!(
                    "unreadable checkpoint {checkpoint:?} (expected RFC 3339 time with zone, optionally `|id,id`)"
                ),
            )
        };
        let (time, ids) = match checkpoint.split_once('|') {
            Some((time, ids)) => (time, Some(ids)),
            None => (checkpoint, None),
        };
        let at = DateTime::parse_from_rfc3339(time.trim())
            .map_err(|_| bad())?
            .with_timezone(&Utc);
        let ids = match ids {
            None => Vec::new(),
            Some(ids) => ids
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse::<u64>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?,
        };
        Ok(Boundary {
            at: Some(at),
            ids,
            overflow: false,
        })
    }

    /// True for a customer an earlier read already delivered at the boundary.
    fn contains(&self, contact: &SourceContact) -> bool {
        self.at == Some(contact.updated_at)
            && numeric_id(&contact.source_id).is_some_and(|id| self.ids.contains(&id))
    }
}

fn numeric_id(gid: &str) -> Option<u64> {
    gid.rsplit('/').next()?.parse().ok()
}

enum Mode {
    Customers { filter: Option<String> },
    Segment { id: String },
}

struct ReadState {
    mode: Mode,
    cursor: Option<String>,
    done: bool,
    /// Customers delivered by the previous read at its boundary.
    skip: Boundary,
    boundary: Boundary,
    start_checkpoint: Option<Checkpoint>,
}

impl ReadState {
    fn advance(&mut self, info: PageInfo, endpoint: &str) -> Result<(), ConnectorError> {
        if info.has_next_page {
            let Some(cursor) = info.end_cursor else {
                return Err(http::invalid_response(
                    VENDOR,
                    endpoint,
                    "hasNextPage without an endCursor",
                ));
            };
            self.cursor = Some(cursor);
        } else {
            self.done = true;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for ShopifySource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn read(&self, scope: ReadScope) -> BoxStream<'_, Result<SourcePage, ConnectorError>> {
        let start = match scope {
            ReadScope::Full => Ok(ReadState {
                mode: Mode::Customers { filter: None },
                cursor: None,
                done: false,
                skip: Boundary::default(),
                boundary: Boundary::default(),
                start_checkpoint: None,
            }),
            ReadScope::ChangedSince(checkpoint) => Boundary::parse(&checkpoint).map(|skip| {
                let since = skip
                    .at
                    .expect("parsed boundary has a time")
                    .to_rfc3339_opts(SecondsFormat::Secs, true);
                ReadState {
                    mode: Mode::Customers {
                        filter: Some(format!("updated_at:>='{since}'")),
                    },
                    cursor: None,
                    done: false,
                    boundary: skip.clone(),
                    skip,
                    start_checkpoint: Some(checkpoint),
                }
            }),
            ReadScope::Segment(id) => Ok(ReadState {
                mode: Mode::Segment {
                    id: segment_gid(&id),
                },
                cursor: None,
                done: false,
                skip: Boundary::default(),
                boundary: Boundary::default(),
                start_checkpoint: None,
            }),
        };
        futures::stream::try_unfold(Some(start), move |state| async move {
            let mut read = match state {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(read)) => read,
            };
            if read.done {
                return Ok(None);
            }
            let page = self.next_page(&mut read).await?;
            Ok(Some((page, Some(Ok(read)))))
        })
        .boxed()
    }

    fn consent_writer(&self) -> Option<&dyn audience_core::ConsentWriter> {
        Some(self)
    }

    fn metafield_writer(&self) -> Option<&dyn audience_core::customer_events::MetafieldWriter> {
        Some(self)
    }

    fn customer_lookup(&self) -> Option<&dyn audience_core::customer_events::CustomerLookup> {
        Some(self)
    }

    fn shop_customers(
        &self,
    ) -> BoxStream<'_, Result<Vec<audience_core::ShopCustomer>, ConnectorError>> {
        self.channel_pages()
    }

    fn customer_creator(&self) -> Option<&dyn audience_core::CustomerCreator> {
        Some(self)
    }

    fn webhook_registry(
        &self,
    ) -> Option<&dyn audience_core::webhook_subscriptions::WebhookRegistry> {
        Some(self)
    }

    async fn segments(&self) -> Result<Vec<SegmentInfo>, ConnectorError> {
        let endpoint = Self::endpoint("segments");
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data: SegmentsData = self
                .query(
                    "segments",
                    SEGMENTS_QUERY,
                    json!({"first": MAX_PAGE_SIZE, "after": after}),
                    MAX_PAGE_SIZE,
                )
                .await?;
            out.extend(data.segments.nodes.into_iter().map(|s| SegmentInfo {
                id: s.id,
                name: s.name,
                size: None,
            }));
            if !data.segments.page_info.has_next_page {
                return Ok(out);
            }
            after = Some(data.segments.page_info.end_cursor.ok_or_else(|| {
                http::invalid_response(VENDOR, &endpoint, "hasNextPage without an endCursor")
            })?);
        }
    }

    /// The segment's member count (`customerSegmentMembers(first: 1) { totalCount }`, one call
    /// of cost 3): Shopify evaluates a segment when asked, so a customer edit that moves someone
    /// in or out shows as a new count at once. `lastEditDate` is not used: it is when the
    /// segment's query was edited, not when its members changed. An exchange of members at an
    /// equal count is not seen here: the schedule's read finds it.
    async fn segment_stamp(&self, id: &str) -> Result<Option<String>, ConnectorError> {
        let data: StampData = self
            .query(
                "customerSegmentMembers",
                SEGMENT_STAMP_QUERY,
                json!({"segmentId": segment_gid(id)}),
                1,
            )
            .await?;
        Ok(Some(format!(
            "size={}",
            data.customer_segment_members.total_count
        )))
    }
}

/// Accepts `gid://shopify/Segment/N` or the bare number.
fn segment_gid(id: &str) -> String {
    let id = id.trim();
    if id.starts_with("gid://") {
        id.to_string()
    } else {
        format!("gid://shopify/Segment/{id}")
    }
}

const CUSTOMERS_QUERY: &str = r#"query Customers($first: Int!, $after: String, $query: String) {
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    edges {
      node {
        id
        email
        firstName
        lastName
        phone
        tags
        updatedAt
        defaultAddress { address1 address2 city province provinceCode zip country countryCodeV2 company }
        emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"#;

const MEMBERS_QUERY: &str = r#"query SegmentMembers($segmentId: ID!, $first: Int!, $after: String) {
  customerSegmentMembers(segmentId: $segmentId, first: $first, after: $after) {
    edges {
      node {
        id
        firstName
        lastName
        defaultEmailAddress { emailAddress marketingState }
        defaultPhoneNumber { phoneNumber }
        defaultAddress { address1 address2 city province provinceCode zip country countryCodeV2 }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"#;

const SEGMENT_STAMP_QUERY: &str = r#"query SegmentStamp($segmentId: ID!) {
  customerSegmentMembers(segmentId: $segmentId, first: 1) { totalCount }
}"#;

const SEGMENTS_QUERY: &str = r#"query Segments($first: Int!, $after: String) {
  segments(first: $first, after: $after) {
    nodes { id name query }
    pageInfo { hasNextPage endCursor }
  }
}"#;

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    errors: Option<Vec<GraphqlError>>,
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct GraphqlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<Value>,
}

impl GraphqlError {
    fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

#[derive(Deserialize)]
struct Extensions {
    cost: Option<Cost>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cost {
    requested_query_cost: Option<f64>,
    throttle_status: Option<ThrottleStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleStatus {
    maximum_available: f64,
    currently_available: f64,
    restore_rate: f64,
}

/// How long a THROTTLED query should wait before it can run.
fn throttle_wait(extensions: Option<&Extensions>, fallback_cost: f64) -> Duration {
    let cost = extensions.and_then(|e| e.cost.as_ref());
    let requested = cost
        .and_then(|c| c.requested_query_cost)
        .unwrap_or(fallback_cost);
    match cost.and_then(|c| c.throttle_status.as_ref()) {
        Some(status) if status.restore_rate > 0.0 => {
            let missing = (requested - status.currently_available).max(0.0);
            http::capped_secs(missing / status.restore_rate) + Duration::from_millis(20)
        }
        _ => Duration::from_secs(1),
    }
}

fn graphql_error(endpoint: &str, errors: &[GraphqlError]) -> ConnectorError {
    let code = errors.iter().find_map(GraphqlError::code);
    let kind = match code {
        Some("ACCESS_DENIED" | "UNAUTHORIZED") => ErrorKind::Auth,
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("INTERNAL_SERVER_ERROR") => ErrorKind::Server,
        _ => ErrorKind::Rejected,
    };
    let messages: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| match e.code() {
            Some(code) => format!("{} ({code})", e.message),
            None => e.message.clone(),
        })
        .collect();
    let mut message = format!("GraphQL error: {}", messages.join("; "));
    if message.chars().count() > 400 {
        message = message.chars().take(400).collect::<String>() + "…";
    }
    ConnectorError::new(VENDOR, endpoint, kind, message)
}

/// The message of a non-GraphQL error document (`{"errors": "…"}` or `{"errors": {…}}`).
fn rest_error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(value) => match value.get("errors") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
struct CustomersData {
    customers: Connection<CustomerNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MembersData {
    customer_segment_members: Connection<MemberNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StampData {
    customer_segment_members: MemberCount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberCount {
    total_count: u64,
}

#[derive(Deserialize)]
struct SegmentsData {
    segments: NodesConnection<SegmentNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection<T> {
    edges: Vec<Edge<T>>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodesConnection<T> {
    nodes: Vec<T>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct Edge<T> {
    node: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct SegmentNode {
    id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerNode {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    updated_at: String,
    default_address: Option<MailingAddress>,
    email_marketing_consent: Option<EmailConsent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailConsent {
    marketing_state: String,
    /// When the consent was last changed (null when never given or changed).
    #[serde(default)]
    consent_updated_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberNode {
    id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    default_email_address: Option<EmailAddress>,
    default_phone_number: Option<PhoneNumber>,
    default_address: Option<MailingAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailAddress {
    email_address: String,
    marketing_state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumber {
    phone_number: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailingAddress {
    company: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    country: Option<String>,
    country_code_v2: Option<String>,
}

fn address(a: Option<MailingAddress>) -> Option<Address> {
    let a = a?;
    let address = Address {
        line1: a.address1.unwrap_or_default(),
        line2: a.address2.unwrap_or_default(),
        city: a.city.unwrap_or_default(),
        region: a.province_code.or(a.province).unwrap_or_default(),
        postal_code: a.zip.unwrap_or_default(),
        country: a.country_code_v2.or(a.country).unwrap_or_default(),
    };
    (!address.is_empty()).then_some(address)
}

/// Maps `CustomerEmailMarketingState` (and the member's `CustomerEmailAddressMarketingState`).
pub fn consent(marketing_state: &str) -> Consent {
    match marketing_state {
        "SUBSCRIBED" => Consent::Subscribed,
        "PENDING" => Consent::Pending,
        "UNSUBSCRIBED" => Consent::Unsubscribed,
        "REDACTED" | "INVALID" => Consent::Cleaned,
        // NOT_SUBSCRIBED, and any state a later API version adds: never mail without a known opt-in.
        _ => Consent::NotSubscribed,
    }
}

fn customer_contact(node: CustomerNode, endpoint: &str) -> Result<SourceContact, ConnectorError> {
    let updated_at = DateTime::parse_from_rfc3339(&node.updated_at)
        .map_err(|_| {
            http::invalid_response(
                VENDOR,
                endpoint,
                format!("customer {} has an unreadable updatedAt", node.id),
            )
        })?
        .with_timezone(&Utc);
    // Shopify keeps the company on the customer's addresses: the default one's is the customer's
    // (`fieldMapping.customFields: {company: …}`, e.g. Klaviyo's `organization`).
    let custom_fields = node
        .default_address
        .as_ref()
        .and_then(|a| a.company.as_deref())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| [("company".to_string(), c.to_string())].into())
        .unwrap_or_default();
    Ok(SourceContact {
        source_id: node.id,
        email: node.email.unwrap_or_default(),
        first_name: node.first_name.unwrap_or_default(),
        last_name: node.last_name.unwrap_or_default(),
        phone: node.phone.unwrap_or_default(),
        address: address(node.default_address),
        tags: node.tags.into_iter().collect::<BTreeSet<_>>(),
        custom_fields,
        // An unreadable consent time is no reason to drop the customer: it is only a hint.
        consented_at: node
            .email_marketing_consent
            .as_ref()
            .and_then(|c| c.consent_updated_at.as_deref())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        consent: node
            .email_marketing_consent
            .map_or(Consent::NotSubscribed, |c| consent(&c.marketing_state)),
        updated_at,
    })
}

/// A segment member as a contact. Members carry no tags or `updatedAt` in 2025-01, so `updated_at`
/// is the Unix epoch (segment syncs compare emails only) and the id is rewritten to the customer's
/// gid so it matches full reads ([U]: the member id's number is the customer's).
fn member_contact(node: MemberNode, endpoint: &str) -> Result<SourceContact, ConnectorError> {
    let number = numeric_id(&node.id).ok_or_else(|| {
        http::invalid_response(
            VENDOR,
            endpoint,
            format!("unexpected member id {:?}", node.id),
        )
    })?;
    let (email, consent_state) = match node.default_email_address {
        Some(e) => (e.email_address, consent(&e.marketing_state)),
        None => (String::new(), Consent::NotSubscribed),
    };
    Ok(SourceContact {
        source_id: format!("gid://shopify/Customer/{number}"),
        email,
        first_name: node.first_name.unwrap_or_default(),
        last_name: node.last_name.unwrap_or_default(),
        phone: node
            .default_phone_number
            .map(|p| p.phone_number)
            .unwrap_or_default(),
        address: address(node.default_address),
        tags: BTreeSet::new(),
        custom_fields: Default::default(),
        consented_at: None,
        consent: consent_state,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: u64, at: &str) -> SourceContact {
        SourceContact {
            source_id: format!("gid://shopify/Customer/{id}"),
            updated_at: DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&Utc),
            ..Default::default()
        }
    }

    #[test]
    fn shop_names_and_domains_give_the_admin_url() {
        for shop in [
            "my-shop",
            "my-shop.myshopify.com",
            "https://my-shop.myshopify.com/",
        ] {
            let source = ShopifySource::new(ShopifyConfig::new(shop, "shpat_x")).unwrap();
            assert_eq!(
                source.url,
                "https://my-shop.myshopify.com/admin/api/2025-01/graphql.json"
            );
        }
        assert!(ShopifySource::new(ShopifyConfig::new("my shop", "shpat_x")).is_err());
        assert!(ShopifySource::new(ShopifyConfig::new("my-shop", "")).is_err());
        let mut config = ShopifyConfig::new("my-shop", "shpat_x");
        config.page_size = 251;
        assert!(ShopifySource::new(config).is_err());
        let shown = format!("{:?}", ShopifyConfig::new("my-shop", "shpat_secret"));
        assert!(!shown.contains("shpat_secret"));
    }

    #[test]
    fn consent_mapping() {
        assert_eq!(consent("SUBSCRIBED"), Consent::Subscribed);
        assert_eq!(consent("PENDING"), Consent::Pending);
        assert_eq!(consent("UNSUBSCRIBED"), Consent::Unsubscribed);
        assert_eq!(consent("NOT_SUBSCRIBED"), Consent::NotSubscribed);
        assert_eq!(consent("REDACTED"), Consent::Cleaned);
        assert_eq!(consent("INVALID"), Consent::Cleaned);
        assert_eq!(consent("SOMETHING_NEW"), Consent::NotSubscribed);
    }

    #[test]
    fn boundary_round_trips_and_skips_delivered_ids() {
        let mut b = Boundary::default();
        b.observe(&contact(1, "2025-01-01T10:00:00Z"));
        b.observe(&contact(2, "2025-01-01T10:00:01Z"));
        b.observe(&contact(3, "2025-01-01T10:00:01Z"));
        let later: DateTime<Utc> = "2025-01-01T10:01:02Z".parse().unwrap();
        let cp = b.checkpoint(later).unwrap();
        assert_eq!(cp, "2025-01-01T10:00:01Z|2,3");
        // A second that may still be open keeps no ids: an edit within it is read again.
        let soon: DateTime<Utc> = "2025-01-01T10:00:30Z".parse().unwrap();
        assert_eq!(b.checkpoint(soon).unwrap(), "2025-01-01T10:00:01Z");
        let parsed = Boundary::parse(&cp).unwrap();
        assert!(parsed.contains(&contact(3, "2025-01-01T10:00:01Z")));
        assert!(!parsed.contains(&contact(4, "2025-01-01T10:00:01Z")));
        assert!(!parsed.contains(&contact(3, "2025-01-01T10:00:02Z")));
        // Zones other than Z are read as the same instant.
        let other = Boundary::parse("2025-01-01T13:00:01+03:00").unwrap();
        assert_eq!(other.at, parsed.at);
        assert!(Boundary::parse("2025-01-01 10:00:01").is_err());
    }
}
