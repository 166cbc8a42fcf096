//! Simulator of the Mailchimp Marketing API 3.0, written from
//! `shared/specs/mailchimp/mailchimp-marketing-3.0.55.openapi.yaml` and Mailchimp's documented
//! behaviour. It shares no types with the connector.
//!
//! Mounted under `/mailchimp`, it serves [`ROUTES`] (`/3.0/…`, so a client's base URL is
//! `http://HOST/mailchimp/3.0`), with Mailchimp's wire format: JSON bodies named as in the spec,
//! `count`/`offset` paging with `total_items`, `fields`/`exclude_fields` trimming, and errors as
//! `application/problem+json` documents (`type, title, status, detail, instance`, plus
//! `errors[{field, message}]` on validation errors).
//!
//! With a webhook set ([`Mailchimp::send_webhooks_to`]), status changes made outside the API are
//! posted as Mailchimp's list webhooks post them (see [`webhooks`]).
//!
//! Rules simulated (details on the functions that implement them):
//! - HTTP Basic auth with an API key as the password (401 "API Key Missing"/"API Key Invalid"),
//!   see [`Mailchimp::set_valid_keys`]; a key naming another data centre than the account's
//!   gets 403 "Wrong Datacenter" ([`Mailchimp::set_data_center`]);
//! - at most 10 simultaneous requests per API key, the 11th gets 429 "Too Many Requests"
//!   ([`limit_connections`]);
//! - member id = MD5 of the lowercased address ([`subscriber_hash`]);
//! - "Member Exists", "Forgotten Email Not Subscribed" (after `delete-permanent`), "… looks fake
//!   or invalid" (reserved and placeholder domains and TLDs, throw-away services);
//! - consent history: once unsubscribed or cleaned, a member can never be set `subscribed` by
//!   API, on any route and through any detour (transactional, pending, archive and restore):
//!   400 "Member In Compliance State" (a per-member error in batch subscribe). Only the person's
//!   own confirmation of a `pending` request makes them subscribed again
//!   ([`Mailchimp::confirm_subscription`], over HTTP `POST /_sandbox/mailchimp/confirm`);
//! - batch subscribe ≤500 members with per-member errors inside a 200; static segments (tags)
//!   with ≤500 addresses per bulk update;
//! - merge fields (`FNAME`, `LNAME`, `ADDRESS` as an object, `PHONE`, `BIRTHDAY` by default);
//!   `null` values are refused by the schema; interests only by the ids the audience has
//!   ([`Mailchimp::add_interest`]; others: 400 "Invalid interest ID: '…'.");
//! - each operation's own status enum (`PATCH` has no `transactional`);
//! - SMS member fields (`sms_phone_number`, `sms_subscription_status`), newer than the stored
//!   spec: see [`sms`] for what is known and what is [U];
//! - an optional plan contact limit ([`Mailchimp::set_contact_limit`]);
//! - `last_changed` on every change, for `since_last_changed`; the clock can be moved forward
//!   ([`Mailchimp::advance_clock`]) so tests need no sleeps;
//! - sent campaigns with their sent-to and email-activity reports (see [`reports`]);
//! - member events and the activity feed, with test helpers that send campaigns and record
//!   opens and clicks ([`member_events`]);
//! - an operation of the spec the simulator does not serve answers 501 "Not Implemented" (never
//!   404, which a client would read as a missing record); a method the spec does not have on a
//!   path is 405, a path outside the API 404 ([`SPEC_OPERATIONS`]).
//!
//! Assumptions the spec and Mailchimp's documentation do not settle ([U]):
//! - [U] A cleaned address is refused not only `subscribed` but also `pending` and
//!   `transactional` (only `unsubscribed` is accepted): Mailchimp's help calls cleaned
//!   addresses not re-subscribable, and public reports say they cannot be added back or updated
//!   outside a double opt-in signup. An unsubscribed member may be set `pending` (Mailchimp then
//!   sends a re-confirmation) or `transactional`, but neither lifts the lock.
//! - [U] A member with a consent history cannot change address (PUT/PATCH with another
//!   `email_address`): otherwise the old address would be free to be added as subscribed.
//! - [U] The person's confirmation also clears a cleaned history (as a signup form does in
//!   Mailchimp); a cleaned member only becomes pending outside the API
//!   ([`Mailchimp::set_member_status`]).
//! - [U] The account lives in one data centre, [`DEFAULT_DATA_CENTER`] (`us6`, that of every
//!   example and demo key) unless [`Mailchimp::set_data_center`] says otherwise. The simulator's
//!   URL has no data centre in its host, so the account's stands in for the host's; OAuth tokens
//!   (no `-dc` suffix) are not checked. The detail text of the 403 is the simulator's.
//! - [U] Interest values must be booleans (the spec's `additionalProperties: boolean`).
//! - [U] Which domains Mailchimp calls fake is not published; see the lists in `email.rs`.
//! - [U] The 501 document is the simulator's own (Mailchimp never answers 501).

