//! Sales of the simulated R-Series account: `Sale.json`, `SaleLine.json` and `Shop.json`, behind
//! the same token, account check and leaky bucket as `Customer.json` (cost 1 per read).
//!
//! From the vendor's documentation as summarised in `shared/specs/README.md` ([D]):
//! - `GET Sale.json` with `load_relations`, `limit` ≤ 100, `sort=timeStamp`, cursor paging through
//!   `@attributes.next`; values are strings and a single child is an object, as for customers.
//! - A `SaleLine`'s negative `unitQuantity` is a refund.
//! - `Shop` has `shopID, name, timeZone` (an IANA name).
//!
//! Less certain, marked [U]:
//! - the relations answered: `SaleLines`, `SaleLines.Item`, `SaleLines.Item.Category`,
//!   `SaleLines.Discount`, `Customer`, `Customer.Contact`, `ShipTo`, `Discount`; any other name is
//!   refused with 400 (as the real API refuses an unknown relation);
//! - a refund is a separate, completed sale whose lines have a negative `unitQuantity` and a
//!   `parentSaleLineID` naming the line returned; the original sale is not changed by it;
//! - shipping: `ShipTo.shipped` (`"true"` once someone clicks "shipped"); marking it bumps the
//!   sale's `timeStamp`;
//! - filters: `completed=true|false`, `timeStamp=<op>,<time>` (as for customers), `saleID=IN,[1,2]`
//!   or a bare id; `SaleLine.json` takes `saleLineID=IN,[…]` and `parentSaleLineID=IN,[…]` and
//!   sorts by `saleLineID`; archived sales are hidden unless `archived=true`;
//! - times are rendered in the sale's shop's time zone, with its offset at that instant (DST
//!   included); a sale has no currency field (the account's currency applies);
//! - `calcSubtotal = Σ unitQuantity × unitPrice`, `calcDiscount = Σ line discounts`,
//!   `calcTax1 = Σ line tax`, `calcTotal = total = calcSubtotal − calcDiscount + calcTax1`; a line's
//!   `calcTotal` is its subtotal less its discount plus its tax.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use axum::extract::{OriginalUri, Path, RawQuery, State as AxumState};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::{LightspeedR, MAX_LIMIT, State, TimeFilter, gated, now_to_second, one_or_many, param};
use crate::seed::Person;

/// A shop (store location).
#[derive(Debug, Clone, PartialEq)]
pub struct Shop {
    pub shop_id: u64,
    pub name: String,
    /// IANA name (`America/New_York`); sale times are rendered in it.
    pub time_zone: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub category_id: u64,
    pub name: String,
}

/// A catalogue item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub item_id: u64,
    pub description: String,
    pub system_sku: String,
    pub custom_sku: String,
    pub category_id: u64,
    /// Default price, in cents.
    pub price_cents: i64,
}

/// A discount (its name is what a merchant calls the code).
#[derive(Debug, Clone, PartialEq)]
pub struct Discount {
    pub discount_id: u64,
    pub name: String,
}

/// One line of a sale; money in cents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SaleLine {
    /// 0 in [`LightspeedR::add_sale`] means "assign the next id".
    pub sale_line_id: u64,
    pub item_id: u64,
    /// Negative on a refund line.
    pub unit_quantity: i64,
    pub unit_price_cents: i64,
    /// Discount on the whole line.
    pub discount_cents: i64,
    /// Tax on the whole line.
    pub tax_cents: i64,
    pub discount_id: u64,
    /// On a refund line: the line returned.
    pub parent_sale_line_id: u64,
    pub create_time: DateTime<Utc>,
    pub time_stamp: DateTime<Utc>,
}

impl SaleLine {
    fn subtotal(&self) -> i64 {
        self.unit_quantity * self.unit_price_cents
    }

    fn total(&self) -> i64 {
        self.subtotal() - self.discount_cents + self.tax_cents
    }
}

/// Where a sale ships to; `shipped` is set by hand in Lightspeed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShipTo {
    pub ship_to_id: u64,
    pub shipped: bool,
    pub time_stamp: DateTime<Utc>,
}

