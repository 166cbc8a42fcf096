//! The e-commerce handlers. Each write is counted, then checked against its schema
//! ([`super::schema`]), then against the store's contents, and only then applied: a refused
//! write changes nothing.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::super::email::subscriber_hash;
use super::super::error::{ApiError, FieldError};
use super::super::params::{Params, json_object};
use super::super::state::{
    Member, MemberStatus, State as Account, check_address, check_transition,
};
use super::super::{Mailchimp, respond};
use super::schema::{self, F};
use super::{Product, PromoRule, Store};

fn count_write(state: &mut Account, route: &str) {
    *state.ecommerce.writes.entry(route.to_string()).or_default() += 1;
}

/// Parses and checks a body; the stored form of the known fields.
fn checked(body: &Bytes, fields: &[F]) -> Result<Map<String, Value>, ApiError> {
    let map = json_object(body)?;
    let mut errors = Vec::new();
    let out = schema::check(&map, fields, "", &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(errors))
    }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::InvalidResource(detail.into())
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

/// [U] Mailchimp checks the code is an ISO 4217 code; the simulator checks its form.
fn check_currency(map: &Map<String, Value>) -> Result<(), ApiError> {
    match map.get("currency_code").and_then(Value::as_str) {
        Some(code) if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) => {
            Err(ApiError::Validation(vec![FieldError::new(
                "currency_code",
                format!("\"{code}\" is not a three-letter ISO 4217 currency code"),
            )]))
        }
        _ => Ok(()),
    }
}

/// The path id and the body's `id` must agree [U].
fn same_id(path: &str, body: &Map<String, Value>) -> Result<(), ApiError> {
    let id = text(body, "id");
    if id != path {
        return Err(invalid(format!(
            "The id in the request body ({id}) does not match the id in the URL ({path})."
        )));
    }
    Ok(())
}

fn store_mut<'a>(state: &'a mut Account, id: &str) -> Result<&'a mut Store, ApiError> {
    state.ecommerce.stores.get_mut(id).ok_or(ApiError::NotFound)
}

