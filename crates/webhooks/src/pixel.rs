//! Shopper events from a Shopify custom web pixel: `POST /events/shopify/{namespace}/{sync}`.
//!
//! The pixel (`examples/shopify-customer-events-pixel.js`) posts one JSON object per event:
//! `{event, email | customerId, occurredAt, properties}` with the sync's pixel secret in the
//! header [`SECRET_HEADER`]. The receiver checks and queues it; it never calls a vendor. The
//! operator drains the queue per sync and sends the events to Mailchimp within the key's budget.
//!
//! **What the secret protects against.** A web pixel runs in the shopper's browser, so its
//! secret is readable by anyone who opens the shop: it is a *publishable* token, not a
//! credential. It stops posts that do not come from this shop's pixel setup: someone who does
//! not know it cannot fill a sync's queue or a contact's Mailchimp timeline, and, with the
//! `Origin` check (a browser sends the page's origin and a script cannot change it), another web
//! site cannot make its visitors' browsers post for this shop. It does not stop a person who
//! copies the token from the shop's pages and posts by hand: for that, the per-sync rate limit,
//! the small body limit, the bounded queue and "known contacts only" bound what a forger can do
//! (some extra events on existing contacts, never new contacts). Rotate the secret if abused.
//!
//! Answers (a fixed word, nothing echoed): 202 queued (or dropped by the sync's settings: events
//! disabled, or the shop's GDPR/CCPA restrictions); 401 no or wrong secret, or a sync with no
//! pixel secret; 403 an `Origin` that is not the shop's; 400 a body that does not parse, an
//! event name outside [`EVENTS`], no `email`/`customerId`, a bad time; 413 too large; 429 over
//! the sync's rate; 503 queue full. `OPTIONS` answers the browser's CORS preflight for allowed
//! origins.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::secrets::Secret;
use crate::verify::secret_matches;

/// The header carrying the sync's pixel secret.
pub const SECRET_HEADER: &str = "x-audience-pixel-secret";

/// The shopper events the receiver takes (Shopify's standard event names, seed 004's list).
pub const EVENTS: &[&str] = &[
    "page_viewed",
    "product_viewed",
    "search_submitted",
    "product_added_to_cart",
    "payment_info_submitted",
    "checkout_started",
    "checkout_completed",
    "collection_viewed",
];

/// Properties kept per event (more are dropped); each value at most [`MAX_PROPERTY_CHARS`].
pub const MAX_PROPERTIES: usize = 20;
pub const MAX_PROPERTY_CHARS: usize = 200;

/// What the caller knows about one sync's pixel (answered from memory, on the request path).
#[derive(Debug, Clone)]
pub struct PixelSync {
    /// The sync's pixel secret(s) (several during a rotation).
    pub secrets: Vec<Secret>,
    /// Origins a browser may post from (e.g. `https://shop.myshopify.com`, the shop's own
    /// domain); empty: no `Origin` is accepted, only posts without one.
    pub origins: Vec<String>,
    /// `customerEvents.enabled && shopperEvents`.
    pub enabled: bool,
    /// `customerEvents.privacyRestricted`: accepted and dropped.
    pub privacy_restricted: bool,
}

/// `(namespace, sync name)` → the sync's pixel settings; `None` for no such sync.
pub trait PixelResolver: Send + Sync + 'static {
    fn pixel(&self, namespace: &str, sync: &str) -> Option<PixelSync>;
}

impl<F> PixelResolver for F
where
    F: Fn(&str, &str) -> Option<PixelSync> + Send + Sync + 'static,
{
    fn pixel(&self, namespace: &str, sync: &str) -> Option<PixelSync> {
        self(namespace, sync)
    }
}

/// One checked shopper event, queued for its sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopperEvent {
    pub namespace: String,
    pub sync: String,
    /// One of [`EVENTS`].
    pub event: String,
    pub email: Option<String>,
    /// Shopify's customer id (`gid://shopify/Customer/1` or `1`).
    pub customer_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// String values (numbers and booleans as text, objects as JSON), at most
    /// [`MAX_PROPERTIES`].
    pub properties: BTreeMap<String, String>,
}

