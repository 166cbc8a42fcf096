//! Orders of the simulated shop: the root fields `orders(first, after, query, sortKey, reverse)`,
//! `order(id)` and `shop`, answered from the 2025-01 schema's types (`Order`, `LineItem`, `Refund`,
//! `RefundLineItem`, `Fulfillment`, `FulfillmentLineItem`, `MoneyBag`, `Product`, `ProductVariant`,
//! `Collection`, `Shop`, the `DiscountApplication` interface's `DiscountCodeApplication` and
//! `AutomaticDiscountApplication` with the `PricingValue` union's `MoneyV2` and
//! `PricingPercentageValue`) with only the fields selected; a field the type lacks is an error.
//!
//! Nested connections (`lineItems`, `discountApplications`, `refundLineItems`,
//! `fulfillmentLineItems`, `collections`) need `first` (1..=250) and page with `after`; the lists
//! `refunds(first)` and `fulfillments(first)` are truncated to `first` when it is given.
//!
//! Query cost [U, after Shopify's "calculated query cost" docs]: a connection or list costs
//! `2 + first × (1 + the cost of the connections inside each node)`, so nested page sizes multiply
//! and a client must keep them small to stay under the single-query maximum of 1000. Plain objects
//! and scalars cost nothing here (Shopify charges objects 1, so its figures are higher). The actual
//! cost is the same formula over the nodes returned; the difference is refunded.
//!
//! Search terms: `updated_at`, `created_at` (as for customers), `id`, `email`. Times are UTC (`Z`);
//! `Shop.ianaTimezone` is the shop's zone (default `America/New_York`).
//!
//! A refund or a fulfilment moves the order's `updatedAt` (Shopify bumps it on every change [D]).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::graphql::Field;
use super::{
    Search, Shopify, SortKey, State, Term, arg_str, connection, customer_json, error, now_secs,
    page, page_size, parse_search, rendered_connection, ts,
};
use crate::seed::Person;

/// A product of the shop.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: u64,
    pub title: String,
    pub product_type: String,
    /// Titles of the collections the product is in.
    pub collections: Vec<String>,
    pub variant_id: u64,
    pub variant_title: String,
    pub sku: String,
    pub price_cents: i64,
}

/// One line of an order; money in the shop's currency, in cents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderLine {
    /// 0 in [`Shopify::add_order`] means "assign the next id".
    pub id: u64,
    pub product_id: u64,
    pub quantity: i64,
    pub original_unit_cents: i64,
    /// After line-level discounts.
    pub discounted_unit_cents: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    pub amount_cents: i64,
    /// (line id, quantity).
    pub lines: Vec<(u64, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fulfillment {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    /// (line id, quantity).
    pub lines: Vec<(u64, i64)>,
}

/// What a discount application took off (`PricingValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum AppliedValue {
    /// `PricingPercentageValue`, in percent (10.0 = 10 % off). Served negative, as the schema
    /// describes it ("between -100 (free) and 0 (no discount)" [S]; [U] positive values have been
    /// reported from real shops, so clients should read the magnitude).
    Percentage(f64),
    /// `MoneyV2`, in cents of the shop's currency.
    Amount(i64),
}

/// One discount applied to an order (`DiscountApplication`): a code's (`DiscountCodeApplication`)
/// or, without a code, an automatic one (`AutomaticDiscountApplication`).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscountApplication {
    pub code: Option<String>,
    /// An automatic discount's title.
    pub title: String,
    pub value: AppliedValue,
    /// `ACROSS` (split over the entitled lines) or `EACH` (on each entitled line).
    pub allocation_method: String,
    /// `ALL`, `ENTITLED` or `EXPLICIT`.
    pub target_selection: String,
    /// `LINE_ITEM` or `SHIPPING_LINE`.
    pub target_type: String,
}

impl DiscountApplication {
    /// A code's discount on the whole order (`ACROSS`, `ALL`, `LINE_ITEM`).
    pub fn code(code: &str, value: AppliedValue) -> Self {
        DiscountApplication {
            code: Some(code.to_string()),
            title: String::new(),
            value,
            allocation_method: "ACROSS".into(),
            target_selection: "ALL".into(),
            target_type: "LINE_ITEM".into(),
        }
    }
}

/// An order of the shop.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Order {
    /// 0 in [`Shopify::add_order`] means "assign the next id".
    pub id: u64,
    /// 0 means "the next number" (`#1001`, …).
    pub number: u64,
    pub customer_id: Option<u64>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub discount_codes: Vec<String>,
    /// `discountApplications`. Empty: one per discount code, from the shop's code discount of
    /// that code (see [`Shopify::add_code_discount`]), else [U] the order's whole discount as an
    /// amount on the first code.
    pub discount_applications: Vec<DiscountApplication>,
    /// Order-level discounts, in cents.
    pub order_discount_cents: i64,
    pub shipping_cents: i64,
    pub tax_cents: i64,
    pub lines: Vec<OrderLine>,
    pub refunds: Vec<Refund>,
    pub fulfillments: Vec<Fulfillment>,
}

