//! The `customerCreate(input: CustomerInput!)` mutation (`CustomerCreatePayload {customer,
//! userErrors: [UserError!]!}`, UserError being `{field, message}`: no `code` on this payload's
//! errors [S]). Costs [`super::MUTATION_COST`] like every mutation.
//!
//! Rules, as strict as the real shop where it is known:
//! - `email` is unique per shop, compared case-insensitively: `Ann@X.com` is taken when
//!   `ann@x.com` exists → `{field: ["email"], message: "Email has already been taken"}` [D: the
//!   Admin's wording]. A malformed address → "Email is invalid" [D].
//! - `phone` is unique too ("Phone has already been taken") and must be E.164 ("Phone is
//!   invalid") [U: Shopify also accepts national numbers it can parse for the shop's country].
//! - A customer needs an email, a phone or a name: "Customer must have a name, phone number or
//!   email address" [U wording].
//! - `emailMarketingConsent` needs `email` [S: "The `email` field is required when creating a
//!   customer with email marketing consent information"]; `smsMarketingConsent` needs `phone`
//!   [S]. States and levels outside their enums are refused (a GraphQL-level error in Shopify;
//!   here a user error on the field [U]). A consent time in the future is refused [U].
//! - `id` in the input is for `customerUpdate`: refused here [U].

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::graphql::Field;
use super::{Customer, MUTATION_COST, State, customer_json, now_secs};

fn payload(customer: Value, errors: Vec<Value>) -> (Value, f64) {
    (
        json!({
            "__typename": "CustomerCreatePayload",
            "customer": customer,
            "userErrors": errors,
        }),
        MUTATION_COST,
    )
}

fn user_error(field: &[&str], message: &str) -> Value {
    json!({"__typename": "UserError", "field": field, "message": message})
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c == ',')
        && !domain.contains('@')
}

fn valid_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

struct ConsentIn {
    state: String,
    level: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// Reads one consent input; `Err` is the user error.
fn consent_in(
    input: &Map<String, Value>,
    key: &str,
    states: &[&str],
    now: DateTime<Utc>,
) -> Result<Option<ConsentIn>, Value> {
    let Some(value) = input.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let Some(consent) = value.as_object() else {
        return Err(user_error(&[key], "is invalid"));
    };
    let Some(state) = consent.get("marketingState").and_then(Value::as_str) else {
        return Err(user_error(
            &[key, "marketingState"],
            "Marketing state is required",
        ));
    };
    if !states.contains(&state) {
        return Err(user_error(
            &[key, "marketingState"],
            "Marketing state is not included in the list",
        ));
    }
    let level = match consent.get("marketingOptInLevel") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_str() {
            Some(l @ ("SINGLE_OPT_IN" | "CONFIRMED_OPT_IN" | "UNKNOWN")) => Some(l.to_string()),
            _ => {
                return Err(user_error(
                    &[key, "marketingOptInLevel"],
                    "Marketing opt in level is not included in the list",
                ));
            }
        },
    };
    let at = match consent.get("consentUpdatedAt") {
        None | Some(Value::Null) => None,
        Some(v) => match v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        {
            Some(t) => Some(t.with_timezone(&Utc)),
            None => {
                return Err(user_error(
                    &[key, "consentUpdatedAt"],
                    "Consent updated at is invalid",
                ));
            }
        },
    };
    if at.is_some_and(|t| t > now + chrono::Duration::seconds(60)) {
        return Err(user_error(
            &[key, "consentUpdatedAt"],
            "Consent updated at cannot be in the future",
        ));
    }
    Ok(Some(ConsentIn {
        state: state.to_string(),
        level,
        at,
    }))
}