/// A sale, typed; the wire rendering turns every value into a string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sale {
    /// 0 in [`LightspeedR::add_sale`] means "assign the next id".
    pub sale_id: u64,
    pub shop_id: u64,
    /// 0: no customer on the sale.
    pub customer_id: u64,
    pub completed: bool,
    pub voided: bool,
    pub archived: bool,
    pub ticket_number: String,
    pub discount_id: u64,
    pub create_time: DateTime<Utc>,
    pub complete_time: Option<DateTime<Utc>>,
    pub time_stamp: DateTime<Utc>,
    pub lines: Vec<SaleLine>,
    pub ship_to: Option<ShipTo>,
}

/// The sales half of the account's state.
#[derive(Default)]
pub(super) struct Sales {
    sales: BTreeMap<u64, Sale>,
    by_time: BTreeSet<(DateTime<Utc>, u64)>,
    shops: BTreeMap<u64, Shop>,
    items: BTreeMap<u64, Item>,
    categories: BTreeMap<u64, Category>,
    discounts: BTreeMap<u64, Discount>,
    next_line_id: u64,
    next_ship_to_id: u64,
}

impl Sales {
    fn store(&mut self, sale: Sale) {
        if let Some(old) = self.sales.get(&sale.sale_id) {
            self.by_time.remove(&(old.time_stamp, old.sale_id));
        }
        self.by_time.insert((sale.time_stamp, sale.sale_id));
        self.sales.insert(sale.sale_id, sale);
    }

    /// Ids for new lines and ship-tos; epoch times become `now`.
    fn complete(&mut self, sale: &mut Sale, now: DateTime<Utc>) {
        let epoch = DateTime::<Utc>::default();
        if sale.create_time == epoch {
            sale.create_time = now;
        }
        if sale.time_stamp == epoch {
            sale.time_stamp = sale.complete_time.unwrap_or(now).max(sale.create_time);
        }
        for line in &mut sale.lines {
            if line.sale_line_id == 0 {
                self.next_line_id += 1;
                line.sale_line_id = self.next_line_id;
            } else {
                self.next_line_id = self.next_line_id.max(line.sale_line_id);
            }
            if line.create_time == epoch {
                line.create_time = sale.create_time;
            }
            if line.time_stamp == epoch {
                line.time_stamp = sale.time_stamp;
            }
        }
        if let Some(ship_to) = &mut sale.ship_to {
            if ship_to.ship_to_id == 0 {
                self.next_ship_to_id += 1;
                ship_to.ship_to_id = self.next_ship_to_id;
            } else {
                self.next_ship_to_id = self.next_ship_to_id.max(ship_to.ship_to_id);
            }
            if ship_to.time_stamp == epoch {
                ship_to.time_stamp = sale.time_stamp;
            }
        }
    }
}

impl LightspeedR {
    /// Adds (or replaces) a shop.
    pub fn add_shop(&self, shop: Shop) {
        self.lock().sales.shops.insert(shop.shop_id, shop);
    }

    /// Sets every shop's time zone (an IANA name the simulator knows); false if it knows none.
    pub fn set_time_zone(&self, time_zone: &str) -> bool {
        if time_zone.parse::<Tz>().is_err() {
            return false;
        }
        for shop in self.lock().sales.shops.values_mut() {
            shop.time_zone = time_zone.to_string();
        }
        true
    }

    pub fn add_category(&self, category: Category) {
        self.lock()
            .sales
            .categories
            .insert(category.category_id, category);
    }

    pub fn add_item(&self, item: Item) {
        self.lock().sales.items.insert(item.item_id, item);
    }

    pub fn add_discount(&self, discount: Discount) {
        self.lock()
            .sales
            .discounts
            .insert(discount.discount_id, discount);
    }

    /// Adds a sale and returns its id. Id 0 takes the next free id, line and ship-to id 0 the next
    /// free ones; an unset (epoch) `create_time` becomes now and an unset `time_stamp` the
    /// completion time (or now).
    pub fn add_sale(&self, mut sale: Sale) -> u64 {
        let mut state = self.lock();
        if sale.sale_id == 0 {
            sale.sale_id = state.sales.sales.keys().next_back().map_or(1, |id| id + 1);
        }
        state.sales.complete(&mut sale, now_to_second());
        let id = sale.sale_id;
        state.sales.store(sale);
        id
    }