impl Order {
    pub fn gid(&self) -> String {
        format!("gid://shopify/Order/{}", self.id)
    }

    fn line_discounts(&self) -> i64 {
        self.lines
            .iter()
            .map(|l| (l.original_unit_cents - l.discounted_unit_cents) * l.quantity)
            .sum()
    }

    fn subtotal(&self) -> i64 {
        self.lines
            .iter()
            .map(|l| l.discounted_unit_cents * l.quantity)
            .sum::<i64>()
            - self.order_discount_cents
    }

    /// What the customer paid: lines after discounts, shipping and tax.
    pub fn total_cents(&self) -> i64 {
        self.subtotal() + self.shipping_cents + self.tax_cents
    }

    fn refunded_cents(&self) -> i64 {
        self.refunds.iter().map(|r| r.amount_cents).sum()
    }
}

/// The order half of the shop's state.
pub(super) struct Orders {
    orders: BTreeMap<u64, Order>,
    products: BTreeMap<u64, Product>,
    next_order_id: u64,
    next_number: u64,
    next_line_id: u64,
    next_child_id: u64,
    pub(super) iana_timezone: String,
    pub(super) name: String,
    pub(super) currency: String,
}

impl Default for Orders {
    fn default() -> Self {
        Orders {
            orders: BTreeMap::new(),
            products: BTreeMap::new(),
            next_order_id: 5_100_001,
            next_number: 1001,
            next_line_id: 13_000_001,
            next_child_id: 900_001,
            iana_timezone: "America/New_York".into(),
            name: "Sandbox Outfitters".into(),
            currency: "USD".into(),
        }
    }
}

impl Shopify {
    pub fn add_product(&self, product: Product) {
        self.lock().orders.products.insert(product.id, product);
    }

    /// Sets `Shop.ianaTimezone` (and nothing else: times are answered in UTC).
    pub fn set_iana_timezone(&self, zone: &str) {
        self.lock().orders.iana_timezone = zone.to_string();
    }

    /// Adds an order and returns its numeric id. Ids, numbers and line ids of 0 are assigned; an
    /// unset (epoch) `created_at` becomes now, and unset `processed_at`/`updated_at` the creation.
    pub fn add_order(&self, mut order: Order) -> u64 {
        let mut state = self.lock();
        let orders = &mut state.orders;
        if order.id == 0 {
            order.id = orders.next_order_id;
        }
        orders.next_order_id = orders.next_order_id.max(order.id + 1);
        if order.number == 0 {
            order.number = orders.next_number;
        }
        orders.next_number = orders.next_number.max(order.number + 1);
        for line in &mut order.lines {
            if line.id == 0 {
                line.id = orders.next_line_id;
            }
            orders.next_line_id = orders.next_line_id.max(line.id + 1);
        }
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        if order.created_at == epoch {
            order.created_at = now_secs();
        }
        if order.processed_at == epoch {
            order.processed_at = order.created_at;
        }
        if order.updated_at == epoch {
            order.updated_at = order.created_at;
        }
        let id = order.id;
        orders.orders.insert(id, order.clone());
        state.notify_order(&["orders/create", "orders/paid"], &order);
        id
    }

    pub fn order(&self, id: u64) -> Option<Order> {
        self.lock().orders.orders.get(&id).cloned()
    }

    pub fn orders(&self) -> Vec<Order> {
        self.lock().orders.orders.values().cloned().collect()
    }

    /// Refunds `quantity` of line `line_id` at its discounted price; the order's `updatedAt` becomes
    /// now. Returns the refund's id.
    pub fn refund_order_line(&self, order_id: u64, line_id: u64, quantity: i64) -> Option<u64> {
        let mut state = self.lock();
        let orders = &mut state.orders;
        let id = orders.next_child_id;
        let order = orders.orders.get_mut(&order_id)?;
        let line = order.lines.iter().find(|l| l.id == line_id)?;
        let now = now_secs();
        order.refunds.push(Refund {
            id,
            created_at: now,
            amount_cents: line.discounted_unit_cents * quantity,
            lines: vec![(line_id, quantity)],
        });
        order.updated_at = now;
        let order = order.clone();
        orders.next_child_id += 1;
        state.notify_order(&["refunds/create", "orders/updated"], &order);
        Some(id)
    }

