//! Code discounts of the simulated shop: the root fields `codeDiscountNodes(first, after,
//! sortKey, reverse)` and `codeDiscountNode(id)`, answered from the 2025-01 schema's types
//! (`DiscountCodeNode`, the `DiscountCode` union's `DiscountCodeBasic` and
//! `DiscountCodeFreeShipping`, `DiscountCustomerGets`, the `DiscountCustomerGetsValue` union's
//! `DiscountPercentage` and `DiscountAmount`, `DiscountRedeemCode`) with only the fields selected.
//! Clients pick the union members with inline fragments, as with Shopify.
//!
//! `status` follows the dates, as Shopify's does [D]: SCHEDULED before `startsAt`, EXPIRED from
//! `endsAt` on, ACTIVE between. `DiscountPercentage.percentage` is a fraction (0.1 = 10 % off,
//! the input's "between 0.00 - 1.00" [S]).
//!
//! Sort keys: ID (default), CREATED_AT, UPDATED_AT, STARTS_AT, ENDS_AT, TITLE is refused [U: not
//! simulated]. The `query` search is not simulated and refused rather than ignored.
//!
//! Cost [U, as for orders]: `codeDiscountNodes` costs `2 + first × (1 + (2 + codes' first))`;
//! `codes(first)` is a connection that needs `first` (1..=250) and pages with `after`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::graphql::Field;
use super::orders::{money, node_selection};
use super::{
    Shopify, SortKey, State, arg_str, connection, error, now_secs, page, page_size,
    rendered_connection, ts,
};

/// What a code discount gives.
#[derive(Debug, Clone, PartialEq)]
pub enum DiscountValue {
    /// A fraction off (0.1 = 10 %), on the order's entitled items.
    Percentage(f64),
    /// An amount off, in the shop's currency, in cents: on each entitled item, or split across them.
    Amount { cents: i64, each_item: bool },
    /// Free shipping (`DiscountCodeFreeShipping`).
    FreeShipping,
}

/// A code discount of the shop (`DiscountCodeNode`).
#[derive(Debug, Clone, PartialEq)]
pub struct CodeDiscount {
    /// 0 in [`Shopify::add_code_discount`] means "assign the next id".
    pub id: u64,
    pub title: String,
    pub codes: Vec<String>,
    pub value: DiscountValue,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CodeDiscount {
    /// A discount with one code, active since the epoch, without an end.
    pub fn new(code: &str, value: DiscountValue) -> Self {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        CodeDiscount {
            id: 0,
            title: code.to_string(),
            codes: vec![code.to_string()],
            value,
            starts_at: epoch,
            ends_at: None,
            created_at: epoch,
            updated_at: epoch,
        }
    }

    pub fn gid(&self) -> String {
        format!("gid://shopify/DiscountCodeNode/{}", self.id)
    }

    /// `DiscountStatus` now.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if now < self.starts_at {
            "SCHEDULED"
        } else if self.ends_at.is_some_and(|end| now >= end) {
            "EXPIRED"
        } else {
            "ACTIVE"
        }
    }
}

/// The discount half of the shop's state.
pub(super) struct Discounts {
    discounts: BTreeMap<u64, CodeDiscount>,
    next_id: u64,
    next_code_id: u64,
    /// Code → its `DiscountRedeemCode` id.
    code_ids: BTreeMap<String, u64>,
}

impl Default for Discounts {
    fn default() -> Self {
        Discounts {
            discounts: BTreeMap::new(),
            next_id: 1_200_001,
            next_code_id: 17_000_001,
            code_ids: BTreeMap::new(),
        }
    }
}

impl Discounts {
    /// The discount that has `code` (codes are unique per shop, case-insensitively [D]).
    pub(super) fn by_code(&self, code: &str) -> Option<&CodeDiscount> {
        self.discounts
            .values()
            .find(|d| d.codes.iter().any(|c| c.eq_ignore_ascii_case(code)))
    }
}

impl Shopify {
    /// Adds a code discount and returns its numeric id. An id of 0 is assigned; an unset (epoch)
    /// `created_at` becomes now, an unset `updated_at` the creation. Times are kept to the second.
    pub fn add_code_discount(&self, mut discount: CodeDiscount) -> u64 {
        let mut state = self.lock();
        let store = &mut state.discounts;
        if discount.id == 0 {
            discount.id = store.next_id;
        }
        store.next_id = store.next_id.max(discount.id + 1);
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        if discount.created_at == epoch {
            discount.created_at = now_secs();
        }
        if discount.updated_at == epoch {
            discount.updated_at = discount.created_at;
        }
        for code in &discount.codes {
            if !store.code_ids.contains_key(code) {
                store.code_ids.insert(code.clone(), store.next_code_id);
                store.next_code_id += 1;
            }
        }
        let id = discount.id;
        store.discounts.insert(id, discount);
        id
    }

