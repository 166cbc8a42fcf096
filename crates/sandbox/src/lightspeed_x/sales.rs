//! Sales of the simulated X-Series retailer: `GET /api/2.0/sales`, `/sales/{id}`, `/products`,
//! `/outlets` and `/customers/{id}`, behind the same token and rate limiter as customers.
//!
//! From the spec ([S]): `Sale{id, outlet_id, customer_id, invoice_number, status, return_for,
//! total_price (tax exclusive), total_tax, sale_date, created_at, updated_at, version,
//! line_items[{id, product_id, quantity, price, price_total, discount, discount_total, tax,
//! tax_total, is_return, status}]}`, money as JSON numbers, times "in UTC" with an offset;
//! `Outlet{id, name, time_zone, currency}`; `Product{id, name, sku, categories[Tag]}`. Lists are
//! version-paged like customers (`after`, `page_size`, `{data, version{min, max}}`).
//!
//! Less certain [U]: a return is its own CLOSED sale with `return_for` naming the original and
//! negative, `is_return` lines (the original is not changed); `GET /sales/{id}` answers
//! `{"data": Sale}` and 404 `{"error": "Not Found"}`; `/outlets` and `/products` take the same
//! version paging; a sale's `price` is the unit price before the line discount `discount` (per
//! unit), `price_total = quantity × (price − discount)`, `total_price = Σ price_total`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{DEFAULT_PAGE_SIZE, LightspeedX, MAX_PAGE_SIZE, State, gated, timestamp, uuid_from};
use crate::seed::Person;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlet {
    pub id: String,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub sku: String,
    pub categories: Vec<String>,
    pub price_cents: i64,
    pub version: u64,
}

/// A line; money in cents (rendered as JSON numbers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SaleLine {
    pub id: String,
    pub product_id: String,
    /// Negative on a return line.
    pub quantity: i64,
    pub price_cents: i64,
    /// Discount per unit.
    pub discount_cents: i64,
    /// Tax per unit.
    pub tax_cents: i64,
    pub is_return: bool,
}

impl SaleLine {
    fn price_total(&self) -> i64 {
        self.quantity * (self.price_cents - self.discount_cents)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sale {
    /// Empty in [`LightspeedX::add_sale`]: assigned.
    pub id: String,
    pub outlet_id: String,
    pub customer_id: Option<String>,
    pub invoice_number: String,
    /// CLOSED, VOIDED, DISPATCHED_CLOSED, SAVED, …
    pub status: String,
    pub return_for: Option<String>,
    pub sale_date: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    pub line_items: Vec<SaleLine>,
}

impl Sale {
    pub fn total_price_cents(&self) -> i64 {
        self.line_items.iter().map(SaleLine::price_total).sum()
    }

    pub fn total_tax_cents(&self) -> i64 {
        self.line_items
            .iter()
            .map(|l| l.quantity * l.tax_cents)
            .sum()
    }
}

#[derive(Default)]
pub(super) struct Sales {
    sales: BTreeMap<String, Sale>,
    by_version: BTreeMap<u64, String>,
    products: BTreeMap<String, Product>,
    outlets: BTreeMap<String, Outlet>,
    next_id: u128,
}

fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

fn sale_json(sale: &Sale) -> Value {
    let lines: Vec<Value> = sale
        .line_items
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({
                "id": l.id,
                "product_id": l.product_id,
                "quantity": l.quantity as f64,
                "price": money(l.price_cents),
                "price_total": money(l.price_total()),
                "discount": money(l.discount_cents),
                "discount_total": money(l.quantity * l.discount_cents),
                "tax": money(l.tax_cents),
                "tax_total": money(l.quantity * l.tax_cents),
                "is_return": l.is_return,
                "status": "CONFIRMED",
                "sequence": n as f64,
                "price_set": false,
                "note": null,
            })
        })
        .collect();
    json!({
        "id": sale.id,
        "outlet_id": sale.outlet_id,
        "register_id": "0adfd74a-153e-11e9-fa42-67b5781ba1fb",
        "user_id": "0adfd74a-153e-11e9-fa42-67b5781ba1fc",
        "customer_id": sale.customer_id,
        "invoice_number": sale.invoice_number,
        "source": "USER",
        "status": sale.status,
        "note": "",
        "return_for": sale.return_for,
        "total_price": money(sale.total_price_cents()),
        "total_tax": money(sale.total_tax_cents()),
        "sale_date": timestamp(sale.sale_date),
        "created_at": timestamp(sale.created_at),
        "updated_at": timestamp(sale.updated_at),
        "deleted_at": null,
        "version": sale.version,
        "line_items": lines,
        "payments": [],
    })
}