    /// Fulfils every line of an order now; its `updatedAt` becomes now. Returns the fulfilment's id.
    pub fn fulfill_order(&self, order_id: u64) -> Option<u64> {
        let mut state = self.lock();
        let orders = &mut state.orders;
        let id = orders.next_child_id;
        let order = orders.orders.get_mut(&order_id)?;
        let now = now_secs();
        let lines = order.lines.iter().map(|l| (l.id, l.quantity)).collect();
        order.fulfillments.push(Fulfillment {
            id,
            created_at: now,
            lines,
        });
        order.updated_at = now;
        let order = order.clone();
        orders.next_child_id += 1;
        state.notify_order(&["orders/fulfilled", "orders/updated"], &order);
        Some(id)
    }

    /// The demo catalogue and orders for the demo people; see [`DEMO_ORDERS`]. Deterministic.
    pub fn seed_demo_orders(&self, people: &[Person]) {
        if people.is_empty() {
            return;
        }
        for product in demo_products() {
            self.add_product(product);
        }
        let customer_ids: Vec<u64> = {
            let state = self.lock();
            state.customers.keys().copied().take(people.len()).collect()
        };
        for order in demo_orders(people, &customer_ids) {
            self.add_order(order);
        }
    }
}

/// What [`Shopify::seed_demo_orders`] creates for `n ≥ 10` people (fewer: the orders of the people
/// there are, the specials only when their person exists), ids 5100001.. in this order, numbers
/// #1001..:
/// - one order per person 0..=9 (their customer and email): #1001 has the code `WELCOME10`;
///   #1002 is worth $0 (code `FREEGIFT`, 100 % off); #1003 has a refund of one unit of its first
///   line; #1004 is fulfilled; #1005 was cancelled (`cancelledAt`, VOIDED);
/// - #1011: a guest order without customer or email, fulfilled.
///
/// So an order reader sees 11 orders: one $0 (#1002), one without email (#1011), one refunded
/// (#1003), two fulfilled (#1004, #1011), one cancelled (#1005), two with discount codes.
pub const DEMO_ORDERS: usize = 11;

fn demo_products() -> Vec<Product> {
    [
        (
            1,
            "Harbour Hoodie",
            "Hoodies",
            &["Winter", "Bestsellers"][..],
            6500,
        ),
        (2, "Canvas Sneaker", "Shoes", &["Shoes"][..], 8900),
        (
            3,
            "Wool Beanie",
            "Accessories",
            &["Winter", "Accessories"][..],
            2400,
        ),
        (4, "Linen Shirt", "Shirts", &["Summer"][..], 5400),
        (5, "Gift Card Sleeve", "Gifts", &[][..], 0),
    ]
    .into_iter()
    .map(|(n, title, product_type, collections, price)| Product {
        id: 8_000_000 + n,
        title: title.to_string(),
        product_type: product_type.to_string(),
        collections: collections.iter().map(|c| c.to_string()).collect(),
        variant_id: 9_000_000 + n,
        variant_title: "Default Title".into(),
        sku: format!("SBX-{n:03}"),
        price_cents: price,
    })
    .collect()
}

fn demo_orders(people: &[Person], customer_ids: &[u64]) -> Vec<Order> {
    let products = demo_products();
    let mut orders = Vec::new();
    let mut line_id = 13_000_000u64;
    let mut next_line = || {
        line_id += 1;
        line_id
    };
    for person in people.iter().take(10) {
        let i = person.index;
        let created = person.created_at + Duration::days(2 + i as i64) + Duration::hours(3);
        let mut order = Order {
            id: 5_100_001 + i as u64,
            number: 1001 + i as u64,
            customer_id: customer_ids.get(i).copied(),
            email: Some(person.email.clone()),
            created_at: created,
            processed_at: created,
            updated_at: created,
            shipping_cents: 500,
            ..Order::default()
        };
        if i == 1 {
            let sleeve = &products[4];
            order.lines.push(OrderLine {
                id: next_line(),
                product_id: sleeve.id,
                quantity: 1,
                original_unit_cents: 0,
                discounted_unit_cents: 0,
            });
            order.discount_codes = vec!["FREEGIFT".into()];
            order.shipping_cents = 0;
        } else {
            for j in 0..(1 + i % 3) {
                let product = &products[(i + j) % 4];
                let quantity = 1 + ((i + j) % 2) as i64;
                let discounted = if i == 0 {
                    // WELCOME10: 10 % off every line.
                    product.price_cents * 9 / 10
                } else {
                    product.price_cents
                };
                order.lines.push(OrderLine {
                    id: next_line(),
                    product_id: product.id,
                    quantity,
                    original_unit_cents: product.price_cents,
                    discounted_unit_cents: discounted,
                });
            }
            if i == 0 {
                order.discount_codes = vec!["WELCOME10".into()];
            }
        }
        order.tax_cents = (order.subtotal() * 8 + 50).div_euclid(100);
        if i == 2 {
            let line = &order.lines[0];
            let at = created + Duration::days(3);
            order.refunds.push(Refund {
                id: 900_001,
                created_at: at,
                amount_cents: line.discounted_unit_cents,
                lines: vec![(line.id, 1)],
            });
            order.updated_at = at;
        }
        if i == 3 {
            let at = created + Duration::days(1);
            order.fulfillments.push(Fulfillment {
                id: 900_002,
                created_at: at,
                lines: order.lines.iter().map(|l| (l.id, l.quantity)).collect(),
            });
            order.updated_at = at;
        }
        if i == 4 {
            let at = created + Duration::hours(2);
            order.cancelled_at = Some(at);
            order.updated_at = at;
        }
        orders.push(order);
    }
    let first = &people[0];
    let created = first.created_at + Duration::days(4) + Duration::hours(7);
    let mut guest = Order {
        id: 5_100_011,
        number: 1011,
        customer_id: None,
        email: None,
        created_at: created,
        processed_at: created,
        updated_at: created + Duration::hours(5),
        lines: vec![OrderLine {
            id: next_line(),
            product_id: products[2].id,
            quantity: 1,
            original_unit_cents: products[2].price_cents,
            discounted_unit_cents: products[2].price_cents,
        }],
        ..Order::default()
    };
    guest.tax_cents = (guest.subtotal() * 8 + 50).div_euclid(100);
    guest.fulfillments.push(Fulfillment {
        id: 900_003,
        created_at: created + Duration::hours(5),
        lines: vec![(guest.lines[0].id, 1)],
    });
    orders.push(guest);
    orders
}