    /// Edits a sale; its `timeStamp` becomes now (new lines and ship-tos get ids). False if none.
    pub fn edit_sale(&self, id: u64, edit: impl FnOnce(&mut Sale)) -> bool {
        let mut state = self.lock();
        let Some(mut sale) = state.sales.sales.get(&id).cloned() else {
            return false;
        };
        edit(&mut sale);
        sale.sale_id = id;
        let now = now_to_second();
        sale.time_stamp = now;
        state.sales.complete(&mut sale, now);
        state.sales.store(sale);
        true
    }

    /// Marks a sale shipped (the button in Lightspeed), creating its ship-to when it has none.
    pub fn ship_sale(&self, id: u64) -> bool {
        let now = now_to_second();
        self.edit_sale(id, |sale| {
            let ship_to = sale.ship_to.get_or_insert_with(ShipTo::default);
            ship_to.shipped = true;
            ship_to.time_stamp = now;
        })
    }

    /// Refunds `quantity` units of line `sale_line_id` of sale `sale_id` as a new, completed refund
    /// sale (same shop and customer) and returns its id; `None` if there is no such line.
    pub fn refund_line(&self, sale_id: u64, sale_line_id: u64, quantity: i64) -> Option<u64> {
        let original = self.sale(sale_id)?;
        let line = original
            .lines
            .iter()
            .find(|l| l.sale_line_id == sale_line_id)?
            .clone();
        let share = |cents: i64| cents * quantity / line.unit_quantity.max(1);
        let now = now_to_second();
        Some(self.add_sale(Sale {
            shop_id: original.shop_id,
            customer_id: original.customer_id,
            completed: true,
            complete_time: Some(now),
            create_time: now,
            lines: vec![SaleLine {
                item_id: line.item_id,
                unit_quantity: -quantity,
                unit_price_cents: line.unit_price_cents,
                discount_cents: -share(line.discount_cents),
                tax_cents: -share(line.tax_cents),
                parent_sale_line_id: line.sale_line_id,
                ..SaleLine::default()
            }],
            ..Sale::default()
        }))
    }

    pub fn sale(&self, id: u64) -> Option<Sale> {
        self.lock().sales.sales.get(&id).cloned()
    }

    pub fn sales(&self) -> Vec<Sale> {
        self.lock().sales.sales.values().cloned().collect()
    }

    /// The demo catalogue, shops and sales for the demo people (see the module docs of
    /// [`super`] and [`DEMO_SALES`]). Deterministic: the same people give the same sales.
    pub fn seed_demo_sales(&self, people: &[Person]) {
        if people.is_empty() {
            return;
        }
        for shop in demo_shops() {
            self.add_shop(shop);
        }
        for (category_id, name) in [(1, "T-Shirts"), (2, "Trousers"), (3, "Accessories")] {
            self.add_category(Category {
                category_id,
                name: name.to_string(),
            });
        }
        for item in demo_items() {
            self.add_item(item);
        }
        self.add_discount(Discount {
            discount_id: 1,
            name: "SPRING25".into(),
        });
        for sale in demo_sales(people) {
            self.add_sale(sale);
        }
    }
}

/// What [`LightspeedR::seed_demo_sales`] creates for `n ≥ 10` people (fewer people: the sales of
/// the people there are, the specials only when their person exists):
/// - sales 1..=10, one per person 0..=9 (customer ids 1..=10), completed, shops 1 and 2 in turn;
///   sale 1 has the discount `SPRING25` on its first line; sale 2 is worth $0 (gift wrap only);
///   sale 4 is shipped;
/// - sale 11: completed and shipped, without a customer (never synced: no email);
/// - sale 12: the refund of one unit of sale 3's first line (a refund sale, not an order);
/// - sale 13: person 4's open (not completed) sale, which a `completed=true` read never returns.
///
/// So an order reader sees 11 orders: one $0 (2), one without email (11), one refunded (3, refund
/// id 12), two shipped (4 and 11), one discounted (1).
pub const DEMO_SALES: usize = 13;

fn demo_shops() -> Vec<Shop> {
    vec![
        Shop {
            shop_id: 1,
            name: "Harbour Street".into(),
            time_zone: "America/New_York".into(),
        },
        Shop {
            shop_id: 2,
            name: "Old Town".into(),
            time_zone: "America/New_York".into(),
        },
    ]
}

