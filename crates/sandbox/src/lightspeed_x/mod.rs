//! Simulator of the Lightspeed Retail X-Series (formerly Vend) API 2.0 customers endpoint.
//!
//! Written from `shared/specs/lightspeed/x-series-api-2.0.openapi.json` ([S]) and the vendor's
//! pagination and rate-limiting pages as summarised in `shared/specs/README.md` ([D]):
//! - `GET /api/2.0/customers?after=&before=&page_size=&deleted=` answers
//!   `{"data": [Customer], "version": {"min", "max"}}`, ordered by `version`, a global integer
//!   bumped on every change; the next page is `after=version.max`; an empty `data` ends the list.
//! - `Authorization: Bearer <token>`; otherwise 401 `{"error": "Access token is not valid"}` (the
//!   401 example of the spec's service endpoints).
//! - Per retailer and app, `300 × registers + 50` requests per 5-minute window, with
//!   `X-RateLimit-Limit`/`X-RateLimit-Remaining` on every answer and, past the limit, 429
//!   `{"error":"Too Many Requests","message":"Rate limiting enforced"}` with `Retry-After` as an
//!   HTTP date (RFC 1123).
//!
//! With webhooks on ([`LightspeedX::send_webhooks_to`]), customer changes are also posted as
//! X-Series posts them (see [`webhooks`]).
//!
//! Facts not documented by the vendor, marked [U]:
//! - the default and maximum `page_size` (this simulator: 1000 both; larger values are clamped);
//! - `X-RateLimit-Reset` (the docs name only Limit and Remaining; this simulator also sends the end
//!   of the window as an HTTP date, like `Retry-After`);
//! - the `version` of an empty page (this simulator: `null`);
//! - `before` being exclusive.
//!
//! Sales, products and outlets are in [`sales`].

mod sales;

pub use sales::{DEMO_SALES, Outlet, Product, Sale, SaleLine};

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::seed::{Marketing, Person};

pub mod webhooks;

/// The token the simulator accepts until [`LightspeedX::set_token`] changes it.
pub const DEMO_TOKEN: &str = "lsx-sandbox-token";
/// `page_size` when the request has none [U].
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// Largest `page_size` honoured; larger requests are clamped [U].
pub const MAX_PAGE_SIZE: usize = 1000;
/// The documented window of the rate limiter.
pub const RATE_WINDOW: Duration = Duration::from_secs(300);

/// Versions start above `u32::MAX`, as real ones do (the spec's examples are around 2.8e9), so a
/// client storing them in 32 bits fails here rather than in production.
const FIRST_VERSION: u64 = 5_000_000_000;

/// A customer as the API returns it (`components.schemas.Customer`). Nullable fields are `Option`s
/// and serialise as `null`, like the vendor's second example customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Customer {
    pub id: String,
    pub customer_code: String,
    /// Deprecated full name; the simulator keeps it equal to `first_name last_name`.
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// "Indicates whether the customer opted out of email communications."
    pub do_not_email: bool,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub company_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub gender: Option<String>,
    pub physical_address_1: Option<String>,
    pub physical_address_2: Option<String>,
    pub physical_suburb: Option<String>,
    pub physical_city: Option<String>,
    pub physical_postcode: Option<String>,
    pub physical_state: Option<String>,
    pub physical_country_id: Option<String>,
    pub customer_group_id: String,
    pub enable_loyalty: bool,
    pub year_to_date: f64,
    pub balance: f64,
    pub loyalty_balance: f64,
    pub custom_field_1: Option<String>,
    pub custom_field_2: Option<String>,
    pub custom_field_3: Option<String>,
    pub custom_field_4: Option<String>,
    pub note: Option<String>,
    /// ISO 8601 with an explicit offset, as the spec's examples (`2014-10-09T05:20:09+00:00`).
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub version: u64,
}

struct Limiter {
    limit: u32,
    window: Duration,
    started: Option<Instant>,
    used: u32,
    refused: u64,
}

enum Admission {
    Admitted { remaining: u32, reset: Instant },
    Refused { reset: Instant },
}

impl Limiter {
    fn new(limit: u32, window: Duration) -> Self {
        Limiter {
            limit,
            window,
            started: None,
            used: 0,
            refused: 0,
        }
    }

