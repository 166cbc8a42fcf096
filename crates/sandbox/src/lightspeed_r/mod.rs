//! Simulator of the Lightspeed Retail R-Series API V3 `Customer` resource.
//!
//! R-Series has no machine-readable spec; this follows its developer documentation as summarised
//! in `shared/specs/README.md` ([D]):
//! - `GET /API/V3/Account/{accountID}/Customer.json?load_relations=["Contact"]&limit=100&sort=timeStamp`
//!   answers `{"@attributes": {"next", "previous", "limit"}, "Customer": …}`. **Every value is a
//!   string** (`"false"`, `"12"`), and a single child is an object instead of a list: a
//!   one-customer page has `"Customer": {…}`, one email `"ContactEmail": {…}`, several a list.
//! - Paging is by cursor: `next` is the full URL of the next page with an opaque `after=` token, or
//!   an empty string on the last page. `limit` is at most 100.
//! - OAuth `Authorization: Bearer <token>`.
//! - A leaky bucket per account (and client): size 90, drip 1/s, cost 1 per read; every answer
//!   carries `X-LS-API-Bucket-Level: <level>/<size>`, `X-LS-API-Drip-Rate` and
//!   `X-LS-API-Request-Cost`; a request that would overflow gets 429 with `Retry-After` (seconds)
//!   and `X-LS-API-RateLimit-Type: api-leaky-bucket`.
//!
//! Less certain, marked [U] (from memory of the vendor's "Query parameters" pages, not from a
//! document in this repository):
//! - query operators are written `field=<op>,<value>` (`timeStamp=>,2025-03-01T10:00:00+00:00`,
//!   URL-encoded `timeStamp=%3E%2C…`), with `=, !=, <, >, <=, >=` and `><,<low>,<high>` (between);
//!   a bare value means equality. An unencoded `+` in an offset reaches the server as a space, and
//!   the simulator refuses such a time with 400, as a real server cannot read it either;
//! - archived records: hidden by default, included with `archived=true`, alone with
//!   `archived=only`; archiving bumps `timeStamp`;
//! - an empty relation is an empty string (`"Emails": ""`); an empty page has no `Customer` key;
//! - `count` appears in `@attributes` only when `count=1` is asked for, which costs 10;
//! - edits of the Contact also bump the Customer's `timeStamp`;
//! - `previous` is always empty here (backward paging is not simulated), and so is the burst
//!   limiter.
//!
//! Sales (`Sale.json`, `SaleLine.json`, `Shop.json`) are in [`sales`].

mod sales;

pub use sales::{Category, DEMO_SALES, Discount, Item, Sale, SaleLine, ShipTo, Shop};

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{OriginalUri, Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike, Utc};
use serde_json::{Map, Value, json};

use crate::seed::{Marketing, Person};

/// The token the simulator accepts until [`LightspeedR::set_token`] changes it.
pub const DEMO_TOKEN: &str = "lsr-sandbox-token";
/// The account the simulator serves until [`LightspeedR::set_account_id`] changes it.
pub const DEMO_ACCOUNT_ID: &str = "230001";
/// Largest `limit`; larger values are clamped.
pub const MAX_LIMIT: usize = 100;
/// The documented default bucket: 90 drips, draining 1 per second.
pub const DEFAULT_BUCKET_SIZE: f64 = 90.0;
pub const DEFAULT_DRIP_RATE: f64 = 1.0;

/// One email of a contact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactEmail {
    pub address: String,
    /// `Primary` or `Secondary`.
    pub use_type: String,
}

/// One phone number of a contact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactPhone {
    pub number: String,
    /// `Home`, `Work`, `Pager`, `Mobile` or `Fax`.
    pub use_type: String,
}

/// One postal address of a contact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactAddress {
    pub address1: String,
    pub address2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub country: String,
    pub country_code: String,
}

/// The `Contact` relation of a customer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    pub emails: Vec<ContactEmail>,
    pub phones: Vec<ContactPhone>,
    pub addresses: Vec<ContactAddress>,
    /// The customer asked not to be emailed.
    pub no_email: bool,
    pub no_mail: bool,
    pub no_phone: bool,
    pub time_stamp: DateTime<Utc>,
}