fn demo_items() -> Vec<Item> {
    [
        (1, "Logo T-Shirt", "TS-LOGO", 1, 2500),
        (2, "Linen Trousers", "TR-LIN", 2, 7950),
        (3, "Canvas Tote", "AC-TOTE", 3, 1800),
        (4, "Striped T-Shirt", "TS-STRIPE", 1, 2900),
        (5, "Wool Scarf", "AC-SCARF", 3, 3499),
        (6, "Gift Wrap", "AC-WRAP", 3, 0),
    ]
    .into_iter()
    .map(
        |(item_id, description, sku, category_id, price_cents)| Item {
            item_id,
            description: description.to_string(),
            system_sku: format!("2100000000{item_id:02}"),
            custom_sku: sku.to_string(),
            category_id,
            price_cents,
        },
    )
    .collect()
}

/// 8 % tax, rounded half up, on what is charged.
fn tax(cents: i64) -> i64 {
    (cents * 8 + 50).div_euclid(100)
}

fn demo_line(item: &Item, quantity: i64, discount_cents: i64, discount_id: u64) -> SaleLine {
    let charged = quantity * item.price_cents - discount_cents;
    SaleLine {
        item_id: item.item_id,
        unit_quantity: quantity,
        unit_price_cents: item.price_cents,
        discount_cents,
        tax_cents: tax(charged),
        discount_id,
        ..SaleLine::default()
    }
}

fn demo_sales(people: &[Person]) -> Vec<Sale> {
    let items = demo_items();
    // Gift wrap is for the $0 sale only.
    let sellable = &items[..5];
    let mut sales = Vec::new();
    let mut next_line = 0u64;
    let mut line_id = || {
        next_line += 1;
        next_line
    };
    for person in people.iter().take(10) {
        let i = person.index;
        let sale_id = i as u64 + 1;
        // Mid-afternoon in New York, a day or more after the person became a customer.
        let completed = person.created_at + Duration::days(i as i64 + 1) + Duration::hours(5);
        let mut lines = Vec::new();
        if i == 1 {
            lines.push(demo_line(&items[5], 1, 0, 0));
        } else {
            for j in 0..(1 + i % 3) {
                let item = &sellable[(i + j) % sellable.len()];
                let quantity = 1 + ((i + j) % 2) as i64;
                let (discount, discount_id) = if i == 0 && j == 0 {
                    // SPRING25: a quarter off the first line.
                    ((quantity * item.price_cents) / 4, 1)
                } else {
                    (0, 0)
                };
                lines.push(demo_line(item, quantity, discount, discount_id));
            }
        }
        for line in &mut lines {
            line.sale_line_id = line_id();
        }
        let ship_to = (i == 3).then(|| ShipTo {
            ship_to_id: 1,
            shipped: true,
            time_stamp: completed + Duration::days(1),
        });
        let time_stamp = ship_to.as_ref().map_or(completed, |s| s.time_stamp);
        sales.push(Sale {
            sale_id,
            shop_id: 1 + (i as u64 % 2),
            customer_id: sale_id,
            completed: true,
            ticket_number: format!("2200000{sale_id:05}"),
            discount_id: if i == 0 { 1 } else { 0 },
            create_time: completed - Duration::minutes(4),
            complete_time: Some(completed),
            time_stamp,
            lines,
            ship_to,
            ..Sale::default()
        });
    }
    let first = &people[0];
    let walk_in = first.created_at + Duration::days(3) + Duration::hours(6);
    sales.push(Sale {
        sale_id: 11,
        shop_id: 1,
        customer_id: 0,
        completed: true,
        ticket_number: "220000000011".into(),
        create_time: walk_in - Duration::minutes(2),
        complete_time: Some(walk_in),
        time_stamp: walk_in + Duration::hours(2),
        lines: vec![SaleLine {
            sale_line_id: line_id(),
            ..demo_line(&items[2], 1, 0, 0)
        }],
        ship_to: Some(ShipTo {
            ship_to_id: 2,
            shipped: true,
            time_stamp: walk_in + Duration::hours(2),
        }),
        ..Sale::default()
    });
    if let Some(original) = sales.iter().find(|s| s.sale_id == 3).cloned() {
        let line = &original.lines[0];
        let refunded = original.complete_time.unwrap_or_default() + Duration::days(2);
        let share = |cents: i64| cents / line.unit_quantity.max(1);
        sales.push(Sale {
            sale_id: 12,
            shop_id: original.shop_id,
            customer_id: original.customer_id,
            completed: true,
            ticket_number: "220000000012".into(),
            create_time: refunded,
            complete_time: Some(refunded),
            time_stamp: refunded,
            lines: vec![SaleLine {
                sale_line_id: line_id(),
                item_id: line.item_id,
                unit_quantity: -1,
                unit_price_cents: line.unit_price_cents,
                discount_cents: -share(line.discount_cents),
                tax_cents: -share(line.tax_cents),
                parent_sale_line_id: line.sale_line_id,
                ..SaleLine::default()
            }],
            ..Sale::default()
        });
    }
    if let Some(person) = people.get(4) {
        let opened = person.created_at + Duration::days(20);
        sales.push(Sale {
            sale_id: 13,
            shop_id: 1,
            customer_id: 5,
            completed: false,
            ticket_number: "220000000013".into(),
            create_time: opened,
            time_stamp: opened,
            lines: vec![SaleLine {
                sale_line_id: line_id(),
                ..demo_line(&items[1], 1, 0, 0)
            }],
            ..Sale::default()
        });
    }
    sales
}