fn render_store(store: &Store) -> Value {
    let mut doc = store.doc.clone();
    for key in [
        "platform",
        "domain",
        "email_address",
        "money_format",
        "primary_locale",
        "timezone",
        "phone",
    ] {
        doc.entry(key).or_insert(json!(""));
    }
    doc.entry("is_syncing").or_insert(json!(false));
    doc.insert("list_is_active".into(), json!(true));
    doc.insert("created_at".into(), json!(schema_time(store.created_at)));
    doc.insert("updated_at".into(), json!(schema_time(store.updated_at)));
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

fn schema_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// `GET /ecommerce/stores`.
pub async fn list_stores(
    State(sim): State<Mailchimp>,
    params: Params,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let state = sim.lock();
    let stores: Vec<Value> = state
        .ecommerce
        .stores
        .values()
        .skip(offset)
        .take(count)
        .map(render_store)
        .collect();
    let doc = json!({
        "stores": stores,
        "total_items": state.ecommerce.stores.len(),
        "_links": [],
    });
    Ok(respond(doc, &params))
}

/// `POST /ecommerce/stores`: the audience must exist; an existing id is refused.
pub async fn create_store(
    State(sim): State<Mailchimp>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(&mut state, "POST /3.0/ecommerce/stores");
    let doc = checked(&body, schema::STORE_CREATE)?;
    check_currency(&doc)?;
    let id = text(&doc, "id").to_string();
    let list_id = text(&doc, "list_id").to_string();
    if state.ecommerce.stores.contains_key(&id) {
        return Err(invalid(format!(
            "A store with the provided ID already exists in the account: {id}."
        )));
    }
    if !state.lists.contains_key(&list_id) {
        return Err(invalid(format!(
            "The list_id {list_id} does not name an audience in this account."
        )));
    }
    let now = state.now();
    let syncing = doc
        .get("is_syncing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let store = Store {
        doc,
        syncing_history: vec![syncing],
        created_at: now,
        updated_at: now,
        customers: BTreeMap::new(),
        products: BTreeMap::new(),
        orders: BTreeMap::new(),
        promo_rules: BTreeMap::new(),
    };
    let rendered = render_store(&store);
    state.ecommerce.stores.insert(id, store);
    Ok(respond(rendered, &params))
}

/// `GET /ecommerce/stores/{store_id}`.
pub async fn get_store(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    Ok(respond(render_store(store), &params))
}

/// `PATCH /ecommerce/stores/{store_id}`; `list_id` "cannot change" (not in the PATCH schema;
/// a different one is refused [U]).
pub async fn patch_store(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(&mut state, "PATCH /3.0/ecommerce/stores/{store_id}");
    let raw = json_object(&body)?;
    let doc = checked(&body, schema::STORE_PATCH)?;
    check_currency(&doc)?;
    let now = state.now();
    let store = store_mut(&mut state, &store_id)?;
    if let Some(list) = raw.get("list_id").and_then(Value::as_str)
        && list != store.list_id()
    {
        return Err(invalid("The list_id for a store cannot change."));
    }
    if let Some(syncing) = doc.get("is_syncing").and_then(Value::as_bool) {
        store.syncing_history.push(syncing);
    }
    store.doc.extend(doc);
    store.updated_at = now;
    Ok(respond(render_store(store), &params))
}

/// What a customer write does to the store's audience (see the module docs): a new address
/// becomes subscribed or transactional; an existing member is left alone unless the
/// e-commerce API added it as transactional and it may now be subscribed.
fn customer_member(
    state: &mut Account,
    list_id: &str,
    email: &str,
    opt_in: bool,
    names: (&str, &str),
) -> Result<(), ApiError> {
    check_address(email)?;
    let hash = subscriber_hash(email);
    let now = state.now();
    let seq = state.next_seq;
    let added_here = state
        .ecommerce_members
        .contains(&(list_id.to_string(), hash.clone()));
    let list = state.lists.get_mut(list_id).ok_or(ApiError::NotFound)?;
    if list.forgotten.contains(&hash) {
        // [U] A permanently deleted address is not re-added by a purchase.
        return Ok(());
    }
    match list.members.get_mut(&hash) {
        None => {
            let status = if opt_in {
                MemberStatus::Subscribed
            } else {
                MemberStatus::Transactional
            };
            let mut member = Member::new(seq, email.trim().to_string(), status, now);
            for (tag, value) in [("FNAME", names.0), ("LNAME", names.1)] {
                if !value.is_empty() {
                    member.merge_fields.insert(tag.into(), json!(value));
                }
            }
            list.members.insert(hash.clone(), member);
            if opt_in {
                list.last_sub_date = Some(now);
            }
            state.next_seq += 1;
            state.ecommerce_members.insert((list_id.to_string(), hash));
        }
        Some(member) => {
            let upgrade = opt_in
                && added_here
                && !member.archived
                && member.status == MemberStatus::Transactional
                && check_transition(
                    member.status,
                    member.compliance,
                    MemberStatus::Subscribed,
                    email,
                )
                .is_ok();
            if upgrade {
                member.status = MemberStatus::Subscribed;
                member.record_status(MemberStatus::Subscribed);
                member.timestamp_opt = Some(now);
                member.last_changed = now;
                list.last_sub_date = Some(now);
            }
        }
    }
    Ok(())
}

fn render_customer(store_id: &str, doc: &Map<String, Value>) -> Value {
    let mut doc = doc.clone();
    for key in ["company", "first_name", "last_name"] {
        doc.entry(key).or_insert(json!(""));
    }
    doc.insert("store_id".into(), json!(store_id));
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

/// `GET …/customers/{customer_id}`.
pub async fn get_customer(
    State(sim): State<Mailchimp>,
    Path((store_id, customer_id)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    let doc = store
        .customers
        .get(&customer_id)
        .ok_or(ApiError::NotFound)?;
    Ok(respond(render_customer(&store_id, doc), &params))
}

/// `PUT …/customers/{customer_id}`: add or update by id.
pub async fn put_customer(
    State(sim): State<Mailchimp>,
    Path((store_id, customer_id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PUT /3.0/ecommerce/stores/{store_id}/customers/{customer_id}",
    );
    let doc = checked(&body, schema::CUSTOMER_PUT)?;
    same_id(&customer_id, &doc)?;
    let list_id = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?
        .list_id()
        .to_string();
    let stored = write_customer(&mut state, &store_id, &list_id, doc)?;
    Ok(respond(render_customer(&store_id, &stored), &params))
}

/// Stores a customer (new or changed) and applies it to the audience. [U] A customer's address
/// cannot change (a new address is a new customer id).
fn write_customer(
    state: &mut Account,
    store_id: &str,
    list_id: &str,
    doc: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let id = text(&doc, "id").to_string();
    let existing = state
        .ecommerce
        .stores
        .get(store_id)
        .and_then(|s| s.customers.get(&id))
        .cloned();
    let email = match (&existing, doc.get("email_address").and_then(Value::as_str)) {
        (Some(old), Some(new)) if !text(old, "email_address").eq_ignore_ascii_case(new) => {
            return Err(invalid(format!(
                "The email address of customer {id} cannot be changed."
            )));
        }
        (_, Some(new)) => new.to_string(),
        (Some(old), None) => text(old, "email_address").to_string(),
        (None, None) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "customer.email_address",
                "This value should not be blank.",
            )]));
        }
    };
    let opt_in = doc
        .get("opt_in_status")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    customer_member(
        state,
        list_id,
        &email,
        opt_in,
        (text(&doc, "first_name"), text(&doc, "last_name")),
    )?;
    let mut stored = existing.unwrap_or_default();
    stored.extend(doc);
    stored.insert("email_address".into(), json!(email));
    stored.entry("opt_in_status").or_insert(json!(false));
    if let Some(store) = state.ecommerce.stores.get_mut(store_id) {
        store.customers.insert(id, stored.clone());
    }
    Ok(stored)
}