    /// Changes a discount as a merchant would in the admin; its `updatedAt` becomes now.
    pub fn edit_code_discount(&self, id: u64, edit: impl FnOnce(&mut CodeDiscount)) -> bool {
        let mut state = self.lock();
        let store = &mut state.discounts;
        let Some(discount) = store.discounts.get_mut(&id) else {
            return false;
        };
        edit(discount);
        discount.updated_at = now_secs();
        for code in discount.codes.clone() {
            if !store.code_ids.contains_key(&code) {
                store.code_ids.insert(code, store.next_code_id);
                store.next_code_id += 1;
            }
        }
        true
    }

    pub fn code_discounts(&self) -> Vec<CodeDiscount> {
        self.lock().discounts.discounts.values().cloned().collect()
    }

    /// The demo discounts (see [`DEMO_DISCOUNTS`]). Deterministic.
    pub fn seed_demo_discounts(&self) {
        for discount in demo_discounts() {
            self.add_code_discount(discount);
        }
    }
}

/// What [`Shopify::seed_demo_discounts`] creates, ids 1200001..: `WELCOME10` (10 % off, used by
/// demo order #1001), `FREEGIFT` (100 % off, order #1002), `TAKE5` ($5 off each item), `SAVE15`
/// ($15 off the order, codes `SAVE15` and `SAVE15-VIP`), `SHIPFREE` (free shipping) and
/// `SPRING20` (20 % off, expired on 2025-05-31).
pub const DEMO_DISCOUNTS: usize = 6;

fn demo_discounts() -> Vec<CodeDiscount> {
    let at = |y, m, d| {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("a date")
    };
    let start = at(2025, 1, 1);
    let mut out = Vec::new();
    for (n, code, title, value, ends) in [
        (
            1,
            "WELCOME10",
            "Welcome 10 % off",
            DiscountValue::Percentage(0.1),
            None,
        ),
        (
            2,
            "FREEGIFT",
            "Free gift",
            DiscountValue::Percentage(1.0),
            None,
        ),
        (
            3,
            "TAKE5",
            "$5 off every item",
            DiscountValue::Amount {
                cents: 500,
                each_item: true,
            },
            None,
        ),
        (
            4,
            "SAVE15",
            "$15 off your order",
            DiscountValue::Amount {
                cents: 1500,
                each_item: false,
            },
            None,
        ),
        (
            5,
            "SHIPFREE",
            "Free shipping",
            DiscountValue::FreeShipping,
            None,
        ),
        (
            6,
            "SPRING20",
            "Spring sale 20 % off",
            DiscountValue::Percentage(0.2),
            Some(at(2025, 5, 31)),
        ),
    ] {
        let mut discount = CodeDiscount::new(code, value);
        discount.id = 1_200_000 + n;
        discount.title = title.to_string();
        discount.starts_at = start;
        discount.ends_at = ends;
        discount.created_at = start - chrono::Duration::days(1);
        discount.updated_at = discount.created_at;
        if code == "SAVE15" {
            discount.codes.push("SAVE15-VIP".into());
        }
        out.push(discount);
    }
    out
}

// ---- cost ----

fn codes_field(selection: &[Field]) -> Option<&Field> {
    selection.iter().find(|f| f.name == "codes")
}

fn code_discount_selection(node_selection: &[Field]) -> Vec<Field> {
    node_selection
        .iter()
        .filter(|f| f.name == "codeDiscount")
        .flat_map(|f| f.selection.iter().cloned())
        .collect()
}

/// The cost of one `DiscountCodeNode` with `selection`: the `codes` connections under each
/// union member's fragment are costed apart and the dearest member counts [U: as Shopify costs
/// the possible types of a union].
fn node_cost(selection: &[Field]) -> Result<f64, Value> {
    let mut shared = 0.0;
    let mut by_member: BTreeMap<String, f64> = BTreeMap::new();
    for field in code_discount_selection(selection)
        .iter()
        .filter(|f| f.name == "codes")
    {
        let cost = 2.0 + page_size(field)? as f64;
        if field.on.is_empty() {
            shared += cost;
        } else {
            *by_member.entry(field.on.join(" ")).or_default() += cost;
        }
    }
    Ok(1.0 + shared + by_member.values().copied().fold(0.0, f64::max))
}

