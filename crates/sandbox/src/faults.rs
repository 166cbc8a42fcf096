//! Fault injection: latency, rate limiting, server errors, timeouts, connection resets, malformed,
//! huge or late bodies, raw answers with any status, header and content type, and errors that echo
//! the request's credential back (as some vendors' error pages do), each in the vendor's own wire
//! format where it has one, so connectors can be shown to survive them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::{Sandbox, Vendor};

/// What an injected fault does to one request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// The vendor's rate-limit answer (Mailchimp/Klaviyo/Lightspeed 429, Shopify THROTTLED in a 200,
    /// RetailCRM 503), with a retry-after hint in seconds.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500 with the vendor's error document.
    ServerError,
    /// No answer for a long time (the client's timeout must fire), then 504.
    Timeout,
    /// HTTP 200 with a body that is not valid JSON.
    Malformed,
    /// Any answer: a status, an optional raw `Retry-After` value (`inf`, `-5`, a bad date …), an
    /// optional content type (none when absent), any other headers (e.g. nonsense rate-limit
    /// headers) and a body.
    #[serde(rename_all = "camelCase")]
    Raw {
        status: u16,
        #[serde(default)]
        retry_after: Option<String>,
        #[serde(default)]
        content_type: Option<String>,
        #[serde(default)]
        body: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// HTTP 200 whose body starts like JSON and is then cut off by a broken connection.
    Reset,
    /// HTTP 200 with a JSON-looking body of this many bytes.
    Huge { bytes: u64 },
    /// The vendor's error document (HTTP 400) quoting the credential the request carried, as a
    /// careless vendor's "invalid token …" page does. [U] no spec says a vendor does this; it is
    /// here to show a connector never passes it on.
    EchoCredential,
}

/// One injected fault: applies to the next `count` requests whose path contains `path_contains`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub path_contains: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Default)]
struct VendorFaults {
    latency: Duration,
    body_latency: Duration,
    queue: VecDeque<Fault>,
}

/// Faults and latency per vendor.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<HashMap<Vendor, VendorFaults>>>,
}

impl Faults {
    pub fn clear(&self) {
        self.inner.lock().expect("faults lock").clear();
    }

    /// Every request to `vendor` takes at least this long to be answered.
    pub fn set_latency(&self, vendor: Vendor, latency: Duration) {
        self.inner
            .lock()
            .expect("faults lock")
            .entry(vendor)
            .or_default()
            .latency = latency;
    }

    pub fn latency(&self, vendor: Vendor) -> Duration {
        self.inner
            .lock()
            .expect("faults lock")
            .get(&vendor)
            .map(|f| f.latency)
            .unwrap_or_default()
    }

    /// Every answer of `vendor` sends its body this long after its headers (a large answer over a
    /// slow link): a client that treats the headers as the end of a call is shown up.
    pub fn set_body_latency(&self, vendor: Vendor, latency: Duration) {
        self.inner
            .lock()
            .expect("faults lock")
            .entry(vendor)
            .or_default()
            .body_latency = latency;
    }

    pub fn body_latency(&self, vendor: Vendor) -> Duration {
        self.inner
            .lock()
            .expect("faults lock")
            .get(&vendor)
            .map(|f| f.body_latency)
            .unwrap_or_default()
    }

    /// Queues a fault for the next matching requests to `vendor`.
    pub fn push(&self, vendor: Vendor, fault: Fault) {
        self.inner
            .lock()
            .expect("faults lock")
            .entry(vendor)
            .or_default()
            .queue
            .push_back(fault);
    }

    /// Takes the fault (if any) that applies to a request to `path`.
    fn take(&self, vendor: Vendor, path: &str) -> Option<FaultKind> {
        let mut inner = self.inner.lock().expect("faults lock");
        let faults = inner.get_mut(&vendor)?;
        let index = faults
            .queue
            .iter()
            .position(|f| f.path_contains.as_deref().is_none_or(|p| path.contains(p)))?;
        let fault = &mut faults.queue[index];
        let kind = fault.kind.clone();
        fault.count = fault.count.saturating_sub(1);
        if fault.count == 0 {
            faults.queue.remove(index);
        }
        Some(kind)
    }
}

/// Middleware: waits the vendor's latency, then answers with a queued fault if one applies.
pub async fn inject(
    State((vendor, faults)): State<(Vendor, Faults)>,
    request: Request,
    next: Next,
) -> Response {
    // Latency is the time a call takes, as a real service's round trip includes its own work: the
    // answer is held until `latency` has passed since the request arrived, however quickly the
    // handler produced it (and a slow handler is not slowed down further).
    let answered_no_sooner = tokio::time::sleep(faults.latency(vendor));
    let answer = async {
        match faults.take(vendor, request.uri().path()) {
            Some(FaultKind::EchoCredential) => echo_credential(vendor, request.headers()),
            Some(kind) => fault_response(vendor, kind).await,
            None => next.run(request).await,
        }
    };
    let (response, ()) = tokio::join!(answer, answered_no_sooner);
    let body_latency = faults.body_latency(vendor);
    if body_latency.is_zero() {
        response
    } else {
        crate::body::delay_body(response, body_latency).await
    }
}

