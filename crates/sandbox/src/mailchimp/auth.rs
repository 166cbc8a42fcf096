//! API keys and the limit of simultaneous connections per key.
//!
//! Mailchimp authenticates with HTTP Basic auth ("any string as the user name, the API key as the
//! password") and allows 10 simultaneous connections per API key; the 11th gets 429 "Too Many
//! Requests". There are no rate-limit headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::Mailchimp;
use super::error::ApiError;

/// Mailchimp's limit of simultaneous connections per API key.
pub const DEFAULT_CONNECTION_LIMIT: usize = 10;

/// Connection counters of one API key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyConnections {
    /// Requests of this key being served right now.
    pub in_flight: usize,
    /// The most that were ever served at once.
    pub max_seen: usize,
    /// Requests refused with 429 because `in_flight` was at the limit.
    pub refused: u64,
}

#[derive(Debug)]
pub(super) struct Connections {
    pub limit: usize,
    pub per_key: HashMap<String, KeyConnections>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            limit: DEFAULT_CONNECTION_LIMIT,
            per_key: HashMap::new(),
        }
    }
}

/// Holds one of a key's connection slots; frees it when dropped (also when the client goes away
/// and the request future is dropped).
pub(super) struct ConnectionSlot {
    connections: Arc<Mutex<Connections>>,
    key: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.connections.lock().expect("connections lock");
        if let Some(entry) = connections.per_key.get_mut(&self.key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

pub(super) fn acquire(connections: &Arc<Mutex<Connections>>, key: &str) -> Option<ConnectionSlot> {
    let mut guard = connections.lock().expect("connections lock");
    let limit = guard.limit;
    let entry = guard.per_key.entry(key.to_string()).or_default();
    if entry.in_flight >= limit {
        entry.refused += 1;
        return None;
    }
    entry.in_flight += 1;
    entry.max_seen = entry.max_seen.max(entry.in_flight);
    Some(ConnectionSlot {
        connections: connections.clone(),
        key: key.to_string(),
    })
}

/// The credential a request presents: the Basic-auth password (the API key), or an OAuth bearer
/// token. `None` without an `Authorization` header; `Some(Err)` for one that cannot be read.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<Result<String, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    let key = match scheme.to_ascii_lowercase().as_str() {
        "basic" => base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|pair| pair.split_once(':').map(|(_, key)| key.to_string())),
        "bearer" | "oauth" => Some(rest.to_string()),
        _ => None,
    };
    Some(key.filter(|k| !k.is_empty()).ok_or(()))
}

/// Marks a request whose connection slot is already held, so an inner limiter does not count
/// it twice.
#[derive(Clone, Copy)]
struct Counted;

/// Middleware: at most the connection limit (10) of simultaneous requests per API key; beyond
/// it, 429 "Too Many Requests". A slot is held until the answer's body has been sent whole (a
/// client that starts its next call as soon as it has the headers of the last one is over the
/// limit while that body is still arriving).
///
/// `lib.rs` layers this **outside** the fault-injection middleware so injected latency keeps a
/// connection busy as a slow Mailchimp would. The router also layers it inside (skipped when an
/// outer layer already counted the request), so `router()` enforces the limit on its own too.
pub async fn limit_connections(
    State(sim): State<Mailchimp>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<Counted>().is_some() {
        return next.run(request).await;
    }
    let Some(Ok(key)) = presented_key(request.headers()) else {
        // No readable key: `authenticate` answers 401 without taking a slot.
        return next.run(request).await;
    };
    let Some(slot) = acquire(&sim.connections, &key) else {
        return ApiError::TooManyRequests.into_response();
    };
    request.extensions_mut().insert(Counted);
    let response = next.run(request).await;
    // A connection is busy until its answer has been sent whole, not just its headers.
    crate::body::hold_until_sent(response, slot)
}

/// The data centre an API key names (`…-us6` → `us6`): its suffix after the last `-` when that
/// is letters then digits. OAuth tokens and keys without such a suffix name none.
pub(super) fn key_data_center(key: &str) -> Option<&str> {
    let (_, dc) = key.rsplit_once('-')?;
    let letters = dc.chars().take_while(|c| c.is_ascii_lowercase()).count();
    let well_formed =
        letters >= 1 && dc.len() > letters && dc[letters..].bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(dc)
}

/// Middleware: 401 "API Key Missing" without credentials, 403 "Wrong Datacenter" for a key of
/// another data centre than the account's ([`Mailchimp::set_data_center`]), 401 "API Key
/// Invalid" for a key the account does not accept (see [`Mailchimp::set_valid_keys`]).
pub async fn authenticate(State(sim): State<Mailchimp>, request: Request, next: Next) -> Response {
    match presented_key(request.headers()) {
        None => ApiError::ApiKeyMissing.into_response(),
        Some(Err(())) => ApiError::ApiKeyInvalid.into_response(),
        Some(Ok(key)) => {
            let (accepted, wrong_dc) = {
                let state = sim.lock();
                let wrong_dc = key_data_center(&key)
                    .filter(|dc| *dc != state.data_center)
                    .map(str::to_string);
                (state.keys.accepts(&key), wrong_dc)
            };
            if let Some(dc) = wrong_dc {
                ApiError::WrongDatacenter(dc).into_response()
            } else if accepted {
                next.run(request).await
            } else {
                ApiError::ApiKeyInvalid.into_response()
            }
        }
    }
}