/// A customer, typed; the wire rendering turns every value into a string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Customer {
    /// 0 in [`LightspeedR::add_customer`] means "assign the next id".
    pub customer_id: u64,
    pub first_name: String,
    pub last_name: String,
    pub dob: String,
    pub archived: bool,
    /// The customer's title ([U] the docs list the field without saying what it holds; Lightspeed's
    /// customer form calls it "Title", a job title or an honorific).
    pub title: String,
    pub company: String,
    pub customer_type_id: u64,
    pub create_time: DateTime<Utc>,
    /// Last change, to the second.
    pub time_stamp: DateTime<Utc>,
    pub contact: Contact,
}

struct Bucket {
    size: f64,
    drip: f64,
    level: f64,
    at: Instant,
    refused: u64,
    max_level: f64,
}

impl Bucket {
    fn new(size: f64, drip: f64) -> Self {
        Bucket {
            size,
            drip,
            level: 0.0,
            at: Instant::now(),
            refused: 0,
            max_level: 0.0,
        }
    }

    fn drain(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level - elapsed * self.drip).max(0.0);
        self.at = now;
    }

    /// Adds `cost` or, when it would overflow, refuses with the seconds until it fits.
    fn admit(&mut self, cost: f64, now: Instant) -> Result<(), f64> {
        self.drain(now);
        if self.level + cost > self.size {
            self.refused += 1;
            return Err((self.level + cost - self.size) / self.drip);
        }
        self.level += cost;
        self.max_level = self.max_level.max(self.level);
        Ok(())
    }
}

struct State {
    customers: BTreeMap<u64, Customer>,
    /// (timeStamp, customerID) of every customer, for `sort=timeStamp`.
    by_time: BTreeSet<(DateTime<Utc>, u64)>,
    token: String,
    account_id: String,
    offset: FixedOffset,
    bucket: Bucket,
    sales: sales::Sales,
}

impl Default for State {
    fn default() -> Self {
        State {
            customers: BTreeMap::new(),
            by_time: BTreeSet::new(),
            token: DEMO_TOKEN.to_string(),
            account_id: DEMO_ACCOUNT_ID.to_string(),
            offset: FixedOffset::east_opt(0).expect("UTC offset"),
            bucket: Bucket::new(DEFAULT_BUCKET_SIZE, DEFAULT_DRIP_RATE),
            sales: sales::Sales::default(),
        }
    }
}

impl State {
    fn store(&mut self, customer: Customer) {
        if let Some(old) = self.customers.get(&customer.customer_id) {
            self.by_time.remove(&(old.time_stamp, old.customer_id));
        }
        self.by_time
            .insert((customer.time_stamp, customer.customer_id));
        self.customers.insert(customer.customer_id, customer);
    }
}

/// The simulated R-Series account, shared by every request.
#[derive(Clone, Default)]
pub struct LightspeedR {
    state: Arc<Mutex<State>>,
}

impl LightspeedR {
    /// Clears customers and restores the demo token, account, zone and bucket.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lightspeed-r state lock")
    }

    /// Adds the demo people as customers 1..=n.
    pub fn seed_demo(&self, people: &[Person]) {
        let mut state = self.lock();
        for person in people {
            state.store(demo_customer(person));
        }
    }

    /// Adds a customer and returns its id. `customer_id` 0 takes the next free id; an unset
    /// (epoch) `create_time`/`time_stamp` becomes now.
    pub fn add_customer(&self, mut customer: Customer) -> u64 {
        let mut state = self.lock();
        if customer.customer_id == 0 {
            customer.customer_id = state.customers.keys().next_back().map_or(1, |id| id + 1);
        }
        let now = now_to_second();
        if customer.create_time == DateTime::<Utc>::default() {
            customer.create_time = now;
        }
        if customer.time_stamp == DateTime::<Utc>::default() {
            customer.time_stamp = now;
        }
        if customer.contact.time_stamp == DateTime::<Utc>::default() {
            customer.contact.time_stamp = customer.time_stamp;
        }
        let id = customer.customer_id;
        state.store(customer);
        id
    }

    /// Edits a customer (or its contact); both timeStamps become now. False if there is none.
    pub fn edit_customer(&self, id: u64, edit: impl FnOnce(&mut Customer)) -> bool {
        let mut state = self.lock();
        let Some(mut customer) = state.customers.get(&id).cloned() else {
            return false;
        };
        edit(&mut customer);
        customer.customer_id = id;
        let now = now_to_second();
        customer.time_stamp = now;
        customer.contact.time_stamp = now;
        state.store(customer);
        true
    }

    /// Archives a customer (what `DELETE Customer/{id}.json` does).
    pub fn archive_customer(&self, id: u64) -> bool {
        self.edit_customer(id, |c| c.archived = true)
    }

    pub fn customer(&self, id: u64) -> Option<Customer> {
        self.lock().customers.get(&id).cloned()
    }

    pub fn set_token(&self, token: &str) {
        self.lock().token = token.to_string();
    }

    pub fn set_account_id(&self, account_id: &str) {
        self.lock().account_id = account_id.to_string();
    }

    /// The zone times are rendered in (the shop's); instants are unchanged.
    pub fn set_utc_offset(&self, offset: FixedOffset) {
        self.lock().offset = offset;
    }

    /// A fresh, empty bucket of `size` drips draining `drip_per_second`.
    pub fn set_bucket(&self, size: f64, drip_per_second: f64) {
        let mut state = self.lock();
        let refused = state.bucket.refused;
        state.bucket = Bucket::new(size, drip_per_second);
        state.bucket.refused = refused;
    }

    /// Requests refused because the bucket would have overflowed.
    pub fn refused(&self) -> u64 {
        self.lock().bucket.refused
    }

    /// The highest level the bucket reached since it was last set (never above its size).
    pub fn max_level(&self) -> f64 {
        self.lock().bucket.max_level
    }
}