mod auth;
pub mod ecommerce;
mod email;
mod error;
mod fields;
mod lists;
pub mod member_events;
mod members;
mod merge_fields;
mod params;
mod render;
mod reports;
mod segments;
mod sms;
mod spec_routes;
mod state;
pub mod webhook_routes;
pub mod webhooks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

pub use auth::{DEFAULT_CONNECTION_LIMIT, KeyConnections, limit_connections};
pub use email::subscriber_hash;
pub use error::problem;
pub use lists::MAX_BATCH_MEMBERS;
pub use params::{DEFAULT_COUNT, MAX_COUNT};
pub use segments::MAX_SEGMENT_BATCH;
pub use spec_routes::SPEC_OPERATIONS;
pub use state::MemberStatus;

use error::ApiError;
use state::State;

/// The id of the audience [`Mailchimp::seed_demo`] creates.
pub const DEMO_LIST_ID: &str = "a1b2c3d4e5";
/// The demo's second audience, fed by several sources at once (the store's POS and the web shop):
/// empty until a sync fills it.
pub const COMBINED_LIST_ID: &str = "b2c3d4e5f6";
/// The empty audience the two-way consent example (`examples/shopify-two-way-mailchimp.yaml`)
/// keeps in step with the demo shop.
pub const TWO_WAY_LIST_ID: &str = "c3d4e5f6a7";

/// A well-formed API key the simulator accepts by default (`<32 hex>-<datacenter>`).
pub const EXAMPLE_API_KEY: &str = "0123456789abcdef0123456789abcdef-us6";

/// The data centre the simulated account lives in unless [`Mailchimp::set_data_center`] says
/// otherwise: that of [`EXAMPLE_API_KEY`], which the examples and the demo use.
pub const DEFAULT_DATA_CENTER: &str = "us6";

