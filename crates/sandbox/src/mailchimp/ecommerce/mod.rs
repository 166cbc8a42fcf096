//! Mailchimp e-commerce (`/ecommerce/stores…`), the routes an order connector needs: stores,
//! customers, products and variants, orders, promo rules and promo codes, from the 3.0.55 spec
//! (`Add store`, `Add or update customer`, `Add product`, `Add or update product variant`,
//! `Add order`, `Update order`, `Add promo rule`, `Add promo code` and their `GET`/`PATCH`).
//!
//! Rules simulated:
//! - Bodies are checked against the spec's request schemas ([`schema`]): required fields, types
//!   (a string where a number belongs is refused), enums (`promos[].type`, promo rule `type` and
//!   `target`), ids of at most 50 characters where the spec says so; failures are 400 "Invalid
//!   Resource" with an `errors` array, like the list routes. Unknown fields are ignored [U].
//! - A store is connected to one audience (`list_id`, which must exist and "cannot change");
//!   `is_syncing` is kept with every value ever written ([`super::Mailchimp::store_syncing_history`]).
//! - Customers (`PUT …/customers/{id}`, or inline in a new order) become audience members:
//!   "This value will never overwrite the opt-in status of a pre-existing Mailchimp list member,
//!   but will apply to list members that are added through the e-commerce API endpoints.
//!   Customers who don't opt in … will be added as `Transactional` members" [S]. So a new
//!   address becomes `subscribed` (opt-in) or `transactional`; a member who existed before is
//!   never changed; a member the e-commerce API added as transactional becomes subscribed on a
//!   later opt-in only when the compliance rules of the list allow it (never after an
//!   unsubscribe or a bounce: [`super::state::check_transition`]) [U].
//! - Orders: `POST` creates (an existing id: 400), `PATCH` updates (unknown id: 404); there is no
//!   `PUT` on orders or products in 3.0.55 (405). Every line's product and variant must exist
//!   in the store ("A product with the provided ID does not exist…") [U: the spec does not say;
//!   Mailchimp's guide adds products before orders]. A customer not in the store must come with
//!   `email_address` [U].
//! - Writes are counted (every `POST`/`PUT`/`PATCH` that reaches a route, refused or not) by
//!   route template, so tests can assert that a re-run writes nothing ([`super::Mailchimp::ecommerce_writes`]).
//!
//! Assumptions ([U]): the wording of the 400 details (duplicate ids, unknown list, unknown
//! product); `opt_in_status` missing on an inline order customer means false; a `PATCH` of an
//! order's `lines` is checked but not applied (its items have no line id, so the simulator
//! cannot tell which line changes); times are stored in Mailchimp's `+00:00` form.

mod routes;
pub(crate) mod schema;

use std::collections::BTreeMap;

use axum::Router;
use axum::routing::{MethodRouter, get, patch, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use routes::*;

/// Every e-commerce route served, `(method, path template)` under `/3.0`.
pub const ECOMMERCE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/3.0/ecommerce/stores"),
    ("POST", "/3.0/ecommerce/stores"),
    ("GET", "/3.0/ecommerce/stores/{store_id}"),
    ("PATCH", "/3.0/ecommerce/stores/{store_id}"),
    (
        "GET",
        "/3.0/ecommerce/stores/{store_id}/customers/{customer_id}",
    ),
    (
        "PUT",
        "/3.0/ecommerce/stores/{store_id}/customers/{customer_id}",
    ),
    ("POST", "/3.0/ecommerce/stores/{store_id}/products"),
    (
        "GET",
        "/3.0/ecommerce/stores/{store_id}/products/{product_id}",
    ),
    (
        "PATCH",
        "/3.0/ecommerce/stores/{store_id}/products/{product_id}",
    ),
    (
        "GET",
        "/3.0/ecommerce/stores/{store_id}/products/{product_id}/variants/{variant_id}",
    ),
    (
        "PUT",
        "/3.0/ecommerce/stores/{store_id}/products/{product_id}/variants/{variant_id}",
    ),
    ("GET", "/3.0/ecommerce/stores/{store_id}/orders"),
    ("POST", "/3.0/ecommerce/stores/{store_id}/orders"),
    ("GET", "/3.0/ecommerce/stores/{store_id}/orders/{order_id}"),
    (
        "PATCH",
        "/3.0/ecommerce/stores/{store_id}/orders/{order_id}",
    ),
    ("POST", "/3.0/ecommerce/stores/{store_id}/promo-rules"),
    (
        "GET",
        "/3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}",
    ),
    (
        "PATCH",
        "/3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}",
    ),
    (
        "POST",
        "/3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes",
    ),
    (
        "GET",
        "/3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}",
    ),
    (
        "PATCH",
        "/3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}",
    ),
];

