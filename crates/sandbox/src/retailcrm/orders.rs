//! The order half of the RetailCRM simulator: orders, their change history and the reference
//! data an order reader needs, from the official PHP client's models (`Order`, `OrderProduct`,
//! `Offer`, `OrderHistory`, `Site`, `Status`, `Settings`) and the RetailCRM section of
//! `shared/specs/README.md`.
//!
//! Served under `/retailcrm`, with the same auth and rate limit as the customer routes:
//! - `GET /api/v5/orders`: `limit` ∈ {20, 50, 100}, `page`, `filter[ids][]`, `filter[sites][]`,
//!   `filter[createdAtFrom]` / `filter[createdAtTo]` as **dates** (`Y-m-d`, the account's zone, as
//!   the client documentation's examples write them; a datetime is a 400 here [U]); orders in
//!   ascending id order [U];
//! - `GET /api/v5/orders/history`: `filter[sinceId]`, `filter[startDate]`, `filter[endDate]`,
//!   `limit`, `page` (never `page` with `sinceId`, as for customers), ordered by id; each entry
//!   names its `order` (`{id, externalId, number, site, status}`) and, on creation, the whole order;
//! - `GET /api/v5/reference/statuses`: `statuses` keyed by code, each with its `group`;
//! - `GET /api/v5/reference/sites`: `sites` keyed by code, with `name` and `currency`;
//! - `GET /api/v5/settings`: `settings.default_currency.value` and `settings.timezone.value`.
//!
//! Money is rendered as JSON numbers (RetailCRM's `float` fields), item prices per unit:
//! `initialPrice` before discounts, `discountTotal` the discount per unit [U: the client models say
//! "float", the per-unit reading is from RetailCRM's docs]. `totalSumm` = Σ (initialPrice −
//! discountTotal) × quantity + delivery cost.
//!
//! Statuses are the account defaults [U]: `new` (group new), `assembling` (assembling),
//! `send-to-delivery` (delivery), `complete` (complete), `return` (cancel: the goods came back
//! after completion), `cancel-other` (cancel).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State as AxumState};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::{
    HistoryQuery, Params, RetailCrm, SITE, account_offset, account_time, admit, history_query,
    invalid_parameter, limit_and_page, now_secs, pagination,
};
use crate::seed::Person;

/// The account's default currency (Settings → currency).
pub const CURRENCY: &str = "RUB";
/// The account's time zone as its settings name it.
pub const TIME_ZONE: &str = "Europe/Moscow";
/// The name of [`SITE`].
pub const SITE_NAME: &str = "Main store";

/// The status codes of the account and their groups.
pub const STATUSES: [(&str, &str, &str); 6] = [
    ("new", "New", "new"),
    ("assembling", "Assembling", "assembling"),
    ("send-to-delivery", "Sent to delivery", "delivery"),
    ("complete", "Complete", "complete"),
    ("return", "Returned", "cancel"),
    ("cancel-other", "Cancelled", "cancel"),
];

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderItem {
    /// Assigned by the account.
    pub id: u64,
    /// The offer (a product's variant) the line sells; `None` for a line without one.
    pub offer_id: Option<u64>,
    pub offer_external_id: String,
    pub article: String,
    pub product_name: String,
    /// Units (a negative quantity is accepted as sent, as the CRM's API does for manual edits).
    pub quantity: i64,
    /// Price per unit before discounts, in kopecks (hundredths).
    pub initial_price_cents: i64,
    /// Discount per unit, in hundredths.
    pub discount_cents: i64,
}

