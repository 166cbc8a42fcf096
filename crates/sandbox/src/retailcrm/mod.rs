//! Simulator of the RetailCRM (Simla) API v5, written from the RetailCRM section of
//! `shared/specs/README.md` (field names from the official PHP client's models).
//!
//! Served under `/retailcrm`:
//! - `GET /api/v5/customers`: `limit` ∈ {20, 50, 100} (default 20, anything else is a 400), `page`
//!   (1-based), `filter[ids][]`, `filter[email]`, `filter[segment]` (segment code), `filter[sites][]`;
//!   customers in ascending id order ([U]: the real default order is not documented in the sources
//!   available here);
//! - `GET /api/v5/segments`: `limit`, `page`;
//! - `GET /api/v5/customers/history`: `filter[sinceId]`, `filter[startDate]`, `filter[endDate]`,
//!   `filter[customerId]`, `limit`, `page`, ordered by id. `filter[sinceId]` together with `page` is an
//!   HTTP 400, as RetailCRM has answered since 2023-05-15 [D];
//! - orders, their history and the reference data an order reader needs: see [`orders`].
//!
//! Auth: the `X-API-KEY` header or the `apiKey` query parameter; a missing or wrong key is a 403
//! `{"success":false,"errorMsg":"Wrong \"apiKey\" value."}`.
//!
//! Rate limit: 10 requests per second per key ([U] per the spec README: the figure is not verified in
//! the docs available here), answered with HTTP 503 as the official client expects. Requests over the
//! limit are counted in [`RetailCrmCounters::rate_limited`].
//!
//! Datetimes (`createdAt`, history `createdAt`, `emailMarketingUnsubscribedAt`, `filter[startDate]`) are
//! `Y-m-d H:i:s` **in the account's time zone, with no zone marker**. The simulated account is in
//! Europe/Moscow (UTC+03:00 all year since 2014-10-26), so a client must read these times in the
//! account's zone, never as UTC.
//!
//! Every change made through the test helpers is recorded in the customers' history: creation (one
//! entry, `created: true`), each changed field (`field`, `oldValue`, `newValue`) and deletion
//! (`deleted: true`). An empty `customFields` is rendered `[]`, as RetailCRM's PHP backend does.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::seed::{Marketing, Person};

mod orders;
pub use orders::{
    CURRENCY, DEMO_ORDERS, Order, OrderHistoryEntry, OrderItem, SITE_NAME, STATUSES, TIME_ZONE,
};

/// The API key a fresh sandbox accepts.
pub const DEFAULT_API_KEY: &str = "rcrm_sandbox_key_0123456789abcdef";
/// The site (store) code customers belong to.
pub const SITE: &str = "main-store";
/// Requests per second per key before HTTP 503 ([U]).
pub const DEFAULT_RATE_LIMIT: u32 = 10;
/// The page sizes `limit` accepts.
pub const LIMITS: [u64; 3] = [20, 50, 100];

/// The account's UTC offset: Europe/Moscow, UTC+03:00 with no daylight saving since 2014-10-26.
pub fn account_offset() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).expect("valid offset")
}

/// A time as RetailCRM writes it: `Y-m-d H:i:s` in the account's zone.
pub fn account_time(t: &DateTime<Utc>) -> String {
    t.with_timezone(&account_offset())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn parse_account_time(value: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").ok()?;
    account_offset()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A customer's address.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Address {
    pub country_iso: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    /// Postal code.
    pub index: Option<String>,
    pub text: Option<String>,
}

/// One customer of the simulated account.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Assigned by the account.
    pub id: u64,
    pub external_id: Option<String>,
    pub site: String,
    pub created_at: DateTime<Utc>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phones: Vec<String>,
    pub address: Option<Address>,
    pub tags: Vec<String>,
    pub custom_fields: BTreeMap<String, Value>,
    /// When the customer unsubscribed from email marketing (None = not unsubscribed).
    pub email_marketing_unsubscribed_at: Option<DateTime<Utc>>,
    /// The legacy subscription flag.
    pub subscribed: bool,
    pub vip: bool,
}

