//! The `metafieldsSet(metafields: [MetafieldsSetInput!]!)` mutation, on customers.
//!
//! Rules (spec 2025-01, `MetafieldsSetInput` / `MetafieldsSetUserError`):
//! - at most 25 metafields per call; the call is atomic: one refused entry and nothing is set,
//!   every refusal is reported in `userErrors` with its `elementIndex` and `field`
//!   (`["metafields", "<index>", "<input field>"]`);
//! - `namespace` 3–255 and `key` 2–64 characters of letters, digits, `-` and `_`;
//! - `type` is required when the namespace/key has no definition (the sandbox has none), and is
//!   one of the supported types below; the `value` (always a string) must be valid for it;
//! - `ownerId` must name an existing owner;
//! - the mutation costs 10 points like every other.
//!
//! Assumptions ([U]):
//! - [U] Only customer owners (`gid://shopify/Customer/{id}`) are simulated; other owners get
//!   `INVALID_VALUE` "Owner does not exist" as an unknown customer does (the message is the
//!   simulator's).
//! - [U] A metafield keeps its type: setting it again with another type is `INVALID_TYPE`.
//! - [U] `namespace` left out is the app-reserved `$app` namespace.
//! - [U] The supported types are limited to the scalar ones below; `compareDigest` is not
//!   simulated and is refused with `INVALID_COMPARE_DIGEST` when given a value.
//! - [U] The error codes for length/charset faults are `TOO_SHORT`, `TOO_LONG` and
//!   `INVALID_VALUE`; for a missing type `BLANK`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Customer, MUTATION_COST, ts};

/// The most metafields one call may set.
pub const MAX_METAFIELDS: usize = 25;

/// Types the simulator accepts.
pub const TYPES: &[&str] = &[
    "single_line_text_field",
    "multi_line_text_field",
    "number_integer",
    "number_decimal",
    "boolean",
    "date_time",
    "date",
    "json",
    "url",
];