/// The requested cost of `codeDiscountNodes` or `codeDiscountNode`.
pub(super) fn requested_cost(field: &Field) -> Result<f64, Value> {
    match field.name.as_str() {
        "codeDiscountNodes" => {
            let first = page_size(field)? as f64;
            Ok(2.0 + first * node_cost(&node_selection(field))?)
        }
        _ => node_cost(&field.selection),
    }
}

// ---- resolving ----

fn summary(discount: &CodeDiscount, currency: &str) -> String {
    match &discount.value {
        DiscountValue::Percentage(p) => format!("{}% off entire order", (p * 100.0).round()),
        DiscountValue::Amount { cents, each_item } => format!(
            "{} {currency} off {}",
            money(*cents),
            if *each_item {
                "each eligible item"
            } else {
                "entire order"
            }
        ),
        DiscountValue::FreeShipping => "Free shipping on all products".to_string(),
    }
}

fn node_json(
    state: &State,
    discount: &CodeDiscount,
    selection: &[Field],
) -> Result<(Value, f64), Value> {
    let currency = state.orders.currency.as_str();
    let now = now_secs();
    let inner = code_discount_selection(selection);
    let mut cost = 1.0;
    let mut code = json!({
        "title": discount.title,
        "status": discount.status(now),
        "startsAt": ts(&discount.starts_at),
        "endsAt": discount.ends_at.as_ref().map(ts),
        "createdAt": ts(&discount.created_at),
        "updatedAt": ts(&discount.updated_at),
        "summary": summary(discount, currency),
        "shortSummary": summary(discount, currency),
        "asyncUsageCount": 0,
        "appliesOncePerCustomer": false,
        "usageLimit": null,
        "hasTimelineComment": false,
        "recurringCycleLimit": 0,
        "totalSales": null,
        "codesCount": {"__typename": "Count", "count": discount.codes.len(), "precision": "EXACT"},
    });
    if let Some(field) = codes_field(&inner) {
        let items: Vec<(SortKey, Value)> = discount
            .codes
            .iter()
            .map(|c| {
                let id = state.discounts.code_ids.get(c).copied().unwrap_or_default();
                (
                    (id as i64, id),
                    json!({
                        "__typename": "DiscountRedeemCode",
                        "id": format!("gid://shopify/DiscountRedeemCode/{id}"),
                        "code": c,
                        "asyncUsageCount": 0,
                        "createdBy": null,
                    }),
                )
            })
            .collect();
        let (rows, has_next, has_prev) = page(items, field)?;
        cost += 2.0 + rows.len() as f64;
        code["codes"] = connection("DiscountRedeemCodeConnection", rows, has_next, has_prev);
    }
    let object = code.as_object_mut().expect("an object");
    match &discount.value {
        DiscountValue::FreeShipping => {
            object.insert("__typename".into(), json!("DiscountCodeFreeShipping"));
            object.insert("discountClass".into(), json!("SHIPPING"));
            object.insert("appliesOnOneTimePurchase".into(), json!(true));
            object.insert("appliesOnSubscription".into(), json!(false));
            object.insert("maximumShippingPrice".into(), Value::Null);
        }
        value => {
            let value = match value {
                DiscountValue::Percentage(p) => {
                    json!({"__typename": "DiscountPercentage", "percentage": p})
                }
                DiscountValue::Amount { cents, each_item } => json!({
                    "__typename": "DiscountAmount",
                    "amount": {"__typename": "MoneyV2", "amount": money(*cents), "currencyCode": currency},
                    "appliesOnEachItem": each_item,
                }),
                DiscountValue::FreeShipping => unreachable!("matched above"),
            };
            object.insert("__typename".into(), json!("DiscountCodeBasic"));
            object.insert("discountClass".into(), json!("ORDER"));
            object.insert(
                "customerGets".into(),
                json!({
                    "__typename": "DiscountCustomerGets",
                    "appliesOnOneTimePurchase": true,
                    "appliesOnSubscription": false,
                    "items": {"__typename": "AllDiscountItems", "allItems": true},
                    "value": value,
                }),
            );
        }
    }
    Ok((
        json!({
            "__typename": "DiscountCodeNode",
            "id": discount.gid(),
            "codeDiscount": code,
        }),
        cost,
    ))
}

/// `codeDiscountNodes` and `codeDiscountNode`; `None` for other fields.
pub(super) fn resolve(state: &State, field: &Field) -> Option<Result<(Value, f64), Value>> {
    match field.name.as_str() {
        "codeDiscountNodes" => Some(resolve_list(state, field)),
        "codeDiscountNode" => Some(resolve_one(state, field)),
        _ => None,
    }
}

