//! Shared HTTP plumbing for every connector.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use regex::Regex;

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

/// The longest any vendor hint (`Retry-After`, a rate-limit reset, a bucket's restore rate) can
/// make us wait: one bad answer must not stall every sync on a key for hours.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// The largest vendor answer read into memory. The biggest legitimate pages (250 Shopify
/// customers with their orders, 1000 Mailchimp members) are a few MiB.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// A vendor-given number of seconds as a wait, capped at [`MAX_WAIT`]; NaN and negatives are no
/// wait, infinity is the cap. Never panics (unlike `Duration::from_secs_f64`).
pub fn capped_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else if secs >= MAX_WAIT.as_secs_f64() {
        MAX_WAIT
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT)
    }
}

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

    fn paused_at(&self, now: Instant) -> bool {
        self.paused_until
            .lock()
            .expect("budget lock")
            .is_some_and(|until| until > now)
    }

    /// Holds every request on this key until `delay` from now (keeps the later of two pauses).
    /// The delay is capped at [`MAX_WAIT`].
    pub fn pause_for(&self, delay: Duration) {
        let now = Instant::now();
        let until = now.checked_add(delay.min(MAX_WAIT)).unwrap_or(now);
        let mut paused = self.paused_until.lock().expect("budget lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

type Budgets = Mutex<HashMap<(&'static str, u64), Arc<KeyBudget>>>;
static BUDGETS: OnceLock<Budgets> = OnceLock::new();

/// Process-wide registry of key budgets. Keys are stored as fingerprints, never in clear.
///
/// A budget no connector holds any more (its syncs finished their runs or were deleted) and that
/// no slow-down answer holds is dropped when another key is added: it has nothing left to share,
/// and a thousand merchants' deleted syncs would otherwise keep their budgets (and metric
/// series) forever. The next connector on that key gets a fresh one, which is the same thing.
pub fn budget_for(vendor: &'static str, api_key: &str, max_concurrent: usize) -> Arc<KeyBudget> {
    let budgets = BUDGETS.get_or_init(Default::default);
    let id = (vendor, xxh3_64(api_key.as_bytes()));
    let mut budgets = budgets.lock().expect("budgets lock");
    if let Some(budget) = budgets.get(&id) {
        return budget.clone();
    }
    let now = Instant::now();
    budgets.retain(|_, b| Arc::strong_count(b) > 1 || b.paused_at(now));
    budgets
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
            paused: b.paused_at(now),
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

/// Parses `Retry-After` as seconds or as an HTTP date (see [`parse_retry_after`]).
pub fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value)
}

/// A `Retry-After` value as a wait: seconds (`120`, `1.5`) or an HTTP date, capped at
/// [`MAX_WAIT`]. Nonsense (`inf`, `NaN`, `1e400`, negatives, unparseable dates) is no hint.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        return Some(capped_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_WAIT),
    )
}

/// Why a body could not be read whole.
enum BodyError {
    /// The connection broke or timed out mid-body: worth retrying.
    Interrupted,
    /// Larger than [`MAX_BODY_BYTES`]: retrying will not help.
    TooLarge,
}

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) and gives back an equivalent response whose
/// body is in memory, so the caller's reading no longer needs the connection.
async fn buffered(mut response: Response) -> Result<Response, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| BodyError::Interrupted)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = response.status();
    *rebuilt.version_mut() = response.version();
    *rebuilt.headers_mut() = std::mem::take(response.headers_mut());
    Ok(Response::from(rebuilt))
}

/// Sends a request built by `build` under the key budget, retrying rate limits, 5xx, timeouts and
/// transport failures with exponential backoff and jitter, at most `policy.max_retries` times.
/// `verdict` reads vendor-specific signals (e.g. RetailCRM's 503). Errors name the vendor and
/// endpoint and never the request (whose headers hold the secret).
///
/// The key's slot is held until the answer's body has been read whole (a vendor counts a
/// connection until its answer is complete), so the returned response's body is already in
/// memory. A body larger than [`MAX_BODY_BYTES`] is an [`ErrorKind::InvalidResponse`]; a body cut
/// short is retried like any transport failure.
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
        let (retry_after, last_error) = match outcome {
            Ok(response) => {
                observe(vendor, endpoint, response.status().as_u16());
                match verdict(&response) {
                    Verdict::Done => match buffered(response).await {
                        Ok(response) => {
                            drop(permit);
                            return Ok(response);
                        }
                        Err(BodyError::TooLarge) => {
                            return Err(ConnectorError::new(
                                vendor,
                                endpoint,
                                ErrorKind::InvalidResponse,
                                format!(
                                    "unexpected response: the answer is larger than {} MiB",
                                    MAX_BODY_BYTES / (1024 * 1024)
                                ),
                            ));
                        }
                        Err(BodyError::Interrupted) => {
                            drop(permit);
                            (
                                None,
                                ConnectorError::new(
                                    vendor,
                                    endpoint,
                                    ErrorKind::Transport,
                                    "response body interrupted after retries",
                                ),
                            )
                        }
                    },
                    Verdict::Retry {
                        retry_after,
                        pause_key,
                    } => {
                        let retry_after = retry_after.map(|r| r.min(MAX_WAIT));
                        let status = response.status();
                        // The answer is not read: closing it frees the connection, then the slot.
                        drop(response);
                        drop(permit);
                        if pause_key {
                            budget.pause_for(retry_after.unwrap_or(policy.min_delay));
                        }
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
                drop(permit);
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
                let wait = retry_after.map_or(backoff, |r| r.max(backoff));
                tokio::time::sleep(wait.min(MAX_WAIT)).await
            }
            None => return Err(last_error),
        }
    }
}