impl crate::Simulator for LightspeedR {
    const NAME: &'static str = "lightspeed-r";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        LightspeedR::reset(self);
    }

    fn seed(&self, people: &[crate::seed::Person]) {
        self.seed_demo(people);
        self.seed_demo_sales(people);
    }
}

pub fn router(sim: LightspeedR) -> Router {
    Router::new()
        .route(
            "/API/V3/Account/{account_id}/Customer.json",
            get(list_customers),
        )
        .route(
            "/API/V3/Account/{account_id}/Sale.json",
            get(sales::list_sales),
        )
        .route(
            "/API/V3/Account/{account_id}/SaleLine.json",
            get(sales::list_sale_lines),
        )
        .route(
            "/API/V3/Account/{account_id}/Shop.json",
            get(sales::list_shops),
        )
        .with_state(sim)
}

fn vendor_error(status: StatusCode, message: &str, class: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "httpCode": status.as_u16().to_string(),
            "httpMessage": status.canonical_reason().unwrap_or(""),
            "message": message,
            "errorClass": class,
        })),
    )
        .into_response()
}

async fn list_customers(
    AxumState(sim): AxumState<LightspeedR>,
    Path(account_id): Path<String>,
    OriginalUri(original): OriginalUri,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Response {
    gated(
        &sim,
        &account_id,
        original.path(),
        raw_query.as_deref(),
        &headers,
        page,
    )
}

/// One read of any resource: the token, the account and the leaky bucket (`count=1` costs 10),
/// then `serve(state, query pairs, this URL without its query, count wanted)` builds the body; its
/// `Err` is a 400. Every answer carries the bucket headers.
fn gated(
    sim: &LightspeedR,
    account_id: &str,
    path: &str,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    serve: impl FnOnce(&State, &[(String, String)], &str, bool) -> Result<Value, String>,
) -> Response {
    let mut state = sim.lock();
    if !authorized(headers, &state.token) {
        return vendor_error(
            StatusCode::UNAUTHORIZED,
            "Invalid access token.",
            "Exception",
        );
    }
    if account_id != state.account_id {
        // [U]: the status for an account the token does not reach.
        return vendor_error(
            StatusCode::NOT_FOUND,
            "Account not found.",
            "NotFoundException",
        );
    }
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let wants_count = param(&pairs, "count") == Some("1");
    let cost = if wants_count { 10.0 } else { 1.0 };
    let now = Instant::now();
    let admitted = state.bucket.admit(cost, now);
    let mut response = match admitted {
        Err(wait) => {
            let mut response = vendor_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
                "RateLimitException",
            );
            let headers = response.headers_mut();
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.ceil().max(1.0) as u64),
            );
            headers.insert(
                "X-LS-API-RateLimit-Type",
                HeaderValue::from_static("api-leaky-bucket"),
            );
            response
        }
        Ok(()) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let self_url = format!("http://{host}{path}");
            match serve(&state, &pairs, &self_url, wants_count) {
                Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
                Err(message) => {
                    vendor_error(StatusCode::BAD_REQUEST, &message, "InvalidQueryException")
                }
            }
        }
    };
    let bucket = &state.bucket;
    let out = response.headers_mut();
    if let Ok(value) =
        HeaderValue::from_str(&format!("{}/{}", number(bucket.level), number(bucket.size)))
    {
        out.insert("X-LS-API-Bucket-Level", value);
    }
    if let Ok(value) = HeaderValue::from_str(&number(bucket.drip)) {
        out.insert("X-LS-API-Drip-Rate", value);
    }
    if let Ok(value) = HeaderValue::from_str(&number(cost)) {
        out.insert("X-LS-API-Request-Cost", value);
    }
    response
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    CustomerId,
    TimeStamp,
}