/// One order of the simulated account.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Assigned by the account.
    pub id: u64,
    /// `{id}A` unless set.
    pub number: String,
    pub site: String,
    /// A code of [`STATUSES`].
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub status_updated_at: DateTime<Utc>,
    pub customer_id: Option<u64>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub city: Option<String>,
    pub country_iso: Option<String>,
    /// `None`: the field is left out (orders from before multi-currency).
    pub currency: Option<String>,
    pub items: Vec<OrderItem>,
    pub delivery_cents: i64,
    pub shipped: bool,
    pub shipment_date: Option<NaiveDate>,
    /// Leaves `totalSumm` out of the answer (a malformed order, for client tests).
    pub omit_total: bool,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            id: 0,
            number: String::new(),
            site: SITE.into(),
            status: "new".into(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            status_updated_at: DateTime::<Utc>::UNIX_EPOCH,
            customer_id: None,
            email: None,
            first_name: None,
            last_name: None,
            phone: None,
            city: None,
            country_iso: None,
            currency: Some(CURRENCY.into()),
            items: Vec::new(),
            delivery_cents: 0,
            shipped: false,
            shipment_date: None,
            omit_total: false,
        }
    }
}

impl Order {
    /// Σ (initial − discount) × quantity, in hundredths.
    pub fn items_total_cents(&self) -> i64 {
        self.items
            .iter()
            .map(|i| (i.initial_price_cents - i.discount_cents) * i.quantity)
            .sum()
    }

    pub fn total_cents(&self) -> i64 {
        self.items_total_cents() + self.delivery_cents
    }
}

/// One entry of the orders' change history.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderHistoryEntry {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub created: bool,
    pub field: String,
    pub old_value: Value,
    pub new_value: Value,
    pub order_id: u64,
}

/// The orders of the account and their history (part of the simulator's state).
#[derive(Debug, Default)]
pub(super) struct OrderBook {
    orders: BTreeMap<u64, Order>,
    history: Vec<OrderHistoryEntry>,
    next_order_id: u64,
    next_item_id: u64,
    next_history_id: u64,
}

impl OrderBook {
    fn record(&mut self, mut entry: OrderHistoryEntry) {
        self.next_history_id += 1;
        entry.id = self.next_history_id;
        self.history.push(entry);
    }
}

fn money(cents: i64) -> Value {
    // RetailCRM's float fields: whole amounts as integers, others with their decimals.
    if cents % 100 == 0 {
        json!(cents / 100)
    } else {
        json!(cents as f64 / 100.0)
    }
}

fn order_json(o: &Order) -> Value {
    let items: Vec<Value> = o
        .items
        .iter()
        .map(|i| {
            let mut item = json!({
                "id": i.id,
                "initialPrice": money(i.initial_price_cents),
                "discountTotal": money(i.discount_cents),
                "prices": [{"price": money(i.initial_price_cents - i.discount_cents), "quantity": i.quantity}],
                "vatRate": "none",
                "createdAt": account_time(&o.created_at),
                "quantity": i.quantity,
                "status": "new",
                "productName": i.product_name,
                "properties": [],
                "purchasePrice": 0,
            });
            if let Some(offer) = i.offer_id {
                item["offer"] = json!({
                    "displayName": i.product_name,
                    "id": offer,
                    "externalId": i.offer_external_id,
                    "xmlId": i.offer_external_id,
                    "name": i.product_name,
                    "article": i.article,
                    "vatRate": "none",
                    "unit": {"code": "pc", "name": "Piece", "sym": "pc."},
                });
            }
            item
        })
        .collect();
    let mut order = json!({
        "slug": o.id,
        "id": o.id,
        "number": o.number,
        "orderType": "eshop-individual",
        "orderMethod": "shopping-cart",
        "privilegeType": "none",
        "countryIso": o.country_iso.clone().unwrap_or_default(),
        "createdAt": account_time(&o.created_at),
        "statusUpdatedAt": account_time(&o.status_updated_at),
        "summ": money(o.items_total_cents()),
        "discountManualAmount": 0,
        "discountManualPercent": 0,
        "prepaySum": 0,
        "purchaseSumm": 0,
        "mark": 0,
        "call": false,
        "expired": false,
        "site": o.site,
        "status": o.status,
        "items": items,
        "payments": {},
        "fromApi": true,
        "shipped": o.shipped,
        "customFields": [],
        "delivery": {
            "cost": money(o.delivery_cents),
            "netCost": 0,
            "address": {
                "countryIso": o.country_iso.clone().unwrap_or_default(),
                "city": o.city.clone().unwrap_or_default(),
            },
        },
        "contragent": {"contragentType": "individual"},
    });
    if !o.omit_total {
        order["totalSumm"] = money(o.total_cents());
    }
    if let Some(currency) = &o.currency {
        order["currency"] = json!(currency);
    }
    for (key, value) in [
        ("email", &o.email),
        ("firstName", &o.first_name),
        ("lastName", &o.last_name),
        ("phone", &o.phone),
    ] {
        if let Some(v) = value {
            order[key] = json!(v);
        }
    }
    if let Some(id) = o.customer_id {
        let mut customer = json!({"type": "customer", "id": id, "site": o.site});
        if let Some(email) = &o.email {
            customer["email"] = json!(email);
        }
        order["customer"] = customer;
        order["contact"] = json!({"id": id});
    }
    if let Some(date) = o.shipment_date {
        order["shipmentDate"] = json!(date.format("%Y-%m-%d").to_string());
    }
    order
}

