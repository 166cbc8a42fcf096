//! `POST /webhooks/shopify`: Shopify's HTTPS webhook deliveries.
//!
//! Headers (shopify.dev "Webhooks delivery structure" [D]; names are case-insensitive):
//! `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw body keyed with the app's client
//! secret), `X-Shopify-Topic`, `X-Shopify-Shop-Domain` (the `*.myshopify.com` domain),
//! `X-Shopify-Webhook-Id` (one per delivery, the same on retries: the dedupe key),
//! `X-Shopify-Triggered-At` (when Shopify triggered it), `X-Shopify-Event-Id`, `X-Shopify-API-Version`.
//!
//! Order of checks, so that nothing unverified changes any state: size (413), the endpoint's
//! unauthenticated limit (429), signature present (401), shop domain (400), secrets known for the
//! shop and one of them verifies (401); then topic, JSON body (400), triggered-at (stale: 200 and
//! dropped), the shop's limit (429), the delivery id (duplicate: 200 and dropped).
//!
//! Neither the topic nor the webhook id is covered by the signature, so someone replaying a
//! captured delivery can vary them; the triggered-at window bounds how long such a replay works,
//! and at worst it causes a run that finds nothing new.
//!
//! [U]: a delivery without `X-Shopify-Triggered-At` is accepted (older deliveries lack it); one
//! whose value does not parse as RFC 3339 is refused (400).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::hint::{Hint, Scope, Vendor, push_email};
use crate::receiver::{Inner, Outcome, Reject, body_rejection};
use crate::verify::hmac_sha256_matches;

/// Topics that become hints, with what they concern ([S] `WebhookSubscriptionTopic`).
pub const TOPICS: &[(&str, Scope)] = &[
    ("customers/create", Scope::Customers),
    ("customers/update", Scope::Customers),
    ("customers/delete", Scope::Customers),
    ("customers/enable", Scope::Customers),
    ("customers/disable", Scope::Customers),
    ("customers/merge", Scope::Customers),
    ("customers_email_marketing_consent/update", Scope::Customers),
    ("customers_marketing_consent/update", Scope::Customers),
    ("orders/create", Scope::Orders),
    ("orders/updated", Scope::Orders),
    ("orders/paid", Scope::Orders),
    ("orders/fulfilled", Scope::Orders),
    ("orders/partially_fulfilled", Scope::Orders),
    ("orders/cancelled", Scope::Orders),
    ("orders/delete", Scope::Orders),
    ("orders/edited", Scope::Orders),
    ("refunds/create", Scope::Orders),
];

pub(crate) async fn handle(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut account = None;
    let result = process(&inner, &headers, body, &mut account);
    inner.answer(Vendor::Shopify, account.as_deref(), result)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `{name}.myshopify.com`, lower-cased; anything else is not a shop domain.
pub(crate) fn shop_domain(value: &str) -> Option<String> {
    let value = value.to_ascii_lowercase();
    let name = value.strip_suffix(".myshopify.com")?;
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    ok.then_some(value)
}

fn process(
    inner: &Inner,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    account: &mut Option<String>,
) -> Result<Outcome, Reject> {
    let body = body.map_err(body_rejection)?;
    inner.admit(Vendor::Shopify)?;
    let signature = header(headers, "x-shopify-hmac-sha256")
        .and_then(|s| B64.decode(s).ok())
        .ok_or(Reject::Unauthorized)?;
    let shop = header(headers, "x-shopify-shop-domain")
        .and_then(shop_domain)
        .ok_or(Reject::Malformed("bad shop domain"))?;
    let secrets = inner.resolver.secrets(Vendor::Shopify, &shop);
    if !hmac_sha256_matches(&secrets, &body, &signature) {
        return Err(Reject::Unauthorized);
    }
    *account = Some(shop.clone());

    let topic = header(headers, "x-shopify-topic").ok_or(Reject::Malformed("no topic"))?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|_| Reject::Malformed("body is not JSON"))?;
    if !payload.is_object() {
        return Err(Reject::Malformed("body is not a JSON object"));
    }
    if let Some(at) = header(headers, "x-shopify-triggered-at") {
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|_| Reject::Malformed("bad triggered-at"))?
            .with_timezone(&Utc);
        let now = Utc::now();
        let age = now.signed_duration_since(at);
        let max_age = chrono::Duration::from_std(inner.config.shopify_max_age)
            .unwrap_or(chrono::Duration::MAX);
        let skew = chrono::Duration::from_std(inner.config.max_clock_skew)
            .unwrap_or(chrono::Duration::MAX);
        if age > max_age || age < -skew {
            return Ok(Outcome::Stale);
        }
    }
    let Some(&(_, scope)) = TOPICS.iter().find(|(t, _)| *t == topic) else {
        return Ok(Outcome::Ignored);
    };
    let mut emails = Vec::new();
    for key in ["email", "email_address", "contact_email"] {
        push_email(&mut emails, payload.get(key).and_then(Value::as_str));
    }
    push_email(
        &mut emails,
        payload.pointer("/customer/email").and_then(Value::as_str),
    );
    let hint = Hint {
        vendor: Vendor::Shopify,
        account: shop,
        topic: topic.to_string(),
        scope,
        emails,
    };
    let id = header(headers, "x-shopify-webhook-id")
        .filter(|id| !id.is_empty() && id.len() <= 200)
        .map(str::to_string);
    inner.deliver(hint, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_domains() {
        assert_eq!(
            shop_domain("Demo-Shop.myshopify.com").as_deref(),
            Some("demo-shop.myshopify.com")
        );
        for bad in [
            "",
            ".myshopify.com",
            "evil.com",
            "a.b.myshopify.com",
            "-x.myshopify.com",
            "a b.myshopify.com",
        ] {
            assert_eq!(shop_domain(bad), None, "{bad}");
        }
    }
}