/// Limits of the pixel endpoint.
#[derive(Debug, Clone)]
pub struct PixelConfig {
    /// A pixel event is small; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Posts per second per sync (sustained, burst).
    pub per_sync_per_second: u32,
    pub per_sync_burst: u32,
    /// Events waiting for the operator across all syncs; past it, 503.
    pub queue: usize,
}

impl Default for PixelConfig {
    fn default() -> Self {
        PixelConfig {
            max_body_bytes: 8 * 1024,
            per_sync_per_second: 20,
            per_sync_burst: 100,
            queue: 10_000,
        }
    }
}

/// What happened to pixel posts so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PixelCounters {
    pub queued: u64,
    /// Accepted and dropped: the sync's events are off.
    pub disabled: u64,
    /// Accepted and dropped: the shop's privacy restrictions.
    pub privacy_dropped: u64,
    pub unauthorized: u64,
    pub forbidden_origin: u64,
    pub malformed: u64,
    pub too_large: u64,
    pub rate_limited: u64,
    pub unavailable: u64,
}

#[derive(Default)]
struct Atomics([AtomicU64; 9]);

struct Inner {
    resolver: Box<dyn PixelResolver>,
    events: mpsc::Sender<ShopperEvent>,
    per_sync: DefaultKeyedRateLimiter<(String, String)>,
    counters: Atomics,
}

/// The pixel endpoint. Cheap to clone.
#[derive(Clone)]
pub struct PixelReceiver {
    inner: Arc<Inner>,
    max_body: usize,
}

const QUEUED: usize = 0;
const DISABLED: usize = 1;
const PRIVACY: usize = 2;
const UNAUTHORIZED: usize = 3;
const ORIGIN: usize = 4;
const MALFORMED: usize = 5;
const TOO_LARGE: usize = 6;
const RATE: usize = 7;
const UNAVAILABLE: usize = 8;

impl PixelReceiver {
    /// The receiver and the queue of checked events it fills (bounded by `config.queue`).
    pub fn new(
        config: PixelConfig,
        resolver: impl PixelResolver,
    ) -> (PixelReceiver, mpsc::Receiver<ShopperEvent>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let quota = Quota::per_second(NonZeroU32::new(config.per_sync_per_second.max(1)).unwrap())
            .allow_burst(NonZeroU32::new(config.per_sync_burst.max(1)).unwrap());
        (
            PixelReceiver {
                inner: Arc::new(Inner {
                    resolver: Box::new(resolver),
                    events: tx,
                    per_sync: RateLimiter::keyed(quota),
                    counters: Atomics::default(),
                }),
                max_body: config.max_body_bytes,
            },
            rx,
        )
    }

    /// `POST|OPTIONS /events/shopify/{namespace}/{sync}`, to merge into the webhook router.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/events/shopify/{namespace}/{sync}",
                post(handle).options(preflight),
            )
            .layer(DefaultBodyLimit::max(self.max_body))
            .with_state(self.inner.clone())
    }

    pub fn counters(&self) -> PixelCounters {
        let c = &self.inner.counters.0;
        let l = |i: usize| c[i].load(Ordering::Relaxed);
        PixelCounters {
            queued: l(QUEUED),
            disabled: l(DISABLED),
            privacy_dropped: l(PRIVACY),
            unauthorized: l(UNAUTHORIZED),
            forbidden_origin: l(ORIGIN),
            malformed: l(MALFORMED),
            too_large: l(TOO_LARGE),
            rate_limited: l(RATE),
            unavailable: l(UNAVAILABLE),
        }
    }

    /// Drops rate-limit state of idle syncs.
    pub fn prune(&self) {
        self.inner.per_sync.retain_recent();
    }
}

