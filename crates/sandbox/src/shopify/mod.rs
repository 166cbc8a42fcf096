//! Simulator of the Shopify Admin GraphQL API, version 2025-01 (`shared/specs/shopify/
//! admin-graphql-2025-01.graphql` and the Shopify section of `shared/specs/README.md`).
//!
//! Served under `/shopify`: `POST /admin/api/2025-01/graphql.json` with the
//! `X-Shopify-Access-Token` header. One shop per sandbox. What it answers:
//! - `customers(first, after, reverse, sortKey: ID|UPDATED_AT|CREATED_AT, query)` with the search
//!   terms `updated_at:` / `created_at:` (`>`, `>=`, `<`, `<=`, quoted RFC 3339; a time without a zone
//!   is read in the shop's time zone, as Shopify does), `id:` and `email:`, joined by `AND` or
//!   by `OR`;
//! - `segments(first, after, reverse)` and `customerSegmentMembers(segmentId, first, after, reverse)`;
//! - the mutations `customerEmailMarketingConsentUpdate(input: {...})`, `customerCreate(input:
//!   {...})` (see [`customer_create`]: emails unique case-insensitively, Shopify's user errors)
//!   and `metafieldsSet(metafields: [...])` on customers (see [`metafields`]);
//! - `orders`, `order(id)` and `shop` (see [`orders`], whose nested connections multiply the cost);
//! - `codeDiscountNodes` and `codeDiscountNode(id)`, the shop's code discounts (see [`discounts`]).
//!
//! Inline and named fragments select the members of unions and interfaces (see [`graphql`]).
//!
//! With webhooks on ([`Shopify::send_webhooks_to`]), customer changes are also posted as Shopify
//! posts them (see [`webhooks`]).
//!
//! Only the selected fields are returned, and selecting a field the type lacks is an error, so a
//! client asking for something the real schema does not have fails here too.
//!
//! Rate limiting is Shopify's calculated-query-cost leaky bucket, per shop (the real one is per app
//! and shop). The requested cost of a connection field is approximated as `2 + first` and the
//! actual cost as `2 + returned nodes`; a mutation costs 10. Real Shopify also charges for nested
//! objects (so its figures can be higher): a client must read `requestedQueryCost` from the
//! answers instead of assuming this formula. A query whose requested cost exceeds what is available
//! is answered HTTP 200 with `errors[{message: "Throttled", extensions: {code: "THROTTLED"}}]` and
//! the throttle status; one costing more than 1000 is refused with `MAX_COST_EXCEEDED`. The default
//! bucket is the Standard plan's restore rate of 100 points/s [D] with a bucket of 2000 points
//! (20 seconds of restore, like the older 1000 at 50/s; the bucket size is [U]); tests change it with
//! [`Shopify::set_bucket`].
//!
//! Deleted customers simply disappear (Shopify announces deletions only by webhook).

pub mod customer_create;
pub mod discounts;
pub mod graphql;
pub mod metafields;
pub mod orders;
pub mod subscriptions;
pub mod webhooks;

pub use discounts::{CodeDiscount, DEMO_DISCOUNTS, DiscountValue};
pub use orders::{
    AppliedValue, DEMO_ORDERS, DiscountApplication, Fulfillment, Order, OrderLine, Product, Refund,
};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::seed::{Marketing, Person};
use graphql::{Field, OperationKind};

/// The API version served.
pub const API_VERSION: &str = "2025-01";
/// The access token a fresh sandbox accepts.
pub const DEFAULT_ACCESS_TOKEN: &str = "shpat_sandbox_0123456789abcdef";
/// The largest `first` a connection accepts [D].
pub const MAX_PAGE_SIZE: i64 = 250;
/// The most a single query may cost [D].
pub const MAX_QUERY_COST: f64 = 1000.0;
/// What a mutation costs [D: "mutations cost 10"].
pub const MUTATION_COST: f64 = 10.0;

const INVALID_TOKEN: &str =
    "[API] Invalid API key or access token (unrecognized login or wrong password)";

/// A postal address as Shopify's `MailingAddress` holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MailingAddress {
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 (`countryCodeV2`).
    pub country_code: Option<String>,
    /// The company of the address (Shopify keeps a customer's company on their addresses).
    pub company: Option<String>,
}