impl Default for Customer {
    fn default() -> Self {
        Customer {
            id: 0,
            external_id: None,
            site: SITE.into(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            first_name: None,
            last_name: None,
            email: None,
            phones: Vec::new(),
            address: None,
            tags: Vec::new(),
            custom_fields: BTreeMap::new(),
            email_marketing_unsubscribed_at: None,
            subscribed: false,
            vip: false,
        }
    }
}

/// A customer segment with an explicit member list.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: u64,
    pub code: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub is_dynamic: bool,
    pub active: bool,
    pub members: BTreeSet<u64>,
}

/// One entry of the customers' change history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub created: bool,
    pub deleted: bool,
    pub field: String,
    pub old_value: Value,
    pub new_value: Value,
    pub customer_id: u64,
    /// The customer as the entry shows it (full on creation, a reference otherwise).
    pub customer: Value,
}

/// What the simulator's limits saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetailCrmCounters {
    /// Requests answered 503 by the rate limiter (injected faults are not counted here).
    pub rate_limited: u64,
    /// Requests that passed authentication and the rate limit.
    pub served: u64,
    /// The most requests accepted from one key within any one-second window.
    pub max_per_second: u32,
    /// Requests that sent the key as the `apiKey` query parameter (where URLs, and so logs, hold it).
    pub key_in_query: u64,
}

struct State {
    api_key: String,
    rate_limit: Option<u32>,
    windows: HashMap<String, VecDeque<Instant>>,
    customers: BTreeMap<u64, Customer>,
    segments: BTreeMap<u64, Segment>,
    history: Vec<HistoryEntry>,
    next_customer_id: u64,
    next_segment_id: u64,
    next_history_id: u64,
    counters: RetailCrmCounters,
    orders: orders::OrderBook,
}

impl Default for State {
    fn default() -> Self {
        State {
            api_key: DEFAULT_API_KEY.into(),
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            windows: HashMap::new(),
            customers: BTreeMap::new(),
            segments: BTreeMap::new(),
            history: Vec::new(),
            next_customer_id: 1,
            next_segment_id: 1,
            next_history_id: 1,
            counters: RetailCrmCounters::default(),
            orders: orders::OrderBook::default(),
        }
    }
}

impl State {
    fn record(&mut self, entry: HistoryEntry) {
        let mut entry = entry;
        entry.id = self.next_history_id;
        self.next_history_id += 1;
        self.history.push(entry);
    }

    fn customer_json(&self, c: &Customer) -> Value {
        let segments: Vec<Value> = self
            .segments
            .values()
            .filter(|s| s.members.contains(&c.id))
            .map(|s| json!({"id": s.id, "code": s.code, "name": s.name}))
            .collect();
        customer_json(c, segments)
    }
}

fn customer_json(c: &Customer, segments: Vec<Value>) -> Value {
    let mut object = Map::new();
    object.insert("type".into(), json!("customer"));
    object.insert("id".into(), json!(c.id));
    if let Some(external) = &c.external_id {
        object.insert("externalId".into(), json!(external));
    }
    object.insert("site".into(), json!(c.site));
    object.insert("createdAt".into(), json!(account_time(&c.created_at)));
    object.insert("vip".into(), json!(c.vip));
    object.insert("bad".into(), json!(false));
    if let Some(v) = &c.first_name {
        object.insert("firstName".into(), json!(v));
    }
    if let Some(v) = &c.last_name {
        object.insert("lastName".into(), json!(v));
    }
    if let Some(v) = &c.email {
        object.insert("email".into(), json!(v));
    }
    object.insert(
        "phones".into(),
        Value::Array(c.phones.iter().map(|p| json!({"number": p})).collect()),
    );
    if let Some(a) = &c.address {
        let mut address = Map::new();
        for (key, value) in [
            ("countryIso", &a.country_iso),
            ("region", &a.region),
            ("city", &a.city),
            ("index", &a.index),
            ("text", &a.text),
        ] {
            if let Some(v) = value {
                address.insert(key.into(), json!(v));
            }
        }
        object.insert("address".into(), Value::Object(address));
    }
    object.insert(
        "tags".into(),
        Value::Array(
            c.tags
                .iter()
                .map(|t| json!({"name": t, "color": "grey", "colorCode": "#c5c5c5", "attached": true}))
                .collect(),
        ),
    );
    object.insert("segments".into(), Value::Array(segments));
    object.insert(
        "customFields".into(),
        if c.custom_fields.is_empty() {
            json!([])
        } else {
            Value::Object(c.custom_fields.clone().into_iter().collect())
        },
    );
    object.insert(
        "emailMarketingUnsubscribedAt".into(),
        c.email_marketing_unsubscribed_at
            .as_ref()
            .map_or(Value::Null, |t| json!(account_time(t))),
    );
    object.insert("subscribed".into(), json!(c.subscribed));
    object.insert(
        "customerSubscriptions".into(),
        json!([{
            "subscription": {"id": 1, "channel": "email", "code": "system-email", "name": "Email newsletter", "active": true},
            "subscribed": c.subscribed && c.email_marketing_unsubscribed_at.is_none(),
            "changedAt": account_time(&c.created_at),
        }]),
    );
    object.insert("ordersCount".into(), json!(0));
    object.insert("totalSumm".into(), json!(0));
    object.insert("averageSumm".into(), json!(0));
    object.insert("contragent".into(), json!({"contragentType": "individual"}));
    Value::Object(object)
}