/// Maps a final non-success status to an error, with the vendor's message when the body has one
/// (credential-shaped values masked by [`redact`]; callers also mask their own secret with
/// [`redact_error`]).
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
            truncate(&redact(detail, &[]), 300)
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
        format!(
            "unexpected response: {}",
            truncate(&redact(&what.to_string(), &[]), 300)
        ),
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

/// Masks credentials in text quoted from a vendor: each of `secrets` (the connector's own key or
/// token, and its part before a `-` suffix such as Mailchimp's data centre), then anything shaped
/// like a credential: `Bearer …`/`Basic …`, `api_key=…`/`"token": "…"`, Shopify tokens
/// (`shpat_…`), Mailchimp keys (`<32 hex>-us<n>`) and long runs of letters and digits.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    const MASK: &str = "***";
    let mut out = text.to_string();
    for secret in secrets {
        // A very short "secret" would mask ordinary words; no real credential is that short.
        if secret.len() >= 6 {
            out = out.replace(secret, MASK);
        }
        if let Some((head, _)) = secret.rsplit_once('-')
            && head.len() >= 8
        {
            out = out.replace(head, MASK);
        }
    }
    struct Patterns {
        scheme: Regex,
        assignment: Regex,
        shaped: Regex,
        long_run: Regex,
    }
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| Patterns {
        scheme: Regex::new(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}")
            .expect("static pattern"),
        assignment: Regex::new(
            r#"(?i)((?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|secret|password|authorization)["']?\s*[:=]\s*["']?)[^\s"'&,;}\]]{6,}"#,
        )
        .expect("static pattern"),
        shaped: Regex::new(r"(?i)\bshp(?:at|ca|pa|ss|ua)_[A-Za-z0-9]{6,}|\b[0-9a-f]{32}-us[0-9]{1,3}\b")
            .expect("static pattern"),
        long_run: Regex::new(r"[A-Za-z0-9_]{32,}").expect("static pattern"),
    });
    let out = patterns.shaped.replace_all(&out, MASK);
    let out = patterns.scheme.replace_all(&out, "$1$2***");
    let out = patterns.assignment.replace_all(&out, "${1}***");
    // A long run mixing letters and digits is a key, a token or a hash: never worth the risk.
    let out = patterns
        .long_run
        .replace_all(&out, |caps: &regex::Captures<'_>| {
            let run = &caps[0];
            let digits = run.bytes().any(|b| b.is_ascii_digit());
            let letters = run.bytes().any(|b| b.is_ascii_alphabetic());
            if digits && letters {
                MASK.to_string()
            } else {
                run.to_string()
            }
        });
    out.into_owned()
}

/// [`redact`] applied to an error's message, with the connector's own secrets.
pub fn redact_error(mut error: ConnectorError, secrets: &[&str]) -> ConnectorError {
    error.message = redact(&error.message, secrets);
    error
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
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

#[cfg(test)]
mod budget_registry_tests {
    use super::*;

    const VENDOR: &str = "registry-test";

    fn listed(key: &str) -> bool {
        let short = format!("{:016x}", xxh3_64(key.as_bytes()))[..8].to_string();
        budget_usage()
            .iter()
            .any(|b| b.vendor == VENDOR && b.key == short)
    }

    #[test]
    fn budgets_nobody_holds_go_and_held_or_paused_ones_stay() {
        let held = budget_for(VENDOR, "held-key", 3);
        let released = budget_for(VENDOR, "released-key", 3);
        let paused = budget_for(VENDOR, "paused-key", 3);
        paused.pause_for(Duration::from_secs(60));
        // The same key while held: the same budget, shared.
        assert!(Arc::ptr_eq(&held, &budget_for(VENDOR, "held-key", 3)));
        drop(released);
        drop(paused);
        let _new = budget_for(VENDOR, "new-key", 3);
        assert!(listed("held-key"), "a budget in use is kept");
        assert!(listed("paused-key"), "a pause outlives its connectors");
        assert!(!listed("released-key"), "a budget nobody holds is dropped");
        assert!(listed("new-key"));
    }
}