fn product_json(p: &Product) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "sku": p.sku,
        "active": true,
        "price_excluding_tax": money(p.price_cents),
        "categories": p.categories.iter().map(|c| json!({"id": c.to_lowercase(), "name": c})).collect::<Vec<_>>(),
        "deleted_at": null,
        "version": p.version,
    })
}

impl LightspeedX {
    pub fn add_outlet(&self, mut outlet: Outlet) {
        let mut state = self.lock();
        outlet.version = state.next_version();
        state.sales.outlets.insert(outlet.id.clone(), outlet);
    }

    /// Sets every outlet's time zone (names only; times are answered in UTC).
    pub fn set_time_zone(&self, zone: &str) {
        for outlet in self.lock().sales.outlets.values_mut() {
            outlet.time_zone = zone.to_string();
        }
    }

    pub fn add_product(&self, mut product: Product) {
        let mut state = self.lock();
        product.version = state.next_version();
        state.sales.products.insert(product.id.clone(), product);
    }

    /// Adds a sale (a fresh version; an empty id and line ids are assigned) and returns its id.
    pub fn add_sale(&self, mut sale: Sale) -> String {
        let mut state = self.lock();
        let sales = &mut state.sales;
        if sale.id.is_empty() {
            sales.next_id += 1;
            sale.id = uuid_from((0x5a1e_u128 << 112) | sales.next_id);
        }
        for line in &mut sale.line_items {
            if line.id.is_empty() {
                sales.next_id += 1;
                line.id = uuid_from((0x11e_u128 << 112) | sales.next_id);
            }
        }
        store(&mut state, sale)
    }

    /// Returns `quantity` of `line_id` of sale `id` as a new CLOSED return sale, now.
    pub fn return_line(&self, id: &str, line_id: &str, quantity: i64) -> Option<String> {
        let original = self.sale(id)?;
        let line = original
            .line_items
            .iter()
            .find(|l| l.id == line_id)?
            .clone();
        let now = Utc::now();
        Some(self.add_sale(Sale {
            outlet_id: original.outlet_id.clone(),
            customer_id: original.customer_id.clone(),
            invoice_number: format!("{}-R", original.invoice_number),
            status: "CLOSED".into(),
            return_for: Some(original.id.clone()),
            sale_date: now,
            created_at: now,
            updated_at: now,
            line_items: vec![SaleLine {
                quantity: -quantity,
                is_return: true,
                id: String::new(),
                ..line
            }],
            ..Sale::default()
        }))
    }

    /// Edits a sale: `updated_at` becomes now and the version is bumped.
    pub fn edit_sale(&self, id: &str, edit: impl FnOnce(&mut Sale)) -> bool {
        let mut state = self.lock();
        let Some(mut sale) = state.sales.sales.get(id).cloned() else {
            return false;
        };
        edit(&mut sale);
        sale.id = id.to_string();
        sale.updated_at = Utc::now();
        store(&mut state, sale);
        true
    }

    pub fn sale(&self, id: &str) -> Option<Sale> {
        self.lock().sales.sales.get(id).cloned()
    }

    /// Every sale in version order.
    pub fn sales(&self) -> Vec<Sale> {
        let state = self.lock();
        state
            .sales
            .by_version
            .values()
            .map(|id| state.sales.sales[id].clone())
            .collect()
    }

    /// The demo outlet, products and sales; see [`DEMO_SALES`]. Deterministic.
    pub fn seed_demo_sales(&self, people: &[Person]) {
        if people.is_empty() {
            return;
        }
        self.add_outlet(Outlet {
            id: "06e35f89-3d24-11e5-e7b7-a39a3d0b4a2e".into(),
            name: "Queen Street".into(),
            time_zone: "Pacific/Auckland".into(),
            currency: "NZD".into(),
            version: 0,
        });
        for (n, (name, sku, category, price)) in [
            ("Flat White Mug", "MUG-1", "Homeware", 1850),
            ("Kauri Coaster Set", "CST-4", "Homeware", 2400),
            ("Merino Socks", "SCK-2", "Apparel", 2990),
            ("Tote Bag", "TOT-1", "Accessories", 1500),
            ("Gift Voucher Card", "GFT-0", "Gifts", 0),
        ]
        .into_iter()
        .enumerate()
        {
            self.add_product(Product {
                id: uuid_from((0x9d_u128 << 112) | (n as u128 + 1)),
                name: name.into(),
                sku: sku.into(),
                categories: vec![category.into()],
                price_cents: price,
                version: 0,
            });
        }
        // The demo customers' ids are fixed by the person, so sales can be seeded before them.
        let customer_ids: Vec<Option<String>> = people
            .iter()
            .map(|p| Some(super::demo_customer(p).id))
            .collect();
        let mut sales = demo_sales(people, &customer_ids, &self.products());
        sales.sort_by_key(|s| s.updated_at);
        for sale in sales {
            self.add_sale(sale);
        }
    }