pub(super) async fn list_sales(
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
        |state, pairs, self_url, _| sales_page(state, pairs, self_url),
    )
}

pub(super) async fn list_sale_lines(
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
        |state, pairs, self_url, _| sale_lines_page(state, pairs, self_url),
    )
}

pub(super) async fn list_shops(
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
        |state, _, _, _| {
            let shops: Vec<Value> = state
                .sales
                .shops
                .values()
                .map(|s| {
                    json!({
                        "shopID": s.shop_id.to_string(),
                        "name": s.name,
                        "timeZone": s.time_zone,
                        "taxCategoryID": "1",
                        "archived": "false",
                    })
                })
                .collect();
            Ok(listing("Shop", shops, String::new(), 100))
        },
    )
}

const RELATIONS: &[&str] = &[
    "SaleLines",
    "SaleLines.Item",
    "SaleLines.Item.Category",
    "SaleLines.Discount",
    "Customer",
    "Customer.Contact",
    "ShipTo",
    "Discount",
];

fn limit(pairs: &[(String, String)]) -> Result<usize, String> {
    match param(pairs, "limit") {
        None | Some("") => Ok(MAX_LIMIT),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(MAX_LIMIT)),
            _ => Err(format!("limit must be a positive integer, got {v:?}")),
        },
    }
}

/// `IN,[1,2,3]`, `=,5` or a bare `5`.
fn ids_filter(raw: &str, name: &str) -> Result<BTreeSet<u64>, String> {
    let bad = || format!("{name} must be an id or IN,[id,…], got {raw:?}");
    let list = if let Some(rest) = raw.strip_prefix("IN,") {
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(bad)?;
        inner
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<u64>().map_err(|_| bad()))
            .collect::<Result<BTreeSet<u64>, String>>()?
    } else {
        let value = raw.strip_prefix("=,").unwrap_or(raw);
        BTreeSet::from([value.trim().parse::<u64>().map_err(|_| bad())?])
    };
    Ok(list)
}

fn next_url(
    self_url: &str,
    pairs: &[(String, String)],
    more: bool,
    cursor: impl FnOnce() -> String,
) -> String {
    if !more {
        return String::new();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "after") {
        query.append_pair(k, v);
    }
    query.append_pair("after", &URL_SAFE_NO_PAD.encode(cursor()));
    format!("{self_url}?{}", query.finish())
}

fn decode_after(pairs: &[(String, String)]) -> Result<Option<String>, String> {
    match param(pairs, "after") {
        None | Some("") => Ok(None),
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .map(Some)
            .ok_or_else(|| "invalid after token".to_string()),
    }
}

fn listing(key: &str, items: Vec<Value>, next: String, limit: usize) -> Value {
    let mut body = Map::new();
    body.insert(
        "@attributes".into(),
        json!({"limit": limit.to_string(), "next": next, "previous": ""}),
    );
    if let Some(items) = one_or_many(items) {
        body.insert(key.into(), items);
    }
    Value::Object(body)
}