fn reference_json(c: &Customer) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(c.id));
    if let Some(external) = &c.external_id {
        object.insert("externalId".into(), json!(external));
    }
    object.insert("site".into(), json!(c.site));
    Value::Object(object)
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The simulated RetailCRM account, shared by every request.
#[derive(Clone, Default)]
pub struct RetailCrm {
    state: Arc<Mutex<State>>,
}

fn now_secs() -> DateTime<Utc> {
    let now = Utc::now();
    Utc.timestamp_opt(now.timestamp(), 0)
        .single()
        .unwrap_or(now)
}

impl RetailCrm {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("retailcrm state lock")
    }

    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// Adds the demo people as customers (ids 1.., with creation history entries) and the
    /// segments `vip` and `newsletter` (by tag).
    pub fn seed_demo(&self, people: &[Person]) {
        let mut state = self.lock();
        let mut vip = BTreeSet::new();
        let mut newsletter = BTreeSet::new();
        for person in people {
            let id = state.next_customer_id;
            state.next_customer_id += 1;
            if person.tags.iter().any(|t| t == "vip") {
                vip.insert(id);
            }
            if person.tags.iter().any(|t| t == "newsletter") {
                newsletter.insert(id);
            }
            let mut custom_fields = BTreeMap::new();
            if person.index % 3 == 0 {
                custom_fields.insert("loyalty_level".to_string(), json!("gold"));
            }
            let customer = Customer {
                id,
                external_id: Some(format!("C{:06}", person.index)),
                site: SITE.into(),
                created_at: person.created_at,
                first_name: Some(person.first_name.clone()),
                last_name: Some(person.last_name.clone()),
                email: Some(person.email.clone()),
                phones: vec![person.phone.clone()],
                address: Some(Address {
                    country_iso: Some(person.country.clone()),
                    region: Some(person.region.clone()),
                    city: Some(person.city.clone()),
                    index: Some(person.zip.clone()),
                    text: Some(format!("{} Market Street", 10 + person.index % 90)),
                }),
                tags: person.tags.clone(),
                custom_fields,
                email_marketing_unsubscribed_at: (person.marketing == Marketing::Unsubscribed)
                    .then_some(person.updated_at),
                subscribed: person.marketing == Marketing::Subscribed,
                vip: person.tags.iter().any(|t| t == "vip"),
            };
            let snapshot = customer_json(&customer, Vec::new());
            state.customers.insert(id, customer);
            state.record(HistoryEntry {
                id: 0,
                created_at: person.created_at,
                created: true,
                deleted: false,
                field: "id".into(),
                old_value: Value::Null,
                new_value: json!(id),
                customer_id: id,
                customer: snapshot,
            });
        }
        if !people.is_empty() {
            let created = people[0].created_at;
            for (code, name, members) in [
                ("vip", "VIP customers", vip),
                ("newsletter", "Newsletter readers", newsletter),
            ] {
                let id = state.next_segment_id;
                state.next_segment_id += 1;
                state.segments.insert(
                    id,
                    Segment {
                        id,
                        code: code.into(),
                        name: name.into(),
                        created_at: created,
                        is_dynamic: true,
                        active: true,
                        members,
                    },
                );
            }
        }
    }

    /// The key requests must carry (`X-API-KEY` or `apiKey`).
    pub fn set_api_key(&self, key: &str) {
        self.lock().api_key = key.to_string();
    }

    pub fn api_key(&self) -> String {
        self.lock().api_key.clone()
    }

    /// Requests per second per key before 503 (`None`: unlimited).
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        self.lock().rate_limit = per_second;
    }

    pub fn counters(&self) -> RetailCrmCounters {
        self.lock().counters.clone()
    }

    /// Adds a customer (id assigned; `created_at` now unless set) and records its creation.
    pub fn add_customer(&self, mut customer: Customer) -> u64 {
        let mut state = self.lock();
        let id = state.next_customer_id;
        state.next_customer_id += 1;
        customer.id = id;
        let now = now_secs();
        if customer.created_at == DateTime::<Utc>::UNIX_EPOCH {
            customer.created_at = now;
        }
        let snapshot = state.customer_json(&customer);
        state.customers.insert(id, customer);
        state.record(HistoryEntry {
            id: 0,
            created_at: now,
            created: true,
            deleted: false,
            field: "id".into(),
            old_value: Value::Null,
            new_value: json!(id),
            customer_id: id,
            customer: snapshot,
        });
        id
    }

    /// Edits a customer, recording one history entry per changed field. False when it does not exist.
    pub fn edit_customer(&self, id: u64, edit: impl FnOnce(&mut Customer)) -> bool {
        let mut state = self.lock();
        let Some(before) = state.customers.get(&id).cloned() else {
            return false;
        };
        let mut after = before.clone();
        edit(&mut after);
        after.id = id;
        let old = state.customer_json(&before);
        let new = state.customer_json(&after);
        let reference = reference_json(&after);
        state.customers.insert(id, after);
        let now = now_secs();
        let keys: BTreeSet<&String> = old
            .as_object()
            .into_iter()
            .chain(new.as_object())
            .flat_map(|o| o.keys())
            .collect();
        for key in keys {
            let (o, n) = (old.get(key.as_str()), new.get(key.as_str()));
            if o != n && key != "customerSubscriptions" {
                state.record(HistoryEntry {
                    id: 0,
                    created_at: now,
                    created: false,
                    deleted: false,
                    field: snake_case(key),
                    old_value: o.cloned().unwrap_or(Value::Null),
                    new_value: n.cloned().unwrap_or(Value::Null),
                    customer_id: id,
                    customer: reference.clone(),
                });
            }
        }
        true
    }

    /// Deletes a customer, recording it in the history. False when it did not exist.
    pub fn delete_customer(&self, id: u64) -> bool {
        let mut state = self.lock();
        let Some(customer) = state.customers.remove(&id) else {
            return false;
        };
        for segment in state.segments.values_mut() {
            segment.members.remove(&id);
        }
        state.record(HistoryEntry {
            id: 0,
            created_at: now_secs(),
            created: false,
            deleted: true,
            field: "id".into(),
            old_value: json!(id),
            new_value: Value::Null,
            customer_id: id,
            customer: reference_json(&customer),
        });
        true
    }

    pub fn customer(&self, id: u64) -> Option<Customer> {
        self.lock().customers.get(&id).cloned()
    }

    /// Every customer id, ascending.
    pub fn customer_ids(&self) -> Vec<u64> {
        self.lock().customers.keys().copied().collect()
    }

    pub fn customer_count(&self) -> usize {
        self.lock().customers.len()
    }

    /// Replaces the members of the segment with this code, as RetailCRM's recomputation would
    /// (unknown ids ignored). False when no segment has the code.
    pub fn set_segment_members(&self, code: &str, members: &[u64]) -> bool {
        let mut state = self.lock();
        let members: Vec<u64> = members
            .iter()
            .copied()
            .filter(|m| state.customers.contains_key(m))
            .collect();
        match state.segments.values_mut().find(|s| s.code == code) {
            Some(segment) => {
                segment.members = members.into_iter().collect();
                true
            }
            None => false,
        }
    }

    /// Creates a segment with these members (unknown ids ignored). Returns its id.
    pub fn create_segment(&self, code: &str, name: &str, members: &[u64]) -> u64 {
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
                code: code.into(),
                name: name.into(),
                created_at: now_secs(),
                is_dynamic: false,
                active: true,
                members,
            },
        );
        id
    }

    /// The newest history entry's id (0 when the history is empty).
    pub fn max_history_id(&self) -> u64 {
        self.lock().history.last().map_or(0, |h| h.id)
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        self.lock().history.clone()
    }
}