fn render_product(store_id: &str, id: &str, product: &Product) -> Value {
    let mut doc = product.doc.clone();
    doc.insert("id".into(), json!(id));
    doc.insert("store_id".into(), json!(store_id));
    doc.insert(
        "variants".into(),
        Value::Array(
            product
                .variants
                .values()
                .cloned()
                .map(Value::Object)
                .collect(),
        ),
    );
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

/// `POST …/products`: an existing id is refused; at least one variant.
pub async fn create_product(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(&mut state, "POST /3.0/ecommerce/stores/{store_id}/products");
    let mut doc = checked(&body, schema::PRODUCT_CREATE)?;
    let store = store_mut(&mut state, &store_id)?;
    let id = text(&doc, "id").to_string();
    if store.products.contains_key(&id) {
        return Err(invalid(format!(
            "A product with the provided ID already exists in the account: {id}."
        )));
    }
    let variants = match doc.remove("variants") {
        Some(Value::Array(v)) if !v.is_empty() => v,
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "variants",
                "At least one variant is required for each product.",
            )]));
        }
    };
    let mut by_id = BTreeMap::new();
    for variant in variants {
        if let Value::Object(v) = variant {
            by_id.insert(text(&v, "id").to_string(), v);
        }
    }
    let product = Product {
        doc,
        variants: by_id,
    };
    let rendered = render_product(&store_id, &id, &product);
    store.products.insert(id, product);
    Ok(respond(rendered, &params))
}