    fn products(&self) -> Vec<Product> {
        self.lock().sales.products.values().cloned().collect()
    }
}

fn store(state: &mut State, mut sale: Sale) -> String {
    if let Some(old) = state.sales.sales.get(&sale.id) {
        let version = old.version;
        state.sales.by_version.remove(&version);
    }
    sale.version = state.next_version();
    let id = sale.id.clone();
    state.sales.by_version.insert(sale.version, id.clone());
    state.sales.sales.insert(id.clone(), sale);
    id
}

/// What [`LightspeedX::seed_demo_sales`] creates for `n ≥ 10` people: one sale per person 0..=9
/// (invoices `QS-1001`…): `QS-1002` is worth $0 (a gift voucher card), `QS-1004` is
/// DISPATCHED_CLOSED (fulfilled), `QS-1005` VOIDED; a walk-in sale `QS-1011` without a customer;
/// and `QS-1003-R`, a return of one unit of `QS-1003`'s first line (folded into that order). So an
/// order reader sees 11 orders: one $0, one without email, one refunded, one fulfilled, one
/// cancelled. Money is NZD; the outlet's zone is `Pacific/Auckland`.
pub const DEMO_SALES: usize = 12;

fn demo_sales(
    people: &[Person],
    customer_ids: &[Option<String>],
    products: &[Product],
) -> Vec<Sale> {
    let outlet = "06e35f89-3d24-11e5-e7b7-a39a3d0b4a2e".to_string();
    let mut out = Vec::new();
    let mut next = 0u128;
    let mut id = |kind: u128| {
        next += 1;
        uuid_from((kind << 112) | (0xde40 << 32) | next)
    };
    for person in people.iter().take(10) {
        let i = person.index;
        let at = person.created_at + Duration::days(1 + i as i64) + Duration::hours(1);
        let lines: Vec<SaleLine> = if i == 1 {
            vec![SaleLine {
                id: id(0x11e),
                product_id: products[4].id.clone(),
                quantity: 1,
                ..SaleLine::default()
            }]
        } else {
            (0..1 + i % 2)
                .map(|j| {
                    let p = &products[(i + j) % 4];
                    SaleLine {
                        id: id(0x11e),
                        product_id: p.id.clone(),
                        quantity: 1 + (j as i64),
                        price_cents: p.price_cents,
                        discount_cents: if i == 0 { p.price_cents / 10 } else { 0 },
                        tax_cents: (p.price_cents * 15 + 50) / 100,
                        is_return: false,
                    }
                })
                .collect()
        };
        let status = match i {
            3 => "DISPATCHED_CLOSED",
            4 => "VOIDED",
            _ => "CLOSED",
        };
        let updated = if i == 3 || i == 4 {
            at + Duration::hours(3)
        } else {
            at
        };
        out.push(Sale {
            id: id(0x5a1e),
            outlet_id: outlet.clone(),
            customer_id: customer_ids.get(i).cloned().flatten(),
            invoice_number: format!("QS-{}", 1001 + i),
            status: status.into(),
            return_for: None,
            sale_date: at,
            created_at: at,
            updated_at: updated,
            version: 0,
            line_items: lines,
        });
    }
    let at = people[0].created_at + Duration::days(2) + Duration::hours(4);
    out.push(Sale {
        id: id(0x5a1e),
        outlet_id: outlet.clone(),
        customer_id: None,
        invoice_number: "QS-1011".into(),
        status: "CLOSED".into(),
        return_for: None,
        sale_date: at,
        created_at: at,
        updated_at: at,
        version: 0,
        line_items: vec![SaleLine {
            id: id(0x11e),
            product_id: products[3].id.clone(),
            quantity: 1,
            price_cents: products[3].price_cents,
            tax_cents: (products[3].price_cents * 15 + 50) / 100,
            ..SaleLine::default()
        }],
    });
    if let Some(original) = out.iter().find(|s| s.invoice_number == "QS-1003").cloned() {
        let at = original.sale_date + Duration::days(2);
        let line = &original.line_items[0];
        out.push(Sale {
            id: id(0x5a1e),
            outlet_id: outlet,
            customer_id: original.customer_id.clone(),
            invoice_number: "QS-1003-R".into(),
            status: "CLOSED".into(),
            return_for: Some(original.id.clone()),
            sale_date: at,
            created_at: at,
            updated_at: at,
            version: 0,
            line_items: vec![SaleLine {
                id: id(0x11e),
                quantity: -1,
                is_return: true,
                ..line.clone()
            }],
        });
    }
    out
}