fn sales_page(state: &State, pairs: &[(String, String)], self_url: &str) -> Result<Value, String> {
    let limit = limit(pairs)?;
    let by_time = match param(pairs, "sort") {
        None | Some("") | Some("saleID") => false,
        Some("timeStamp") => true,
        Some(other) => return Err(format!("unsupported sort {other:?}")),
    };
    let relations: Vec<String> = match param(pairs, "load_relations") {
        None | Some("") => Vec::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|_| format!("load_relations must be a JSON array of names, got {v:?}"))?,
    };
    if let Some(unknown) = relations.iter().find(|r| !RELATIONS.contains(&r.as_str())) {
        return Err(format!("invalid relation {unknown:?} for Sale"));
    }
    let completed = match param(pairs, "completed") {
        None | Some("") => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(other) => return Err(format!("completed must be true or false, got {other:?}")),
    };
    let archived = match param(pairs, "archived") {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(format!("archived must be true or false, got {other:?}")),
    };
    let time_filter = param(pairs, "timeStamp")
        .map(TimeFilter::parse)
        .transpose()?;
    let ids = param(pairs, "saleID")
        .map(|raw| ids_filter(raw, "saleID"))
        .transpose()?;
    let after = decode_after(pairs)?;
    let sales = &state.sales;
    let ordered: Box<dyn Iterator<Item = &Sale>> = if by_time {
        let start = match after.as_deref().map(|a| a.split_once(':')) {
            None => Bound::Unbounded,
            Some(Some((nanos, id))) => {
                let nanos: i64 = nanos.parse().map_err(|_| "invalid after token")?;
                let id: u64 = id.parse().map_err(|_| "invalid after token")?;
                Bound::Excluded((DateTime::from_timestamp_nanos(nanos), id))
            }
            Some(None) => return Err("after token does not match sort".into()),
        };
        Box::new(
            sales
                .by_time
                .range((start, Bound::Unbounded))
                .map(|(_, id)| &sales.sales[id]),
        )
    } else {
        let start = match after.as_deref() {
            None => Bound::Unbounded,
            Some(id) => Bound::Excluded(
                id.parse::<u64>()
                    .map_err(|_| "after token does not match sort")?,
            ),
        };
        Box::new(sales.sales.range((start, Bound::Unbounded)).map(|(_, s)| s))
    };
    let keep = |s: &&Sale| {
        (archived || !s.archived)
            && completed.is_none_or(|c| s.completed == c)
            && time_filter.as_ref().is_none_or(|f| f.matches(s.time_stamp))
            && ids.as_ref().is_none_or(|ids| ids.contains(&s.sale_id))
    };
    let mut selected: Vec<&Sale> = ordered.filter(keep).take(limit + 1).collect();
    let more = selected.len() > limit;
    selected.truncate(limit);
    let next = next_url(self_url, pairs, more, || {
        let last = selected.last().expect("more implies a last sale");
        if by_time {
            format!(
                "{}:{}",
                last.time_stamp.timestamp_nanos_opt().unwrap_or_default(),
                last.sale_id
            )
        } else {
            last.sale_id.to_string()
        }
    });
    let has = |name: &str| relations.iter().any(|r| r == name);
    let rendered = selected
        .iter()
        .map(|sale| render_sale(state, sale, &has))
        .collect();
    Ok(listing("Sale", rendered, next, limit))
}

fn sale_lines_page(
    state: &State,
    pairs: &[(String, String)],
    self_url: &str,
) -> Result<Value, String> {
    let limit = limit(pairs)?;
    match param(pairs, "sort") {
        None | Some("") | Some("saleLineID") => {}
        Some(other) => return Err(format!("unsupported sort {other:?}")),
    }
    if param(pairs, "load_relations").is_some_and(|v| !v.is_empty() && v != "[]") {
        return Err("SaleLine relations are not simulated".into());
    }
    let ids = param(pairs, "saleLineID")
        .map(|raw| ids_filter(raw, "saleLineID"))
        .transpose()?;
    let parents = param(pairs, "parentSaleLineID")
        .map(|raw| ids_filter(raw, "parentSaleLineID"))
        .transpose()?;
    let after = decode_after(pairs)?
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| "invalid after token".to_string())
        })
        .transpose()?;
    let mut lines: Vec<(&Sale, &SaleLine)> = state
        .sales
        .sales
        .values()
        .flat_map(|sale| sale.lines.iter().map(move |line| (sale, line)))
        .filter(|(_, line)| {
            ids.as_ref()
                .is_none_or(|ids| ids.contains(&line.sale_line_id))
                && parents
                    .as_ref()
                    .is_none_or(|p| p.contains(&line.parent_sale_line_id))
                && after.is_none_or(|a| line.sale_line_id > a)
        })
        .collect();
    lines.sort_by_key(|(_, line)| line.sale_line_id);
    lines.truncate(limit + 1);
    let more = lines.len() > limit;
    lines.truncate(limit);
    let next = next_url(self_url, pairs, more, || {
        lines
            .last()
            .map(|(_, l)| l.sale_line_id.to_string())
            .unwrap_or_default()
    });
    let rendered = lines
        .iter()
        .map(|(sale, line)| render_line(state, sale, line, &|_| false))
        .collect();
    Ok(listing("SaleLine", rendered, next, limit))
}