/// Every route served, as `(method, path template)`; the spec's path is the template without its
/// `/3.0` prefix (`/3.0/` and `/3.0` are the spec's `/`). The router is built from this table.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/3.0/"),
    ("GET", "/3.0"),
    ("GET", "/3.0/ping"),
    ("GET", "/3.0/lists"),
    ("POST", "/3.0/lists"),
    ("GET", "/3.0/lists/{list_id}"),
    ("POST", "/3.0/lists/{list_id}"),
    ("GET", "/3.0/lists/{list_id}/members"),
    ("POST", "/3.0/lists/{list_id}/members"),
    ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("PUT", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("PATCH", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("DELETE", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    (
        "POST",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
    ),
    (
        "GET",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed",
    ),
    (
        "GET",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/events",
    ),
    (
        "POST",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/events",
    ),
    ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags"),
    (
        "POST",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
    ),
    ("GET", "/3.0/campaigns"),
    ("GET", "/3.0/reports/{campaign_id}/sent-to"),
    ("GET", "/3.0/reports/{campaign_id}/email-activity"),
    ("GET", "/3.0/lists/{list_id}/merge-fields"),
    ("POST", "/3.0/lists/{list_id}/merge-fields"),
    ("GET", "/3.0/lists/{list_id}/merge-fields/{merge_id}"),
    ("GET", "/3.0/lists/{list_id}/segments"),
    ("POST", "/3.0/lists/{list_id}/segments"),
    ("GET", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("POST", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("DELETE", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("GET", "/3.0/lists/{list_id}/webhooks"),
    ("POST", "/3.0/lists/{list_id}/webhooks"),
    ("GET", "/3.0/lists/{list_id}/webhooks/{webhook_id}"),
    ("DELETE", "/3.0/lists/{list_id}/webhooks/{webhook_id}"),
    ("GET", "/3.0/lists/{list_id}/segments/{segment_id}/members"),
    ("POST", "/3.0/lists/{list_id}/segments/{segment_id}/members"),
    (
        "DELETE",
        "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
    ),
];

fn endpoint(method: &str, path: &str) -> MethodRouter<Mailchimp> {
    match (method, path) {
        ("GET", "/3.0/" | "/3.0") => get(lists::root),
        ("GET", "/3.0/ping") => get(lists::ping),
        ("GET", "/3.0/lists") => get(lists::get_lists),
        ("POST", "/3.0/lists") => post(lists::create_list),
        ("GET", "/3.0/lists/{list_id}") => get(lists::get_list),
        ("POST", "/3.0/lists/{list_id}") => post(lists::batch_subscribe),
        ("GET", "/3.0/lists/{list_id}/members") => get(members::list_members),
        ("POST", "/3.0/lists/{list_id}/members") => post(members::add_member),
        ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}") => get(members::get_member),
        ("PUT", "/3.0/lists/{list_id}/members/{subscriber_hash}") => put(members::put_member),
        ("PATCH", "/3.0/lists/{list_id}/members/{subscriber_hash}") => patch(members::patch_member),
        ("DELETE", "/3.0/lists/{list_id}/members/{subscriber_hash}") => {
            delete(members::archive_member)
        }
        ("POST", "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent") => {
            post(members::delete_permanent)
        }
        ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/activity-feed") => {
            get(member_events::activity_feed)
        }
        ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/events") => {
            get(member_events::get_events)
        }
        ("POST", "/3.0/lists/{list_id}/members/{subscriber_hash}/events") => {
            post(member_events::post_event)
        }
        ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags") => get(members::get_tags),
        ("POST", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags") => post(members::post_tags),
        ("GET", "/3.0/campaigns") => get(reports::list_campaigns),
        ("GET", "/3.0/reports/{campaign_id}/sent-to") => get(reports::sent_to),
        ("GET", "/3.0/reports/{campaign_id}/email-activity") => get(reports::email_activity),
        ("GET", "/3.0/lists/{list_id}/merge-fields") => get(merge_fields::list_merge_fields),
        ("POST", "/3.0/lists/{list_id}/merge-fields") => post(merge_fields::create_merge_field),
        ("GET", "/3.0/lists/{list_id}/merge-fields/{merge_id}") => {
            get(merge_fields::get_merge_field)
        }
        ("GET", "/3.0/lists/{list_id}/segments") => get(segments::list_segments),
        ("POST", "/3.0/lists/{list_id}/segments") => post(segments::create_segment),
        ("GET", "/3.0/lists/{list_id}/segments/{segment_id}") => get(segments::get_segment),
        ("POST", "/3.0/lists/{list_id}/segments/{segment_id}") => post(segments::batch_segment),
        ("DELETE", "/3.0/lists/{list_id}/segments/{segment_id}") => {
            delete(segments::delete_segment)
        }
        ("GET", "/3.0/lists/{list_id}/segments/{segment_id}/members") => {
            get(segments::segment_members)
        }
        ("POST", "/3.0/lists/{list_id}/segments/{segment_id}/members") => {
            post(segments::add_segment_member)
        }
        ("DELETE", "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}") => {
            delete(segments::remove_segment_member)
        }
        ("GET", "/3.0/lists/{list_id}/webhooks") => get(webhook_routes::list_webhooks),
        ("POST", "/3.0/lists/{list_id}/webhooks") => post(webhook_routes::create_webhook),
        ("GET", "/3.0/lists/{list_id}/webhooks/{webhook_id}") => get(webhook_routes::get_webhook),
        ("DELETE", "/3.0/lists/{list_id}/webhooks/{webhook_id}") => {
            delete(webhook_routes::delete_webhook)
        }
        _ => unreachable!("ROUTES lists {method} {path} without a handler"),
    }
}

impl crate::Simulator for Mailchimp {
    const NAME: &'static str = "mailchimp";

    fn router(&self) -> Router {
        router(self.clone())
    }

    fn reset(&self) {
        Mailchimp::reset(self);
    }

    fn seed(&self, _people: &[crate::seed::Person]) {
        self.seed_demo();
    }

    fn outer_layers(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            limit_connections,
        ))
    }
}

/// The simulator's router (routes inside are `/3.0/…`).
///
/// It authenticates every request and limits simultaneous requests per key itself; `lib.rs`
/// additionally layers [`limit_connections`] outside fault injection, so injected latency holds
/// connections (the inner limiter then skips requests already counted).
pub fn router(sim: Mailchimp) -> Router {
    let mut router: Router<Mailchimp> = Router::new();
    for (method, path) in ROUTES {
        router = router.route(path, endpoint(method, path));
    }
    router = ecommerce::routes(router);
    router
        .fallback(unserved)
        .method_not_allowed_fallback(unserved)
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            auth::limit_connections,
        ))
        .with_state(sim)
}