#[derive(Clone, Copy, PartialEq)]
enum Archived {
    Exclude,
    Include,
    Only,
}

enum TimeFilter {
    Cmp(&'static str, DateTime<Utc>),
    Between(DateTime<Utc>, DateTime<Utc>),
}

impl TimeFilter {
    fn parse(raw: &str) -> Result<TimeFilter, String> {
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s.trim_matches(' '))
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    format!(
                        "timeStamp value {s:?} is not an ISO 8601 time with offset (was a '+' left unencoded?)"
                    )
                })
        };
        let Some((op, rest)) = raw.split_once(',') else {
            return Ok(TimeFilter::Cmp("=", time(raw)?));
        };
        let op = match op {
            "=" => "=",
            "!=" => "!=",
            "<" => "<",
            ">" => ">",
            "<=" => "<=",
            ">=" => ">=",
            "><" => {
                let (low, high) = rest
                    .split_once(',')
                    .ok_or_else(|| "timeStamp between needs two values".to_string())?;
                return Ok(TimeFilter::Between(time(low)?, time(high)?));
            }
            other => return Err(format!("unknown query operator {other:?}")),
        };
        Ok(TimeFilter::Cmp(op, time(rest)?))
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        match *self {
            TimeFilter::Cmp("=", v) => t == v,
            TimeFilter::Cmp("!=", v) => t != v,
            TimeFilter::Cmp("<", v) => t < v,
            TimeFilter::Cmp(">", v) => t > v,
            TimeFilter::Cmp("<=", v) => t <= v,
            TimeFilter::Cmp(">=", v) => t >= v,
            TimeFilter::Cmp(_, _) => false,
            TimeFilter::Between(low, high) => low <= t && t <= high,
        }
    }
}