/// `GET …/products/{product_id}`.
pub async fn get_product(
    State(sim): State<Mailchimp>,
    Path((store_id, product_id)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    let product = store.products.get(&product_id).ok_or(ApiError::NotFound)?;
    Ok(respond(
        render_product(&store_id, &product_id, product),
        &params,
    ))
}

/// `PATCH …/products/{product_id}`. [U] `variants` items of the PATCH schema carry no id, so
/// they are checked but not applied: variants change through their own `PUT`.
pub async fn patch_product(
    State(sim): State<Mailchimp>,
    Path((store_id, product_id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PATCH /3.0/ecommerce/stores/{store_id}/products/{product_id}",
    );
    let mut doc = checked(&body, schema::PRODUCT_PATCH)?;
    doc.remove("variants");
    let store = store_mut(&mut state, &store_id)?;
    let product = store
        .products
        .get_mut(&product_id)
        .ok_or(ApiError::NotFound)?;
    product.doc.extend(doc);
    Ok(respond(
        render_product(&store_id, &product_id, product),
        &params,
    ))
}

/// `GET …/variants/{variant_id}`.
pub async fn get_variant(
    State(sim): State<Mailchimp>,
    Path((store_id, product_id, variant_id)): Path<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let variant = state
        .ecommerce
        .stores
        .get(&store_id)
        .and_then(|s| s.products.get(&product_id))
        .and_then(|p| p.variants.get(&variant_id))
        .ok_or(ApiError::NotFound)?;
    Ok(respond(Value::Object(variant.clone()), &params))
}

/// `PUT …/variants/{variant_id}`: add or update; the product must exist.
pub async fn put_variant(
    State(sim): State<Mailchimp>,
    Path((store_id, product_id, variant_id)): Path<(String, String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PUT /3.0/ecommerce/stores/{store_id}/products/{product_id}/variants/{variant_id}",
    );
    let doc = checked(&body, schema::VARIANT)?;
    same_id(&variant_id, &doc)?;
    let store = store_mut(&mut state, &store_id)?;
    let product = store
        .products
        .get_mut(&product_id)
        .ok_or(ApiError::NotFound)?;
    product.variants.insert(variant_id, doc.clone());
    Ok(respond(Value::Object(doc), &params))
}

fn render_order(store_id: &str, store: &Store, doc: &Map<String, Value>) -> Value {
    let mut doc = doc.clone();
    for key in [
        "financial_status",
        "fulfillment_status",
        "processed_at_foreign",
        "cancelled_at_foreign",
        "updated_at_foreign",
        "campaign_id",
        "landing_site",
        "order_url",
    ] {
        doc.entry(key).or_insert(json!(""));
    }
    for key in ["discount_total", "tax_total", "shipping_total"] {
        doc.entry(key).or_insert(json!(0));
    }
    doc.entry("promos").or_insert(json!([]));
    let customer_id = doc
        .get("customer")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(customer) = store.customers.get(&customer_id) {
        doc.insert("customer".into(), render_customer(store_id, customer));
    }
    doc.insert("store_id".into(), json!(store_id));
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

/// Every line's product and variant must be in the store; line ids are unique [U].
fn check_lines(store: &Store, lines: &[Value]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let id = line.get("id").and_then(Value::as_str).unwrap_or("");
        if !seen.insert(id.to_string()) {
            return Err(ApiError::Validation(vec![FieldError::new(
                format!("lines.{i}.id"),
                format!("The line id {id} appears twice in the order."),
            )]));
        }
        let product_id = line.get("product_id").and_then(Value::as_str).unwrap_or("");
        let variant_id = line
            .get("product_variant_id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(product) = store.products.get(product_id) else {
            return Err(invalid(format!(
                "A product with the provided ID does not exist in the account: {product_id}."
            )));
        };
        if !product.variants.contains_key(variant_id) {
            return Err(invalid(format!(
                "A product variant with the provided ID does not exist in the account: {variant_id}."
            )));
        }
    }
    Ok(())
}

/// `POST …/orders`.
pub async fn create_order(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(&mut state, "POST /3.0/ecommerce/stores/{store_id}/orders");
    let mut doc = checked(&body, schema::ORDER_CREATE)?;
    check_currency(&doc)?;
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    let id = text(&doc, "id").to_string();
    if store.orders.contains_key(&id) {
        return Err(invalid(format!(
            "An order with the provided ID already exists in the account: {id}."
        )));
    }
    let lines = doc
        .get("lines")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    check_lines(store, &lines)?;
    let list_id = store.list_id().to_string();
    let customer = match doc.remove("customer") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let customer_id = text(&customer, "id").to_string();
    let has_more = customer.keys().any(|k| k != "id");
    if !store.customers.contains_key(&customer_id) || has_more {
        write_customer(&mut state, &store_id, &list_id, customer)?;
    }
    doc.insert("customer".into(), json!({"id": customer_id}));
    let store = store_mut(&mut state, &store_id)?;
    let rendered = render_order(&store_id, store, &doc);
    store.orders.insert(id, doc);
    Ok(respond(rendered, &params))
}

/// `GET …/orders/{order_id}`.
pub async fn get_order(
    State(sim): State<Mailchimp>,
    Path((store_id, order_id)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    let doc = store.orders.get(&order_id).ok_or(ApiError::NotFound)?;
    Ok(respond(render_order(&store_id, store, doc), &params))
}

/// `GET …/orders` (`count`/`offset`).
pub async fn list_orders(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let state = sim.lock();
    let store = state
        .ecommerce
        .stores
        .get(&store_id)
        .ok_or(ApiError::NotFound)?;
    let orders: Vec<Value> = store
        .orders
        .values()
        .skip(offset)
        .take(count)
        .map(|o| render_order(&store_id, store, o))
        .collect();
    let doc = json!({
        "store_id": store_id,
        "orders": orders,
        "total_items": store.orders.len(),
        "_links": [],
    });
    Ok(respond(doc, &params))
}

/// `PATCH …/orders/{order_id}`: `promos` are replaced whole (the spec says so); `lines` are
/// checked, not applied (see the module docs).
pub async fn patch_order(
    State(sim): State<Mailchimp>,
    Path((store_id, order_id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PATCH /3.0/ecommerce/stores/{store_id}/orders/{order_id}",
    );
    let mut doc = checked(&body, schema::ORDER_PATCH)?;
    check_currency(&doc)?;
    doc.remove("lines");
    let store = store_mut(&mut state, &store_id)?;
    if !store.orders.contains_key(&order_id) {
        return Err(ApiError::NotFound);
    }
    let customer_fields = doc.remove("customer");
    let order = store.orders.get_mut(&order_id).ok_or(ApiError::NotFound)?;
    order.extend(doc);
    let customer_id = order
        .get("customer")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let list_id = store.list_id().to_string();
    if let Some(Value::Object(mut fields)) = customer_fields {
        fields.insert("id".into(), json!(customer_id));
        write_customer(&mut state, &store_id, &list_id, fields)?;
    }
    let store = store_mut(&mut state, &store_id)?;
    let doc = store.orders.get(&order_id).cloned().unwrap_or_default();
    Ok(respond(render_order(&store_id, store, &doc), &params))
}

fn render_rule(store_id: &str, rule: &PromoRule) -> Value {
    let mut doc = rule.doc.clone();
    doc.insert("store_id".into(), json!(store_id));
    doc.entry("enabled").or_insert(json!(true));
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

/// `ends_at` "must be after starts_at" (the spec's description), in the rule as it would be.
fn check_dates(doc: &Map<String, Value>) -> Result<(), ApiError> {
    let time = |key: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    if let (Some(starts), Some(ends)) = (time("starts_at"), time("ends_at"))
        && ends <= starts
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "ends_at",
            "The end date must be after the start date.",
        )]));
    }
    Ok(())
}