/// A request no route of [`ROUTES`] takes: 501 "Not Implemented" for an operation of the spec
/// the simulator does not serve, so a gap in the simulator cannot pass for a missing record;
/// Mailchimp's own 405 for a method the spec does not have on the path, 404 for a path outside
/// the API.
async fn unserved(method: Method, uri: Uri) -> ApiError {
    let Some(path) = uri.path().strip_prefix("/3.0") else {
        return ApiError::NotFound;
    };
    match spec_routes::lookup(method.as_str(), path) {
        Ok(template) => ApiError::NotImplemented(format!("{method} /3.0{template}")),
        Err(true) => ApiError::MethodNotAllowed,
        Err(false) => ApiError::NotFound,
    }
}

/// The sandbox control `POST /_sandbox/mailchimp/confirm` (mounted by `lib.rs`, outside the
/// API: no auth, no fault injection, not counted in the stats): body `{"list_id",
/// "email_address"}`, plays "the person clicked the confirmation link" for a `pending` member
/// (see [`Mailchimp::confirm_subscription`]). 204 when done; 404 for no such audience or member;
/// 400 for a member who is not pending or a malformed body.
pub fn confirm_route<S: Clone + Send + Sync + 'static>(sim: Mailchimp) -> MethodRouter<S> {
    post(move |body: Bytes| {
        let sim = sim.clone();
        async move {
            match confirm_request(&sim, &body) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(error) => error.into_response(),
            }
        }
    })
}

fn confirm_request(sim: &Mailchimp, body: &Bytes) -> Result<(), ApiError> {
    let body = params::json_object(body)?;
    let mut fields = params::Fields::new(&body);
    let list_id = fields.required_string("list_id");
    let email = fields.required_string("email_address");
    fields.into_result()?;
    let (Some(list_id), Some(email)) = (list_id, email) else {
        return Err(ApiError::NotFound);
    };
    sim.lock().confirm(&list_id, &subscriber_hash(&email))
}

/// A 200 JSON answer, trimmed by `fields` / `exclude_fields`.
fn respond(doc: Value, params: &params::Params) -> Response {
    let (include, exclude) = params.trimming();
    Json(fields::trim(doc, include.as_deref(), exclude.as_deref())).into_response()
}