impl crate::Simulator for RetailCrm {
    const NAME: &'static str = "retailcrm";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        RetailCrm::reset(self);
    }

    fn seed(&self, people: &[crate::seed::Person]) {
        self.seed_demo(people);
        self.seed_demo_orders(people);
    }
}

pub fn router(sim: RetailCrm) -> Router {
    Router::new()
        .route("/api/v5/customers", get(customers_handler))
        .route("/api/v5/customers/history", get(history_handler))
        .route("/api/v5/segments", get(segments_handler))
        .route("/api/v5/orders", get(orders::orders_handler))
        .route(
            "/api/v5/orders/history",
            get(orders::orders_history_handler),
        )
        .route("/api/v5/reference/statuses", get(orders::statuses_handler))
        .route("/api/v5/reference/sites", get(orders::sites_handler))
        .route("/api/v5/settings", get(orders::settings_handler))
        .with_state(sim)
}

fn failure(status: StatusCode, message: &str, errors: Option<Value>) -> Response {
    let mut body = json!({"success": false, "errorMsg": message});
    if let Some(errors) = errors {
        body["errors"] = errors;
    }
    (status, axum::Json(body)).into_response()
}

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Params {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Authenticates and applies the rate limit; on success returns the locked state.
#[allow(clippy::result_large_err)]
fn admit<'a>(
    sim: &'a RetailCrm,
    headers: &HeaderMap,
    params: &Params,
) -> Result<std::sync::MutexGuard<'a, State>, Response> {
    let header = headers
        .get("X-API-KEY")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let in_query = header.is_none() && params.get("apiKey").is_some();
    let key = header.or_else(|| params.get("apiKey").map(str::to_string));
    let mut state = sim.lock();
    if in_query {
        state.counters.key_in_query += 1;
    }
    if key.as_deref() != Some(state.api_key.as_str()) {
        return Err(failure(
            StatusCode::FORBIDDEN,
            "Wrong \"apiKey\" value.",
            None,
        ));
    }
    let key = key.unwrap_or_default();
    if let Some(limit) = state.rate_limit {
        let now = Instant::now();
        let window = state.windows.entry(key).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            state.counters.rate_limited += 1;
            return Err(failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "Rate limit exceeded",
                None,
            ));
        }
        window.push_back(now);
        let used = window.len() as u32;
        state.counters.max_per_second = state.counters.max_per_second.max(used);
    }
    state.counters.served += 1;
    Ok(state)
}