/// One customer of the simulated shop.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Assigned by the shop (`gid://shopify/Customer/{id}`).
    pub id: u64,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub tags: Vec<String>,
    pub note: Option<String>,
    pub default_address: Option<MailingAddress>,
    /// `CustomerEmailMarketingState`: NOT_SUBSCRIBED, PENDING, SUBSCRIBED, UNSUBSCRIBED, REDACTED, INVALID.
    pub marketing_state: String,
    /// SINGLE_OPT_IN, CONFIRMED_OPT_IN or UNKNOWN.
    pub marketing_opt_in_level: Option<String>,
    pub consent_updated_at: Option<DateTime<Utc>>,
    /// `CustomerSmsMarketingState` when the customer has a phone.
    pub sms_marketing_state: Option<String>,
    /// `smsMarketingConsent.consentUpdatedAt`: when the SMS consent last changed.
    pub sms_consent_updated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Default for Customer {
    fn default() -> Self {
        Customer {
            id: 0,
            email: None,
            first_name: None,
            last_name: None,
            phone: None,
            tags: Vec::new(),
            note: None,
            default_address: None,
            marketing_state: "NOT_SUBSCRIBED".into(),
            marketing_opt_in_level: None,
            consent_updated_at: None,
            sms_marketing_state: None,
            sms_consent_updated_at: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

impl Customer {
    pub fn gid(&self) -> String {
        format!("gid://shopify/Customer/{}", self.id)
    }
}

/// A customer segment with an explicit member list.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: u64,
    pub name: String,
    /// The ShopifyQL query shown to clients (membership is `members`, not evaluated from it).
    pub query: String,
    pub members: BTreeSet<u64>,
    pub created_at: DateTime<Utc>,
}

/// What the simulator's rate limiter saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShopifyCounters {
    /// GraphQL documents executed (throttled ones excluded).
    pub executed: u64,
    /// Queries answered THROTTLED by the bucket (injected faults are not counted here).
    pub throttled: u64,
    /// The lowest `currentlyAvailable` after a deduction; never negative by construction, kept so
    /// tests can show a client kept well inside the limit.
    pub min_available: f64,
    /// Points actually spent.
    pub points_spent: f64,
    /// Executed root fields by name (`customers`, `segments`, …).
    pub root_fields: BTreeMap<String, u64>,
    /// Consent updates that changed a customer's consent (an older `consentUpdatedAt` does not).
    pub consent_updates: u64,
    /// Customers `customerCreate` created.
    pub customers_created: u64,
}

struct Bucket {
    maximum: f64,
    restore_rate: f64,
    available: f64,
    at: Instant,
}

impl Bucket {
    fn new(maximum: f64, restore_rate: f64) -> Bucket {
        Bucket {
            maximum,
            restore_rate,
            available: maximum,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.available = (self.available + elapsed * self.restore_rate).min(self.maximum);
        self.at = now;
    }

    fn status(&self) -> Value {
        json!({
            "maximumAvailable": self.maximum,
            "currentlyAvailable": self.available.floor(),
            "restoreRate": self.restore_rate,
        })
    }
}

struct State {
    token: String,
    webhooks: webhooks::Webhooks,
    shop_offset: FixedOffset,
    customers: BTreeMap<u64, Customer>,
    segments: BTreeMap<u64, Segment>,
    next_customer_id: u64,
    next_segment_id: u64,
    bucket: Bucket,
    counters: ShopifyCounters,
    orders: orders::Orders,
    discounts: discounts::Discounts,
    metafields: metafields::Store,
}

impl Default for State {
    fn default() -> Self {
        State {
            token: DEFAULT_ACCESS_TOKEN.into(),
            webhooks: Default::default(),
            // America/New_York in winter; only used for search times written without a zone.
            shop_offset: FixedOffset::west_opt(5 * 3600).expect("valid offset"),
            customers: BTreeMap::new(),
            segments: BTreeMap::new(),
            next_customer_id: 7_000_001,
            next_segment_id: 500_001,
            bucket: Bucket::new(2000.0, 100.0),
            counters: ShopifyCounters {
                min_available: 2000.0,
                ..Default::default()
            },
            orders: orders::Orders::default(),
            discounts: discounts::Discounts::default(),
            metafields: metafields::Store::default(),
        }
    }
}

/// The simulated shop, shared by every request.
#[derive(Clone, Default)]
pub struct Shopify {
    state: Arc<Mutex<State>>,
}

fn now_secs() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.timestamp_opt(now.timestamp(), 0)
        .single()
        .unwrap_or(now)
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Shopify {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("shopify state lock")
    }

    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// Adds the demo people as customers (ids in the people's order) and two tag-based segments.
    pub fn seed_demo(&self, people: &[Person]) {
        let mut state = self.lock();
        let mut vip = BTreeSet::new();
        let mut newsletter = BTreeSet::new();
        for person in people {
            let id = state.next_customer_id;
            state.next_customer_id += 1;
            let (marketing_state, level) = match person.marketing {
                Marketing::Subscribed => ("SUBSCRIBED", Some("SINGLE_OPT_IN")),
                Marketing::NotSubscribed => ("NOT_SUBSCRIBED", None),
                Marketing::Unsubscribed => ("UNSUBSCRIBED", Some("SINGLE_OPT_IN")),
            };
            if person.tags.iter().any(|t| t == "vip") {
                vip.insert(id);
            }
            if person.tags.iter().any(|t| t == "newsletter") {
                newsletter.insert(id);
            }
            state.customers.insert(
                id,
                Customer {
                    id,
                    email: Some(person.email.clone()),
                    first_name: Some(person.first_name.clone()),
                    last_name: Some(person.last_name.clone()),
                    phone: Some(person.phone.clone()),
                    tags: person.tags.clone(),
                    note: None,
                    default_address: Some(MailingAddress {
                        address1: Some(format!("{} Market Street", 10 + person.index % 90)),
                        address2: None,
                        city: Some(person.city.clone()),
                        province: Some(person.region.clone()),
                        province_code: Some(person.region.clone()),
                        zip: Some(person.zip.clone()),
                        country: Some(country_name(&person.country).to_string()),
                        country_code: Some(person.country.clone()),
                        company: person
                            .tags
                            .iter()
                            .any(|t| t == "wholesale")
                            .then(|| format!("{} Trading", person.last_name)),
                    }),
                    marketing_state: marketing_state.into(),
                    marketing_opt_in_level: level.map(str::to_string),
                    consent_updated_at: level.map(|_| person.created_at),
                    sms_marketing_state: Some("NOT_SUBSCRIBED".into()),
                    sms_consent_updated_at: None,
                    created_at: person.created_at,
                    updated_at: person.updated_at,
                },
            );
        }
        if !people.is_empty() {
            let created = people[0].created_at;
            for (name, query, members) in [
                ("VIP customers", "customer_tags CONTAINS 'vip'", vip),
                (
                    "Newsletter readers",
                    "customer_tags CONTAINS 'newsletter'",
                    newsletter,
                ),
            ] {
                let id = state.next_segment_id;
                state.next_segment_id += 1;
                state.segments.insert(
                    id,
                    Segment {
                        id,
                        name: name.into(),
                        query: query.into(),
                        members,
                        created_at: created,
                    },
                );
            }
        }
    }

    /// The token requests must carry in `X-Shopify-Access-Token`.
    pub fn set_access_token(&self, token: &str) {
        self.lock().token = token.to_string();
    }

    pub fn access_token(&self) -> String {
        self.lock().token.clone()
    }

    /// Interprets search times written without a zone at this UTC offset.
    pub fn set_shop_utc_offset(&self, offset: FixedOffset) {
        self.lock().shop_offset = offset;
    }

    /// Replaces the cost bucket (full, `maximum` points, restoring `restore_rate` points/s) and
    /// restarts the counters' low-water mark.
    pub fn set_bucket(&self, maximum: f64, restore_rate: f64) {
        let mut state = self.lock();
        state.bucket = Bucket::new(maximum, restore_rate);
        state.counters.min_available = maximum;
    }

    /// `(maximumAvailable, currentlyAvailable, restoreRate)` now.
    pub fn bucket(&self) -> (f64, f64, f64) {
        let mut state = self.lock();
        state.bucket.refill();
        let b = &state.bucket;
        (b.maximum, b.available, b.restore_rate)
    }

    pub fn counters(&self) -> ShopifyCounters {
        self.lock().counters.clone()
    }

    /// Adds a customer (its `id` is assigned; `created_at`/`updated_at` are now unless set).
    /// Returns the numeric id.
    pub fn add_customer(&self, mut customer: Customer) -> u64 {
        let mut state = self.lock();
        let id = state.next_customer_id;
        state.next_customer_id += 1;
        customer.id = id;
        let now = now_secs();
        if customer.created_at == DateTime::<Utc>::UNIX_EPOCH {
            customer.created_at = now;
        }
        if customer.updated_at == DateTime::<Utc>::UNIX_EPOCH {
            customer.updated_at = now;
        }
        state.customers.insert(id, customer);
        state.notify_customer(&["customers/create"], id);
        id
    }

    /// Edits a customer and stamps `updated_at` with the current second. False when it does not exist.
    pub fn edit_customer(&self, id: u64, edit: impl FnOnce(&mut Customer)) -> bool {
        let mut state = self.lock();
        let Some(customer) = state.customers.get_mut(&id) else {
            return false;
        };
        edit(customer);
        customer.id = id;
        customer.updated_at = now_secs();
        state.notify_customer(&["customers/update"], id);
        true
    }

    /// Deletes a customer (and its segment memberships). False when it did not exist.
    pub fn delete_customer(&self, id: u64) -> bool {
        let mut state = self.lock();
        for segment in state.segments.values_mut() {
            segment.members.remove(&id);
        }
        let removed = state.customers.remove(&id).is_some();
        if removed {
            state.notify_customer_deleted(id);
        }
        removed
    }

    pub fn customer(&self, id: u64) -> Option<Customer> {
        self.lock().customers.get(&id).cloned()
    }

    /// Every customer id, ascending.
    /// A customer's metafields set through `metafieldsSet`, by `(namespace, key)`.
    pub fn customer_metafields(
        &self,
        id: u64,
    ) -> BTreeMap<(String, String), metafields::Metafield> {
        self.lock()
            .metafields
            .fields
            .iter()
            .filter(|((owner, _, _), _)| *owner == id)
            .map(|((_, ns, key), m)| ((ns.clone(), key.clone()), m.clone()))
            .collect()
    }

    /// `(successful metafieldsSet calls, metafields they created or changed)`.
    pub fn metafield_writes(&self) -> (u64, u64) {
        let state = self.lock();
        (state.metafields.successful_calls, state.metafields.written)
    }

    /// The id of the customer with this email (any case).
    pub fn customer_id_by_email(&self, email: &str) -> Option<u64> {
        self.lock()
            .customers
            .values()
            .find(|c| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            })
            .map(|c| c.id)
    }

    pub fn customer_ids(&self) -> Vec<u64> {
        self.lock().customers.keys().copied().collect()
    }

    pub fn customer_count(&self) -> usize {
        self.lock().customers.len()
    }

    /// Creates a segment whose members are `members` (unknown ids are ignored). Returns its numeric id.
    pub fn create_segment(&self, name: &str, query: &str, members: &[u64]) -> u64 {
        let mut state = self.lock();
        let id = state.next_segment_id;
        state.next_segment_id += 1;
        let members = members
            .iter()
            .copied()
            .filter(|m| state.customers.contains_key(m))
            .collect();
        state.segments.insert(
            id,
            Segment {
                id,
                name: name.into(),
                query: query.into(),
                members,
                created_at: now_secs(),
            },
        );
        id
    }

    pub fn segments(&self) -> Vec<Segment> {
        self.lock().segments.values().cloned().collect()
    }

    /// Makes `members` (known ids only) the segment's members, as Shopify's evaluation of its
    /// query would after customers changed [U: the sandbox keeps members, not a query engine].
    /// False when there is no such segment.
    pub fn set_segment_members(&self, id: u64, members: &[u64]) -> bool {
        let mut state = self.lock();
        let members = members
            .iter()
            .copied()
            .filter(|m| state.customers.contains_key(m))
            .collect();
        match state.segments.get_mut(&id) {
            Some(segment) => {
                segment.members = members;
                true
            }
            None => false,
        }
    }
}