// ---- cost ----

const CONNECTIONS: &[&str] = &[
    "lineItems",
    "discountApplications",
    "refundLineItems",
    "fulfillmentLineItems",
    "collections",
];
const LISTS: &[&str] = &["refunds", "fulfillments"];

/// The selection of one node of a connection (`nodes { … }` and `edges { node { … } }`) or of a
/// list's items.
pub(super) fn node_selection(field: &Field) -> Vec<Field> {
    let mut out = Vec::new();
    for child in &field.selection {
        match child.name.as_str() {
            "nodes" => out.extend(child.selection.iter().cloned()),
            "edges" => {
                for edge_child in &child.selection {
                    if edge_child.name == "node" {
                        out.extend(edge_child.selection.iter().cloned());
                    }
                }
            }
            _ => {}
        }
    }
    if LISTS.contains(&field.name.as_str()) {
        out.extend(field.selection.iter().cloned());
    }
    out
}

fn list_first(field: &Field) -> Result<Option<usize>, Value> {
    match field.args.get("first") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (1..=250).contains(&n) => Ok(Some(n as usize)),
            _ => Err(error(
                format!("The 'first' argument must be between 1 and 250, got {v}"),
                "BAD_REQUEST",
            )),
        },
    }
}

/// The connections nested anywhere in `selection`, costed.
fn nested_cost(selection: &[Field]) -> Result<f64, Value> {
    let mut cost = 0.0;
    for field in selection {
        let name = field.name.as_str();
        if CONNECTIONS.contains(&name) {
            let first = page_size(field)? as f64;
            cost += 2.0 + first * (1.0 + nested_cost(&node_selection(field))?);
        } else if LISTS.contains(&name) {
            // [U] an unbounded list is charged as one item.
            let first = list_first(field)?.unwrap_or(1) as f64;
            cost += 2.0 + first * (1.0 + nested_cost(&field.selection)?);
        } else if !field.selection.is_empty() {
            cost += nested_cost(&field.selection)?;
        }
    }
    Ok(cost)
}

/// The requested cost of `orders`, `order` or `shop`.
pub(super) fn requested_cost(field: &Field) -> Result<f64, Value> {
    match field.name.as_str() {
        "orders" => {
            let first = page_size(field)? as f64;
            Ok(2.0 + first * (1.0 + nested_cost(&node_selection(field))?))
        }
        "order" => Ok(1.0 + nested_cost(&field.selection)?),
        _ => Ok(1.0),
    }
}

// ---- resolving ----

fn child<'a>(selection: &'a [Field], name: &str) -> Option<&'a Field> {
    selection.iter().find(|f| f.name == name)
}