async fn fault_response(vendor: Vendor, kind: FaultKind) -> Response {
    match kind {
        FaultKind::RateLimited { retry_after_secs } => rate_limited(vendor, retry_after_secs),
        FaultKind::ServerError => server_error(vendor),
        FaultKind::Timeout => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        FaultKind::Malformed => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"data\": [{\"id\": \"trunc"))
            .expect("static response"),
        FaultKind::Raw {
            status,
            retry_after,
            content_type,
            body,
            headers: extra,
        } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let headers = response.headers_mut();
            if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(header::RETRY_AFTER, value);
            }
            if let Some(value) = content_type.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            for (name, value) in extra {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(name, value);
                }
            }
            response
        }
        FaultKind::Reset => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(crate::body::cut_short("{\"data\": [{\"id\": "))
            .expect("static response"),
        FaultKind::Huge { bytes } => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(crate::body::huge(bytes))
            .expect("static response"),
        // Answered in `inject`, which has the request's headers.
        FaultKind::EchoCredential => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The credential a request carried, as a careless error page would quote it: every
/// authentication header's value, a Basic pair decoded, and the `apiKey` query parameter.
fn presented_credentials(headers: &axum::http::HeaderMap) -> String {
    use base64::Engine;
    let mut quoted = Vec::new();
    for name in ["authorization", "x-shopify-access-token", "x-api-key"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            quoted.push(value.to_string());
            if let Some(encoded) = value.strip_prefix("Basic ")
                && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded)
            {
                quoted.push(String::from_utf8_lossy(&decoded).into_owned());
            }
        }
    }
    quoted.join(" / ")
}

fn echo_credential(vendor: Vendor, headers: &axum::http::HeaderMap) -> Response {
    let words = format!(
        "The credentials {} are not valid for this request",
        presented_credentials(headers)
    );
    match vendor {
        Vendor::Mailchimp => {
            crate::mailchimp::problem(StatusCode::BAD_REQUEST, "Invalid Resource", &words)
        }
        Vendor::Klaviyo => crate::klaviyo::invalid_request_response(&words),
        Vendor::Shopify => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"errors": words})),
        )
            .into_response(),
        Vendor::LightspeedX => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "Bad Request", "message": words})),
        )
            .into_response(),
        Vendor::LightspeedR => (
            StatusCode::BAD_REQUEST,
            Json(
                serde_json::json!({"httpCode": "400", "httpMessage": "Bad Request",
                "message": words, "errorClass": "InvalidArgumentException"}),
            ),
        )
            .into_response(),
        Vendor::Retailcrm => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"success": false, "errorMsg": words})),
        )
            .into_response(),
    }
}

fn rate_limited(vendor: Vendor, retry_after_secs: u64) -> Response {
    match vendor {
        Vendor::Mailchimp => crate::mailchimp::problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        ),
        Vendor::Klaviyo => crate::klaviyo::throttled_response(retry_after_secs),
        // Shopify's GraphQL throttling arrives as HTTP 200 with a THROTTLED error.
        Vendor::Shopify => Json(serde_json::json!({
            "errors": [{
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}
            }],
            "extensions": {"cost": {
                "requestedQueryCost": 252, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0}
            }}
        }))
        .into_response(),
        Vendor::LightspeedX => {
            let when = std::time::SystemTime::now() + Duration::from_secs(retry_after_secs);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(serde_json::json!({"error": "Too Many Requests", "message": "Rate limiting enforced"})),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Vendor::LightspeedR => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(serde_json::json!({"httpCode": "429", "httpMessage": "Too Many Requests",
                    "message": "Rate limit exceeded", "errorClass": "RateLimitException"})),
            )
                .into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            headers.insert("X-LS-API-RateLimit-Type", HeaderValue::from_static("api-leaky-bucket"));
            response
        }
        // RetailCRM answers throttling with 503.
        Vendor::Retailcrm => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"success": false, "errorMsg": "Rate limit exceeded"})),
        )
            .into_response(),
    }
}

fn server_error(vendor: Vendor) -> Response {
    match vendor {
        Vendor::Mailchimp => crate::mailchimp::problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "An unexpected internal error has occurred. Please contact Support for more information.",
        ),
        Vendor::Klaviyo => crate::klaviyo::server_error_response(),
        Vendor::Retailcrm => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"success": false, "errorMsg": "Internal server error"})),
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"errors": [{"message": "Internal error"}]})),
        )
            .into_response(),
    }
}

/// Body of `POST /_sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRequest {
    pub vendor: String,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub fault: Option<Fault>,
}

pub async fn inject_handler(
    State(sandbox): State<Sandbox>,
    Json(request): Json<FaultRequest>,
) -> Response {
    let Some(vendor) = Vendor::from_name(&request.vendor) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("unknown vendor {:?}", request.vendor),
        )
            .into_response();
    };
    if let Some(ms) = request.latency_ms {
        sandbox
            .faults
            .set_latency(vendor, Duration::from_millis(ms));
    }
    if let Some(fault) = request.fault {
        sandbox.faults.push(vendor, fault);
    }
    StatusCode::NO_CONTENT.into_response()
}