fn country_name(code: &str) -> &'static str {
    match code {
        "NL" => "Netherlands",
        "CA" => "Canada",
        "SE" => "Sweden",
        "DE" => "Germany",
        "US" => "United States",
        "AU" => "Australia",
        _ => "Unknown",
    }
}

impl crate::Simulator for Shopify {
    const NAME: &'static str = "shopify";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        Shopify::reset(self);
    }

    fn seed(&self, people: &[crate::seed::Person]) {
        self.seed_demo(people);
        self.seed_demo_orders(people);
        if !people.is_empty() {
            self.seed_demo_discounts();
        }
    }
}

pub fn router(sim: Shopify) -> Router {
    Router::new()
        .route("/admin/api/{version}/graphql.json", post(graphql_handler))
        .with_state(sim)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        "X-Shopify-API-Version",
        HeaderValue::from_static(API_VERSION),
    );
    response
}

fn graphql_errors(errors: Vec<Value>) -> Response {
    json_response(StatusCode::OK, json!({ "errors": errors }))
}

fn error(message: impl Into<String>, code: &str) -> Value {
    json!({"message": message.into(), "extensions": {"code": code}})
}

async fn graphql_handler(
    AxumState(sim): AxumState<Shopify>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if version != API_VERSION {
        // The sandbox pins the stored schema's version; anything else is a client mistake here.
        return json_response(StatusCode::NOT_FOUND, json!({"errors": "Not Found"}));
    }
    let token_ok = headers
        .get("X-Shopify-Access-Token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t == sim.lock().token);
    if !token_ok {
        return json_response(StatusCode::UNAUTHORIZED, json!({"errors": INVALID_TOKEN}));
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"errors": {"query": "Required parameter missing or invalid"}}),
            );
        }
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"errors": {"query": "Required parameter missing or invalid"}}),
        );
    };
    let empty = Map::new();
    let variables = request
        .get("variables")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let operation = match graphql::parse(query, variables) {
        Ok(op) => op,
        Err(message) => return graphql_errors(vec![json!({"message": message})]),
    };

    // Cost first, from the arguments alone, as Shopify does before running anything.
    let mut requested = 0.0;
    for field in &operation.fields {
        match cost_of(operation.kind, field) {
            Ok(cost) => requested += cost,
            Err(e) => return graphql_errors(vec![e]),
        }
    }
    let mut state = sim.lock();
    if requested > MAX_QUERY_COST {
        state.bucket.refill();
        let status = state.bucket.status();
        drop(state);
        return json_response(
            StatusCode::OK,
            json!({
                "errors": [error(format!("Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."), "MAX_COST_EXCEEDED")],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": status}}
            }),
        );
    }
    state.bucket.refill();
    if requested > state.bucket.available {
        state.counters.throttled += 1;
        let status = state.bucket.status();
        drop(state);
        return json_response(
            StatusCode::OK,
            json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": status}}
            }),
        );
    }
    state.bucket.available -= requested;
    state.counters.min_available = state.counters.min_available.min(state.bucket.available);

    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut actual = 0.0;
    for field in &operation.fields {
        let resolved = match operation.kind {
            OperationKind::Query => resolve_query(&state, field),
            OperationKind::Mutation => resolve_mutation(&mut state, field),
        };
        match resolved {
            Ok((full, cost)) => {
                actual += cost;
                match graphql::project(&full, &field.selection) {
                    Ok(value) => {
                        data.insert(field.response_key().to_string(), value);
                        *state
                            .counters
                            .root_fields
                            .entry(field.name.clone())
                            .or_default() += 1;
                    }
                    Err(message) => {
                        errors.push(json!({"message": message, "path": [field.response_key()]}))
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    // Refund what was requested but not used.
    state.bucket.available =
        (state.bucket.available + (requested - actual).max(0.0)).min(state.bucket.maximum);
    state.counters.executed += 1;
    state.counters.points_spent += actual;
    let cost = json!({
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": state.bucket.status(),
    });
    drop(state);
    let mut body = Map::new();
    if errors.is_empty() {
        body.insert("data".into(), Value::Object(data));
    } else {
        body.insert("errors".into(), Value::Array(errors));
        if !data.is_empty() {
            body.insert("data".into(), Value::Object(data));
        }
    }
    body.insert("extensions".into(), json!({ "cost": cost }));
    json_response(StatusCode::OK, Value::Object(body))
}

fn cost_of(kind: OperationKind, field: &Field) -> Result<f64, Value> {
    match (kind, field.name.as_str()) {
        (
            OperationKind::Query,
            "customers" | "segments" | "customerSegmentMembers" | "webhookSubscriptions",
        ) => {
            let first = page_size(field)?;
            Ok(2.0 + first as f64)
        }
        (OperationKind::Query, "orders" | "order" | "shop") => orders::requested_cost(field),
        (OperationKind::Query, "codeDiscountNodes" | "codeDiscountNode") => {
            discounts::requested_cost(field)
        }
        (OperationKind::Query, "__typename") => Ok(0.0),
        (
            OperationKind::Mutation,
            "customerEmailMarketingConsentUpdate"
            | "metafieldsSet"
            | "customerCreate"
            | "webhookSubscriptionCreate"
            | "webhookSubscriptionDelete",
        ) => Ok(MUTATION_COST),
        (OperationKind::Query, other) => Err(error(
            format!("Field '{other}' doesn't exist on type 'QueryRoot'"),
            "undefinedField",
        )),
        (OperationKind::Mutation, other) => Err(error(
            format!("Field '{other}' doesn't exist on type 'Mutation'"),
            "undefinedField",
        )),
    }
}

/// `first` (1..=250). `last`/`before` are not simulated.
fn page_size(field: &Field) -> Result<i64, Value> {
    if field.args.get("last").is_some_and(|v| !v.is_null())
        || field.args.get("before").is_some_and(|v| !v.is_null())
    {
        return Err(error(
            "The sandbox simulates forward pagination only (first/after)",
            "BAD_REQUEST",
        ));
    }
    match field.args.get("first") {
        None | Some(Value::Null) => Err(error(
            "you must provide one of first or last",
            "BAD_REQUEST",
        )),
        Some(v) => match v.as_i64() {
            // [U] exact wording of Shopify's message for an out-of-range `first`.
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(error(
                format!("The 'first' argument must be between 1 and {MAX_PAGE_SIZE}, got {v}"),
                "BAD_REQUEST",
            )),
        },
    }
}

fn arg_str<'a>(field: &'a Field, name: &str) -> Option<&'a str> {
    field.args.get(name).and_then(Value::as_str)
}

fn arg_bool(field: &Field, name: &str) -> bool {
    field
        .args
        .get(name)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A position in a sorted list: the sort value and the id, as Shopify's cursors hold them.
type SortKey = (i64, u64);

fn encode_cursor(key: SortKey) -> String {
    B64.encode(json!({"last_id": key.1, "last_value": key.0.to_string()}).to_string())
}

fn decode_cursor(cursor: &str) -> Result<SortKey, Value> {
    let bad = || error("Invalid cursor for current pagination sort.", "BAD_REQUEST");
    let bytes = B64.decode(cursor).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let id = value
        .get("last_id")
        .and_then(Value::as_u64)
        .ok_or_else(bad)?;
    let sort = value
        .get("last_value")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(bad)?;
    Ok((sort, id))
}

/// One page of keyed rows, whether there is a next page, and whether there was a previous one.
type Page<T> = (Vec<(SortKey, T)>, bool, bool);

/// Pages `items` (already sorted ascending by key) after `after`, `first` at a time.
fn page<T>(mut items: Vec<(SortKey, T)>, field: &Field) -> Result<Page<T>, Value> {
    let first = page_size(field)? as usize;
    let reverse = arg_bool(field, "reverse");
    if reverse {
        items.reverse();
    }
    let after = match arg_str(field, "after") {
        Some(c) => Some(decode_cursor(c)?),
        None => None,
    };
    let start = match after {
        None => 0,
        Some(key) => items.partition_point(|(k, _)| if reverse { *k >= key } else { *k <= key }),
    };
    let mut rest: Vec<(SortKey, T)> = items.into_iter().skip(start).collect();
    let has_next = rest.len() > first;
    rest.truncate(first);
    Ok((rest, has_next, after.is_some()))
}

/// `items` (keyed, in any order) sorted, paged as `field` asks and each node on the page
/// rendered for its selection: the connection and its cost (2, plus each node's).
fn rendered_connection<T>(
    type_name: &str,
    mut items: Vec<(SortKey, T)>,
    field: &Field,
    selection: &[graphql::Field],
    mut render: impl FnMut(T, &[graphql::Field]) -> Result<(Value, f64), Value>,
) -> Result<(Value, f64), Value> {
    items.sort_by_key(|(k, _)| *k);
    let (rows, has_next, has_prev) = page(items, field)?;
    let mut cost = 2.0;
    let mut nodes = Vec::with_capacity(rows.len());
    for (key, item) in rows {
        let (v, c) = render(item, selection)?;
        cost += c;
        nodes.push((key, v));
    }
    Ok((connection(type_name, nodes, has_next, has_prev), cost))
}

fn connection(
    type_name: &str,
    items: Vec<(SortKey, Value)>,
    has_next: bool,
    has_prev: bool,
) -> Value {
    let edge_type = type_name.replace("Connection", "Edge");
    let start = items.first().map(|(k, _)| encode_cursor(*k));
    let end = items.last().map(|(k, _)| encode_cursor(*k));
    let edges: Vec<Value> = items
        .iter()
        .map(
            |(k, node)| json!({"__typename": edge_type, "cursor": encode_cursor(*k), "node": node}),
        )
        .collect();
    let nodes: Vec<Value> = items.into_iter().map(|(_, node)| node).collect();
    json!({
        "__typename": type_name,
        "edges": edges,
        "nodes": nodes,
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "startCursor": start,
            "endCursor": end,
        }
    })
}

fn resolve_query(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    if let Some(resolved) = orders::resolve(state, field) {
        return resolved;
    }
    if let Some(resolved) = discounts::resolve(state, field) {
        return resolved;
    }
    match field.name.as_str() {
        "__typename" => Ok((json!("QueryRoot"), 0.0)),
        "webhookSubscriptions" => subscriptions::list(state, field),
        "customers" => {
            let sort = arg_str(field, "sortKey").unwrap_or("ID");
            let filter = match arg_str(field, "query") {
                Some(q) => {
                    parse_search(q, state.shop_offset).map_err(|m| error(m, "BAD_REQUEST"))?
                }
                None => Search::All(Vec::new()),
            };
            let mut items: Vec<(SortKey, &Customer)> = state
                .customers
                .values()
                .filter(|c| filter.matches(c))
                .map(|c| {
                    let value = match sort {
                        "UPDATED_AT" => Ok(c.updated_at.timestamp_millis()),
                        "CREATED_AT" => Ok(c.created_at.timestamp_millis()),
                        "ID" => Ok(c.id as i64),
                        other => Err(error(
                            format!("Argument 'sortKey' on Field 'customers' has an invalid value ({other})."),
                            "argumentLiteralsIncompatible",
                        )),
                    }?;
                    Ok(((value, c.id), c))
                })
                .collect::<Result<_, Value>>()?;
            items.sort_by_key(|(k, _)| *k);
            let (rows, has_next, has_prev) = page(items, field)?;
            let returned = rows.len() as f64;
            let nodes = rows
                .into_iter()
                .map(|(k, c)| (k, customer_json(c)))
                .collect();
            Ok((
                connection("CustomerConnection", nodes, has_next, has_prev),
                2.0 + returned,
            ))
        }
        "segments" => {
            let items: Vec<(SortKey, &Segment)> = state
                .segments
                .values()
                .map(|s| ((s.id as i64, s.id), s))
                .collect();
            let (rows, has_next, has_prev) = page(items, field)?;
            let returned = rows.len() as f64;
            let nodes = rows
                .into_iter()
                .map(|(k, s)| {
                    (
                        k,
                        json!({
                            "__typename": "Segment",
                            "id": format!("gid://shopify/Segment/{}", s.id),
                            "name": s.name,
                            "query": s.query,
                            "creationDate": ts(&s.created_at),
                            "lastEditDate": ts(&s.created_at),
                        }),
                    )
                })
                .collect();
            Ok((
                connection("SegmentConnection", nodes, has_next, has_prev),
                2.0 + returned,
            ))
        }
        "customerSegmentMembers" => {
            if arg_str(field, "query").is_some() || arg_str(field, "queryId").is_some() {
                return Err(error(
                    "The sandbox resolves customerSegmentMembers by segmentId only",
                    "BAD_REQUEST",
                ));
            }
            let Some(segment_gid) = arg_str(field, "segmentId") else {
                return Err(error(
                    "segmentId, query or queryId is required",
                    "BAD_REQUEST",
                ));
            };
            let segment = segment_gid
                .strip_prefix("gid://shopify/Segment/")
                .and_then(|n| n.parse::<u64>().ok())
                .and_then(|id| state.segments.get(&id))
                .ok_or_else(|| {
                    error(
                        format!("Segment does not exist: {segment_gid}"),
                        "NOT_FOUND",
                    )
                })?;
            let members: Vec<(SortKey, &Customer)> = segment
                .members
                .iter()
                .filter_map(|id| state.customers.get(id))
                .map(|c| ((c.id as i64, c.id), c))
                .collect();
            let total = members.len();
            let (rows, has_next, has_prev) = page(members, field)?;
            let returned = rows.len() as f64;
            let nodes = rows.into_iter().map(|(k, c)| (k, member_json(c))).collect();
            let mut conn = connection("CustomerSegmentMemberConnection", nodes, has_next, has_prev);
            if let Some(object) = conn.as_object_mut() {
                object.remove("nodes"); // the 2025-01 type has edges, pageInfo, statistics, totalCount
                object.insert("totalCount".into(), json!(total));
            }
            Ok((conn, 2.0 + returned))
        }
        other => Err(error(
            format!("Field '{other}' doesn't exist on type 'QueryRoot'"),
            "undefinedField",
        )),
    }
}

fn resolve_mutation(state: &mut State, field: &Field) -> Result<(Value, f64), Value> {
    if field.name == "metafieldsSet" {
        let now = now_secs();
        return Ok(metafields::metafields_set(
            &state.customers,
            &mut state.metafields,
            &field.args,
            now,
        ));
    }
    if field.name == "customerCreate" {
        return customer_create::resolve(state, field);
    }
    if field.name == "webhookSubscriptionCreate" {
        return subscriptions::create(state, field);
    }
    if field.name == "webhookSubscriptionDelete" {
        return subscriptions::delete(state, field);
    }
    if field.name != "customerEmailMarketingConsentUpdate" {
        return Err(error(
            format!("Field '{}' doesn't exist on type 'Mutation'", field.name),
            "undefinedField",
        ));
    }
    let input = field.args.get("input").and_then(Value::as_object);
    let user_error = |field: &[&str], message: &str, code: &str| {
        Ok((
            json!({
                "__typename": "CustomerEmailMarketingConsentUpdatePayload",
                "customer": null,
                "userErrors": [{"__typename": "CustomerEmailMarketingConsentUpdateUserError",
                    "field": field, "message": message, "code": code}],
            }),
            MUTATION_COST,
        ))
    };
    let Some(input) = input else {
        return user_error(&["input"], "Input is required", "MISSING_ARGUMENT");
    };
    let id = input
        .get("customerId")
        .and_then(Value::as_str)
        .and_then(|g| g.strip_prefix("gid://shopify/Customer/"))
        .and_then(|n| n.parse::<u64>().ok());
    let Some(customer) = id.and_then(|id| state.customers.get_mut(&id)) else {
        return user_error(&["input", "customerId"], "Customer not found", "INVALID");
    };
    let consent = input
        .get("emailMarketingConsent")
        .and_then(Value::as_object);
    let Some(state_value) = consent
        .and_then(|c| c.get("marketingState"))
        .and_then(Value::as_str)
    else {
        return user_error(
            &["input", "emailMarketingConsent", "marketingState"],
            "Marketing state is required",
            "MISSING_ARGUMENT",
        );
    };
    if !matches!(state_value, "SUBSCRIBED" | "UNSUBSCRIBED" | "PENDING") {
        return user_error(
            &["input", "emailMarketingConsent", "marketingState"],
            "Marketing state is not included in the list",
            "INCLUSION",
        );
    }
    if customer.email.is_none() {
        return user_error(
            &["input", "customerId"],
            "A customer must have an email address to receive email marketing",
            "INVALID",
        );
    }
    let level = consent
        .and_then(|c| c.get("marketingOptInLevel"))
        .and_then(Value::as_str);
    if let Some(level) = level
        && !matches!(level, "SINGLE_OPT_IN" | "CONFIRMED_OPT_IN" | "UNKNOWN")
    {
        return user_error(
            &["input", "emailMarketingConsent", "marketingOptInLevel"],
            "Marketing opt in level is not included in the list",
            "INCLUSION",
        );
    }
    let now = now_secs();
    let given = match consent.and_then(|c| c.get("consentUpdatedAt")) {
        None | Some(Value::Null) => None,
        Some(value) => match value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        {
            Some(d) => Some(d.with_timezone(&Utc)),
            None => {
                return user_error(
                    &["input", "emailMarketingConsent", "consentUpdatedAt"],
                    "Consent updated at is invalid",
                    "INVALID",
                );
            }
        },
    };
    // [U] A consent time in the future is refused (Shopify's REST API refuses it; the GraphQL
    // docs do not say).
    if given.is_some_and(|t| t > now + chrono::Duration::seconds(60)) {
        return user_error(
            &["input", "emailMarketingConsent", "consentUpdatedAt"],
            "Consent updated at cannot be in the future",
            "INVALID",
        );
    }
    let at = given.unwrap_or(now);
    // [S] "The customer's consent state reflects the consent record with the most recent
    // `consent_updated_at` date": a record older than the one the customer has is kept in the
    // history but does not change the state. [U] Whether Shopify reports that: it answers the
    // customer, unchanged, with no user error.
    let older = customer
        .consent_updated_at
        .is_some_and(|current| at < current);
    if !older {
        customer.marketing_state = state_value.to_string();
        customer.marketing_opt_in_level = Some(level.unwrap_or("SINGLE_OPT_IN").to_string());
        customer.consent_updated_at = Some(at);
        customer.updated_at = now;
    }
    let changed = !older;
    let customer = customer_json(customer);
    if changed {
        state.counters.consent_updates += 1;
        state.notify_customer(
            &[
                "customers/update",
                "customers_email_marketing_consent/update",
            ],
            id.unwrap_or_default(),
        );
    }
    Ok((
        json!({
            "__typename": "CustomerEmailMarketingConsentUpdatePayload",
            "customer": customer,
            "userErrors": [],
        }),
        MUTATION_COST,
    ))
}

fn address_json(a: &MailingAddress) -> Value {
    json!({
        "__typename": "MailingAddress",
        "address1": a.address1, "address2": a.address2, "city": a.city,
        "province": a.province, "provinceCode": a.province_code, "zip": a.zip,
        "country": a.country, "countryCodeV2": a.country_code, "countryCode": a.country_code,
        "company": a.company, "phone": null, "firstName": null, "lastName": null, "name": null,
    })
}

fn display_name(c: &Customer) -> String {
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        name
    } else {
        c.email.clone().or(c.phone.clone()).unwrap_or_default()
    }
}

fn customer_json(c: &Customer) -> Value {
    let email_consent = c.email.as_ref().map(|_| {
        json!({
            "__typename": "CustomerEmailMarketingConsentState",
            "marketingState": c.marketing_state,
            "marketingOptInLevel": c.marketing_opt_in_level,
            "consentUpdatedAt": c.consent_updated_at.as_ref().map(ts),
        })
    });
    let sms_consent = c.phone.as_ref().map(|_| {
        json!({
            "__typename": "CustomerSmsMarketingConsentState",
            "marketingState": c.sms_marketing_state.clone().unwrap_or_else(|| "NOT_SUBSCRIBED".into()),
            // [U] The opt-in level of an SMS consent is not simulated.
            "marketingOptInLevel": "UNKNOWN",
            "consentUpdatedAt": c.sms_consent_updated_at.as_ref().map(ts),
            "consentCollectedFrom": "OTHER",
        })
    });
    json!({
        "__typename": "Customer",
        "id": c.gid(),
        "legacyResourceId": c.id.to_string(),
        "email": c.email,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "displayName": display_name(c),
        "phone": c.phone,
        "tags": c.tags,
        "note": c.note,
        "state": "ENABLED",
        "verifiedEmail": c.email.is_some(),
        "validEmailAddress": c.email.is_some(),
        "numberOfOrders": "0",
        "createdAt": ts(&c.created_at),
        "updatedAt": ts(&c.updated_at),
        "defaultAddress": c.default_address.as_ref().map(address_json),
        "emailMarketingConsent": email_consent,
        "smsMarketingConsent": sms_consent,
    })
}

fn member_json(c: &Customer) -> Value {
    // [U] The member's numeric id is the customer's; the gid type is CustomerSegmentMember.
    json!({
        "__typename": "CustomerSegmentMember",
        "id": format!("gid://shopify/CustomerSegmentMember/{}", c.id),
        "firstName": c.first_name,
        "lastName": c.last_name,
        "displayName": display_name(c),
        "note": c.note,
        "numberOfOrders": "0",
        "lastOrderId": null,
        "defaultAddress": c.default_address.as_ref().map(address_json),
        "defaultEmailAddress": c.email.as_ref().map(|e| json!({
            "__typename": "CustomerEmailAddress",
            "emailAddress": e,
            "marketingState": if matches!(c.marketing_state.as_str(), "REDACTED") { "INVALID" } else { c.marketing_state.as_str() },
            "marketingUnsubscribeUrl": format!("https://sandbox.myshopify.com/unsubscribe/{}", c.id),
            "openTrackingLevel": "UNKNOWN",
            "openTrackingUrl": format!("https://sandbox.myshopify.com/tracking/{}", c.id),
        })),
        "defaultPhoneNumber": c.phone.as_ref().map(|p| json!({
            "__typename": "CustomerPhoneNumber",
            "phoneNumber": p,
            "marketingState": c.sms_marketing_state.clone().unwrap_or_else(|| "NOT_SUBSCRIBED".into()),
        })),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Eq => left == right,
        }
    }
}

enum Term {
    UpdatedAt(Cmp, DateTime<Utc>),
    CreatedAt(Cmp, DateTime<Utc>),
    Id(Cmp, u64),
    Email(String),
}

impl Term {
    fn matches(&self, c: &Customer) -> bool {
        match self {
            Term::UpdatedAt(cmp, t) => cmp.holds(c.updated_at, *t),
            Term::CreatedAt(cmp, t) => cmp.holds(c.created_at, *t),
            Term::Id(cmp, id) => cmp.holds(c.id, *id),
            Term::Email(pattern) if pattern == "*" => c.email.is_some(),
            Term::Email(pattern) => c
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(pattern)),
        }
    }
}