fn order_reference(o: &Order) -> Value {
    json!({"id": o.id, "number": o.number, "site": o.site, "status": o.status})
}

impl RetailCrm {
    /// Adds an order (id, item ids and number assigned; times now unless set) and records its
    /// creation in the orders' history.
    pub fn add_order(&self, mut order: Order) -> u64 {
        let mut state = self.lock();
        let book = &mut state.orders;
        book.next_order_id += 1;
        let id = book.next_order_id;
        order.id = id;
        if order.number.is_empty() {
            order.number = format!("{id}A");
        }
        for item in &mut order.items {
            book.next_item_id += 1;
            item.id = book.next_item_id;
        }
        let now = now_secs();
        if order.created_at == DateTime::<Utc>::UNIX_EPOCH {
            order.created_at = now;
        }
        if order.status_updated_at == DateTime::<Utc>::UNIX_EPOCH {
            order.status_updated_at = order.created_at;
        }
        let created_at = order.created_at;
        book.orders.insert(id, order);
        book.record(OrderHistoryEntry {
            id: 0,
            created_at: created_at.min(now),
            created: true,
            field: "id".into(),
            old_value: Value::Null,
            new_value: json!(id),
            order_id: id,
        });
        id
    }

    /// Moves an order to another status code; false when the order or the code does not exist.
    pub fn set_order_status(&self, id: u64, code: &str) -> bool {
        if !STATUSES.iter().any(|(c, _, _)| *c == code) {
            return false;
        }
        let mut state = self.lock();
        let book = &mut state.orders;
        let now = now_secs();
        let Some(order) = book.orders.get_mut(&id) else {
            return false;
        };
        let old = std::mem::replace(&mut order.status, code.to_string());
        order.status_updated_at = now;
        book.record(OrderHistoryEntry {
            id: 0,
            created_at: now,
            created: false,
            field: "status".into(),
            old_value: json!({"code": old}),
            new_value: json!({"code": code}),
            order_id: id,
        });
        true
    }

    /// Marks an order shipped on `date` (the "shipped" flag staff set by hand).
    pub fn set_order_shipped(&self, id: u64, date: NaiveDate) -> bool {
        let mut state = self.lock();
        let book = &mut state.orders;
        let now = now_secs();
        let Some(order) = book.orders.get_mut(&id) else {
            return false;
        };
        order.shipped = true;
        order.shipment_date = Some(date);
        book.record(OrderHistoryEntry {
            id: 0,
            created_at: now,
            created: false,
            field: "shipped".into(),
            old_value: json!(false),
            new_value: json!(true),
            order_id: id,
        });
        true
    }

    pub fn order(&self, id: u64) -> Option<Order> {
        self.lock().orders.orders.get(&id).cloned()
    }

    pub fn order_ids(&self) -> Vec<u64> {
        self.lock().orders.orders.keys().copied().collect()
    }

    pub fn order_history(&self) -> Vec<OrderHistoryEntry> {
        self.lock().orders.history.clone()
    }