/// One stored metafield.
#[derive(Debug, Clone, PartialEq)]
pub struct Metafield {
    pub id: u64,
    pub namespace: String,
    pub key: String,
    pub kind: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Metafields by `(customer id, namespace, key)`.
#[derive(Debug, Default)]
pub struct Store {
    pub fields: BTreeMap<(u64, String, String), Metafield>,
    next_id: u64,
    /// `metafieldsSet` calls that set something.
    pub successful_calls: u64,
    /// Metafields written (created or changed) by those calls.
    pub written: u64,
}

fn name_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn value_ok(kind: &str, value: &str) -> bool {
    match kind {
        "single_line_text_field" => !value.contains('\n'),
        "multi_line_text_field" => true,
        "number_integer" => value.parse::<i64>().is_ok(),
        "number_decimal" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "boolean" => matches!(value, "true" | "false"),
        "date_time" => DateTime::parse_from_rfc3339(value).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
        "json" => serde_json::from_str::<Value>(value).is_ok(),
        "url" => value.starts_with("https://") || value.starts_with("http://"),
        _ => false,
    }
}

struct Input {
    owner: u64,
    namespace: String,
    key: String,
    kind: String,
    value: String,
}

/// Resolves `metafieldsSet`: the payload and its cost.
pub(super) fn metafields_set(
    customers: &BTreeMap<u64, Customer>,
    store: &mut Store,
    args: &BTreeMap<String, Value>,
    now: DateTime<Utc>,
) -> (Value, f64) {
    let mut errors: Vec<Value> = Vec::new();
    let mut err = |index: Option<usize>, field: &[&str], message: &str, code: &str| {
        let mut path = vec!["metafields".to_string()];
        if let Some(i) = index {
            path.push(i.to_string());
        }
        path.extend(field.iter().map(|s| s.to_string()));
        errors.push(json!({
            "__typename": "MetafieldsSetUserError",
            "field": path, "message": message, "code": code, "elementIndex": index,
        }));
    };
    let items = match args.get("metafields") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Object(_)) => vec![args["metafields"].clone()],
        _ => Vec::new(),
    };
    let mut inputs = Vec::new();
    if items.is_empty() {
        err(None, &[], "At least one metafield is required", "BLANK");
    } else if items.len() > MAX_METAFIELDS {
        err(
            None,
            &[],
            &format!("Exceeds the maximum metafields input limit of {MAX_METAFIELDS}."),
            "LESS_THAN_OR_EQUAL_TO",
        );
    } else {
        for (i, item) in items.iter().enumerate() {
            let at = Some(i);
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            let owner = text("ownerId")
                .as_deref()
                .and_then(|g| g.strip_prefix("gid://shopify/Customer/"))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|id| customers.contains_key(id));
            if owner.is_none() {
                err(at, &["ownerId"], "Owner does not exist", "INVALID_VALUE");
            }
            let namespace = text("namespace").unwrap_or_else(|| "$app".into());
            let len = namespace.chars().count();
            if namespace != "$app" {
                if len < 3 {
                    err(
                        at,
                        &["namespace"],
                        "Namespace is too short (minimum is 3 characters)",
                        "TOO_SHORT",
                    );
                } else if len > 255 {
                    err(
                        at,
                        &["namespace"],
                        "Namespace is too long (maximum is 255 characters)",
                        "TOO_LONG",
                    );
                } else if !name_ok(&namespace) {
                    err(
                        at,
                        &["namespace"],
                        "Namespace contains one or more invalid characters",
                        "INVALID_VALUE",
                    );
                }
            }
            let key = text("key").unwrap_or_default();
            let len = key.chars().count();
            if len < 2 {
                err(
                    at,
                    &["key"],
                    "Key is too short (minimum is 2 characters)",
                    "TOO_SHORT",
                );
            } else if len > 64 {
                err(
                    at,
                    &["key"],
                    "Key is too long (maximum is 64 characters)",
                    "TOO_LONG",
                );
            } else if !name_ok(&key) {
                err(
                    at,
                    &["key"],
                    "Key contains one or more invalid characters",
                    "INVALID_VALUE",
                );
            }
            let Some(value) = text("value") else {
                err(at, &["value"], "Value can't be blank", "BLANK");
                continue;
            };
            if item.get("compareDigest").is_some_and(|v| !v.is_null()) {
                err(
                    at,
                    &["compareDigest"],
                    "compareDigest is not simulated by the sandbox",
                    "INVALID_COMPARE_DIGEST",
                );
            }
            let kind = match text("type") {
                None => {
                    err(at, &["type"], "Type can't be blank", "BLANK");
                    continue;
                }
                Some(kind) if !TYPES.contains(&kind.as_str()) => {
                    err(
                        at,
                        &["type"],
                        &format!("Type {kind:?} is not a valid type"),
                        "INVALID_TYPE",
                    );
                    continue;
                }
                Some(kind) => kind,
            };
            if !value_ok(&kind, &value) {
                err(
                    at,
                    &["value"],
                    &format!("Value is invalid for type {kind}"),
                    "INVALID_VALUE",
                );
            }
            let Some(owner) = owner else { continue };
            if let Some(existing) = store
                .fields
                .get(&(owner, namespace.clone(), key.clone()))
                .filter(|m| m.kind != kind)
            {
                err(
                    at,
                    &["type"],
                    &format!("Type must be {} (the metafield's type)", existing.kind),
                    "INVALID_TYPE",
                );
            }
            inputs.push(Input {
                owner,
                namespace,
                key,
                kind,
                value,
            });
        }
    }
    if !errors.is_empty() {
        return (
            json!({"__typename": "MetafieldsSetPayload", "metafields": [], "userErrors": errors}),
            MUTATION_COST,
        );
    }
    let mut set = Vec::new();
    let mut written = 0;
    for input in inputs {
        let slot = (input.owner, input.namespace.clone(), input.key.clone());
        let field = match store.fields.get_mut(&slot) {
            Some(m) => {
                if m.value != input.value {
                    m.value = input.value;
                    m.updated_at = now;
                    written += 1;
                }
                m.clone()
            }
            None => {
                store.next_id += 1;
                let m = Metafield {
                    id: 30_000_000 + store.next_id,
                    namespace: input.namespace,
                    key: input.key,
                    kind: input.kind,
                    value: input.value,
                    created_at: now,
                    updated_at: now,
                };
                store.fields.insert(slot, m.clone());
                written += 1;
                m
            }
        };
        set.push(json!({
            "__typename": "Metafield",
            "id": format!("gid://shopify/Metafield/{}", field.id),
            "namespace": field.namespace,
            "key": field.key,
            "value": field.value,
            "type": field.kind,
            "ownerType": "CUSTOMER",
            "createdAt": ts(&field.created_at),
            "updatedAt": ts(&field.updated_at),
        }));
    }
    store.successful_calls += 1;
    store.written += written;
    (
        json!({"__typename": "MetafieldsSetPayload", "metafields": set, "userErrors": []}),
        MUTATION_COST,
    )
}