pub(super) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    if abs.is_multiple_of(100) {
        format!("{sign}{}.0", abs / 100)
    } else if abs.is_multiple_of(10) {
        format!("{sign}{}.{}", abs / 100, (abs % 100) / 10)
    } else {
        format!("{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

fn money_bag(cents: i64, currency: &str) -> Value {
    let money = json!({"__typename": "MoneyV2", "amount": money(cents), "currencyCode": currency});
    json!({"__typename": "MoneyBag", "shopMoney": money, "presentmentMoney": money})
}

/// A nested connection of `items` under the selected field `name` (absent when not selected).
fn nested_connection(
    selection: &[Field],
    name: &str,
    type_name: &str,
    items: Vec<(SortKey, Value)>,
) -> Result<Option<(Value, usize)>, Value> {
    let Some(field) = child(selection, name) else {
        return Ok(None);
    };
    let (rows, has_next, has_prev) = page(items, field)?;
    let returned = rows.len();
    Ok(Some((
        connection(type_name, rows, has_next, has_prev),
        returned,
    )))
}

fn product_json(
    orders: &Orders,
    product: &Product,
    selection: &[Field],
) -> Result<(Value, f64), Value> {
    let mut v = json!({
        "__typename": "Product",
        "id": format!("gid://shopify/Product/{}", product.id),
        "legacyResourceId": product.id.to_string(),
        "title": product.title,
        "handle": product.title.to_lowercase().replace(' ', "-"),
        "productType": product.product_type,
        "vendor": orders.name,
        "tags": [],
    });
    let mut cost = 0.0;
    let items = product
        .collections
        .iter()
        .enumerate()
        .map(|(n, title)| {
            let id = 600_000 + n as u64;
            (
                (id as i64, id),
                json!({
                    "__typename": "Collection",
                    "id": format!("gid://shopify/Collection/{}", collection_id(title)),
                    "title": title,
                    "handle": title.to_lowercase(),
                }),
            )
        })
        .collect();
    if let Some((conn, returned)) =
        nested_connection(selection, "collections", "CollectionConnection", items)?
    {
        v["collections"] = conn;
        cost += 2.0 + returned as f64;
    }
    Ok((v, cost))
}

/// A stable id per collection title.
fn collection_id(title: &str) -> u64 {
    700_000
        + title
            .bytes()
            .fold(0u64, |h, b| (h * 31 + b as u64) % 100_000)
}

fn line_json(
    orders: &Orders,
    line: &OrderLine,
    selection: &[Field],
    currency: &str,
) -> Result<(Value, f64), Value> {
    let product = orders.products.get(&line.product_id);
    let mut cost = 1.0;
    let product_value = match (product, child(selection, "product")) {
        (Some(p), Some(field)) => {
            let (v, c) = product_json(orders, p, &field.selection)?;
            cost += c;
            v
        }
        _ => Value::Null,
    };
    let variant = product.map(|p| {
        json!({
            "__typename": "ProductVariant",
            "id": format!("gid://shopify/ProductVariant/{}", p.variant_id),
            "legacyResourceId": p.variant_id.to_string(),
            "title": p.variant_title,
            "sku": p.sku,
            "price": money(p.price_cents),
            "displayName": format!("{} - {}", p.title, p.variant_title),
        })
    });
    let discount = (line.original_unit_cents - line.discounted_unit_cents) * line.quantity;
    Ok((
        json!({
            "__typename": "LineItem",
            "id": format!("gid://shopify/LineItem/{}", line.id),
            "name": product.map(|p| p.title.clone()).unwrap_or_default(),
            "title": product.map(|p| p.title.clone()).unwrap_or_default(),
            "variantTitle": product.map(|p| p.variant_title.clone()),
            "sku": product.map(|p| p.sku.clone()),
            "vendor": orders.name,
            "quantity": line.quantity,
            "currentQuantity": line.quantity,
            "isGiftCard": false,
            "requiresShipping": true,
            "taxable": true,
            "originalUnitPriceSet": money_bag(line.original_unit_cents, currency),
            "discountedUnitPriceSet": money_bag(line.discounted_unit_cents, currency),
            "originalTotalSet": money_bag(line.original_unit_cents * line.quantity, currency),
            "discountedTotalSet": money_bag(line.discounted_unit_cents * line.quantity, currency),
            "totalDiscountSet": money_bag(discount, currency),
            "product": product_value,
            "variant": variant,
        }),
        cost,
    ))
}

/// The lines of `order` as nodes, keyed by id, each with its actual cost.
fn line_nodes(
    orders: &Orders,
    order: &Order,
    ids: &[(u64, i64)],
    selection: &[Field],
    currency: &str,
    wrap: &dyn Fn(Value, i64, u64) -> Value,
) -> Result<(Vec<(SortKey, Value)>, f64), Value> {
    let mut cost = 0.0;
    let mut out = Vec::new();
    for (line_id, quantity) in ids {
        let Some(line) = order.lines.iter().find(|l| l.id == *line_id) else {
            continue;
        };
        let (v, c) = line_json(orders, line, selection, currency)?;
        cost += c;
        out.push(((*line_id as i64, *line_id), wrap(v, *quantity, *line_id)));
    }
    out.sort_by_key(|(k, _)| *k);
    Ok((out, cost))
}

/// The order's discount applications: as given, else one per code (see [`Order`]).
fn applications(state: &State, order: &Order) -> Vec<DiscountApplication> {
    if !order.discount_applications.is_empty() {
        return order.discount_applications.clone();
    }
    order
        .discount_codes
        .iter()
        .enumerate()
        .map(|(i, code)| {
            use super::discounts::DiscountValue;
            match state.discounts.by_code(code).map(|d| &d.value) {
                Some(DiscountValue::Percentage(p)) => {
                    DiscountApplication::code(code, AppliedValue::Percentage(-p * 100.0))
                }
                Some(DiscountValue::Amount { cents, each_item }) => DiscountApplication {
                    allocation_method: if *each_item { "EACH" } else { "ACROSS" }.into(),
                    ..DiscountApplication::code(code, AppliedValue::Amount(*cents))
                },
                Some(DiscountValue::FreeShipping) => DiscountApplication {
                    target_type: "SHIPPING_LINE".into(),
                    ..DiscountApplication::code(code, AppliedValue::Percentage(-100.0))
                },
                None => DiscountApplication::code(
                    code,
                    AppliedValue::Amount(if i == 0 {
                        order.line_discounts() + order.order_discount_cents
                    } else {
                        0
                    }),
                ),
            }
        })
        .collect()
}

fn application_json(index: usize, application: &DiscountApplication, currency: &str) -> Value {
    let value = match application.value {
        AppliedValue::Percentage(p) => {
            json!({"__typename": "PricingPercentageValue", "percentage": p})
        }
        AppliedValue::Amount(cents) => {
            json!({"__typename": "MoneyV2", "amount": money(cents), "currencyCode": currency})
        }
    };
    let mut v = json!({
        "__typename": "DiscountCodeApplication",
        "allocationMethod": application.allocation_method,
        "index": index,
        "targetSelection": application.target_selection,
        "targetType": application.target_type,
        "value": value,
    });
    match &application.code {
        Some(code) => v["code"] = json!(code),
        None => {
            v["__typename"] = json!("AutomaticDiscountApplication");
            v["title"] = json!(application.title);
        }
    }
    v
}

fn order_json(state: &State, order: &Order, selection: &[Field]) -> Result<(Value, f64), Value> {
    let orders = &state.orders;
    let currency = orders.currency.as_str();
    let mut cost = 1.0;
    let node_sel = |field: Option<&Field>| field.map(node_selection).unwrap_or_default();
    let financial = if order.cancelled_at.is_some() {
        "VOIDED"
    } else if order.refunds.is_empty() {
        "PAID"
    } else if order.refunded_cents() >= order.total_cents() {
        "REFUNDED"
    } else {
        "PARTIALLY_REFUNDED"
    };
    let fulfilled = if order.fulfillments.is_empty() {
        "UNFULFILLED"
    } else {
        "FULFILLED"
    };
    let customer = order
        .customer_id
        .and_then(|id| state.customers.get(&id))
        .map(customer_json);
    let mut v = json!({
        "__typename": "Order",
        "id": order.gid(),
        "legacyResourceId": order.id.to_string(),
        "name": format!("#{}", order.number),
        "email": order.email,
        "createdAt": ts(&order.created_at),
        "processedAt": ts(&order.processed_at),
        "updatedAt": ts(&order.updated_at),
        "cancelledAt": order.cancelled_at.as_ref().map(ts),
        "closedAt": null,
        "test": false,
        "currencyCode": currency,
        "presentmentCurrencyCode": currency,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": fulfilled,
        "discountCodes": order.discount_codes,
        "totalPriceSet": money_bag(order.total_cents(), currency),
        "currentTotalPriceSet": money_bag(order.total_cents() - order.refunded_cents(), currency),
        "subtotalPriceSet": money_bag(order.subtotal(), currency),
        "totalDiscountsSet": money_bag(order.line_discounts() + order.order_discount_cents, currency),
        "totalTaxSet": money_bag(order.tax_cents, currency),
        "totalShippingPriceSet": money_bag(order.shipping_cents, currency),
        "totalRefundedSet": money_bag(order.refunded_cents(), currency),
        "customer": customer,
    });
    let identity = |v: Value, _: i64, _: u64| v;
    if let Some(field) = child(selection, "discountApplications") {
        let items: Vec<(SortKey, Value)> = applications(state, order)
            .iter()
            .enumerate()
            .map(|(i, a)| ((i as i64, i as u64), application_json(i, a, currency)))
            .collect();
        let (rows, has_next, has_prev) = page(items, field)?;
        cost += 2.0 + rows.len() as f64;
        v["discountApplications"] =
            connection("DiscountApplicationConnection", rows, has_next, has_prev);
    }
    if let Some(field) = child(selection, "lineItems") {
        let ids: Vec<(u64, i64)> = order.lines.iter().map(|l| (l.id, l.quantity)).collect();
        let (items, c) = line_nodes(
            orders,
            order,
            &ids,
            &node_sel(Some(field)),
            currency,
            &identity,
        )?;
        let (rows, has_next, has_prev) = page(items, field)?;
        cost += 2.0 + c * rows.len() as f64 / ids.len().max(1) as f64;
        v["lineItems"] = connection("LineItemConnection", rows, has_next, has_prev);
    }
    if let Some(field) = child(selection, "refunds") {
        let limit = list_first(field)?.unwrap_or(usize::MAX);
        let mut list = Vec::new();
        for refund in order.refunds.iter().take(limit) {
            let rli = child(&field.selection, "refundLineItems");
            let wrap = |line: Value, quantity: i64, line_id: u64| {
                let unit = order
                    .lines
                    .iter()
                    .find(|l| l.id == line_id)
                    .map_or(0, |l| l.discounted_unit_cents);
                json!({
                    "__typename": "RefundLineItem",
                    "id": format!("gid://shopify/RefundLineItem/{}{line_id}", refund.id),
                    "lineItem": line,
                    "quantity": quantity,
                    "restocked": false,
                    "restockType": "NO_RESTOCK",
                    "priceSet": money_bag(unit, currency),
                    "subtotalSet": money_bag(unit * quantity, currency),
                    "totalTaxSet": money_bag(0, currency),
                })
            };
            let line_sel = child(&node_sel(rli), "lineItem")
                .map(|f| f.selection.clone())
                .unwrap_or_default();
            let (items, c) = line_nodes(orders, order, &refund.lines, &line_sel, currency, &wrap)?;
            let mut rv = json!({
                "__typename": "Refund",
                "id": format!("gid://shopify/Refund/{}", refund.id),
                "legacyResourceId": refund.id.to_string(),
                "createdAt": ts(&refund.created_at),
                "updatedAt": ts(&refund.created_at),
                "note": null,
                "totalRefundedSet": money_bag(refund.amount_cents, currency),
            });
            if let Some(rli) = rli {
                let (rows, has_next, has_prev) = page(items, rli)?;
                cost += 2.0 + c;
                rv["refundLineItems"] =
                    connection("RefundLineItemConnection", rows, has_next, has_prev);
            }
            cost += 1.0;
            list.push(rv);
        }
        cost += 2.0;
        v["refunds"] = Value::Array(list);
    }
    if let Some(field) = child(selection, "fulfillments") {
        let limit = list_first(field)?.unwrap_or(usize::MAX);
        let mut list = Vec::new();
        for fulfillment in order.fulfillments.iter().take(limit) {
            let fli = child(&field.selection, "fulfillmentLineItems");
            let wrap = |line: Value, quantity: i64, line_id: u64| {
                json!({
                    "__typename": "FulfillmentLineItem",
                    "id": format!("gid://shopify/FulfillmentLineItem/{}{line_id}", fulfillment.id),
                    "lineItem": line,
                    "quantity": quantity,
                })
            };
            let line_sel = child(&node_sel(fli), "lineItem")
                .map(|f| f.selection.clone())
                .unwrap_or_default();
            let (items, c) = line_nodes(
                orders,
                order,
                &fulfillment.lines,
                &line_sel,
                currency,
                &wrap,
            )?;
            let mut fv = json!({
                "__typename": "Fulfillment",
                "id": format!("gid://shopify/Fulfillment/{}", fulfillment.id),
                "legacyResourceId": fulfillment.id.to_string(),
                "name": format!("#{}.{}", order.number, fulfillment.id % 100),
                "status": "SUCCESS",
                "displayStatus": "FULFILLED",
                "createdAt": ts(&fulfillment.created_at),
                "updatedAt": ts(&fulfillment.created_at),
                "deliveredAt": null,
                "totalQuantity": fulfillment.lines.iter().map(|(_, q)| q).sum::<i64>(),
                "requiresShipping": true,
            });
            if let Some(fli) = fli {
                let (rows, has_next, has_prev) = page(items, fli)?;
                cost += 2.0 + c;
                fv["fulfillmentLineItems"] =
                    connection("FulfillmentLineItemConnection", rows, has_next, has_prev);
            }
            cost += 1.0;
            list.push(fv);
        }
        cost += 2.0;
        v["fulfillments"] = Value::Array(list);
    }
    Ok((v, cost))
}

fn matches(term: &Term, order: &Order) -> bool {
    match term {
        Term::UpdatedAt(cmp, t) => cmp.holds(order.updated_at, *t),
        Term::CreatedAt(cmp, t) => cmp.holds(order.created_at, *t),
        Term::Id(cmp, id) => cmp.holds(order.id, *id),
        Term::Email(pattern) if pattern == "*" => order.email.is_some(),
        Term::Email(pattern) => order
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(pattern)),
    }
}

/// `orders`, `order` and `shop`; `None` for other fields.
pub(super) fn resolve(state: &State, field: &Field) -> Option<Result<(Value, f64), Value>> {
    match field.name.as_str() {
        "orders" => Some(resolve_orders(state, field)),
        "order" => Some(resolve_order(state, field)),
        "shop" => {
            let orders = &state.orders;
            Some(Ok((
                json!({
                    "__typename": "Shop",
                    "id": "gid://shopify/Shop/55500001",
                    "name": orders.name,
                    "ianaTimezone": orders.iana_timezone,
                    "currencyCode": orders.currency,
                    "myshopifyDomain": "sandbox.myshopify.com",
                    "email": "owner@sandbox.example",
                    "contactEmail": "owner@sandbox.example",
                }),
                1.0,
            )))
        }
        _ => None,
    }
}

fn resolve_order(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    let Some(gid) = arg_str(field, "id") else {
        return Err(error(
            "Field 'order' is missing required arguments: id",
            "missingRequiredArguments",
        ));
    };
    let order = gid
        .strip_prefix("gid://shopify/Order/")
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|id| state.orders.orders.get(&id));
    match order {
        // Shopify answers null for an order that does not exist.
        None => Ok((Value::Null, 1.0)),
        Some(order) => order_json(state, order, &field.selection),
    }
}