    /// The demo orders for the demo people; see [`DEMO_ORDERS`]. Deterministic.
    pub fn seed_demo_orders(&self, people: &[Person]) {
        let customer_ids: Vec<u64> = {
            let state = self.lock();
            state.customers.keys().copied().take(people.len()).collect()
        };
        for order in demo_orders(people, &customer_ids) {
            self.add_order(order);
        }
    }
}

/// What [`RetailCrm::seed_demo_orders`] creates for `n ≥ 8` people (fewer: the orders of the people
/// there are), order ids 1.. in this order:
/// - one order per person 0..=6, from their customer with their email: #1 complete with a
///   discount; #2 complete and worth 0 (a free sample); #3 returned after completion (status
///   `return`); #4 complete and shipped; #5 cancelled (`cancel-other`); #6 still `new`; #7
///   complete;
/// - #8: an order without customer or email (a phone order), complete and shipped.
///
/// So an order reader sees 8 orders: four complete and sendable (#1, #3 with its return, #4, #7),
/// one worth 0, one without email, one cancelled, one open.
pub const DEMO_ORDERS: usize = 8;

fn demo_orders(people: &[Person], customer_ids: &[u64]) -> Vec<Order> {
    let catalogue = [
        (501, "TEA-01", "Assam tea, 250 g", 45_000),
        (502, "MUG-02", "Stoneware mug", 89_000),
        (503, "HON-03", "Buckwheat honey", 62_000),
        (504, "SMP-04", "Tea sample", 0),
    ];
    let item = |n: usize, quantity: i64, discount: i64| {
        let (offer, article, name, price) = catalogue[n];
        OrderItem {
            id: 0,
            offer_id: Some(offer),
            offer_external_id: format!("offer-{offer}"),
            article: article.into(),
            product_name: name.into(),
            quantity,
            initial_price_cents: price,
            discount_cents: discount,
        }
    };
    let mut orders = Vec::new();
    for person in people.iter().take(7) {
        let i = person.index;
        let created = person.created_at + Duration::days(2 + i as i64) + Duration::hours(4);
        let mut order = Order {
            customer_id: customer_ids.get(i).copied(),
            email: Some(person.email.clone()),
            first_name: Some(person.first_name.clone()),
            last_name: Some(person.last_name.clone()),
            phone: Some(person.phone.clone()),
            city: Some(person.city.clone()),
            country_iso: Some(person.country.clone()),
            created_at: created,
            status: "complete".into(),
            status_updated_at: created + Duration::hours(20),
            delivery_cents: 30_000,
            ..Order::default()
        };
        match i {
            0 => order.items = vec![item(0, 2, 4_500), item(1, 1, 0)],
            1 => {
                order.items = vec![item(3, 1, 0)];
                order.delivery_cents = 0;
            }
            2 => {
                order.items = vec![item(2, 1, 0)];
                order.status = "return".into();
                order.status_updated_at = created + Duration::days(5);
            }
            3 => {
                order.items = vec![item(1, 2, 0), item(2, 1, 0)];
                order.shipped = true;
                order.shipment_date = Some((created + Duration::days(1)).date_naive());
            }
            4 => {
                order.items = vec![item(0, 1, 0)];
                order.status = "cancel-other".into();
            }
            5 => {
                order.items = vec![item(1, 1, 0)];
                order.status = "new".into();
                order.status_updated_at = created;
            }
            _ => order.items = vec![item(0, 3, 0)],
        }
        orders.push(order);
    }
    if people.len() >= 8 {
        let created = people[0].created_at + Duration::days(6) + Duration::hours(9);
        orders.push(Order {
            phone: Some("+74950000000".into()),
            created_at: created,
            status: "complete".into(),
            status_updated_at: created + Duration::hours(2),
            items: vec![item(2, 2, 0)],
            delivery_cents: 30_000,
            shipped: true,
            shipment_date: Some(created.date_naive()),
            ..Order::default()
        });
    }
    orders
}

/// A `Y-m-d` date filter, read as midnight in the account's zone.
#[allow(clippy::result_large_err)]
fn date_filter(params: &Params, name: &str) -> Result<Option<NaiveDate>, Response> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| invalid_parameter(name, "This value is not a valid date (Y-m-d).")),
    }
}