/// Adds [`ECOMMERCE_ROUTES`] to the simulator's router.
pub(crate) fn routes(mut router: Router<super::Mailchimp>) -> Router<super::Mailchimp> {
    for (method, path) in ECOMMERCE_ROUTES {
        router = router.route(path, endpoint(method, path));
    }
    router
}

fn endpoint(method: &str, path: &str) -> MethodRouter<super::Mailchimp> {
    const S: &str = "/3.0/ecommerce/stores";
    let tail = path.strip_prefix(S).unwrap_or(path);
    match (method, tail) {
        ("GET", "") => get(list_stores),
        ("POST", "") => post(create_store),
        ("GET", "/{store_id}") => get(get_store),
        ("PATCH", "/{store_id}") => patch(patch_store),
        ("GET", "/{store_id}/customers/{customer_id}") => get(get_customer),
        ("PUT", "/{store_id}/customers/{customer_id}") => put(put_customer),
        ("POST", "/{store_id}/products") => post(create_product),
        ("GET", "/{store_id}/products/{product_id}") => get(get_product),
        ("PATCH", "/{store_id}/products/{product_id}") => patch(patch_product),
        ("GET", "/{store_id}/products/{product_id}/variants/{variant_id}") => get(get_variant),
        ("PUT", "/{store_id}/products/{product_id}/variants/{variant_id}") => put(put_variant),
        ("GET", "/{store_id}/orders") => get(list_orders),
        ("POST", "/{store_id}/orders") => post(create_order),
        ("GET", "/{store_id}/orders/{order_id}") => get(get_order),
        ("PATCH", "/{store_id}/orders/{order_id}") => patch(patch_order),
        ("POST", "/{store_id}/promo-rules") => post(create_promo_rule),
        ("GET", "/{store_id}/promo-rules/{promo_rule_id}") => get(get_promo_rule),
        ("PATCH", "/{store_id}/promo-rules/{promo_rule_id}") => patch(patch_promo_rule),
        ("POST", "/{store_id}/promo-rules/{promo_rule_id}/promo-codes") => post(create_promo_code),
        ("GET", "/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}") => {
            get(get_promo_code)
        }
        ("PATCH", "/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}") => {
            patch(patch_promo_code)
        }
        _ => unreachable!("ECOMMERCE_ROUTES lists {method} {path} without a handler"),
    }
}

/// The e-commerce part of the account.
#[derive(Debug, Clone, Default)]
pub struct Ecommerce {
    pub stores: BTreeMap<String, Store>,
    /// Write requests by `METHOD /template`.
    pub writes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// The writable fields as last written (`id`, `list_id`, `name`, `currency_code`, …).
    pub doc: Map<String, Value>,
    /// Every `is_syncing` value written, in order (creation first).
    pub syncing_history: Vec<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customers: BTreeMap<String, Map<String, Value>>,
    pub products: BTreeMap<String, Product>,
    pub orders: BTreeMap<String, Map<String, Value>>,
    pub promo_rules: BTreeMap<String, PromoRule>,
}