    /// A fixed window opened by the first request after the previous one ended.
    fn admit(&mut self, now: Instant) -> Admission {
        let started = match self.started {
            Some(started) if now < started + self.window => started,
            _ => {
                self.started = Some(now);
                self.used = 0;
                now
            }
        };
        let reset = started + self.window;
        if self.used >= self.limit {
            self.refused += 1;
            return Admission::Refused { reset };
        }
        self.used += 1;
        Admission::Admitted {
            remaining: self.limit - self.used,
            reset,
        }
    }
}

struct State {
    customers: HashMap<String, Customer>,
    /// version → customer id; every customer appears once, under its current version.
    by_version: BTreeMap<u64, String>,
    last_version: u64,
    token: String,
    limiter: Limiter,
    webhooks: webhooks::Webhooks,
    sales: sales::Sales,
}

impl Default for State {
    fn default() -> Self {
        State {
            customers: HashMap::new(),
            by_version: BTreeMap::new(),
            last_version: FIRST_VERSION,
            token: DEMO_TOKEN.to_string(),
            limiter: Limiter::new(limit_for_registers(1), RATE_WINDOW),
            webhooks: Default::default(),
            sales: sales::Sales::default(),
        }
    }
}

impl State {
    /// The version is global and only increases; steps vary, since the docs warn that consecutive
    /// versions of one resource are not 1 apart.
    fn next_version(&mut self) -> u64 {
        self.last_version += 1 + splitmix(self.last_version) % 7;
        self.last_version
    }

    fn store(&mut self, mut customer: Customer) -> String {
        if let Some(old) = self.customers.get(&customer.id) {
            self.by_version.remove(&old.version);
        }
        customer.version = self.next_version();
        let id = customer.id.clone();
        self.by_version.insert(customer.version, id.clone());
        self.customers.insert(id.clone(), customer);
        self.notify_customer(&id);
        id
    }
}

/// The documented limit for a retailer: `300 × registers + 50` per 5-minute window.
pub fn limit_for_registers(registers: u32) -> u32 {
    300 * registers + 50
}

/// The simulated X-Series retailer, shared by every request.
#[derive(Clone, Default)]
pub struct LightspeedX {
    state: Arc<Mutex<State>>,
}

impl LightspeedX {
    /// Clears customers and restores the demo token and the default rate limit.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lightspeed-x state lock")
    }

    /// Adds the demo people, oldest edit first, so versions follow `updated_at` as on a real store.
    pub fn seed_demo(&self, people: &[Person]) {
        let mut ordered: Vec<&Person> = people.iter().collect();
        ordered.sort_by_key(|p| (p.updated_at, p.index));
        let mut state = self.lock();
        for person in ordered {
            let customer = demo_customer(person);
            state.store(customer);
        }
    }

    /// Adds a customer and returns its id. Empty `id`, `customer_code`, `created_at` and
    /// `updated_at` are filled in; the version is always assigned.
    pub fn add_customer(&self, mut customer: Customer) -> String {
        if customer.id.is_empty() {
            customer.id = uuid_from(rand::random::<u128>());
        }
        if customer.customer_code.is_empty() {
            let short: String = customer.id.chars().take(8).collect();
            customer.customer_code = format!("C-{}", short.to_uppercase());
        }
        if customer.created_at.is_empty() {
            customer.created_at = timestamp(Utc::now());
        }
        if customer.updated_at.is_empty() {
            customer.updated_at = customer.created_at.clone();
        }
        customer.name = full_name(&customer);
        self.lock().store(customer)
    }

    /// Edits a customer as the POS would: `updated_at` becomes now and the version is bumped.
    /// Returns false when there is no such customer.
    pub fn edit_customer(&self, id: &str, edit: impl FnOnce(&mut Customer)) -> bool {
        let mut state = self.lock();
        let Some(mut customer) = state.customers.get(id).cloned() else {
            return false;
        };
        edit(&mut customer);
        customer.id = id.to_string();
        customer.name = full_name(&customer);
        customer.updated_at = timestamp(Utc::now());
        state.store(customer);
        true
    }

    /// Deletes a customer: it keeps its record with `deleted_at` set, visible with `deleted=true`.
    pub fn delete_customer(&self, id: &str) -> bool {
        let mut state = self.lock();
        let Some(mut customer) = state.customers.get(id).cloned() else {
            return false;
        };
        let now = timestamp(Utc::now());
        customer.deleted_at = Some(now.clone());
        customer.updated_at = now;
        state.store(customer);
        true
    }

    pub fn customer(&self, id: &str) -> Option<Customer> {
        self.lock().customers.get(id).cloned()
    }

    /// Ids of customers not deleted, in version order.
    pub fn live_ids(&self) -> Vec<String> {
        let state = self.lock();
        state
            .by_version
            .values()
            .filter(|id| state.customers[*id].deleted_at.is_none())
            .cloned()
            .collect()
    }

    /// The highest version assigned so far.
    pub fn max_version(&self) -> u64 {
        self.lock().last_version
    }

    /// The bearer token requests must carry.
    pub fn set_token(&self, token: &str) {
        self.lock().token = token.to_string();
    }

    /// Sets the limit to the documented `300 × registers + 50` per 5 minutes.
    pub fn set_registers(&self, registers: u32) {
        self.set_rate_limit(limit_for_registers(registers), RATE_WINDOW);
    }

    /// Sets the limiter to `limit` requests per `window` (tests use small ones) and starts afresh.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut state = self.lock();
        let refused = state.limiter.refused;
        state.limiter = Limiter::new(limit, window);
        state.limiter.refused = refused;
    }

    /// Requests the rate limiter refused with 429 since the last reset.
    pub fn refused(&self) -> u64 {
        self.lock().limiter.refused
    }
}

