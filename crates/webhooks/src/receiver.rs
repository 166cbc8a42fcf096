//! The shared state behind the routes: configuration, limits, dedupe memory, counters, and the
//! channel hints leave by.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;

use crate::dedupe::Dedupe;
use crate::hint::{Hint, Vendor};
use crate::secrets::SecretResolver;
use crate::{lightspeed_x, mailchimp, shopify};

/// Hints waiting for the debouncer in [`Webhooks::with_triggers`]; past it, deliveries get 503.
pub const HINT_QUEUE: usize = 1024;

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: NonZeroU32::new(per_second.max(1)).expect("non-zero"),
            burst: NonZeroU32::new(burst.max(1)).expect("non-zero"),
        }
    }

    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// How the receiver guards itself. The defaults suit one operator serving many merchants.
#[derive(Debug, Clone)]
pub struct Config {
    /// Larger bodies are refused with 413 (Shopify order payloads reach a few hundred KiB).
    pub max_body_bytes: usize,
    /// Shopify deliveries whose `X-Shopify-Triggered-At` is older than this are acknowledged and
    /// dropped: Shopify retries for hours, and by then polling has long read the change.
    pub shopify_max_age: Duration,
    /// How far in the future a `X-Shopify-Triggered-At` may be (clock skew) before it is dropped too.
    pub max_clock_skew: Duration,
    /// Delivery ids remembered for deduplication (each for `shopify_max_age + max_clock_skew`).
    pub dedupe_capacity: NonZeroUsize,
    /// Per verified account (`vendor`, `account`): beyond it, 429 (the vendor retries later).
    pub per_account: RateLimit,
    /// Per vendor endpoint, before any verification: bounds the CPU an unauthenticated flood costs.
    pub per_vendor: RateLimit,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_body_bytes: 1024 * 1024,
            shopify_max_age: Duration::from_secs(3600),
            max_clock_skew: Duration::from_secs(300),
            dedupe_capacity: NonZeroUsize::new(10_000).expect("non-zero"),
            per_account: RateLimit::new(20, 200),
            per_vendor: RateLimit::new(200, 1000),
        }
    }
}

/// What happened to deliveries so far (for metrics; every delivery lands in exactly one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Hints handed on.
    pub accepted: u64,
    /// Verified, but the same delivery id was already accepted.
    pub duplicate: u64,
    /// Verified, but older than the window (or too far in the future).
    pub stale: u64,
    /// Verified, but a topic no sync cares about (acknowledged so the vendor stops retrying).
    pub ignored: u64,
    /// Mailchimp's URL validation GETs answered.
    pub validated: u64,
    /// 401: no signature / secret, wrong one, or an account no secret is known for.
    pub unauthorized: u64,
    /// 400: headers or body that do not parse.
    pub malformed: u64,
    /// 413.
    pub too_large: u64,
    /// 429.
    pub rate_limited: u64,
    /// 503: the hint channel was full or closed (the vendor retries).
    pub unavailable: u64,
}

#[derive(Default)]
struct AtomicCounters {
    accepted: AtomicU64,
    duplicate: AtomicU64,
    stale: AtomicU64,
    ignored: AtomicU64,
    validated: AtomicU64,
    unauthorized: AtomicU64,
    malformed: AtomicU64,
    too_large: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
}

/// A delivery's fate when it is answered 2xx.
#[derive(Debug)]
pub(crate) enum Outcome {
    Accepted,
    Duplicate,
    Stale,
    Ignored,
    Validated,
}

/// A delivery refused. The answer body is a fixed word: nothing from the request is echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Unauthorized,
    Malformed(&'static str),
    TooLarge,
    RateLimited { retry_after_secs: u64 },
    Unavailable,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) resolver: Box<dyn SecretResolver>,
    hints: mpsc::Sender<Hint>,
    dedupe: Mutex<Dedupe>,
    per_account: DefaultKeyedRateLimiter<(Vendor, String)>,
    per_vendor: [DefaultDirectRateLimiter; 3],
    counters: AtomicCounters,
}

fn vendor_index(vendor: Vendor) -> usize {
    match vendor {
        Vendor::Shopify => 0,
        Vendor::Mailchimp => 1,
        Vendor::LightspeedX => 2,
    }
}

impl Inner {
    /// The unauthenticated per-endpoint limit, checked before anything else.
    pub(crate) fn admit(&self, vendor: Vendor) -> Result<(), Reject> {
        self.per_vendor[vendor_index(vendor)]
            .check()
            .map_err(|not_until| Reject::RateLimited {
                retry_after_secs: retry_after(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ),
            })
    }

    /// Hands a verified hint on: per-account limit, then dedupe (so a delivery refused by the limit
    /// is not remembered and its retry is accepted), then the channel.
    pub(crate) fn deliver(
        &self,
        hint: Hint,
        delivery_id: Option<String>,
    ) -> Result<Outcome, Reject> {
        let key = (hint.vendor, hint.account.clone());
        if let Err(not_until) = self.per_account.check_key(&key) {
            return Err(Reject::RateLimited {
                retry_after_secs: retry_after(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ),
            });
        }
        let dedupe_key = delivery_id.map(|id| format!("{}\n{}\n{}", hint.vendor, hint.account, id));
        if let Some(k) = &dedupe_key
            && self
                .dedupe
                .lock()
                .expect("dedupe lock")
                .seen_before(k.clone())
        {
            return Ok(Outcome::Duplicate);
        }
        match self.hints.try_send(hint) {
            Ok(()) => Ok(Outcome::Accepted),
            Err(_) => {
                // Not handed on, so not a duplicate when the vendor retries.
                if let Some(k) = dedupe_key {
                    self.dedupe.lock().expect("dedupe lock").forget(&k);
                }
                Err(Reject::Unavailable)
            }
        }
    }

