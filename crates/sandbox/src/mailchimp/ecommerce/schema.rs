//! The e-commerce request schemas of the 3.0.55 spec, as tables the bodies are checked against.
//! Each failure becomes one entry of the 400's `errors` array, named by its dotted path.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::super::error::FieldError;

/// A field's type.
pub enum T {
    Str,
    /// A string of at most this many characters.
    StrMax(usize),
    Num,
    Int,
    Bool,
    /// An ISO 8601 date and time string.
    Time,
    Enum(&'static [&'static str]),
    Obj(&'static [F]),
    /// An array of objects.
    Arr(&'static [F]),
}

/// `(name, type, required)`.
pub struct F(pub &'static str, pub T, pub bool);

const ADDRESS: &[F] = &[
    F("address1", T::Str, false),
    F("address2", T::Str, false),
    F("city", T::Str, false),
    F("province", T::Str, false),
    F("province_code", T::Str, false),
    F("postal_code", T::Str, false),
    F("country", T::Str, false),
    F("country_code", T::Str, false),
    F("longitude", T::Num, false),
    F("latitude", T::Num, false),
];

const STORE_FIELDS: &[F] = &[
    F("name", T::Str, false),
    F("platform", T::Str, false),
    F("domain", T::Str, false),
    F("is_syncing", T::Bool, false),
    F("email_address", T::Str, false),
    F("currency_code", T::Str, false),
    F("money_format", T::Str, false),
    F("primary_locale", T::Str, false),
    F("timezone", T::Str, false),
    F("phone", T::Str, false),
    F("address", T::Obj(ADDRESS), false),
];

/// `POST /ecommerce/stores`: required `id, list_id, name, currency_code`.
pub const STORE_CREATE: &[F] = &[
    F("id", T::Str, true),
    F("list_id", T::Str, true),
    F("name", T::Str, true),
    F("currency_code", T::Str, true),
    F("platform", T::Str, false),
    F("domain", T::Str, false),
    F("is_syncing", T::Bool, false),
    F("email_address", T::Str, false),
    F("money_format", T::Str, false),
    F("primary_locale", T::Str, false),
    F("timezone", T::Str, false),
    F("phone", T::Str, false),
    F("address", T::Obj(ADDRESS), false),
];

pub const STORE_PATCH: &[F] = STORE_FIELDS;

const CUSTOMER_FIELDS_TAIL: &[F] = &[
    F("company", T::Str, false),
    F("first_name", T::Str, false),
    F("last_name", T::Str, false),
    F("address", T::Obj(ADDRESS), false),
];

/// `PUT …/customers/{customer_id}`: required `id, email_address, opt_in_status`.
pub const CUSTOMER_PUT: &[F] = &[
    F("id", T::StrMax(50), true),
    F("email_address", T::Str, true),
    F("opt_in_status", T::Bool, true),
    F("company", T::Str, false),
    F("first_name", T::Str, false),
    F("last_name", T::Str, false),
    F("address", T::Obj(ADDRESS), false),
];

/// An order's `customer`: only `id` is required (an existing customer is named by id alone).
pub const ORDER_CUSTOMER: &[F] = &[
    F("id", T::StrMax(50), true),
    F("email_address", T::Str, false),
    F("opt_in_status", T::Bool, false),
    F("company", T::Str, false),
    F("first_name", T::Str, false),
    F("last_name", T::Str, false),
    F("address", T::Obj(ADDRESS), false),
];

/// `PUT …/variants/{variant_id}` and a product's `variants[]`: required `id, title`.
pub const VARIANT: &[F] = &[
    F("id", T::Str, true),
    F("title", T::Str, true),
    F("url", T::Str, false),
    F("sku", T::Str, false),
    F("price", T::Num, false),
    F("inventory_quantity", T::Int, false),
    F("image_url", T::Str, false),
    F("backorders", T::Str, false),
    F("visibility", T::Str, false),
];

const PATCH_VARIANT: &[F] = &[
    F("title", T::Str, false),
    F("url", T::Str, false),
    F("sku", T::Str, false),
    F("price", T::Num, false),
    F("inventory_quantity", T::Int, false),
    F("image_url", T::Str, false),
    F("backorders", T::Str, false),
    F("visibility", T::Str, false),
];

const IMAGE: &[F] = &[F("id", T::Str, true), F("url", T::Str, true)];

/// `POST …/products`: required `id, title, variants` (at least one).
pub const PRODUCT_CREATE: &[F] = &[
    F("id", T::Str, true),
    F("title", T::Str, true),
    F("handle", T::Str, false),
    F("url", T::Str, false),
    F("description", T::Str, false),
    F("type", T::Str, false),
    F("vendor", T::Str, false),
    F("image_url", T::Str, false),
    F("variants", T::Arr(VARIANT), true),
    F("images", T::Arr(IMAGE), false),
    F("published_at_foreign", T::Time, false),
];

pub const PRODUCT_PATCH: &[F] = &[
    F("title", T::Str, false),
    F("handle", T::Str, false),
    F("url", T::Str, false),
    F("description", T::Str, false),
    F("type", T::Str, false),
    F("vendor", T::Str, false),
    F("image_url", T::Str, false),
    F("variants", T::Arr(PATCH_VARIANT), false),
    F("published_at_foreign", T::Time, false),
];

const PROMO: &[F] = &[
    F("code", T::Str, true),
    F("amount_discounted", T::Num, true),
    F("type", T::Enum(&["fixed", "percentage"]), true),
];

const LINE: &[F] = &[
    F("id", T::Str, true),
    F("product_id", T::Str, true),
    F("product_variant_id", T::Str, true),
    F("quantity", T::Int, true),
    F("price", T::Num, true),
    F("discount", T::Num, false),
];

const PATCH_LINE: &[F] = &[
    F("product_id", T::Str, false),
    F("product_variant_id", T::Str, false),
    F("quantity", T::Int, false),
    F("price", T::Num, false),
    F("discount", T::Num, false),
];

const SHIPPING: &[F] = &[
    F("name", T::Str, false),
    F("address1", T::Str, false),
    F("address2", T::Str, false),
    F("city", T::Str, false),
    F("province", T::Str, false),
    F("province_code", T::Str, false),
    F("postal_code", T::Str, false),
    F("country", T::Str, false),
    F("country_code", T::Str, false),
    F("longitude", T::Num, false),
    F("latitude", T::Num, false),
    F("phone", T::Str, false),
    F("company", T::Str, false),
];

macro_rules! order_fields {
    ($($head:expr),* ; $lines:expr) => {
        &[
            $($head,)*
            F("campaign_id", T::Str, false),
            F("landing_site", T::Str, false),
            F("financial_status", T::Str, false),
            F("fulfillment_status", T::Str, false),
            F("order_url", T::Str, false),
            F("discount_total", T::Num, false),
            F("tax_total", T::Num, false),
            F("shipping_total", T::Num, false),
            F("tracking_code", T::Enum(&["prec"]), false),
            F("processed_at_foreign", T::Time, false),
            F("cancelled_at_foreign", T::Time, false),
            F("updated_at_foreign", T::Time, false),
            F("shipping_address", T::Obj(SHIPPING), false),
            F("billing_address", T::Obj(SHIPPING), false),
            F("promos", T::Arr(PROMO), false),
            $lines,
            F("tracking_number", T::Str, false),
            F("tracking_carrier", T::Str, false),
            F("tracking_url", T::Str, false),
        ]
    };
}

/// `POST …/orders`: required `id, customer, currency_code, order_total, lines`.
pub const ORDER_CREATE: &[F] = order_fields!(
    F("id", T::Str, true),
    F("customer", T::Obj(ORDER_CUSTOMER), true),
    F("currency_code", T::Str, true),
    F("order_total", T::Num, true);
    F("lines", T::Arr(LINE), true)
);

pub const ORDER_PATCH: &[F] = order_fields!(
    F("customer", T::Obj(CUSTOMER_FIELDS_TAIL), false),
    F("currency_code", T::Str, false),
    F("order_total", T::Num, false);
    F("lines", T::Arr(PATCH_LINE), false)
);

const RULE_TYPE: T = T::Enum(&["fixed", "percentage"]);
const RULE_TARGET: T = T::Enum(&["per_item", "total", "shipping"]);

/// `POST …/promo-rules`: required `id, description, amount, type, target`.
pub const PROMO_RULE_CREATE: &[F] = &[
    F("id", T::StrMax(50), true),
    F("title", T::Str, false),
    F("description", T::StrMax(255), true),
    F("starts_at", T::Time, false),
    F("ends_at", T::Time, false),
    F("amount", T::Num, true),
    F("type", RULE_TYPE, true),
    F("target", RULE_TARGET, true),
    F("enabled", T::Bool, false),
    F("created_at_foreign", T::Time, false),
    F("updated_at_foreign", T::Time, false),
];

pub const PROMO_RULE_PATCH: &[F] = &[
    F("title", T::Str, false),
    F("description", T::StrMax(255), false),
    F("starts_at", T::Time, false),
    F("ends_at", T::Time, false),
    F("amount", T::Num, false),
    F("type", RULE_TYPE, false),
    F("target", RULE_TARGET, false),
    F("enabled", T::Bool, false),
    F("created_at_foreign", T::Time, false),
    F("updated_at_foreign", T::Time, false),
];

/// `POST …/promo-codes`: required `id, code, redemption_url`.
pub const PROMO_CODE_CREATE: &[F] = &[
    F("id", T::StrMax(50), true),
    F("code", T::StrMax(50), true),
    F("redemption_url", T::StrMax(2000), true),
    F("usage_count", T::Int, false),
    F("enabled", T::Bool, false),
    F("created_at_foreign", T::Time, false),
    F("updated_at_foreign", T::Time, false),
];

pub const PROMO_CODE_PATCH: &[F] = &[
    F("code", T::StrMax(50), false),
    F("redemption_url", T::StrMax(2000), false),
    F("usage_count", T::Int, false),
    F("enabled", T::Bool, false),
    F("created_at_foreign", T::Time, false),
    F("updated_at_foreign", T::Time, false),
];

fn found(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Mailchimp's stored form of an ISO 8601 time (`2024-05-01T10:00:00+00:00`).
pub fn normalise_time(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| {
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    })
}

/// Checks `map` against `fields`, pushing one error per failure; returns the map with the known
/// fields only (times normalised), which is what the simulator stores.
pub fn check(
    map: &Map<String, Value>,
    fields: &[F],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for F(name, kind, required) in fields {
        let path = format!("{prefix}{name}");
        let value = match map.get(*name) {
            None | Some(Value::Null) => {
                if *required {
                    errors.push(FieldError::new(path, "This value should not be blank."));
                }
                continue;
            }
            Some(v) => v,
        };
        let wrong = |expected: &str, errors: &mut Vec<FieldError>| {
            errors.push(FieldError::new(
                format!("{prefix}{name}"),
                format!(
                    "Schema describes {expected}, {} found instead",
                    found(value)
                ),
            ))
        };
        match kind {
            T::Str | T::StrMax(_) => {
                match value {
                    Value::String(s) => {
                        if *required && s.trim().is_empty() {
                            errors.push(FieldError::new(path, "This value should not be blank."));
                            continue;
                        }
                        if let T::StrMax(max) = kind
                            && s.chars().count() > *max
                        {
                            errors.push(FieldError::new(
                            path,
                            format!("This value is too long. It should have {max} characters or less."),
                        ));
                            continue;
                        }
                        out.insert(name.to_string(), value.clone());
                    }
                    _ => wrong("string", errors),
                }
            }
            T::Num => match value {
                Value::Number(_) => {
                    out.insert(name.to_string(), value.clone());
                }
                _ => wrong("number", errors),
            },
            T::Int => match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    out.insert(name.to_string(), value.clone());
                }
                _ => wrong("integer", errors),
            },
            T::Bool => match value {
                Value::Bool(_) => {
                    out.insert(name.to_string(), value.clone());
                }
                _ => wrong("boolean", errors),
            },
            T::Time => match value {
                Value::String(s) => match normalise_time(s) {
                    Some(t) => {
                        out.insert(name.to_string(), Value::String(t));
                    }
                    None => errors.push(FieldError::new(
                        path,
                        format!("\"{s}\" is not a valid ISO 8601 date and time"),
                    )),
                },
                _ => wrong("string", errors),
            },
            T::Enum(allowed) => match value {
                Value::String(s) if allowed.contains(&s.as_str()) => {
                    out.insert(name.to_string(), value.clone());
                }
                Value::String(s) => errors.push(FieldError::new(
                    path,
                    format!("Schema describes enum, \"{s}\" is not one of {allowed:?}"),
                )),
                _ => wrong("string", errors),
            },
            T::Obj(inner) => match value {
                Value::Object(m) => {
                    let checked = check(m, inner, &format!("{path}."), errors);
                    out.insert(name.to_string(), Value::Object(checked));
                }
                _ => wrong("object", errors),
            },
            T::Arr(inner) => match value {
                Value::Array(items) => {
                    let mut kept = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Value::Object(m) => kept.push(Value::Object(check(
                                m,
                                inner,
                                &format!("{path}.{i}."),
                                errors,
                            ))),
                            other => errors.push(FieldError::new(
                                format!("{path}.{i}"),
                                format!("Schema describes object, {} found instead", found(other)),
                            )),
                        }
                    }
                    out.insert(name.to_string(), Value::Array(kept));
                }
                _ => wrong("array", errors),
            },
        }
    }
    out
}