fn zone(state: &State, shop_id: u64) -> Tz {
    state
        .sales
        .shops
        .get(&shop_id)
        .and_then(|s| s.time_zone.parse().ok())
        .unwrap_or(Tz::UTC)
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn render_line(state: &State, sale: &Sale, line: &SaleLine, has: &dyn Fn(&str) -> bool) -> Value {
    let tz = zone(state, sale.shop_id);
    let mut v = json!({
        "saleLineID": line.sale_line_id.to_string(),
        "createTime": local(line.create_time, tz),
        "timeStamp": local(line.time_stamp, tz),
        "unitQuantity": line.unit_quantity.to_string(),
        "unitPrice": money(line.unit_price_cents),
        "normalUnitPrice": money(line.unit_price_cents),
        "discountAmount": money(line.discount_cents),
        "discountPercent": "0",
        "isLayaway": "false",
        "isWorkorder": "false",
        "isSpecialOrder": "false",
        "calcLineDiscount": money(line.discount_cents),
        "calcTransactionDiscount": "0",
        "calcSubtotal": money(line.subtotal()),
        "calcTax1": money(line.tax_cents),
        "calcTax2": "0",
        "calcTotal": money(line.total()),
        "taxClassID": "1",
        "customerID": sale.customer_id.to_string(),
        "discountID": line.discount_id.to_string(),
        "itemID": line.item_id.to_string(),
        "parentSaleLineID": line.parent_sale_line_id.to_string(),
        "shopID": sale.shop_id.to_string(),
        "saleID": sale.sale_id.to_string(),
    });
    if has("SaleLines.Item")
        && let Some(item) = state.sales.items.get(&line.item_id)
    {
        let mut rendered = json!({
            "itemID": item.item_id.to_string(),
            "systemSku": item.system_sku,
            "customSku": item.custom_sku,
            "manufacturerSku": "",
            "description": item.description,
            "categoryID": item.category_id.to_string(),
            "archived": "false",
        });
        if has("SaleLines.Item.Category")
            && let Some(category) = state.sales.categories.get(&item.category_id)
        {
            rendered["Category"] = json!({
                "categoryID": category.category_id.to_string(),
                "name": category.name,
                "fullPathName": category.name,
            });
        }
        v["Item"] = rendered;
    }
    if has("SaleLines.Discount")
        && let Some(discount) = state.sales.discounts.get(&line.discount_id)
    {
        v["Discount"] = render_discount(discount);
    }
    v
}

fn render_discount(discount: &Discount) -> Value {
    json!({
        "discountID": discount.discount_id.to_string(),
        "name": discount.name,
        "discountAmount": "0",
        "discountPercent": "0",
        "archived": "false",
    })
}

fn render_sale(state: &State, sale: &Sale, has: &dyn Fn(&str) -> bool) -> Value {
    let tz = zone(state, sale.shop_id);
    let subtotal: i64 = sale.lines.iter().map(SaleLine::subtotal).sum();
    let discount: i64 = sale.lines.iter().map(|l| l.discount_cents).sum();
    let tax: i64 = sale.lines.iter().map(|l| l.tax_cents).sum();
    let total: i64 = sale.lines.iter().map(SaleLine::total).sum();
    let mut v = json!({
        "saleID": sale.sale_id.to_string(),
        "timeStamp": local(sale.time_stamp, tz),
        "discountPercent": "0",
        "completed": sale.completed.to_string(),
        "archived": sale.archived.to_string(),
        "voided": sale.voided.to_string(),
        "enablePromotions": "true",
        "isTaxInclusive": "false",
        "createTime": local(sale.create_time, tz),
        "updateTime": local(sale.time_stamp, tz),
        "completeTime": sale.complete_time.map(|t| local(t, tz)).unwrap_or_default(),
        "referenceNumber": "",
        "referenceNumberSource": "",
        "ticketNumber": sale.ticket_number,
        "calcDiscount": money(discount),
        "calcTotal": money(total),
        "calcSubtotal": money(subtotal),
        "calcTax1": money(tax),
        "calcTax2": "0",
        "calcPayments": if sale.completed { money(total) } else { "0".into() },
        "total": money(total),
        "totalDue": money(total),
        "balance": "0",
        "customerID": sale.customer_id.to_string(),
        "discountID": sale.discount_id.to_string(),
        "employeeID": "1",
        "registerID": "1",
        "shipToID": sale.ship_to.as_ref().map_or(0, |s| s.ship_to_id).to_string(),
        "shopID": sale.shop_id.to_string(),
        "taxCategoryID": "1",
    });
    if has("SaleLines") {
        let lines = sale
            .lines
            .iter()
            .map(|line| render_line(state, sale, line, has))
            .collect();
        v["SaleLines"] = match one_or_many(lines) {
            None => Value::String(String::new()),
            Some(inner) => json!({ "SaleLine": inner }),
        };
    }
    if has("Customer")
        && let Some(customer) = state.customers.get(&sale.customer_id)
    {
        v["Customer"] = super::render(customer, has("Customer.Contact"), state.offset);
    }
    if has("ShipTo")
        && let Some(ship_to) = &sale.ship_to
    {
        v["ShipTo"] = json!({
            "shipToID": ship_to.ship_to_id.to_string(),
            "saleID": sale.sale_id.to_string(),
            "shipped": ship_to.shipped.to_string(),
            "shipNote": "",
            "timeStamp": local(ship_to.time_stamp, tz),
        });
    }
    if has("Discount")
        && let Some(discount) = state.sales.discounts.get(&sale.discount_id)
    {
        v["Discount"] = render_discount(discount);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::people;

    #[test]
    fn demo_sales_are_deterministic_and_have_the_specials() {
        let a = LightspeedR::default();
        a.seed_demo(&people(12, 42));
        a.seed_demo_sales(&people(12, 42));
        let b = LightspeedR::default();
        b.seed_demo(&people(12, 42));
        b.seed_demo_sales(&people(12, 42));
        assert_eq!(a.sales(), b.sales());
        let sales = a.sales();
        assert_eq!(sales.len(), DEMO_SALES);
        let total = |s: &Sale| s.lines.iter().map(SaleLine::total).sum::<i64>();
        assert_eq!(total(&a.sale(2).unwrap()), 0);
        assert_eq!(a.sale(11).unwrap().customer_id, 0);
        assert!(a.sale(4).unwrap().ship_to.unwrap().shipped);
        let refund = a.sale(12).unwrap();
        assert_eq!(
            refund.lines[0].parent_sale_line_id,
            a.sale(3).unwrap().lines[0].sale_line_id
        );
        assert!(refund.lines[0].unit_quantity < 0);
        assert!(!a.sale(13).unwrap().completed);
        // Line ids are unique across sales.
        let ids: BTreeSet<u64> = sales
            .iter()
            .flat_map(|s| s.lines.iter().map(|l| l.sale_line_id))
            .collect();
        assert_eq!(
            ids.len(),
            sales.iter().map(|s| s.lines.len()).sum::<usize>()
        );
    }

    #[test]
    fn an_empty_sandbox_has_no_sales() {
        let sim = LightspeedR::default();
        sim.seed_demo_sales(&[]);
        assert!(sim.sales().is_empty());
    }

    #[test]
    fn ids_filters_parse_and_refuse_nonsense() {
        assert_eq!(
            ids_filter("IN,[1,2,3]", "saleID").unwrap(),
            BTreeSet::from([1, 2, 3])
        );
        assert_eq!(ids_filter("7", "saleID").unwrap(), BTreeSet::from([7]));
        assert!(ids_filter("IN,1,2", "saleID").is_err());
        assert!(ids_filter("x", "saleID").is_err());
    }

    #[test]
    fn money_renders_two_decimals_and_signs() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(1999), "19.99");
        assert_eq!(money(-205), "-2.05");
    }
}
