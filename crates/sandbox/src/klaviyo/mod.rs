//! Simulator of the Klaviyo API, revision 2026-07-15, written from
//! `shared/specs/klaviyo/klaviyo-openapi-stable-2026-07-15.json` and the Klaviyo section of
//! `shared/specs/README.md`. It shares no types with the connector.
//!
//! Mounted under `/klaviyo`, it serves [`ROUTES`] (`/api/…`, so a client's base URL is
//! `http://HOST/klaviyo`) with Klaviyo's wire format: JSON:API documents
//! (`application/vnd.api+json`), cursor pages with `links.next`, and JSON:API error documents
//! (`errors[{id, status, code, title, detail, source}]`, see [`error`]).
//!
//! Rules simulated (details in each module's docs):
//! - `Authorization: Klaviyo-API-Key <key>` (401), `revision: 2026-07-15` (400), bodies as
//!   `application/vnd.api+json` (415) ([`auth`]); unknown members and a wrong `type` are refused
//!   with `source.pointer` ([`jsonapi`]);
//! - per-operation rate limits from each operation's `x-klaviyo-ratelimit` ([`ratelimit`]),
//!   scalable for tests ([`Klaviyo::set_rate_limit_scale`]);
//! - profiles ([`profiles`]), bulk import jobs ([`imports`]), lists and their members
//!   ([`lists`]), consent ([`subscriptions`]), segments ([`segments`]), events and metrics
//!   ([`events`]), the account ([`accounts`]).
//!
//! State a test reads back: [`Klaviyo::profile_by_email`] (with consent and suppressions),
//! [`Klaviyo::list_members`], [`Klaviyo::events`] (by metric), [`Klaviyo::flows_triggered`], [`Klaviyo::throttled`]. Seeding:
//! [`Klaviyo::seed_profile`] (subscribed, unsubscribed, bounced, spam-reported…),
//! [`Klaviyo::create_list`]. The clock can be frozen and moved ([`Klaviyo::freeze_clock`]).
//!
//! Scopes: a key given scopes ([`Klaviyo::set_key_scopes`]) is refused (403) on routes needing
//! others, per the spec's `x-klaviyo-scopes`; other keys have every scope.
//!
//! [U] Not simulated: OAuth, `include`,
//! `predictive_analytics`, SMS/WhatsApp/push consent, sorting other than by id/creation, and
//! `meta.patch_properties`.

pub mod accounts;
pub mod auth;
pub mod directory;
pub mod error;
pub mod events;
pub mod filter;
pub mod imports;
pub mod jsonapi;
pub mod lists;
pub mod profiles;
pub mod ratelimit;
pub mod scopes;
pub mod segments;
pub mod state;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use chrono::{DateTime, Duration, Utc};

use error::ApiError;
use ratelimit::{L, Limits, M, XL, XS};
pub use state::{Consent, OptIn, Profile, Suppression};
use state::{Patch, ProfileInput, State};

/// The revision served.
pub const REVISION: &str = "2026-07-15";

/// The JSON:API media type of every body.
pub const JSON_API: &str = "application/vnd.api+json";

/// A well-formed private key the simulator accepts by default.
pub const EXAMPLE_API_KEY: &str = "pk_0123456789abcdef0123456789abcdef01";

/// Every route served, as `(method, path template, rate limits)`; the spec's path is the
/// template itself. The router is built from this table; the limits are each operation's
/// `x-klaviyo-ratelimit` (the spec-conformance test checks both).
pub const ROUTES: &[(&str, &str, Limits)] = &[
    ("GET", "/api/profiles", L),
    ("POST", "/api/profiles", L),
    ("GET", "/api/profiles/{id}", L),
    ("PATCH", "/api/profiles/{id}", L),
    ("POST", "/api/profile-import", L),
    ("GET", "/api/profile-bulk-import-jobs", M),
    ("POST", "/api/profile-bulk-import-jobs", M),
    ("GET", "/api/profile-bulk-import-jobs/{job_id}", M),
    ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors", M),
    ("GET", "/api/lists", L),
    ("POST", "/api/lists", M.daily(150)),
    ("GET", "/api/lists/{id}", L),
    ("GET", "/api/lists/{id}/profiles", L),
    ("POST", "/api/lists/{id}/relationships/profiles", M),
    ("DELETE", "/api/lists/{id}/relationships/profiles", M),
    ("POST", "/api/profile-subscription-bulk-create-jobs", L),
    ("POST", "/api/profile-subscription-bulk-delete-jobs", L),
    ("GET", "/api/segments", L),
    ("GET", "/api/segments/{id}", L),
    ("GET", "/api/segments/{id}/profiles", L),
    ("POST", "/api/events", XL),
    ("POST", "/api/event-bulk-create-jobs", M),
    ("GET", "/api/metrics", M),
    ("GET", "/api/metrics/{id}", M),
    ("GET", "/api/accounts", XS),
    ("GET", "/api/accounts/{id}", XS),
];