fn invalid_parameter(name: &str, message: &str) -> Response {
    failure(
        StatusCode::BAD_REQUEST,
        "Errors in the input parameters",
        Some(json!({ name: message })),
    )
}

#[allow(clippy::result_large_err)]
fn limit_and_page(params: &Params) -> Result<(u64, Option<u64>), Response> {
    let limit = match params.get("limit") {
        None => 20,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if LIMITS.contains(&n) => n,
            _ => {
                return Err(invalid_parameter(
                    "limit",
                    "The value you selected is not a valid choice. Allowed values: 20, 50, 100.",
                ));
            }
        },
    };
    let page = match params.get("page") {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(invalid_parameter(
                    "page",
                    "This value should be greater than or equal to 1.",
                ));
            }
        },
    };
    Ok((limit, page))
}

fn pagination(limit: u64, total: usize, page: u64) -> Value {
    json!({
        "limit": limit,
        "totalCount": total,
        "currentPage": page,
        "totalPageCount": (total as u64).div_ceil(limit),
    })
}

/// The query of a history list (customers' or orders'): `limit`, `page` (never with
/// `filter[sinceId]`, as RetailCRM has answered since 2023-05-15), and the date window.
struct HistoryQuery {
    limit: u64,
    page: u64,
    since_id: Option<u64>,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

#[allow(clippy::result_large_err)]
fn history_query(params: &Params) -> Result<HistoryQuery, Response> {
    let (limit, page) = limit_and_page(params)?;
    let since_id = match params.get("filter[sinceId]") {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(invalid_parameter(
                    "filter[sinceId]",
                    "This value should be of type int.",
                ));
            }
        },
    };
    if since_id.is_some() && page.is_some() {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            "The \"page\" parameter cannot be used together with \"filter[sinceId]\". Use \"filter[sinceId]\" to page through the history.",
            None,
        ));
    }
    let mut bounds = [None, None];
    for (slot, name) in bounds
        .iter_mut()
        .zip(["filter[startDate]", "filter[endDate]"])
    {
        if let Some(v) = params.get(name) {
            match parse_account_time(v) {
                Some(t) => *slot = Some(t),
                None => {
                    return Err(invalid_parameter(
                        name,
                        "This value is not a valid datetime (Y-m-d H:i:s).",
                    ));
                }
            }
        }
    }
    let [start, end] = bounds;
    Ok(HistoryQuery {
        limit,
        page: page.unwrap_or(1),
        since_id,
        start,
        end,
    })
}