/// Splits a search query on spaces outside quotes.
fn search_words(query: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in query.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("Unterminated quote in search query: {query}"));
    }
    if !word.is_empty() {
        words.push(word);
    }
    Ok(words)
}

fn split_cmp(value: &str) -> (Cmp, &str) {
    for (prefix, cmp) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (cmp, rest);
        }
    }
    (Cmp::Eq, value)
}

/// Reads a search time: RFC 3339 with a zone, or a date / date-time without one, which Shopify
/// reads in the shop's time zone.
fn parse_search_time(value: &str, shop: FixedOffset) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
        })
        .map_err(|_| format!("Invalid time in search query: {value}"))?;
    shop.from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("Invalid time in search query: {value}"))
}

/// The subset of Shopify's search syntax the simulator understands; anything else is refused so a
/// client relying on it notices (real Shopify would silently treat unknown terms as free text).
/// A search query: its terms, all of which must hold, or (joined by `OR`) any of which must.
enum Search {
    All(Vec<Term>),
    Any(Vec<Term>),
}

impl Search {
    fn holds(&self, term_holds: impl Fn(&Term) -> bool) -> bool {
        match self {
            Search::All(terms) => terms.iter().all(term_holds),
            Search::Any(terms) => terms.iter().any(term_holds),
        }
    }

