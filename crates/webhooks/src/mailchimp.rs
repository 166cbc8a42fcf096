//! `GET|POST /webhooks/mailchimp/{secret}`: Mailchimp list (audience) webhooks.
//!
//! Mailchimp signs nothing [D], so the URL carries a secret the operator chose when registering
//! the webhook, compared in constant time with the candidates the resolver knows for the list.
//! - `GET`: Mailchimp's URL validation when the webhook is created; answered 200 with an empty
//!   body. It carries no list id, so it cannot be checked against a list's secret; it changes
//!   nothing and emits nothing.
//! - `POST`: `application/x-www-form-urlencoded`, `type` (`subscribe`, `unsubscribe`, `profile`,
//!   `upemail`, `cleaned`, `campaign`), `fired_at` (`Y-m-d H:i:s`), `data[list_id]`, `data[email]`,
//!   `data[new_email]` / `data[old_email]` (upemail), `data[merges][EMAIL]`, … [D].
//!
//! Checks: size (413), the endpoint's limit (429), a form with `type` and `data[list_id]` (400),
//! the secret (401), then the list's limit (429). Mailchimp sends no delivery id, so nothing is
//! deduplicated here; the debouncer coalesces repeats.
//!
//! [U]: an unknown `type` from a verified sender is acknowledged and ignored (200), not refused,
//! so Mailchimp does not retry it for an hour.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::hint::{Hint, Scope, Vendor, push_email};
use crate::receiver::{Inner, Outcome, Reject, body_rejection};
use crate::verify::secret_matches;

/// Event types that become hints.
pub const TYPES: &[(&str, Scope)] = &[
    ("subscribe", Scope::Customers),
    ("unsubscribe", Scope::Customers),
    ("profile", Scope::Customers),
    ("upemail", Scope::Customers),
    ("cleaned", Scope::Customers),
    ("campaign", Scope::Campaigns),
];

/// The longest URL secret considered (longer ones are refused without hashing megabytes).
const MAX_SECRET_LEN: usize = 256;

pub(crate) async fn validate(State(inner): State<Arc<Inner>>) -> Response {
    let result = inner.admit(Vendor::Mailchimp).map(|()| Outcome::Validated);
    inner.answer(Vendor::Mailchimp, None, result)
}

pub(crate) async fn handle(
    State(inner): State<Arc<Inner>>,
    Path(secret): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut account = None;
    let result = process(&inner, &secret, body, &mut account);
    inner.answer(Vendor::Mailchimp, account.as_deref(), result)
}

/// A Mailchimp list id: short, alphanumeric (`a1b2c3d4e5`). Lower-cased.
pub(crate) fn list_id(value: &str) -> Option<String> {
    let ok =
        !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| value.to_ascii_lowercase())
}

fn process(
    inner: &Inner,
    secret: &str,
    body: Result<Bytes, BytesRejection>,
    account: &mut Option<String>,
) -> Result<Outcome, Reject> {
    let body = body.map_err(body_rejection)?;
    inner.admit(Vendor::Mailchimp)?;
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| Reject::Malformed("body is not a form"))?;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let kind = field("type")
        .filter(|t| !t.is_empty())
        .ok_or(Reject::Malformed("no type"))?;
    let list = field("data[list_id]")
        .and_then(list_id)
        .ok_or(Reject::Malformed("no list id"))?;
    if secret.len() > MAX_SECRET_LEN {
        return Err(Reject::Unauthorized);
    }
    let secrets = inner.resolver.secrets(Vendor::Mailchimp, &list);
    if !secret_matches(&secrets, secret.as_bytes()) {
        return Err(Reject::Unauthorized);
    }
    *account = Some(list.clone());
    let Some(&(_, scope)) = TYPES.iter().find(|(t, _)| *t == kind) else {
        return Ok(Outcome::Ignored);
    };
    let mut emails = Vec::new();
    for key in [
        "data[email]",
        "data[new_email]",
        "data[old_email]",
        "data[merges][EMAIL]",
    ] {
        push_email(&mut emails, field(key));
    }
    let hint = Hint {
        vendor: Vendor::Mailchimp,
        account: list,
        topic: kind.to_string(),
        scope,
        emails,
    };
    inner.deliver(hint, None)
}