fn endpoint(method: &str, path: &str) -> MethodRouter<Klaviyo> {
    match (method, path) {
        ("GET", "/api/profiles") => get(profiles::get_profiles),
        ("POST", "/api/profiles") => post(profiles::create_profile),
        ("GET", "/api/profiles/{id}") => get(profiles::get_profile),
        ("PATCH", "/api/profiles/{id}") => patch(profiles::update_profile),
        ("POST", "/api/profile-import") => post(profiles::profile_import),
        ("GET", "/api/profile-bulk-import-jobs") => get(imports::get_jobs),
        ("POST", "/api/profile-bulk-import-jobs") => post(imports::create_job),
        ("GET", "/api/profile-bulk-import-jobs/{job_id}") => get(imports::get_job),
        ("GET", "/api/profile-bulk-import-jobs/{id}/import-errors") => get(imports::get_errors),
        ("GET", "/api/lists") => get(lists::get_lists),
        ("POST", "/api/lists") => post(lists::create_list),
        ("GET", "/api/lists/{id}") => get(lists::get_list),
        ("GET", "/api/lists/{id}/profiles") => get(lists::list_profiles),
        ("POST", "/api/lists/{id}/relationships/profiles") => post(lists::add_profiles),
        ("DELETE", "/api/lists/{id}/relationships/profiles") => delete(lists::remove_profiles),
        ("POST", "/api/profile-subscription-bulk-create-jobs") => post(subscriptions::subscribe),
        ("POST", "/api/profile-subscription-bulk-delete-jobs") => post(subscriptions::unsubscribe),
        ("GET", "/api/segments") => get(segments::get_segments),
        ("GET", "/api/segments/{id}") => get(segments::get_segment),
        ("GET", "/api/segments/{id}/profiles") => get(segments::segment_profiles),
        ("POST", "/api/events") => post(events::create_event),
        ("POST", "/api/event-bulk-create-jobs") => post(events::bulk_create_events),
        ("GET", "/api/metrics") => get(events::get_metrics),
        ("GET", "/api/metrics/{id}") => get(events::get_metric),
        ("GET", "/api/accounts") => get(accounts::get_accounts),
        ("GET", "/api/accounts/{id}") => get(accounts::get_account),
        _ => unreachable!("ROUTES lists {method} {path} without a handler"),
    }
}