fn answer(inner: &Inner, counter: usize, origin: Option<&HeaderValue>) -> Response {
    inner.counters.0[counter].fetch_add(1, Ordering::Relaxed);
    let (status, word) = match counter {
        QUEUED | DISABLED | PRIVACY => (StatusCode::ACCEPTED, "accepted"),
        UNAUTHORIZED => (StatusCode::UNAUTHORIZED, "unauthorized"),
        ORIGIN => (StatusCode::FORBIDDEN, "origin not allowed"),
        MALFORMED => (StatusCode::BAD_REQUEST, "malformed event"),
        TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
        RATE => (StatusCode::TOO_MANY_REQUESTS, "rate limited"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
    };
    tracing::debug!(
        status = status.as_u16(),
        reason = word,
        "pixel event answered"
    );
    let mut response = (status, word).into_response();
    if let Some(origin) = origin {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The request's `Origin` if the sync allows it; `Err` when one was sent and is not allowed.
fn allowed_origin<'a>(
    headers: &'a HeaderMap,
    sync: &PixelSync,
) -> Result<Option<&'a HeaderValue>, ()> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let text = origin.to_str().map_err(|_| ())?.trim_end_matches('/');
    if sync
        .origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(text))
    {
        Ok(Some(origin))
    } else {
        Err(())
    }
}

async fn preflight(
    State(inner): State<Arc<Inner>>,
    Path((namespace, sync)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(settings) = inner.resolver.pixel(&namespace, &sync) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    match allowed_origin(&headers, &settings) {
        Ok(Some(origin)) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, x-audience-pixel-secret"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
            response
        }
        _ => StatusCode::FORBIDDEN.into_response(),
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    Path((namespace, sync)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return answer(&inner, TOO_LARGE, None);
        }
        Err(_) => return answer(&inner, MALFORMED, None),
    };
    let Some(settings) = inner.resolver.pixel(&namespace, &sync) else {
        return answer(&inner, UNAUTHORIZED, None);
    };
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if settings.secrets.is_empty() || given.is_empty() || !secret_matches(&settings.secrets, given)
    {
        return answer(&inner, UNAUTHORIZED, None);
    }
    let origin = match allowed_origin(&headers, &settings) {
        Ok(origin) => origin,
        Err(()) => return answer(&inner, ORIGIN, None),
    };
    if inner
        .per_sync
        .check_key(&(namespace.clone(), sync.clone()))
        .is_err()
    {
        return answer(&inner, RATE, origin);
    }
    let Some(event) = parse(&body, namespace, sync) else {
        return answer(&inner, MALFORMED, origin);
    };
    if !settings.enabled {
        return answer(&inner, DISABLED, origin);
    }
    if settings.privacy_restricted {
        return answer(&inner, PRIVACY, origin);
    }
    match inner.events.try_send(event) {
        Ok(()) => answer(&inner, QUEUED, origin),
        Err(_) => answer(&inner, UNAVAILABLE, origin),
    }
}

fn text(value: &Value) -> String {
    let s = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars().take(MAX_PROPERTY_CHARS).collect()
}

/// Reads one event; `None` when it is not one the receiver takes.
fn parse(body: &[u8], namespace: String, sync: String) -> Option<ShopperEvent> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let event = object.get("event")?.as_str()?;
    if !EVENTS.contains(&event) {
        return None;
    }
    let nonempty = |k: &str| {
        object
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 320)
            .map(str::to_string)
    };
    let email = nonempty("email").filter(|e| e.contains('@'));
    let customer_id = match object.get("customerId") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => nonempty("customerId"),
    };
    if email.is_none() && customer_id.is_none() {
        return None;
    }
    let occurred_at = match object.get("occurredAt") {
        None | Some(Value::Null) => Utc::now(),
        Some(v) => DateTime::parse_from_rfc3339(v.as_str()?)
            .ok()?
            .with_timezone(&Utc),
    };
    let properties = match object.get("properties") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter(|(k, _)| !k.is_empty() && k.len() <= 100)
            .take(MAX_PROPERTIES)
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
        Some(_) => return None,
    };
    Some(ShopperEvent {
        namespace,
        sync,
        event: event.to_string(),
        email,
        customer_id,
        occurred_at,
        properties,
    })
}