/// A percentage is a decimal between 0 and 1 (the spec's description).
fn check_amount(doc: &Map<String, Value>, current_type: Option<&str>) -> Result<(), ApiError> {
    let kind = doc
        .get("type")
        .and_then(Value::as_str)
        .or(current_type)
        .unwrap_or("");
    if let Some(amount) = doc.get("amount").and_then(Value::as_f64)
        && kind == "percentage"
        && !(0.0..=1.0).contains(&amount)
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "amount",
            "A percentage amount must be a decimal value between 0.0 and 1.0, inclusive.",
        )]));
    }
    Ok(())
}

/// `POST …/promo-rules`.
pub async fn create_promo_rule(
    State(sim): State<Mailchimp>,
    Path(store_id): Path<String>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "POST /3.0/ecommerce/stores/{store_id}/promo-rules",
    );
    let doc = checked(&body, schema::PROMO_RULE_CREATE)?;
    check_amount(&doc, None)?;
    check_dates(&doc)?;
    let store = store_mut(&mut state, &store_id)?;
    let id = text(&doc, "id").to_string();
    if store.promo_rules.contains_key(&id) {
        return Err(invalid(format!(
            "A promo rule with the provided ID already exists in the account: {id}."
        )));
    }
    let rule = PromoRule {
        doc,
        codes: BTreeMap::new(),
    };
    let rendered = render_rule(&store_id, &rule);
    store.promo_rules.insert(id, rule);
    Ok(respond(rendered, &params))
}