/// A member as tests see it (see [`Mailchimp::member`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSnapshot {
    /// The subscriber hash.
    pub id: String,
    pub email_address: String,
    /// The status the API shows (`Archived` for an archived member).
    pub status: MemberStatus,
    /// For an archived member, the status it had when archived; otherwise `status`.
    pub status_before_archive: MemberStatus,
    /// The consent history that blocks resubscribing by API: `Some(Unsubscribed)` or
    /// `Some(Cleaned)` once the member unsubscribed or bounced, until the person confirms.
    pub compliance: Option<MemberStatus>,
    /// Merge-field values that are set, by tag (`ADDRESS` is an object).
    pub merge_fields: BTreeMap<String, Value>,
    /// Tag names, in tag-id order.
    pub tags: Vec<String>,
    pub vip: bool,
    pub language: String,
    pub email_type: String,
    pub last_changed: DateTime<Utc>,
    pub timestamp_opt: Option<DateTime<Utc>>,
    /// `sms_phone_number` (`""` when none).
    pub sms_phone_number: String,
    /// `sms_subscription_status` (`None`: never set).
    pub sms_subscription_status: Option<String>,
}

/// The simulated Mailchimp account, shared by every request (clones share state).
#[derive(Clone, Default)]
pub struct Mailchimp {
    state: Arc<Mutex<State>>,
    /// Kept apart from `state` so `reset()` cannot lose track of requests in flight.
    connections: Arc<Mutex<auth::Connections>>,
    /// Each audience's webhook destination (cleared by `reset()`).
    webhooks: Arc<Mutex<webhooks::Webhooks>>,
    /// Member events and email activity (see [`member_events`]; cleared by `reset()`).
    member_events: Arc<Mutex<member_events::Store>>,
}

impl Mailchimp {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears every audience and setting (keys, data centre, contact limit, clock) and the
    /// connection high-water marks.
    pub fn reset(&self) {
        *self.lock() = State::default();
        *self.member_events.lock().unwrap_or_else(|e| e.into_inner()) = Default::default();
        self.stop_webhooks();
        self.forget_registered_webhooks();
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.limit = DEFAULT_CONNECTION_LIMIT;
        connections.per_key.retain(|_, c| c.in_flight > 0);
        for entry in connections.per_key.values_mut() {
            entry.max_seen = entry.in_flight;
            entry.refused = 0;
        }
    }

    /// Creates the empty audiences [`COMBINED_LIST_ID`] and [`TWO_WAY_LIST_ID`], and the demo audience [`DEMO_LIST_ID`]
    /// ("Demo Audience") with two contacts a person
    /// changed by hand, taken from the demo people of the default seed
    /// (`seed::people(_, 42)`): the first demo person who is subscribed at the shops is
    /// **unsubscribed** here (unsubscribe link), the second is **cleaned** (bounced). A sync of
    /// demo customers that includes them meets "Member In Compliance State" for both; every
    /// other demo customer is new to the audience.
    pub fn seed_demo(&self) {
        self.create_list(DEMO_LIST_ID, "Demo Audience");
        self.create_list(COMBINED_LIST_ID, "Store and web shop");
        self.create_list(TWO_WAY_LIST_ID, "Shop, consent both ways");
        let people = crate::seed::people(64, crate::SandboxOptions::default().seed);
        let mut subscribed = people
            .iter()
            .filter(|p| p.marketing == crate::seed::Marketing::Subscribed);
        for status in [MemberStatus::Unsubscribed, MemberStatus::Cleaned] {
            if let Some(person) = subscribed.next() {
                self.insert_member_with(
                    DEMO_LIST_ID,
                    &person.email,
                    status,
                    json!({"FNAME": person.first_name, "LNAME": person.last_name}),
                    &[],
                );
            }
        }
    }