/// The simulator's router (routes inside are `/api/…`); each route passes [`auth::gate`] with
/// its own rate limits.
pub fn router(sim: Klaviyo) -> Router {
    let mut router: Router<Klaviyo> = Router::new();
    for (method, path, limits) in ROUTES {
        let gate = auth::Gate {
            sim: sim.clone(),
            operation: (method, path),
            limits: *limits,
        };
        router = router.route(
            path,
            endpoint(method, path).layer(axum::middleware::from_fn_with_state(gate, auth::gate)),
        );
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bulk jobs take up to 5 MB; the handlers refuse more with Klaviyo's own error.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(sim)
}

async fn not_found() -> ApiError {
    ApiError::not_found("The requested resource does not exist.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// The answer of an injected 429 fault, in Klaviyo's format.
pub fn throttled_response(retry_after_secs: u64) -> Response {
    ApiError::throttled(retry_after_secs).into_response()
}

/// The answer of an injected "error quoting the credential" fault, in Klaviyo's format.
pub fn invalid_request_response(detail: &str) -> Response {
    ApiError::invalid("/data", detail).into_response()
}

/// The answer of an injected 500 fault, in Klaviyo's format.
pub fn server_error_response() -> Response {
    ApiError::server_error().into_response()
}

/// How a seeded profile stands with email marketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedConsent {
    NeverSubscribed,
    Subscribed,
    /// Unsubscribed through an unsubscribe link (UNSUBSCRIBE suppression).
    Unsubscribed,
    /// Subscribed once, then hard-bounced (HARD_BOUNCE suppression).
    Bounced,
    /// Subscribed once, then marked as spam (SPAM_COMPLAINT suppression).
    SpamReported,
    /// Suppressed by hand in Klaviyo (USER_SUPPRESSED).
    UserSuppressed,
}

/// The simulated Klaviyo account, shared by every request (clones share state).
#[derive(Clone, Default)]
pub struct Klaviyo {
    state: Arc<Mutex<State>>,
}

impl crate::Simulator for Klaviyo {
    const NAME: &'static str = "klaviyo";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        Klaviyo::reset(self);
    }

    /// The target starts empty; demos create their lists.
    fn seed(&self, _people: &[crate::seed::Person]) {}
}

impl Klaviyo {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears every profile, list, job, counter and setting.
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// Accepts only these keys from now on.
    pub fn set_valid_keys<I, K>(&self, keys: I)
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.lock().keys = state::Keys::Only(keys.into_iter().map(Into::into).collect());
    }

    /// Gives `key` only these scopes (e.g. `profiles:read`); a route needing others answers 403.
    pub fn set_key_scopes(&self, key: &str, scopes: &[&str]) {
        self.lock().key_scopes.insert(
            key.to_string(),
            scopes.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Window lengths are multiplied by `scale` (e.g. 0.01: a burst window of 10 ms).
    pub fn set_rate_limit_scale(&self, scale: f64) {
        self.lock().limiter.scale = scale;
    }

    /// Turns rate limiting off (headers are still sent) or on.
    pub fn set_rate_limits_enabled(&self, enabled: bool) {
        self.lock().limiter.enabled = enabled;
    }

    /// 429s answered for one route template (e.g. `/api/profile-bulk-import-jobs`).
    pub fn throttled(&self, path: &str) -> u64 {
        self.lock()
            .limiter
            .throttled
            .iter()
            .filter(|((_, p), _)| *p == path)
            .map(|(_, n)| n)
            .sum()
    }

    /// Reads of a bulk import job that move it one stage on: 1 (default) means queued →
    /// processing on the first read, complete on the second; 0 completes jobs on creation.
    pub fn set_job_stage_polls(&self, polls: u32) {
        self.lock().job_stage_polls = polls;
    }

    /// Completes every bulk import job.
    pub fn complete_jobs(&self) {
        let mut state = self.lock();
        let ids: Vec<String> = state.import_jobs.keys().cloned().collect();
        for id in ids {
            state.complete_job(&id);
        }
    }

    /// Stops the clock at `at` (timestamps and rate-limit windows follow it).
    pub fn freeze_clock(&self, at: DateTime<Utc>) {
        self.lock().freeze_clock(at);
    }

    pub fn advance_clock(&self, by: Duration) {
        self.lock().advance_clock(by);
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }

    /// The account's time zone (`GET /api/accounts`).
    pub fn set_timezone(&self, timezone: &str) {
        self.lock().account.timezone = timezone.to_string();
    }

    /// The opt-in process of lists created without one and of subscribe calls without a list.
    pub fn set_default_opt_in(&self, opt_in: OptIn) {
        self.lock().account.default_opt_in = opt_in;
    }

    /// Creates a list; returns its id.
    pub fn create_list(&self, name: &str, opt_in: OptIn) -> String {
        self.lock().create_list(name, opt_in)
    }

    pub fn list_id(&self, name: &str) -> Option<String> {
        self.lock()
            .lists
            .values()
            .find(|l| l.name == name)
            .map(|l| l.id.clone())
    }

    /// Deletes a list, as someone in Klaviyo's web app would; false when there is none.
    pub fn delete_list(&self, id: &str) -> bool {
        self.lock().lists.remove(id).is_some()
    }

    pub fn list_ids(&self) -> Vec<String> {
        self.lock().lists.keys().cloned().collect()
    }

    /// Seeds a profile with this email, names and consent; returns its id.
    pub fn seed_profile(
        &self,
        email: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
        consent: SeedConsent,
    ) -> String {
        let mut state = self.lock();
        let input = ProfileInput {
            email: Patch::Set(email.to_string()),
            first_name: first_name.map_or(Patch::Absent, |n| Patch::Set(n.to_string())),
            last_name: last_name.map_or(Patch::Absent, |n| Patch::Set(n.to_string())),
            ..ProfileInput::default()
        };
        let (id, _) = state
            .upsert_profile(None, &input)
            .expect("seeded profiles have one identifier");
        let now = state.now();
        let mut profile = state.profiles.get_mut(&id).expect("just created");
        let m = &mut profile.email_marketing;
        let (consent_state, suppression) = match consent {
            SeedConsent::NeverSubscribed => (Consent::NeverSubscribed, None),
            SeedConsent::Subscribed => (Consent::Subscribed, None),
            SeedConsent::Unsubscribed => (Consent::Unsubscribed, Some(Suppression::Unsubscribe)),
            SeedConsent::Bounced => (Consent::Subscribed, Some(Suppression::HardBounce)),
            SeedConsent::SpamReported => (Consent::Subscribed, Some(Suppression::SpamComplaint)),
            SeedConsent::UserSuppressed => (Consent::Subscribed, Some(Suppression::UserSuppressed)),
        };
        m.consent = consent_state;
        if consent_state != Consent::NeverSubscribed {
            m.consent_timestamp = Some(now);
            m.method = Some("SEED".to_string());
            m.last_updated = Some(now);
        }
        if let Some(reason) = suppression {
            m.suppress(reason, now);
        }
        id
    }

    /// Adds a profile to a list (no consent change), as a marketer would by hand.
    pub fn add_to_list(&self, list_id: &str, profile_id: &str) -> bool {
        self.lock().add_member(list_id, profile_id)
    }

    pub fn profile(&self, id: &str) -> Option<Profile> {
        self.lock().profiles.get(id).cloned()
    }

    pub fn profile_by_email(&self, email: &str) -> Option<Profile> {
        self.lock().find_by_email(email).cloned()
    }

    pub fn profile_count(&self) -> usize {
        self.lock().profiles.len()
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.lock().profiles.values().cloned().collect()
    }

    /// Emails of a list's members, sorted.
    pub fn list_members(&self, list_id: &str) -> Vec<String> {
        let state = self.lock();
        let mut emails: Vec<String> = state
            .lists
            .get(list_id)
            .map(|l| {
                l.members
                    .keys()
                    .filter_map(|id| state.profiles.get(id))
                    .filter_map(|p| p.email.clone())
                    .collect()
            })
            .unwrap_or_default();
        emails.sort();
        emails
    }

    /// What a person does with a double opt-in email: confirms, is subscribed and joins the
    /// list. False if no confirmation was pending.
    pub fn confirm_double_opt_in(&self, list_id: &str, email: &str) -> bool {
        let mut state = self.lock();
        let now = state.now();
        let Some(id) = state.find_by_email(email).map(|p| p.id.clone()) else {
            return false;
        };
        let mut profile = state.profiles.get_mut(&id).expect("found");
        if !profile.pending_double_opt_in.remove(list_id) {
            return false;
        }
        let m = &mut profile.email_marketing;
        m.consent = Consent::Subscribed;
        m.consent_timestamp = Some(now);
        m.double_optin = Some(true);
        m.last_updated = Some(now);
        drop(profile);
        if state.add_member(list_id, &id) {
            state.count_flow(format!("list:{list_id}"));
        }
        true
    }

    /// Double opt-in emails sent for a list.
    pub fn double_opt_in_sent(&self, list_id: &str) -> u64 {
        self.lock()
            .double_opt_in_sent
            .get(list_id)
            .copied()
            .unwrap_or(0)
    }

    /// Flows a real account would have started, by trigger: `list:{id}` ("added to list", not
    /// for `historical_import`), `metric:{name}` (events without `backfill`).
    pub fn flows_triggered(&self) -> BTreeMap<String, u64> {
        self.lock().flows_triggered.clone()
    }

    /// "Added to list" flows started for one list.
    pub fn list_flows(&self, list_id: &str) -> u64 {
        self.lock()
            .flows_triggered
            .get(&format!("list:{list_id}"))
            .copied()
            .unwrap_or(0)
    }

    /// Creates a segment with these members (profile ids); returns its id.
    pub fn create_segment(&self, name: &str, members: &[String]) -> String {
        let mut state = self.lock();
        let id = state.short_id('S');
        let now = state.now();
        state.segments.insert(
            id.clone(),
            state::Segment {
                id: id.clone(),
                name: name.to_string(),
                created: now,
                updated: now,
                members: members.iter().map(|m| (m.clone(), now)).collect(),
            },
        );
        id
    }

    /// Stored events of the metric named `metric`, oldest first.
    pub fn events(&self, metric: &str) -> Vec<state::Event> {
        let state = self.lock();
        let Some(metric_id) = state
            .metrics
            .values()
            .find(|m| m.name == metric)
            .map(|m| m.id.clone())
        else {
            return Vec::new();
        };
        state
            .events
            .iter()
            .filter(|e| e.metric_id == metric_id)
            .cloned()
            .collect()
    }

    /// Flows started by events of one metric (events without `backfill`).
    pub fn metric_flows(&self, metric: &str) -> u64 {
        self.lock()
            .flows_triggered
            .get(&format!("metric:{metric}"))
            .copied()
            .unwrap_or(0)
    }
}