    /// Counts and answers. Logs the vendor, the account when verified, and the outcome: never a
    /// secret, a signature or a body.
    pub(crate) fn answer(
        &self,
        vendor: Vendor,
        account: Option<&str>,
        result: Result<Outcome, Reject>,
    ) -> Response {
        let c = &self.counters;
        let bump = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
        };
        match result {
            Ok(outcome) => {
                bump(match outcome {
                    Outcome::Accepted => &c.accepted,
                    Outcome::Duplicate => &c.duplicate,
                    Outcome::Stale => &c.stale,
                    Outcome::Ignored => &c.ignored,
                    Outcome::Validated => &c.validated,
                });
                tracing::debug!(%vendor, account = account.unwrap_or("-"), ?outcome, "webhook answered");
                StatusCode::OK.into_response()
            }
            Err(reject) => {
                let (status, word) = match reject {
                    Reject::Unauthorized => {
                        bump(&c.unauthorized);
                        (StatusCode::UNAUTHORIZED, "unauthorized")
                    }
                    Reject::Malformed(what) => {
                        bump(&c.malformed);
                        (StatusCode::BAD_REQUEST, what)
                    }
                    Reject::TooLarge => {
                        bump(&c.too_large);
                        (StatusCode::PAYLOAD_TOO_LARGE, "body too large")
                    }
                    Reject::RateLimited { .. } => {
                        bump(&c.rate_limited);
                        (StatusCode::TOO_MANY_REQUESTS, "rate limited")
                    }
                    Reject::Unavailable => {
                        bump(&c.unavailable);
                        (StatusCode::SERVICE_UNAVAILABLE, "busy")
                    }
                };
                tracing::debug!(%vendor, account = account.unwrap_or("-"), status = status.as_u16(), reason = word, "webhook refused");
                let mut response = (status, word).into_response();
                if let Reject::RateLimited { retry_after_secs } = reject {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                }
                response
            }
        }
    }

    fn counters(&self) -> Counters {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            accepted: load(&c.accepted),
            duplicate: load(&c.duplicate),
            stale: load(&c.stale),
            ignored: load(&c.ignored),
            validated: load(&c.validated),
            unauthorized: load(&c.unauthorized),
            malformed: load(&c.malformed),
            too_large: load(&c.too_large),
            rate_limited: load(&c.rate_limited),
            unavailable: load(&c.unavailable),
        }
    }
}

fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The webhook receiver: routes for every vendor, sharing one configuration, one secret lookup
/// and one hint channel. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: std::sync::Arc<Inner>,
}

impl Webhooks {
    /// Accepted hints go to `hints` with `try_send`: when it is full the delivery is answered 503
    /// (the vendor retries), so a slow consumer never blocks the receiver.
    pub fn new(
        config: Config,
        resolver: impl SecretResolver,
        hints: mpsc::Sender<Hint>,
    ) -> Webhooks {
        let ttl = config.shopify_max_age + config.max_clock_skew;
        let per_vendor = [(); 3].map(|_| RateLimiter::direct(config.per_vendor.quota()));
        Webhooks {
            inner: std::sync::Arc::new(Inner {
                dedupe: Mutex::new(Dedupe::new(config.dedupe_capacity, ttl)),
                per_account: RateLimiter::keyed(config.per_account.quota()),
                per_vendor,
                resolver: Box::new(resolver),
                hints,
                counters: AtomicCounters::default(),
                config,
            }),
        }
    }

    /// A receiver whose hints go through a [`debounce`](crate::debounce)r of `window`: the
    /// returned channel yields one [`Trigger`](crate::Trigger) per account and window. Call
    /// inside a Tokio runtime (the debouncer is a task on it).
    pub fn with_triggers(
        config: Config,
        resolver: impl SecretResolver,
        window: Duration,
    ) -> (Webhooks, mpsc::Receiver<crate::Trigger>) {
        let (tx, rx) = mpsc::channel(HINT_QUEUE);
        (
            Webhooks::new(config, resolver, tx),
            crate::debounce(window, rx),
        )
    }

    /// The routes, to mount at the root of the receiver's listener:
    /// - `POST /webhooks/shopify`
    /// - `GET|POST /webhooks/mailchimp/{secret}`
    /// - `POST /webhooks/lightspeed-x` and `POST /webhooks/lightspeed-x/{domain_prefix}`
    pub fn router(&self) -> Router {
        Router::new()
            .route("/webhooks/shopify", post(shopify::handle))
            .route(
                "/webhooks/mailchimp/{secret}",
                post(mailchimp::handle).get(mailchimp::validate),
            )
            .route("/webhooks/lightspeed-x", post(lightspeed_x::handle))
            .route(
                "/webhooks/lightspeed-x/{domain_prefix}",
                post(lightspeed_x::handle_with_prefix),
            )
            .layer(DefaultBodyLimit::max(self.inner.config.max_body_bytes))
            .with_state(self.inner.clone())
    }

    pub fn counters(&self) -> Counters {
        self.inner.counters()
    }

    /// Deliveries ids currently remembered.
    pub fn remembered_ids(&self) -> usize {
        self.inner.dedupe.lock().expect("dedupe lock").len()
    }

    /// Drops rate-limit state of accounts idle long enough to be back at a full bucket.
    pub fn prune(&self) {
        self.inner.per_account.retain_recent();
    }
}

/// Maps the body extractor's refusal: 413 when too large, else 400.
pub(crate) fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> Reject {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Reject::TooLarge
    } else {
        Reject::Malformed("unreadable body")
    }
}