impl Store {
    pub fn list_id(&self) -> &str {
        self.doc
            .get("list_id")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn is_syncing(&self) -> bool {
        self.doc
            .get("is_syncing")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone)]
pub struct Product {
    /// The product's fields without `variants`.
    pub doc: Map<String, Value>,
    pub variants: BTreeMap<String, Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct PromoRule {
    pub doc: Map<String, Value>,
    pub codes: BTreeMap<String, Map<String, Value>>,
}

/// An order as tests see it ([`super::Mailchimp::ecommerce_orders`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSnapshot {
    pub id: String,
    pub customer_id: String,
    pub financial_status: String,
    pub fulfillment_status: String,
    pub currency_code: String,
    /// The JSON number as written.
    pub order_total: Value,
    pub discount_total: Value,
    pub processed_at_foreign: String,
    /// `(line id, product id, variant id, quantity)`.
    pub lines: Vec<(String, String, String, i64)>,
    pub promo_codes: Vec<String>,
}

impl OrderSnapshot {
    pub(crate) fn of(doc: &Map<String, Value>) -> OrderSnapshot {
        let text = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let lines = doc
            .get("lines")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| {
                        let t =
                            |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                        (
                            t("id"),
                            t("product_id"),
                            t("product_variant_id"),
                            l.get("quantity").and_then(Value::as_i64).unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let promo_codes = doc
            .get("promos")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(|p| p.get("code").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        OrderSnapshot {
            id: text("id"),
            customer_id: doc
                .get("customer")
                .and_then(|c| c.get("id"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            financial_status: text("financial_status"),
            fulfillment_status: text("fulfillment_status"),
            currency_code: text("currency_code"),
            order_total: doc.get("order_total").cloned().unwrap_or(Value::Null),
            discount_total: doc.get("discount_total").cloned().unwrap_or(Value::Null),
            processed_at_foreign: text("processed_at_foreign"),
            lines,
            promo_codes,
        }
    }
}

/// A customer as tests see it ([`super::Mailchimp::ecommerce_customers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSnapshot {
    pub id: String,
    pub email_address: String,
    pub opt_in_status: bool,
    pub first_name: String,
    pub last_name: String,
}

impl CustomerSnapshot {
    pub(crate) fn of(doc: &Map<String, Value>) -> CustomerSnapshot {
        let text = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        CustomerSnapshot {
            id: text("id"),
            email_address: text("email_address"),
            opt_in_status: doc
                .get("opt_in_status")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            first_name: text("first_name"),
            last_name: text("last_name"),
        }
    }
}

impl super::Mailchimp {
    /// Every store id, in id order.
    pub fn ecommerce_stores(&self) -> Vec<String> {
        self.lock().ecommerce.stores.keys().cloned().collect()
    }

    /// The audience a store is connected to.
    pub fn store_list_id(&self, store_id: &str) -> Option<String> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| s.list_id().to_string())
    }

    /// Every `is_syncing` value written to a store, creation first (empty: no such store).
    pub fn store_syncing_history(&self, store_id: &str) -> Vec<bool> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| s.syncing_history.clone())
            .unwrap_or_default()
    }

    /// A store's current `is_syncing`.
    pub fn store_is_syncing(&self, store_id: &str) -> Option<bool> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(Store::is_syncing)
    }

    /// A store's orders, in id order.
    pub fn ecommerce_orders(&self, store_id: &str) -> Vec<OrderSnapshot> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| s.orders.values().map(OrderSnapshot::of).collect())
            .unwrap_or_default()
    }

    /// A store's customers, in id order.
    pub fn ecommerce_customers(&self, store_id: &str) -> Vec<CustomerSnapshot> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| s.customers.values().map(CustomerSnapshot::of).collect())
            .unwrap_or_default()
    }

    /// A store's products with their variant ids, in id order.
    pub fn ecommerce_products(&self, store_id: &str) -> Vec<(String, Vec<String>)> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| {
                s.products
                    .iter()
                    .map(|(id, p)| (id.clone(), p.variants.keys().cloned().collect()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A store's promo rules with their codes (`code` values), in id order.
    pub fn ecommerce_promo_codes(&self, store_id: &str) -> Vec<(String, Vec<String>)> {
        self.lock()
            .ecommerce
            .stores
            .get(store_id)
            .map(|s| {
                s.promo_rules
                    .iter()
                    .map(|(id, r)| {
                        let codes = r
                            .codes
                            .values()
                            .filter_map(|c| c.get("code").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect();
                        (id.clone(), codes)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A store's promo rule as stored (its fields as sent, `enabled` defaulted) with its codes
    /// under `codes`, in id order.
    pub fn ecommerce_promo_rule(&self, store_id: &str, rule_id: &str) -> Option<Value> {
        let state = self.lock();
        let rule = state
            .ecommerce
            .stores
            .get(store_id)?
            .promo_rules
            .get(rule_id)?;
        let mut doc = rule.doc.clone();
        doc.entry("enabled").or_insert(Value::Bool(true));
        let codes = rule.codes.values().cloned().map(Value::Object).collect();
        doc.insert("codes".into(), Value::Array(codes));
        Some(Value::Object(doc))
    }

    /// Write requests (`POST`/`PUT`/`PATCH`) to the e-commerce routes so far, refused ones
    /// included.
    pub fn ecommerce_writes(&self) -> u64 {
        self.lock().ecommerce.writes.values().sum()
    }

    /// Write requests by `METHOD /3.0/ecommerce/…template`.
    pub fn ecommerce_writes_by_route(&self) -> BTreeMap<String, u64> {
        self.lock().ecommerce.writes.clone()
    }
}