/// The opaque cursor: the sort key of the last record served.
fn encode_cursor(sort: Sort, customer: &Customer) -> String {
    let raw = match sort {
        Sort::CustomerId => format!("id:{}", customer.customer_id),
        Sort::TimeStamp => format!(
            "ts:{}:{}",
            customer
                .time_stamp
                .timestamp_nanos_opt()
                .unwrap_or_default(),
            customer.customer_id
        ),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

enum Cursor {
    Id(u64),
    Time(DateTime<Utc>, u64),
}

fn decode_cursor(token: &str) -> Option<Cursor> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let mut parts = raw.split(':');
    match parts.next()? {
        "id" => Some(Cursor::Id(parts.next()?.parse().ok()?)),
        "ts" => {
            let nanos: i64 = parts.next()?.parse().ok()?;
            let id = parts.next()?.parse().ok()?;
            Some(Cursor::Time(DateTime::from_timestamp_nanos(nanos), id))
        }
        _ => None,
    }
}

fn page(
    state: &State,
    pairs: &[(String, String)],
    self_url: &str,
    wants_count: bool,
) -> Result<Value, String> {
    let limit = match param(pairs, "limit") {
        None | Some("") => MAX_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => return Err(format!("limit must be a positive integer, got {v:?}")),
        },
    };
    let sort = match param(pairs, "sort") {
        None | Some("") | Some("customerID") => Sort::CustomerId,
        Some("timeStamp") => Sort::TimeStamp,
        Some(other) => return Err(format!("unsupported sort {other:?}")),
    };
    let archived = match param(pairs, "archived") {
        None | Some("") | Some("false") | Some("0") => Archived::Exclude,
        Some("true") | Some("1") => Archived::Include,
        Some("only") => Archived::Only,
        Some(other) => {
            return Err(format!(
                "archived must be true, false or only, got {other:?}"
            ));
        }
    };
    let time_filter = param(pairs, "timeStamp")
        .map(TimeFilter::parse)
        .transpose()?;
    let relations: Vec<String> = match param(pairs, "load_relations") {
        None | Some("") => Vec::new(),
        Some("all") => vec!["Contact".to_string()],
        Some(v) => serde_json::from_str(v)
            .map_err(|_| format!("load_relations must be a JSON array of names, got {v:?}"))?,
    };
    let with_contact = relations.iter().any(|r| r == "Contact");
    let cursor = match param(pairs, "after") {
        None | Some("") => None,
        Some(token) => Some(decode_cursor(token).ok_or_else(|| "invalid after token".to_string())?),
    };

    let keep = |c: &&Customer| {
        let archive_ok = match archived {
            Archived::Exclude => !c.archived,
            Archived::Include => true,
            Archived::Only => c.archived,
        };
        archive_ok && time_filter.as_ref().is_none_or(|f| f.matches(c.time_stamp))
    };
    let ordered: Box<dyn Iterator<Item = &Customer>> = match (sort, cursor) {
        (Sort::CustomerId, cursor) => {
            let start = match cursor {
                None => Bound::Unbounded,
                Some(Cursor::Id(id)) => Bound::Excluded(id),
                Some(Cursor::Time(..)) => return Err("after token does not match sort".into()),
            };
            Box::new(
                state
                    .customers
                    .range((start, Bound::Unbounded))
                    .map(|(_, c)| c),
            )
        }
        (Sort::TimeStamp, cursor) => {
            let start = match cursor {
                None => Bound::Unbounded,
                Some(Cursor::Time(t, id)) => Bound::Excluded((t, id)),
                Some(Cursor::Id(_)) => return Err("after token does not match sort".into()),
            };
            Box::new(
                state
                    .by_time
                    .range((start, Bound::Unbounded))
                    .map(|(_, id)| &state.customers[id]),
            )
        }
    };
    let mut selected: Vec<&Customer> = ordered.filter(keep).take(limit + 1).collect();
    let more = selected.len() > limit;
    selected.truncate(limit);

    let next = match (more, selected.last()) {
        (true, Some(last)) => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs.iter().filter(|(k, _)| k != "after") {
                query.append_pair(k, v);
            }
            query.append_pair("after", &encode_cursor(sort, last));
            format!("{self_url}?{}", query.finish())
        }
        _ => String::new(),
    };
    let mut attributes = Map::new();
    if wants_count {
        let count = state.customers.values().filter(|c| keep(c)).count();
        attributes.insert("count".into(), Value::String(count.to_string()));
    }
    attributes.insert("limit".into(), Value::String(limit.to_string()));
    attributes.insert("next".into(), Value::String(next));
    attributes.insert("previous".into(), Value::String(String::new()));

    let mut body = Map::new();
    body.insert("@attributes".into(), Value::Object(attributes));
    let rendered: Vec<Value> = selected
        .iter()
        .map(|c| render(c, with_contact, state.offset))
        .collect();
    if let Some(customers) = one_or_many(rendered) {
        body.insert("Customer".into(), customers);
    }
    Ok(Value::Object(body))
}

/// The XML-derived JSON convention: nothing, one object, or a list of two or more.
fn one_or_many(mut items: Vec<Value>) -> Option<Value> {
    match items.len() {
        0 => None,
        1 => items.pop(),
        _ => Some(Value::Array(items)),
    }
}

/// A relation wrapper: `{"ContactEmail": …}`, or `""` when empty.
fn relation(name: &str, items: Vec<Value>) -> Value {
    match one_or_many(items) {
        None => Value::String(String::new()),
        Some(inner) => json!({ name: inner }),
    }
}