fn resolve_one(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    let Some(gid) = arg_str(field, "id") else {
        return Err(error(
            "Field 'codeDiscountNode' is missing required arguments: id",
            "missingRequiredArguments",
        ));
    };
    let discount = gid
        .strip_prefix("gid://shopify/DiscountCodeNode/")
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|id| state.discounts.discounts.get(&id));
    match discount {
        None => Ok((Value::Null, 1.0)),
        Some(discount) => node_json(state, discount, &field.selection),
    }
}

fn resolve_list(state: &State, field: &Field) -> Result<(Value, f64), Value> {
    if field
        .args
        .get("query")
        .is_some_and(|q| !q.is_null() && q.as_str() != Some(""))
        || field
            .args
            .get("savedSearchId")
            .is_some_and(|q| !q.is_null())
    {
        return Err(error(
            "The sandbox does not search code discounts (query, savedSearchId)",
            "BAD_REQUEST",
        ));
    }
    let sort = arg_str(field, "sortKey").unwrap_or("ID");
    let mut items = Vec::new();
    for discount in state.discounts.discounts.values() {
        let value = match sort {
            "ID" => discount.id as i64,
            "CREATED_AT" => discount.created_at.timestamp_millis(),
            "UPDATED_AT" => discount.updated_at.timestamp_millis(),
            "STARTS_AT" => discount.starts_at.timestamp_millis(),
            "ENDS_AT" => discount.ends_at.map_or(i64::MAX, |t| t.timestamp_millis()),
            other => {
                return Err(error(
                    format!(
                        "Argument 'sortKey' on Field 'codeDiscountNodes' has an invalid value ({other})."
                    ),
                    "argumentLiteralsIncompatible",
                ));
            }
        };
        items.push(((value, discount.id), discount));
    }
    rendered_connection(
        "DiscountCodeNodeConnection",
        items,
        field,
        &node_selection(field),
        |discount, selection| node_json(state, discount, selection),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shopify::graphql;

    const LIST: &str = "query { codeDiscountNodes(first: 10) { nodes { id codeDiscount {
        __typename
        ... on DiscountCodeBasic { title status codes(first: 5) { nodes { code } }
          customerGets { value {
            ... on DiscountPercentage { percentage }
            ... on DiscountAmount { amount { amount currencyCode } appliesOnEachItem } } } }
        ... on DiscountCodeFreeShipping { title status }
    } } pageInfo { hasNextPage } } }";

    fn run(shop: &Shopify, query: &str) -> Value {
        let op = graphql::parse(query, &Default::default()).unwrap();
        let state = shop.lock();
        let (full, _) = resolve(&state, &op.fields[0]).unwrap().unwrap();
        graphql::project(&full, &op.fields[0].selection).unwrap()
    }

    #[test]
    fn the_demo_discounts_answer_through_their_fragments() {
        let shop = Shopify::default();
        shop.seed_demo_discounts();
        let answer = run(&shop, LIST);
        let nodes = answer["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), DEMO_DISCOUNTS);
        assert_eq!(
            nodes[0]["codeDiscount"],
            json!({"__typename": "DiscountCodeBasic", "title": "Welcome 10 % off", "status": "ACTIVE",
                   "codes": {"nodes": [{"code": "WELCOME10"}]},
                   "customerGets": {"value": {"percentage": 0.1}}})
        );
        assert_eq!(
            nodes[2]["codeDiscount"]["customerGets"]["value"],
            json!({"amount": {"amount": "5.0", "currencyCode": "USD"}, "appliesOnEachItem": true})
        );
        assert_eq!(
            nodes[4]["codeDiscount"],
            json!({"__typename": "DiscountCodeFreeShipping", "title": "Free shipping", "status": "ACTIVE"})
        );
        assert_eq!(nodes[5]["codeDiscount"]["status"], json!("EXPIRED"));
    }

    #[test]
    fn codes_page_and_cost_multiplies() {
        let shop = Shopify::default();
        shop.seed_demo_discounts();
        let answer = run(
            &shop,
            "{ codeDiscountNode(id: \"gid://shopify/DiscountCodeNode/1200004\") { codeDiscount { ... on DiscountCodeBasic { codes(first: 1) { nodes { code } pageInfo { hasNextPage } } } } } }",
        );
        assert_eq!(
            answer["codeDiscount"]["codes"],
            json!({"nodes": [{"code": "SAVE15"}], "pageInfo": {"hasNextPage": true}})
        );
        let op = graphql::parse(LIST, &Default::default()).unwrap();
        // 2 + 10 × (1 + (2 + 5))
        assert_eq!(requested_cost(&op.fields[0]).unwrap(), 82.0);
    }
}