    /// Creates an audience with this id (replacing one with the same id) and the default merge
    /// fields; returns the id.
    pub fn create_list(&self, id: &str, name: &str) -> String {
        let settings = render::object(json!({
            "name": name,
            "contact": {
                "company": "Audience Operator Sandbox", "address1": "1 Simulator Way", "address2": "",
                "city": "Atlanta", "state": "GA", "zip": "30308", "country": "US", "phone": ""
            },
            "permission_reminder": "You are receiving this email because you shopped with us.",
            "use_archive_bar": true,
            "campaign_defaults": {
                "from_name": "Sandbox Shop", "from_email": "news@audience-sandbox.dev",
                "subject": "", "language": "en"
            },
            "notify_on_subscribe": "",
            "notify_on_unsubscribe": "",
            "email_type_option": false,
            "double_optin": false,
            "marketing_permissions": false,
            "visibility": "prv",
        }));
        let mut state = self.lock();
        state.lists.remove(id);
        state.create_list(Some(id), settings)
    }

    /// Ids of every audience, oldest first.
    pub fn list_ids(&self) -> Vec<String> {
        let state = self.lock();
        let mut lists: Vec<_> = state.lists.values().collect();
        lists.sort_by_key(|l| l.seq);
        lists.into_iter().map(|l| l.id.clone()).collect()
    }

    /// Puts a member straight into an audience, bypassing every API rule (address checks,
    /// compliance, contact limit); an existing member gets the status. Returns the subscriber
    /// hash. Panics if the audience does not exist.
    pub fn insert_member(&self, list_id: &str, email: &str, status: MemberStatus) -> String {
        self.insert_member_with(list_id, email, status, json!({}), &[])
    }

    /// [`Mailchimp::insert_member`] with merge-field values (an object keyed by tag, stored as
    /// given) and tags.
    pub fn insert_member_with(
        &self,
        list_id: &str,
        email: &str,
        status: MemberStatus,
        merge_fields: Value,
        tags: &[&str],
    ) -> String {
        let mut state = self.lock();
        let hash = state
            .insert_direct(list_id, email, status, render::object(merge_fields))
            .unwrap_or_else(|_| panic!("no Mailchimp audience {list_id}"));
        for tag in tags {
            let _ = state.tag_member(list_id, &hash, tag, true);
        }
        hash
    }

    /// Changes a member's status as the contact or Mailchimp would (unsubscribe link, bounce →
    /// `Cleaned`, archive), without the API's compliance rules. Returns false if there is no
    /// such member.
    pub fn set_member_status(&self, list_id: &str, email: &str, status: MemberStatus) -> bool {
        let before = self.member(list_id, email);
        let changed = self
            .lock()
            .set_status_directly(list_id, &subscriber_hash(email), status)
            .is_ok();
        if changed {
            self.notify_status_change(list_id, email, before);
        }
        changed
    }

    /// A merchant edits a member's merge field in Mailchimp's UI (behind any sync's back).
    /// Returns false if there is no such member.
    pub fn edit_merge_field(&self, list_id: &str, email: &str, tag: &str, value: &str) -> bool {
        self.lock()
            .set_merge_field_directly(list_id, &subscriber_hash(email), tag, value.into())
            .is_ok()
    }

    /// The person confirmed their subscription (clicked the double opt-in link): a `pending`
    /// member becomes `subscribed` and their consent history (an earlier unsubscribe or bounce)
    /// is cleared; this is the only way back to `subscribed` once that history exists. Returns
    /// false (and changes nothing) when there is no such member or it is not pending. Over HTTP:
    /// [`confirm_route`].
    pub fn confirm_subscription(&self, list_id: &str, email: &str) -> bool {
        self.lock()
            .confirm(list_id, &subscriber_hash(email))
            .is_ok()
    }

    /// Adds an interest (a group) to an audience and returns its id; writes may then put members
    /// in it (`interests: {id: true}`). Any other interest id is refused ("Invalid interest
    /// ID"). Panics if the audience does not exist.
    pub fn add_interest(&self, list_id: &str, name: &str) -> String {
        let mut state = self.lock();
        let list = state
            .list_mut(list_id)
            .unwrap_or_else(|_| panic!("no Mailchimp audience {list_id}"));
        let id = email::hex_md5(&format!("interest:{list_id}:{name}"))[..10].to_string();
        list.interests.insert(id.clone(), name.to_string());
        id
    }