    fn matches(&self, c: &Customer) -> bool {
        self.holds(|t| t.matches(c))
    }
}

/// `a AND b` (or `a b`) and `a OR b OR c`. [U] Shopify's precedence when `AND` and `OR` are
/// mixed without parentheses is not documented clearly enough to simulate: the sandbox refuses
/// such a query rather than guess.
fn parse_search(query: &str, shop: FixedOffset) -> Result<Search, String> {
    let words = search_words(query)?;
    if !words.iter().any(|w| w == "OR") {
        return parse_terms(words, shop).map(Search::All);
    }
    let alternating = words.len() % 2 == 1
        && words
            .iter()
            .enumerate()
            .all(|(i, w)| (i % 2 == 1) == (w == "OR"));
    if !alternating {
        return Err(format!(
            "Unsupported search query in sandbox (AND and OR mixed, or a dangling OR): {query}"
        ));
    }
    parse_terms(words.into_iter().step_by(2).collect(), shop).map(Search::Any)
}

fn parse_terms(words: Vec<String>, shop: FixedOffset) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for word in words {
        if word == "AND" {
            continue;
        }
        let Some((name, value)) = word.split_once(':') else {
            return Err(format!("Unsupported search term in sandbox: {word}"));
        };
        let (cmp, value) = split_cmp(value);
        let term = match name {
            "updated_at" => Term::UpdatedAt(cmp, parse_search_time(value, shop)?),
            "created_at" => Term::CreatedAt(cmp, parse_search_time(value, shop)?),
            "id" => Term::Id(
                cmp,
                value
                    .parse()
                    .map_err(|_| format!("Invalid id in search query: {value}"))?,
            ),
            "email" if cmp == Cmp::Eq => Term::Email(value.to_string()),
            _ => return Err(format!("Unsupported search term in sandbox: {word}")),
        };
        terms.push(term);
    }
    Ok(terms)
}