fn text(input: &Map<String, Value>, key: &str) -> Option<String> {
    input
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Resolves one `customerCreate` field.
pub(super) fn resolve(state: &mut State, field: &Field) -> Result<(Value, f64), Value> {
    let Some(input) = field.args.get("input").and_then(Value::as_object) else {
        return Ok(payload(
            Value::Null,
            vec![user_error(&["input"], "Input is required")],
        ));
    };
    let fail =
        |field: &[&str], message: &str| Ok(payload(Value::Null, vec![user_error(field, message)]));
    if input.get("id").is_some_and(|v| !v.is_null()) {
        return fail(&["id"], "Id is not allowed when creating a customer");
    }
    let email = text(input, "email");
    let phone = text(input, "phone");
    let first_name = text(input, "firstName");
    let last_name = text(input, "lastName");
    if email.is_none() && phone.is_none() && first_name.is_none() && last_name.is_none() {
        return fail(
            &["customer"],
            "Customer must have a name, phone number or email address",
        );
    }
    if let Some(email) = &email {
        if !valid_email(email) {
            return fail(&["email"], "Email is invalid");
        }
        let lower = email.to_lowercase();
        let taken = state.customers.values().any(|c| {
            c.email
                .as_deref()
                .is_some_and(|e| e.trim().to_lowercase() == lower)
        });
        if taken {
            return fail(&["email"], "Email has already been taken");
        }
    }
    if let Some(phone) = &phone {
        if !valid_e164(phone) {
            return fail(&["phone"], "Phone is invalid");
        }
        if state
            .customers
            .values()
            .any(|c| c.phone.as_deref() == Some(phone.as_str()))
        {
            return fail(&["phone"], "Phone has already been taken");
        }
    }
    let now = now_secs();
    let email_consent = match consent_in(
        input,
        "emailMarketingConsent",
        &["NOT_SUBSCRIBED", "PENDING", "SUBSCRIBED", "UNSUBSCRIBED"],
        now,
    ) {
        Ok(c) => c,
        Err(e) => return Ok(payload(Value::Null, vec![e])),
    };
    if email_consent.is_some() && email.is_none() {
        return fail(
            &["emailMarketingConsent"],
            "An email address is required to set the email marketing consent state",
        );
    }
    let sms_consent = match consent_in(
        input,
        "smsMarketingConsent",
        &["NOT_SUBSCRIBED", "PENDING", "SUBSCRIBED", "UNSUBSCRIBED"],
        now,
    ) {
        Ok(c) => c,
        Err(e) => return Ok(payload(Value::Null, vec![e])),
    };
    if sms_consent.is_some() && phone.is_none() {
        return fail(
            &["smsMarketingConsent"],
            "A phone number is required to set the SMS consent state",
        );
    }
    let tags = match input.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(_) => return fail(&["tags"], "Tags is invalid"),
    };
    let id = state.next_customer_id;
    state.next_customer_id += 1;
    let (marketing_state, level, consent_at) = match email_consent {
        Some(c) => {
            let level = (c.state != "NOT_SUBSCRIBED")
                .then(|| c.level.unwrap_or_else(|| "SINGLE_OPT_IN".into()));
            (c.state, level, Some(c.at.unwrap_or(now)))
        }
        None => ("NOT_SUBSCRIBED".to_string(), None, None),
    };
    let customer = Customer {
        id,
        email,
        first_name,
        last_name,
        phone: phone.clone(),
        tags,
        note: text(input, "note"),
        default_address: None,
        marketing_state,
        marketing_opt_in_level: level,
        consent_updated_at: consent_at,
        sms_marketing_state: match (&phone, &sms_consent) {
            (_, Some(c)) => Some(c.state.clone()),
            (Some(_), None) => Some("NOT_SUBSCRIBED".into()),
            (None, None) => None,
        },
        sms_consent_updated_at: sms_consent.as_ref().map(|c| c.at.unwrap_or(now)),
        created_at: now,
        updated_at: now,
    };
    let json = customer_json(&customer);
    state.customers.insert(id, customer);
    state.counters.customers_created += 1;
    state.notify_customer(&["customers/create"], id);
    Ok(payload(json, Vec::new()))
}