impl crate::Simulator for LightspeedX {
    const NAME: &'static str = "lightspeed-x";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        LightspeedX::reset(self);
    }

    fn seed(&self, people: &[crate::seed::Person]) {
        // Sales first: the store's latest version stays a customer's, as before sales existed.
        self.seed_demo_sales(people);
        self.seed_demo(people);
    }
}

pub fn router(sim: LightspeedX) -> Router {
    Router::new()
        .route("/api/2.0/customers", get(list_customers))
        .route("/api/2.0/customers/{id}", get(sales::get_customer))
        .route("/api/2.0/sales", get(sales::list_sales))
        .route("/api/2.0/sales/{id}", get(sales::get_sale))
        .route("/api/2.0/products", get(sales::list_products))
        .route("/api/2.0/outlets", get(sales::list_outlets))
        .with_state(sim)
}

#[derive(Serialize)]
struct VersionRange {
    min: u64,
    max: u64,
}

#[derive(Serialize)]
struct Collection<'a> {
    data: Vec<&'a Customer>,
    version: Option<VersionRange>,
}

async fn list_customers(
    AxumState(sim): AxumState<LightspeedX>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut state = sim.lock();
    if !authorized(&headers, &state.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "Access token is not valid"}),
        );
    }
    let limit = state.limiter.limit;
    let (remaining, reset) = match state.limiter.admit(Instant::now()) {
        Admission::Admitted { remaining, reset } => (remaining, reset),
        Admission::Refused { reset } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"error": "Too Many Requests", "message": "Rate limiting enforced"}),
            );
            let headers = response.headers_mut();
            rate_headers(headers, limit, 0, reset);
            if let Ok(value) = HeaderValue::from_str(&http_date_ceil(reset)) {
                headers.insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    };
    let mut response = match page(&state, &query) {
        Ok(body) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("static response parts"),
        Err(message) => error(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "Bad Request", "message": message}),
        ),
    };
    rate_headers(response.headers_mut(), limit, remaining, reset);
    response
}

/// The token and the rate limiter around one read; `serve` builds the JSON body or an error.
fn gated(
    sim: &LightspeedX,
    headers: &HeaderMap,
    serve: impl FnOnce(&State) -> Result<serde_json::Value, (StatusCode, serde_json::Value)>,
) -> Response {
    let mut state = sim.lock();
    if !authorized(headers, &state.token) {
        return error(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"error": "Access token is not valid"}),
        );
    }
    let limit = state.limiter.limit;
    let (remaining, reset) = match state.limiter.admit(Instant::now()) {
        Admission::Admitted { remaining, reset } => (remaining, reset),
        Admission::Refused { reset } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"error": "Too Many Requests", "message": "Rate limiting enforced"}),
            );
            let headers = response.headers_mut();
            rate_headers(headers, limit, 0, reset);
            if let Ok(value) = HeaderValue::from_str(&http_date_ceil(reset)) {
                headers.insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    };
    let mut response = match serve(&state) {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err((status, body)) => error(status, body),
    };
    rate_headers(response.headers_mut(), limit, remaining, reset);
    response
}

