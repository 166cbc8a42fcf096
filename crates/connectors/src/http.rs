//! Shared HTTP plumbing for every connector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use audience_core::{ConnectorError, ErrorKind};
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// Observer of every vendor call (vendor, endpoint template, HTTP status or 0 for a transport
/// failure); the operator points it at its Prometheus counters.
pub type CallObserver = Arc<dyn Fn(&'static str, &str, u16) + Send + Sync>;

static OBSERVER: OnceLock<CallObserver> = OnceLock::new();

/// Installs the process-wide call observer (first call wins).
pub fn set_call_observer(observer: CallObserver) {
    let _ = OBSERVER.set(observer);
}

fn observe(vendor: &'static str, endpoint: &str, status: u16) {
    if let Some(observer) = OBSERVER.get() {
        observer(vendor, endpoint, status);
    }
}

/// The budget of one API key: at most `max_concurrent` requests in flight, and a shared pause when
/// the vendor says to slow down. Every sync using the same key in this process shares it.
pub struct KeyBudget {
    permits: Arc<Semaphore>,
    max: usize,
    paused_until: Mutex<Option<Instant>>,
}

impl KeyBudget {
    fn new(max_concurrent: usize) -> Self {
        KeyBudget {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            max: max_concurrent.max(1),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits for a pause to end and a free slot.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        loop {
            let until = *self.paused_until.lock().expect("budget lock");
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("budget semaphore is never closed")
    }

    /// Holds every request on this key until `delay` from now (keeps the later of two pauses).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = self.paused_until.lock().expect("budget lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

type Budgets = Mutex<HashMap<(&'static str, u64), Arc<KeyBudget>>>;
static BUDGETS: OnceLock<Budgets> = OnceLock::new();

/// Process-wide registry of key budgets. Keys are stored as fingerprints, never in clear.
pub fn budget_for(vendor: &'static str, api_key: &str, max_concurrent: usize) -> Arc<KeyBudget> {
    let budgets = BUDGETS.get_or_init(Default::default);
    let id = (vendor, xxh3_64(api_key.as_bytes()));
    budgets
        .lock()
        .expect("budgets lock")
        .entry(id)
        .or_insert_with(|| Arc::new(KeyBudget::new(max_concurrent)))
        .clone()
}

/// How full one key's budget is right now (for metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUsage {
    pub vendor: &'static str,
    /// The first 8 hex digits of the key's 64-bit fingerprint: tells keys apart, reveals nothing.
    pub key: String,
    pub in_flight: usize,
    pub max_concurrent: usize,
    /// Held by a vendor's slow-down answer.
    pub paused: bool,
}

/// Every key budget in this process.
pub fn budget_usage() -> Vec<BudgetUsage> {
    let Some(budgets) = BUDGETS.get() else {
        return Vec::new();
    };
    let now = Instant::now();
    let mut out: Vec<BudgetUsage> = budgets
        .lock()
        .expect("budgets lock")
        .iter()
        .map(|(&(vendor, id), b)| BudgetUsage {
            vendor,
            key: format!("{:016x}", id)[..8].to_string(),
            in_flight: b.max.saturating_sub(b.permits.available_permits()),
            max_concurrent: b.max,
            paused: b
                .paused_until
                .lock()
                .expect("budget lock")
                .is_some_and(|until| until > now),
        })
        .collect();
    out.sort_by(|a, b| (a.vendor, &a.key).cmp(&(b.vendor, &b.key)));
    out
}

/// How a connector retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What a vendor's answer means for the retry loop.
pub enum Verdict {
    /// Hand the response to the caller.
    Done,
    /// Retry (after at least `retry_after` when the vendor said so); `pause_key` also holds every
    /// other request on the key.
    Retry {
        retry_after: Option<Duration>,
        pause_key: bool,
    },
}

/// The usual reading: 429 retries after Retry-After (seconds or HTTP date) and pauses the key;
/// 5xx retries; everything else is the caller's.
pub fn default_verdict(response: &Response) -> Verdict {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        Verdict::Retry {
            retry_after: retry_after(response),
            pause_key: true,
        }
    } else if status.is_server_error() {
        Verdict::Retry {
            retry_after: None,
            pause_key: false,
        }
    } else {
        Verdict::Done
    }
}

/// Parses `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(seconds.max(0.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Sends a request built by `build` under the key budget, retrying rate limits, 5xx, timeouts and
/// transport failures with exponential backoff and jitter, at most `policy.max_retries` times.
/// `verdict` reads vendor-specific signals (e.g. RetailCRM's 503). Errors name the vendor and
/// endpoint and never the request (whose headers hold the secret).
pub async fn send(
    vendor: &'static str,
    endpoint: &str,
    budget: &KeyBudget,
    policy: &RetryPolicy,
    build: impl Fn() -> RequestBuilder,
    verdict: impl Fn(&Response) -> Verdict,
) -> Result<Response, ConnectorError> {
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_jitter()
        .with_max_times(policy.max_retries)
        .build();
    loop {
        let permit = budget.acquire().await;
        let outcome = build().timeout(policy.timeout).send().await;
        drop(permit);
        let (retry_after, last_error) = match outcome {
            Ok(response) => {
                observe(vendor, endpoint, response.status().as_u16());
                match verdict(&response) {
                    Verdict::Done => return Ok(response),
                    Verdict::Retry {
                        retry_after,
                        pause_key,
                    } => {
                        if pause_key {
                            budget.pause_for(retry_after.unwrap_or(policy.min_delay));
                        }
                        let status = response.status();
                        let kind = if status == StatusCode::TOO_MANY_REQUESTS
                            || status == StatusCode::SERVICE_UNAVAILABLE
                        {
                            ErrorKind::RateLimited
                        } else if status.is_server_error() {
                            ErrorKind::Server
                        } else {
                            ErrorKind::RateLimited
                        };
                        let mut error = ConnectorError::new(
                            vendor,
                            endpoint,
                            kind,
                            format!("still failing after retries: HTTP {}", status.as_u16()),
                        );
                        error.retry_after = retry_after;
                        (retry_after, error)
                    }
                }
            }
            Err(err) => {
                observe(vendor, endpoint, 0);
                let what = if err.is_timeout() {
                    "timed out"
                } else {
                    "connection failed"
                };
                (
                    None,
                    ConnectorError::new(
                        vendor,
                        endpoint,
                        ErrorKind::Transport,
                        format!("request {what} after retries"),
                    ),
                )
            }
        };
        match delays.next() {
            Some(backoff) => {
                tokio::time::sleep(retry_after.map_or(backoff, |r| r.max(backoff))).await
            }
            None => return Err(last_error),
        }
    }
}

/// Maps a final non-success status to an error, with the vendor's message (which never echoes
/// credentials) when the body has one.
pub fn status_error(
    vendor: &'static str,
    endpoint: &str,
    status: StatusCode,
    vendor_message: &str,
) -> ConnectorError {
    let kind = match status.as_u16() {
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Rejected,
    };
    let prefix = match kind {
        ErrorKind::Auth => "authentication failed (check the API key in the credentials Secret)",
        ErrorKind::NotFound => "not found",
        _ => "request refused",
    };
    let detail = vendor_message.trim();
    let message = if detail.is_empty() {
        format!("{prefix}: HTTP {}", status.as_u16())
    } else {
        format!(
            "{prefix}: HTTP {}: {}",
            status.as_u16(),
            truncate(detail, 300)
        )
    };
    ConnectorError::new(vendor, endpoint, kind, message)
}

/// An unreadable vendor answer.
pub fn invalid_response(
    vendor: &'static str,
    endpoint: &str,
    what: impl std::fmt::Display,
) -> ConnectorError {
    ConnectorError::new(
        vendor,
        endpoint,
        ErrorKind::InvalidResponse,
        format!("unexpected response: {}", truncate(&what.to_string(), 300)),
    )
}

/// Reads a JSON body, mapping a malformed one to [`ErrorKind::InvalidResponse`].
pub async fn json_body<T: serde::de::DeserializeOwned>(
    vendor: &'static str,
    endpoint: &str,
    response: Response,
) -> Result<T, ConnectorError> {
    let bytes = response.bytes().await.map_err(|_| {
        ConnectorError::new(
            vendor,
            endpoint,
            ErrorKind::Transport,
            "response body interrupted",
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| invalid_response(vendor, endpoint, e))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// A shared reqwest client (connection pooling across syncs).
pub fn client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("audience-operator/", env!("CARGO_PKG_VERSION")))
                .pool_max_idle_per_host(16)
                .build()
                .expect("reqwest client builds with static settings")
        })
        .clone()
}