fn version_page<'a, T>(
    by_version: impl DoubleEndedIterator<Item = (u64, &'a T)>,
    query: &std::collections::HashMap<String, String>,
    render: impl Fn(&T) -> Value,
) -> Result<Value, String>
where
    T: 'a,
{
    let after = match query.get("after").map(String::as_str) {
        None | Some("") => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("after must be a version number, got {v:?}"))?,
    };
    let page_size = match query.get("page_size").map(String::as_str) {
        None | Some("") => DEFAULT_PAGE_SIZE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_PAGE_SIZE),
            _ => return Err(format!("page_size must be a positive integer, got {v:?}")),
        },
    };
    let rows: Vec<(u64, &T)> = by_version
        .filter(|(v, _)| *v > after)
        .take(page_size)
        .collect();
    let version = match (rows.first(), rows.last()) {
        (Some((min, _)), Some((max, _))) => json!({"min": min, "max": max}),
        _ => Value::Null,
    };
    Ok(json!({
        "data": rows.iter().map(|(_, r)| render(r)).collect::<Vec<_>>(),
        "version": version,
    }))
}

pub(super) async fn list_sales(
    AxumState(sim): AxumState<LightspeedX>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    gated(&sim, &headers, |state| {
        let sales = &state.sales;
        version_page(
            sales
                .by_version
                .iter()
                .map(|(v, id)| (*v, &sales.sales[id])),
            &query,
            sale_json,
        )
        .map_err(|m| {
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "Bad Request", "message": m}),
            )
        })
    })
}

pub(super) async fn get_sale(
    AxumState(sim): AxumState<LightspeedX>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    gated(&sim, &headers, |state| match state.sales.sales.get(&id) {
        Some(sale) => Ok(json!({"data": sale_json(sale)})),
        None => Err((StatusCode::NOT_FOUND, json!({"error": "Not Found"}))),
    })
}

/// `GET /customers/{id}` ([S]): `{"data": Customer}`; 404 when there is none [U].
pub(super) async fn get_customer(
    AxumState(sim): AxumState<LightspeedX>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    gated(&sim, &headers, |state| match state.customers.get(&id) {
        Some(customer) => Ok(json!({"data": customer})),
        None => Err((StatusCode::NOT_FOUND, json!({"error": "Not Found"}))),
    })
}

pub(super) async fn list_products(
    AxumState(sim): AxumState<LightspeedX>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    gated(&sim, &headers, |state| {
        let mut rows: Vec<(u64, &Product)> = state
            .sales
            .products
            .values()
            .map(|p| (p.version, p))
            .collect();
        rows.sort_by_key(|(v, _)| *v);
        version_page(rows.into_iter(), &query, product_json).map_err(|m| {
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "Bad Request", "message": m}),
            )
        })
    })
}

pub(super) async fn list_outlets(
    AxumState(sim): AxumState<LightspeedX>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    gated(&sim, &headers, |state| {
        let mut rows: Vec<(u64, &Outlet)> = state
            .sales
            .outlets
            .values()
            .map(|o| (o.version, o))
            .collect();
        rows.sort_by_key(|(v, _)| *v);
        version_page(rows.into_iter(), &query, |o| {
            serde_json::to_value(o).unwrap_or(Value::Null)
        })
        .map_err(|m| {
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "Bad Request", "message": m}),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::people;

    #[test]
    fn demo_sales_are_deterministic_with_the_specials() {
        let make = || {
            let sim = LightspeedX::default();
            sim.seed_demo(&people(12, 42));
            sim.seed_demo_sales(&people(12, 42));
            sim
        };
        let (a, b) = (make(), make());
        assert_eq!(a.sales(), b.sales());
        let sales = a.sales();
        assert_eq!(sales.len(), DEMO_SALES);
        let find = |n: &str| sales.iter().find(|s| s.invoice_number == n).unwrap();
        assert_eq!(find("QS-1002").total_price_cents(), 0);
        assert!(find("QS-1011").customer_id.is_none());
        assert_eq!(
            find("QS-1003-R").return_for.as_deref(),
            Some(find("QS-1003").id.as_str())
        );
        assert!(find("QS-1001").customer_id.is_some());
        let versions: Vec<u64> = sales.iter().map(|s| s.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
    }
}