/// `GET …/promo-rules/{promo_rule_id}`.
pub async fn get_promo_rule(
    State(sim): State<Mailchimp>,
    Path((store_id, rule_id)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let rule = state
        .ecommerce
        .stores
        .get(&store_id)
        .and_then(|s| s.promo_rules.get(&rule_id))
        .ok_or(ApiError::NotFound)?;
    Ok(respond(render_rule(&store_id, rule), &params))
}

/// `PATCH …/promo-rules/{promo_rule_id}`.
pub async fn patch_promo_rule(
    State(sim): State<Mailchimp>,
    Path((store_id, rule_id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PATCH /3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}",
    );
    let doc = checked(&body, schema::PROMO_RULE_PATCH)?;
    let store = store_mut(&mut state, &store_id)?;
    let rule = store
        .promo_rules
        .get_mut(&rule_id)
        .ok_or(ApiError::NotFound)?;
    let mut merged = rule.doc.clone();
    merged.extend(doc);
    // The rule as it would be: a type changed to `percentage` must find its amount in 0..1.
    check_amount(&merged, None)?;
    check_dates(&merged)?;
    rule.doc = merged;
    Ok(respond(render_rule(&store_id, rule), &params))
}

fn render_code(doc: &Map<String, Value>) -> Value {
    let mut doc = doc.clone();
    doc.entry("enabled").or_insert(json!(true));
    doc.entry("usage_count").or_insert(json!(0));
    doc.insert("_links".into(), json!([]));
    Value::Object(doc)
}

/// `POST …/promo-rules/{promo_rule_id}/promo-codes`: the rule must exist.
pub async fn create_promo_code(
    State(sim): State<Mailchimp>,
    Path((store_id, rule_id)): Path<(String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "POST /3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes",
    );
    let doc = checked(&body, schema::PROMO_CODE_CREATE)?;
    let store = store_mut(&mut state, &store_id)?;
    let rule = store
        .promo_rules
        .get_mut(&rule_id)
        .ok_or(ApiError::NotFound)?;
    let id = text(&doc, "id").to_string();
    if rule.codes.contains_key(&id) {
        return Err(invalid(format!(
            "A promo code with the provided ID already exists in the account: {id}."
        )));
    }
    let rendered = render_code(&doc);
    rule.codes.insert(id, doc);
    Ok(respond(rendered, &params))
}

/// `GET …/promo-codes/{promo_code_id}`.
pub async fn get_promo_code(
    State(sim): State<Mailchimp>,
    Path((store_id, rule_id, code_id)): Path<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let code = state
        .ecommerce
        .stores
        .get(&store_id)
        .and_then(|s| s.promo_rules.get(&rule_id))
        .and_then(|r| r.codes.get(&code_id))
        .ok_or(ApiError::NotFound)?;
    Ok(respond(render_code(code), &params))
}

/// `PATCH …/promo-codes/{promo_code_id}`.
pub async fn patch_promo_code(
    State(sim): State<Mailchimp>,
    Path((store_id, rule_id, code_id)): Path<(String, String, String)>,
    params: Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    count_write(
        &mut state,
        "PATCH /3.0/ecommerce/stores/{store_id}/promo-rules/{promo_rule_id}/promo-codes/{promo_code_id}",
    );
    let doc = checked(&body, schema::PROMO_CODE_PATCH)?;
    let store = store_mut(&mut state, &store_id)?;
    let code = store
        .promo_rules
        .get_mut(&rule_id)
        .and_then(|r| r.codes.get_mut(&code_id))
        .ok_or(ApiError::NotFound)?;
    code.extend(doc);
    Ok(respond(render_code(code), &params))
}