    /// Permanently deletes a member, as `…/actions/delete-permanent` does. Returns false if there
    /// is no such member.
    pub fn permanently_delete(&self, list_id: &str, email: &str) -> bool {
        self.lock().forget(list_id, &subscriber_hash(email)).is_ok()
    }

    /// Whether this address was permanently deleted from the audience.
    pub fn is_forgotten(&self, list_id: &str, email: &str) -> bool {
        self.lock()
            .lists
            .get(list_id)
            .is_some_and(|l| l.forgotten.contains(&subscriber_hash(email)))
    }

    /// One member by address (any case), archived ones included.
    pub fn member(&self, list_id: &str, email: &str) -> Option<MemberSnapshot> {
        let state = self.lock();
        let list = state.lists.get(list_id)?;
        let hash = subscriber_hash(email);
        list.members.get(&hash).map(|m| snapshot(list, &hash, m))
    }

    /// Every member of an audience, archived ones included, in the order they were added.
    pub fn members(&self, list_id: &str) -> Vec<MemberSnapshot> {
        let state = self.lock();
        state
            .lists
            .get(list_id)
            .map(|list| {
                list.ordered_members()
                    .into_iter()
                    .map(|(hash, m)| snapshot(list, hash, m))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Contacts in the audience in any status except archived. (The API's
    /// `stats.member_count` counts only subscribed members: see [`Mailchimp::count_by_status`].)
    pub fn member_count(&self, list_id: &str) -> usize {
        self.lock()
            .lists
            .get(list_id)
            .map(|l| l.members.values().filter(|m| !m.archived).count())
            .unwrap_or(0)
    }

    /// Members showing this status (`Archived` counts archived members).
    pub fn count_by_status(&self, list_id: &str, status: MemberStatus) -> usize {
        self.lock()
            .lists
            .get(list_id)
            .map(|l| l.count_status(status))
            .unwrap_or(0)
    }

    /// Adds a merge field to an audience (`kind` is a spec type such as `text`, `number`).
    /// Panics if the audience does not exist.
    pub fn add_merge_field(&self, list_id: &str, tag: &str, kind: &str, required: bool) {
        let mut state = self.lock();
        let list = state
            .list_mut(list_id)
            .unwrap_or_else(|_| panic!("no Mailchimp audience {list_id}"));
        let merge_id = list.next_merge_id;
        list.next_merge_id += 1;
        let display_order = list
            .merge_fields
            .iter()
            .map(|f| f.display_order)
            .max()
            .unwrap_or(1)
            + 1;
        list.merge_fields.push(state::MergeField {
            merge_id,
            tag: tag.to_string(),
            name: tag.to_string(),
            kind: kind.to_string(),
            required,
            default_value: String::new(),
            public: false,
            display_order,
            options: state::MergeField::default_options(kind),
            help_text: String::new(),
        });
    }

    /// Tags a member (creating the tag if needed). Returns false if there is no such member.
    pub fn tag_member(&self, list_id: &str, email: &str, tag: &str) -> bool {
        self.lock()
            .tag_member(list_id, &subscriber_hash(email), tag, true)
            .is_ok()
    }

    /// The id of a tag / static segment by name (case-insensitive).
    pub fn segment_id(&self, list_id: &str, name: &str) -> Option<u64> {
        self.lock()
            .lists
            .get(list_id)?
            .segment_by_name(name)
            .map(|s| s.id)
    }

    /// Addresses in a static segment (any member status), in the order they were added.
    pub fn segment_members(&self, list_id: &str, segment_id: u64) -> Vec<String> {
        let state = self.lock();
        let Some(list) = state.lists.get(list_id) else {
            return Vec::new();
        };
        let Some(segment) = list.segments.get(&segment_id) else {
            return Vec::new();
        };
        let mut members: Vec<_> = segment
            .members
            .iter()
            .filter_map(|(hash, added)| list.members.get(hash).map(|m| (*added, m.seq, m)))
            .collect();
        members.sort_by_key(|(added, seq, _)| (*added, *seq));
        members
            .into_iter()
            .map(|(_, _, m)| m.email_address.clone())
            .collect()
    }

    /// Addresses carrying a tag.
    pub fn tag_members(&self, list_id: &str, tag: &str) -> Vec<String> {
        match self.segment_id(list_id, tag) {
            Some(id) => self.segment_members(list_id, id),
            None => Vec::new(),
        }
    }

    /// The plan's contact limit (e.g. `Some(2000)` like the free plan; `None`, the default, for
    /// no limit). Adding a contact that counts (any status but cleaned/archived) while the
    /// account already holds `limit` such contacts is refused: 400 on single writes, a
    /// per-member error in batch subscribe.
    pub fn set_contact_limit(&self, limit: Option<u64>) {
        self.lock().contact_limit = limit;
    }

    /// Contacts that count toward the contact limit, across all audiences.
    pub fn contact_count(&self) -> u64 {
        self.lock().contact_count()
    }

    /// Accepts exactly these API keys (and OAuth bearer tokens) from now on; every other key is
    /// 401 "API Key Invalid". By default any well-formed key (`<32 hex>-<dc>`) is accepted.
    pub fn set_valid_keys<I, K>(&self, keys: I)
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.lock().keys.only = Some(keys.into_iter().map(Into::into).collect());
    }

    /// Moves the account to another data centre (default [`DEFAULT_DATA_CENTER`]): from now on a
    /// key whose suffix names another data centre gets 403 "Wrong Datacenter", as it would on
    /// `https://{dc}.api.mailchimp.com`. The simulator is reached without the data centre in
    /// the host, so the account's data centre stands in for the host's.
    pub fn set_data_center(&self, dc: &str) {
        self.lock().data_center = dc.to_string();
    }

    /// The account's data centre.
    pub fn data_center(&self) -> String {
        self.lock().data_center.clone()
    }

    /// Back to the default: any well-formed key is accepted (revoked keys stay revoked).
    pub fn accept_any_well_formed_key(&self) {
        self.lock().keys.only = None;
    }

    /// Refuses this key from now on (as after the key was deleted in Mailchimp).
    pub fn revoke_key(&self, key: &str) {
        self.lock().keys.revoked.insert(key.to_string());
    }

    /// Changes the simultaneous-connection limit per key (Mailchimp's is 10).
    pub fn set_connection_limit(&self, limit: usize) {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .limit = limit;
    }

    /// Connection counters of one API key.
    pub fn connections(&self, key: &str) -> KeyConnections {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .per_key
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    /// The most simultaneous requests ever served for this key (never above the limit).
    pub fn max_concurrent_seen(&self, key: &str) -> usize {
        self.connections(key).max_seen
    }

    /// Requests of this key being served right now.
    pub fn in_flight(&self, key: &str) -> usize {
        self.connections(key).in_flight
    }

    /// Moves the simulator's clock forward (timestamps such as `last_changed` come from it).
    pub fn advance_clock(&self, by: Duration) {
        self.lock().clock_offset += by;
    }

    /// The simulator's current time (whole seconds, as Mailchimp stores timestamps).
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().now()
    }
}

fn snapshot(list: &state::List, hash: &str, member: &state::Member) -> MemberSnapshot {
    MemberSnapshot {
        id: hash.to_string(),
        email_address: member.email_address.clone(),
        status: member.visible_status(),
        status_before_archive: member.status,
        compliance: member.compliance,
        merge_fields: member.merge_fields.clone(),
        tags: list
            .tags_of(hash)
            .into_iter()
            .map(|(s, _)| s.name.clone())
            .collect(),
        vip: member.vip,
        language: member.language.clone(),
        email_type: member.email_type.clone(),
        last_changed: member.last_changed,
        timestamp_opt: member.timestamp_opt,
        sms_phone_number: member.sms_phone_number.clone(),
        sms_subscription_status: member.sms_subscription_status.clone(),
    }
}