async fn customers_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    let state = match admit(&sim, &headers, &params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (limit, page) = match limit_and_page(&params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let page = page.unwrap_or(1);
    let mut ids: Option<BTreeSet<u64>> = None;
    let id_values = params.all("filter[ids][]");
    if !id_values.is_empty() {
        let mut set = BTreeSet::new();
        for v in id_values {
            match v.parse::<u64>() {
                Ok(id) => {
                    set.insert(id);
                }
                Err(_) => {
                    return invalid_parameter("filter[ids]", "This value should be of type int.");
                }
            }
        }
        ids = Some(set);
    }
    let email = params.get("filter[email]").map(str::to_lowercase);
    let sites = params.all("filter[sites][]");
    let segment_members: Option<BTreeSet<u64>> = params.get("filter[segment]").map(|code| {
        state
            .segments
            .values()
            .find(|s| s.code == code)
            .map(|s| s.members.clone())
            .unwrap_or_default()
    });
    let matching: Vec<&Customer> = state
        .customers
        .values()
        .filter(|c| ids.as_ref().is_none_or(|set| set.contains(&c.id)))
        .filter(|c| {
            email
                .as_ref()
                .is_none_or(|e| c.email.as_deref().is_some_and(|ce| ce.to_lowercase() == *e))
        })
        .filter(|c| sites.is_empty() || sites.contains(&c.site.as_str()))
        .filter(|c| segment_members.as_ref().is_none_or(|m| m.contains(&c.id)))
        .collect();
    let total = matching.len();
    let customers: Vec<Value> = matching
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(|c| state.customer_json(c))
        .collect();
    axum::Json(json!({
        "success": true,
        "pagination": pagination(limit, total, page),
        "customers": customers,
    }))
    .into_response()
}

async fn segments_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    let state = match admit(&sim, &headers, &params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (limit, page) = match limit_and_page(&params) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let page = page.unwrap_or(1);
    let total = state.segments.len();
    let segments: Vec<Value> = state
        .segments
        .values()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(|s| {
            let count = s
                .members
                .iter()
                .filter(|m| state.customers.contains_key(m))
                .count();
            json!({
                "id": s.id, "code": s.code, "name": s.name,
                "createdAt": account_time(&s.created_at),
                "isDynamic": s.is_dynamic, "customersCount": count, "active": s.active,
            })
        })
        .collect();
    axum::Json(json!({
        "success": true,
        "pagination": pagination(limit, total, page),
        "segments": segments,
    }))
    .into_response()
}

async fn history_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    let state = match admit(&sim, &headers, &params) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let HistoryQuery {
        limit,
        page,
        since_id,
        start,
        end,
    } = match history_query(&params) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let customer_id = params
        .get("filter[customerId]")
        .and_then(|v| v.parse::<u64>().ok());
    let matching: Vec<&HistoryEntry> = state
        .history
        .iter()
        .filter(|h| since_id.is_none_or(|s| h.id > s))
        .filter(|h| start.is_none_or(|s| h.created_at >= s))
        .filter(|h| end.is_none_or(|e| h.created_at <= e))
        .filter(|h| customer_id.is_none_or(|c| h.customer_id == c))
        .collect();
    let total = matching.len();
    let history: Vec<Value> = matching
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(|h| {
            json!({
                "id": h.id,
                "createdAt": account_time(&h.created_at),
                "created": h.created,
                "deleted": h.deleted,
                "source": "api",
                "field": h.field,
                "oldValue": h.old_value,
                "newValue": h.new_value,
                "apiKey": {"current": false},
                "customer": h.customer,
            })
        })
        .collect();
    axum::Json(json!({
        "success": true,
        "generatedAt": account_time(&Utc::now()),
        "history": history,
        "pagination": pagination(limit, total, page),
    }))
    .into_response()
}