fn resolve_orders(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    let sort = arg_str(field, "sortKey").unwrap_or("ID");
    let filter = match arg_str(field, "query") {
        Some(q) => parse_search(q, state.shop_offset).map_err(|m| error(m, "BAD_REQUEST"))?,
        None => Search::All(Vec::new()),
    };
    let mut items = Vec::new();
    for order in state.orders.orders.values() {
        if !filter.holds(|term| matches(term, order)) {
            continue;
        }
        let value = match sort {
            "UPDATED_AT" => order.updated_at.timestamp_millis(),
            "CREATED_AT" => order.created_at.timestamp_millis(),
            "PROCESSED_AT" => order.processed_at.timestamp_millis(),
            "ID" => order.id as i64,
            other => {
                return Err(error(
                    format!("Argument 'sortKey' on Field 'orders' has an invalid value ({other})."),
                    "argumentLiteralsIncompatible",
                ));
            }
        };
        items.push(((value, order.id), order));
    }
    rendered_connection(
        "OrderConnection",
        items,
        field,
        &node_selection(field),
        |order, selection| order_json(state, order, selection),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::people;
    use crate::shopify::graphql;

    #[test]
    fn demo_orders_are_deterministic_and_have_the_specials() {
        let make = || {
            let shop = Shopify::default();
            shop.seed_demo(&people(12, 42));
            shop.seed_demo_orders(&people(12, 42));
            shop
        };
        let (a, b) = (make(), make());
        assert_eq!(a.orders(), b.orders());
        let orders = a.orders();
        assert_eq!(orders.len(), DEMO_ORDERS);
        assert_eq!(a.order(5_100_002).unwrap().total_cents(), 0);
        assert_eq!(a.order(5_100_003).unwrap().refunds.len(), 1);
        assert_eq!(a.order(5_100_004).unwrap().fulfillments.len(), 1);
        assert!(a.order(5_100_005).unwrap().cancelled_at.is_some());
        let guest = a.order(5_100_011).unwrap();
        assert!(guest.email.is_none() && guest.customer_id.is_none());
        assert_eq!(
            a.order(5_100_001).unwrap().customer_id,
            Some(a.customer_ids()[0])
        );
    }

    #[test]
    fn nested_page_sizes_multiply_the_requested_cost() {
        let op = graphql::parse(
            "query { orders(first: 10) { nodes { id lineItems(first: 20) { nodes { id product { collections(first: 5) { nodes { title } } } } } refunds(first: 2) { id } } } }",
            &Default::default(),
        )
        .unwrap();
        // 2 + 10 × (1 + (2 + 20 × (1 + (2 + 5 × 1))) + (2 + 2 × 1)) = 2 + 10 × 167
        assert_eq!(requested_cost(&op.fields[0]).unwrap(), 1672.0);
        let op = graphql::parse(
            "query { orders(first: 10) { nodes { lineItems { nodes { id } } } } }",
            &Default::default(),
        )
        .unwrap();
        assert!(
            requested_cost(&op.fields[0]).is_err(),
            "lineItems needs first"
        );
    }

    #[test]
    fn money_is_rendered_as_shopify_decimals() {
        assert_eq!(money(2500), "25.0");
        assert_eq!(money(2550), "25.5");
        assert_eq!(money(2555), "25.55");
        assert_eq!(money(-5), "-0.05");
    }
}
