//! `POST /webhooks/lightspeed-x[/{domain_prefix}]`: Lightspeed Retail X-Series (formerly Vend).
//!
//! [D] (x-series-api.lightspeedhq.com "Webhooks"): a `POST`, UTF-8,
//! `application/x-www-form-urlencoded`, with a `payload` field holding a JSON-encoded object
//! (the API 1.0 shape of the changed entity); "other form fields (such as `environment` or
//! `domain_prefix`) may be present but are not guaranteed to be". 5 s to answer 2xx, else retried.
//!
//! [U] (not in the stored docs): the `type` field (`customer.update`, `sale.update`,
//! `product.update`, `inventory.update`, …) is required here; the signature is the header
//! `X-Signature: signature=<hex>,algorithm=HMAC-SHA256`, the hex HMAC-SHA256 of the raw body keyed
//! with the app's client secret. Since `domain_prefix` is not guaranteed, the URL may carry it
//! (`/webhooks/lightspeed-x/{domain_prefix}`, registered per store); when both are present they
//! must agree (400 otherwise).
//!
//! Checks: size (413), the endpoint's limit (429), signature header (401), form and domain prefix
//! (400), secret known and verifying (401), `type` and `payload` JSON (400), the store's limit
//! (429). No delivery id is sent, so nothing is deduplicated; the debouncer coalesces repeats.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use crate::hint::{Hint, Scope, Vendor, push_email};
use crate::receiver::{Inner, Outcome, Reject, body_rejection};
use crate::verify::hmac_sha256_matches;

/// Parses `signature=<hex>,algorithm=HMAC-SHA256` (any order, spaces allowed) into the digest.
pub fn parse_signature_header(value: &str) -> Option<Vec<u8>> {
    let mut signature = None;
    let mut algorithm = None;
    for part in value.split(',') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "signature" => signature = Some(v.trim()),
            "algorithm" => algorithm = Some(v.trim()),
            _ => {}
        }
    }
    if !algorithm?.eq_ignore_ascii_case("HMAC-SHA256") {
        return None;
    }
    hex::decode(signature?).ok().filter(|d| d.len() == 32)
}

/// A domain prefix (`mystore` of `mystore.retail.lightspeed.app`), lower-cased.
pub(crate) fn domain_prefix(value: &str) -> Option<String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !value.starts_with('-');
    ok.then(|| value.to_ascii_lowercase())
}

fn scope_of(kind: &str) -> Option<Scope> {
    match kind.split_once('.')?.0 {
        "customer" => Some(Scope::Customers),
        "sale" | "register_sale" => Some(Scope::Orders),
        _ => None,
    }
}

pub(crate) async fn handle(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut account = None;
    let result = process(&inner, None, &headers, body, &mut account);
    inner.answer(Vendor::LightspeedX, account.as_deref(), result)
}

pub(crate) async fn handle_with_prefix(
    State(inner): State<Arc<Inner>>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let mut account = None;
    let result = process(&inner, Some(&prefix), &headers, body, &mut account);
    inner.answer(Vendor::LightspeedX, account.as_deref(), result)
}

fn process(
    inner: &Inner,
    path_prefix: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    account: &mut Option<String>,
) -> Result<Outcome, Reject> {
    let body = body.map_err(body_rejection)?;
    inner.admit(Vendor::LightspeedX)?;
    let signature = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_signature_header)
        .ok_or(Reject::Unauthorized)?;
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| Reject::Malformed("body is not a form"))?;
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let from_path = match path_prefix {
        Some(p) => Some(domain_prefix(p).ok_or(Reject::Malformed("bad domain prefix"))?),
        None => None,
    };
    let from_form = match field("domain_prefix") {
        Some(p) => Some(domain_prefix(p).ok_or(Reject::Malformed("bad domain prefix"))?),
        None => None,
    };
    let prefix = match (from_path, from_form) {
        (Some(a), Some(b)) if a != b => return Err(Reject::Malformed("domain prefixes disagree")),
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(Reject::Malformed("no domain prefix")),
    };
    let secrets = inner.resolver.secrets(Vendor::LightspeedX, &prefix);
    if !hmac_sha256_matches(&secrets, &body, &signature) {
        return Err(Reject::Unauthorized);
    }
    *account = Some(prefix.clone());
    let kind = field("type")
        .filter(|t| !t.is_empty())
        .ok_or(Reject::Malformed("no type"))?;
    let payload: Value = field("payload")
        .and_then(|p| serde_json::from_str(p).ok())
        .filter(Value::is_object)
        .ok_or(Reject::Malformed("payload is not a JSON object"))?;
    let Some(scope) = scope_of(kind) else {
        return Ok(Outcome::Ignored);
    };
    let mut emails = Vec::new();
    push_email(&mut emails, payload.get("email").and_then(Value::as_str));
    push_email(
        &mut emails,
        payload.pointer("/customer/email").and_then(Value::as_str),
    );
    let hint = Hint {
        vendor: Vendor::LightspeedX,
        account: prefix,
        topic: kind.to_string(),
        scope,
        emails,
    };
    inner.deliver(hint, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_header() {
        let hex64 = "ab".repeat(32);
        assert_eq!(
            parse_signature_header(&format!("signature={hex64},algorithm=HMAC-SHA256"))
                .map(|d| d.len()),
            Some(32)
        );
        assert!(
            parse_signature_header(&format!(" algorithm=hmac-sha256 , signature={hex64}"))
                .is_some()
        );
        assert!(parse_signature_header(&format!("signature={hex64},algorithm=MD5")).is_none());
        assert!(parse_signature_header(&format!("signature={hex64}")).is_none());
        assert!(parse_signature_header("signature=zz,algorithm=HMAC-SHA256").is_none());
        assert!(parse_signature_header("garbage").is_none());
    }
}