pub(super) async fn orders_handler(
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
    let (from, to) = match (
        date_filter(&params, "filter[createdAtFrom]"),
        date_filter(&params, "filter[createdAtTo]"),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let mut ids = Vec::new();
    for v in params.all("filter[ids][]") {
        match v.parse::<u64>() {
            Ok(id) => ids.push(id),
            Err(_) => return invalid_parameter("filter[ids]", "This value should be of type int."),
        }
    }
    let sites = params.all("filter[sites][]");
    let local_date = |t: &DateTime<Utc>| t.with_timezone(&account_offset()).date_naive();
    let matching: Vec<&Order> = state
        .orders
        .orders
        .values()
        .filter(|o| ids.is_empty() || ids.contains(&o.id))
        .filter(|o| sites.is_empty() || sites.contains(&o.site.as_str()))
        .filter(|o| from.is_none_or(|f| local_date(&o.created_at) >= f))
        .filter(|o| to.is_none_or(|t| local_date(&o.created_at) <= t))
        .collect();
    let page = page.unwrap_or(1);
    let total = matching.len();
    let orders: Vec<Value> = matching
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(order_json)
        .collect();
    axum::Json(json!({
        "success": true,
        "pagination": pagination(limit, total, page),
        "orders": orders,
    }))
    .into_response()
}

pub(super) async fn orders_history_handler(
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
    let book = &state.orders;
    let matching: Vec<&OrderHistoryEntry> = book
        .history
        .iter()
        .filter(|h| since_id.is_none_or(|s| h.id > s))
        .filter(|h| start.is_none_or(|s| h.created_at >= s))
        .filter(|h| end.is_none_or(|e| h.created_at <= e))
        .collect();
    let total = matching.len();
    let history: Vec<Value> = matching
        .into_iter()
        .skip(((page - 1) * limit) as usize)
        .take(limit as usize)
        .map(|h| {
            let order = book
                .orders
                .get(&h.order_id)
                .map(|o| {
                    if h.created {
                        order_json(o)
                    } else {
                        order_reference(o)
                    }
                })
                .unwrap_or_else(|| json!({"id": h.order_id}));
            json!({
                "id": h.id,
                "createdAt": account_time(&h.created_at),
                "created": h.created,
                "source": "api",
                "field": h.field,
                "oldValue": h.old_value,
                "newValue": h.new_value,
                "apiKey": {"current": false},
                "order": order,
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

pub(super) async fn statuses_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    if let Err(r) = admit(&sim, &headers, &params) {
        return r;
    }
    let statuses: Map<String, Value> = STATUSES
        .iter()
        .enumerate()
        .map(|(n, (code, name, group))| {
            (
                code.to_string(),
                json!({"name": name, "code": code, "ordering": (n + 1) * 10, "active": true, "group": group}),
            )
        })
        .collect();
    axum::Json(json!({"success": true, "statuses": statuses})).into_response()
}

pub(super) async fn sites_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    if let Err(r) = admit(&sim, &headers, &params) {
        return r;
    }
    axum::Json(json!({
        "success": true,
        "sites": {
            SITE: {
                "id": 1,
                "name": SITE_NAME,
                "url": "https://shop.example.ru",
                "code": SITE,
                "defaultForCrm": true,
                "countryIso": "RU",
                "currency": CURRENCY,
                "ordering": 10,
            }
        }
    }))
    .into_response()
}

pub(super) async fn settings_handler(
    AxumState(sim): AxumState<RetailCrm>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref());
    if let Err(r) = admit(&sim, &headers, &params) {
        return r;
    }
    let updated = account_time(&DateTime::<Utc>::UNIX_EPOCH);
    axum::Json(json!({
        "success": true,
        "settings": {
            "default_currency": {"value": CURRENCY, "updated_at": updated},
            "system_language": {"value": "RU", "updated_at": updated},
            "timezone": {"value": TIME_ZONE, "updated_at": updated},
        }
    }))
    .into_response()
}