fn page(state: &State, query: &HashMap<String, String>) -> Result<Vec<u8>, String> {
    let after = match query.get("after").map(String::as_str) {
        None | Some("") => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("after must be a version number, got {v:?}"))?,
    };
    let before = match query.get("before").map(String::as_str) {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| format!("before must be a version number, got {v:?}"))?,
        ),
    };
    let page_size = match query.get("page_size").map(String::as_str) {
        None | Some("") => DEFAULT_PAGE_SIZE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_PAGE_SIZE),
            _ => return Err(format!("page_size must be a positive integer, got {v:?}")),
        },
    };
    let deleted = match query.get("deleted").map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => return Err(format!("deleted must be true or false, got {v:?}")),
    };
    let upper = before.map_or(Bound::Unbounded, Bound::Excluded);
    if before.is_some_and(|b| b <= after) {
        return Ok(serde_json::to_vec(&Collection {
            data: Vec::new(),
            version: None,
        })
        .expect("serialisable"));
    }
    let data: Vec<&Customer> = state
        .by_version
        .range((Bound::Excluded(after), upper))
        .map(|(_, id)| &state.customers[id])
        .filter(|c| deleted || c.deleted_at.is_none())
        .take(page_size)
        .collect();
    let version = match (data.first(), data.last()) {
        (Some(first), Some(last)) => Some(VersionRange {
            min: first.version,
            max: last.version,
        }),
        _ => None,
    };
    Ok(serde_json::to_vec(&Collection { data, version }).expect("serialisable"))
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && presented.trim() == token && !token.is_empty()
}

fn rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: Instant) {
    headers.insert("X-RateLimit-Limit", HeaderValue::from(limit));
    headers.insert("X-RateLimit-Remaining", HeaderValue::from(remaining));
    if let Ok(value) = HeaderValue::from_str(&http_date_ceil(reset)) {
        headers.insert("X-RateLimit-Reset", value);
    }
}

/// An HTTP date for `at`, rounded up to the second: the format has no fractions, and a client
/// waiting until a rounded-down time would come back a moment too early.
fn http_date_ceil(at: Instant) -> String {
    let wall = SystemTime::now() + at.saturating_duration_since(Instant::now());
    let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds))
}

fn error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `2014-10-09T05:20:09+00:00`, the spec's format.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn full_name(customer: &Customer) -> Option<String> {
    let parts: Vec<&str> = [&customer.first_name, &customer.last_name]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4-shaped UUID from 128 bits.
fn uuid_from(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn demo_customer(person: &Person) -> Customer {
    let bits = (u128::from(splitmix(person.index as u64)) << 64)
        | u128::from(splitmix(!(person.index as u64)));
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut customer = Customer {
        id: uuid_from(bits),
        customer_code: format!(
            "{}-{:04X}",
            person.first_name,
            splitmix(person.index as u64) & 0xFFFF
        ),
        first_name: some(&person.first_name),
        last_name: some(&person.last_name),
        email: some(&person.email),
        // X-Series records only an opt-out, so "never opted in" and "subscribed" look alike.
        do_not_email: person.marketing == Marketing::Unsubscribed,
        phone: some(&person.phone),
        mobile: None,
        physical_address_1: Some(format!("{} Market Street", 1 + person.index % 300)),
        physical_city: some(&person.city),
        physical_postcode: some(&person.zip),
        physical_state: some(&person.region),
        physical_country_id: some(&person.country),
        customer_group_id: "b1ca8902-f019-11e3-a0f5-b8ca3a64f8f4".to_string(),
        enable_loyalty: person.tags.iter().any(|t| t == "loyalty"),
        custom_field_1: person.tags.first().cloned(),
        created_at: timestamp(person.created_at),
        updated_at: timestamp(person.updated_at),
        ..Customer::default()
    };
    if person.tags.iter().any(|t| t == "wholesale") {
        customer.company_name = Some(format!("{} Trading", person.last_name));
    }
    customer.name = full_name(&customer);
    customer
}