fn time(t: DateTime<Utc>, offset: FixedOffset) -> String {
    t.with_timezone(&offset)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn flag(b: bool) -> String {
    b.to_string()
}

fn render(c: &Customer, with_contact: bool, offset: FixedOffset) -> Value {
    let mut v = json!({
        "customerID": c.customer_id.to_string(),
        "firstName": c.first_name,
        "lastName": c.last_name,
        "dob": c.dob,
        "archived": flag(c.archived),
        "title": c.title,
        "company": c.company,
        "companyRegistrationNumber": "",
        "vatNumber": "",
        "creditAccountID": "0",
        "customerTypeID": c.customer_type_id.to_string(),
        "discountID": "0",
        "taxCategoryID": "0",
        "createTime": time(c.create_time, offset),
        "timeStamp": time(c.time_stamp, offset),
    });
    if with_contact {
        let contact = &c.contact;
        let emails = contact
            .emails
            .iter()
            .map(|e| json!({"address": e.address, "useType": e.use_type}))
            .collect();
        let phones = contact
            .phones
            .iter()
            .map(|p| json!({"number": p.number, "useType": p.use_type}))
            .collect();
        let addresses = contact
            .addresses
            .iter()
            .map(|a| {
                json!({
                    "address1": a.address1, "address2": a.address2, "city": a.city,
                    "state": a.state, "zip": a.zip, "country": a.country,
                    "countryCode": a.country_code, "stateCode": "",
                })
            })
            .collect();
        v["Contact"] = json!({
            "contactID": c.customer_id.to_string(),
            "custom": "",
            "noEmail": flag(contact.no_email),
            "noPhone": flag(contact.no_phone),
            "noMail": flag(contact.no_mail),
            "Addresses": relation("ContactAddress", addresses),
            "Phones": relation("ContactPhone", phones),
            "Emails": relation("ContactEmail", emails),
            "Websites": "",
            "timeStamp": time(contact.time_stamp, offset),
        });
    }
    v
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

/// A level or rate as the headers show it: rounded **up** to 3 decimals, so a client that waits
/// for "level + cost ≤ size" by the header never waits too little.
fn number(x: f64) -> String {
    let rounded = (x * 1000.0).ceil() / 1000.0;
    let text = format!("{rounded:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn now_to_second() -> DateTime<Utc> {
    let now = Utc::now();
    now.with_nanosecond(0).unwrap_or(now)
}

const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("NL", "Netherlands"),
    ("CA", "Canada"),
    ("SE", "Sweden"),
    ("DE", "Germany"),
    ("US", "United States"),
    ("AU", "Australia"),
];

fn demo_customer(person: &Person) -> Customer {
    let id = person.index as u64 + 1;
    let mut emails = vec![ContactEmail {
        address: person.email.clone(),
        use_type: "Primary".into(),
    }];
    // Every seventh customer has a secondary address listed first, so clients must pick by useType.
    if person.index % 7 == 3 {
        emails.insert(
            0,
            ContactEmail {
                address: format!("work.{}", person.email),
                use_type: "Secondary".into(),
            },
        );
    }
    let mut phones = Vec::new();
    if person.index % 5 != 4 {
        phones.push(ContactPhone {
            number: person.phone.clone(),
            use_type: "Mobile".into(),
        });
        if person.index.is_multiple_of(3) {
            phones.push(ContactPhone {
                number: format!("+1666{:07}", person.index),
                use_type: "Home".into(),
            });
        }
    }
    let country = COUNTRY_NAMES
        .iter()
        .find(|(code, _)| *code == person.country)
        .map_or(person.country.as_str(), |(_, name)| name);
    Customer {
        customer_id: id,
        first_name: person.first_name.clone(),
        last_name: person.last_name.clone(),
        dob: String::new(),
        archived: false,
        title: if person.tags.iter().any(|t| t == "wholesale") {
            "Purchasing Manager".to_string()
        } else {
            String::new()
        },
        company: if person.tags.iter().any(|t| t == "wholesale") {
            format!("{} Trading", person.last_name)
        } else {
            String::new()
        },
        customer_type_id: 0,
        create_time: person.created_at,
        time_stamp: person.updated_at,
        contact: Contact {
            emails,
            phones,
            addresses: vec![ContactAddress {
                address1: format!("{} Harbour Road", 1 + person.index % 400),
                address2: String::new(),
                city: person.city.clone(),
                state: person.region.clone(),
                zip: person.zip.clone(),
                country: country.to_string(),
                country_code: person.country.clone(),
            }],
            // R-Series records only an opt-out ("no email"), like X-Series.
            no_email: person.marketing == Marketing::Unsubscribed,
            no_mail: false,
            no_phone: false,
            time_stamp: person.updated_at,
        },
    }
}
