//! The checks every `/api/` request passes before its handler, in Klaviyo's order [U for the
//! order]: the private key (`Authorization: Klaviyo-API-Key <key>`, 401), the `revision` header
//! (400), the key's scopes (403), the operation's rate limits (429 with `Retry-After`), and the media type of a body
//! (`application/vnd.api+json`, 415). Answers let through carry `RateLimit-*` headers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ratelimit::{Limits, Operation};
use super::{Klaviyo, REVISION};

/// What the gate of one route knows: the simulator, the route template and its limits.
#[derive(Clone)]
pub struct Gate {
    pub sim: Klaviyo,
    pub operation: Operation,
    pub limits: Limits,
}

/// The key of `Authorization: Klaviyo-API-Key <key>`, or why there is none.
fn presented_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::not_authenticated)?;
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or_else(ApiError::not_authenticated)?;
    if scheme != "Klaviyo-API-Key" {
        return Err(ApiError::not_authenticated());
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(ApiError::not_authenticated());
    }
    Ok(key.to_string())
}

/// `YYYY-MM-DD[.suffix]`.
fn revision_shaped(value: &str) -> bool {
    let date = value.split_once('.').map_or(value, |(d, _)| d);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}

fn check_revision(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(raw) = headers.get("revision") else {
        return Err(ApiError::invalid_parameter(
            "revision",
            "The 'revision' header is required (format YYYY-MM-DD[.suffix]).",
        ));
    };
    let value = raw.to_str().unwrap_or("");
    if !revision_shaped(value) {
        return Err(ApiError::invalid_parameter(
            "revision",
            format!("Invalid revision {value:?} (format YYYY-MM-DD[.suffix])."),
        ));
    }
    // [U] Klaviyo serves every published revision; the simulator implements one, so it refuses
    // the others rather than pretend they behave alike.
    if value != REVISION {
        return Err(ApiError::invalid_parameter(
            "revision",
            format!("Revision {value} is not served by this simulator; use {REVISION}."),
        ));
    }
    Ok(())
}

fn check_media_type(request: &Request) -> Result<(), ApiError> {
    let has_body = matches!(
        *request.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    if !has_body {
        return Ok(());
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let declared = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if declared == super::JSON_API {
        return Ok(());
    }
    // A DELETE without a body needs no media type.
    if *request.method() == Method::DELETE && content_type.is_none() {
        let empty = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|l| l == "0");
        if empty {
            return Ok(());
        }
    }
    Err(ApiError::unsupported_media_type(
        content_type.unwrap_or("(none)"),
    ))
}

pub async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let key = match presented_key(request.headers()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    {
        let state = gate.sim.lock();
        if !state.keys.accepts(&key) {
            return ApiError::authentication_failed().into_response();
        }
        if let Some(granted) = state.key_scopes.get(&key) {
            let missing = super::scopes::missing(granted, gate.operation);
            if !missing.is_empty() {
                return ApiError::permission_denied(&missing).into_response();
            }
        }
    }
    if let Err(e) = check_revision(request.headers()) {
        return e.into_response();
    }
    let allowance = {
        let mut state = gate.sim.lock();
        let now_ms = state.now().timestamp_millis();
        state
            .limiter
            .check(&key, gate.operation, gate.limits, now_ms)
    };
    let allowance = match allowance {
        Ok(a) => a,
        Err(retry_after) => return ApiError::throttled(retry_after).into_response(),
    };
    if let Err(e) = check_media_type(&request) {
        return e.into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("RateLimit-Limit", HeaderValue::from(allowance.limit));
    headers.insert(
        "RateLimit-Remaining",
        HeaderValue::from(allowance.remaining),
    );
    headers.insert("RateLimit-Reset", HeaderValue::from(allowance.reset_secs));
    response
}
