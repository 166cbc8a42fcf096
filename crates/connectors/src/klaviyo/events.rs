//! Order events into Klaviyo metrics: an [`EventSink`] on `POST /api/event-bulk-create-jobs`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_core::ConnectorError> {
//! use audience_connectors::klaviyo::{KlaviyoConfig, KlaviyoEventSink, ListRef};
//! // The list is not used by the sink: events are not list members.
//! let sink = KlaviyoEventSink::new(KlaviyoConfig::new("pk_…", ListRef::Name("unused".into())))?;
//! # Ok(()) }
//! ```
//!
//! # Jobs
//! Events are cut by [`audience_core::plan_batches`] into jobs of at most
//! [`MAX_EVENTS_PER_JOB`] events and [`MAX_EVENT_JOB_BYTES`] bytes, between orders, so
//! `ceil(events / 1,000)` jobs when events are small. Inside a job the events are grouped per
//! profile, as the spec's body requires (`events-bulk-create.data[]` holds one profile each with
//! its own `events.data[]`), in the order the profiles first appear.
//!
//! Each event carries its metric name, `time` (UTC, to the second, as Klaviyo truncates it),
//! `value` (a JSON number written from the decimal's text, never computed in floats),
//! `value_currency`, its stable `unique_id` (Klaviyo records an event once per profile, metric
//! and `unique_id`, so resending after a crash records nothing twice) and `backfill` for history
//! (recorded, firing no flows).
//!
//! # Profiles
//! The profile is identified by email. It carries the order's customer name and location
//! (`first_name`, `last_name`, `location{city, region, zip, country}`), non-empty values only, so
//! a new profile is created with them; Klaviyo's bulk events update an existing profile's
//! attributes too, which is what seed 003's integration does ("properties from Lightspeed are
//! added to every Klaviyo profile") and never clears one. Never consent: the bulk event body has
//! no subscriptions, and the sink sends no subscription job (an order is not a sign-up). No phone
//! number: Klaviyo refuses a whole job for one that is not E.164.
//!
//! # Refusals
//! A job is all or nothing (the spec: a repeated `unique_id` "the request will fail and no events
//! will be processed"). A 400 whose error points into the body (`source.pointer`
//! `/data/attributes/events-bulk-create/data/{i}/…`) names the refused profile entry, or event
//! within it: that order's events (all of the entry's, for an error in its profile) become
//! [`EventRejection`]s with Klaviyo's words, and the rest of the job is sent again without them,
//! so an order is never half recorded. An event given twice in one call is sent once. A 400 that
//! points nowhere, and every other error, fails
//! the send (the caller keeps its cursor and tries again later). An event too large for any job
//! (over 5 MB encoded, or a string over 100 KB) is refused before sending, with its order.
//!
//! # Calls and limits
//! Jobs go out `write_concurrency` at once, paced by the operation's window (10/s, 150/m,
//! shared by every sync on the key) and the key's budget, through the shared retry loop. A stop
//! request is honoured between jobs. [`EventSink::time_zone`] reads `GET /api/accounts`.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use audience_core::event_batches::{BatchSizer, KLAVIYO_BULK, plan_batches};
use audience_core::order_events::decimal_json;
use audience_core::{
    ApplyControl, ConnectorError, EventRejection, EventReport, EventSink, OrderEvent,
};
use chrono::SecondsFormat;
use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::KlaviyoConfig;
use super::client::{Call, Client, VENDOR};
use super::wire::ErrorDocument;
use crate::http::{invalid_response, truncate};

/// Events per bulk job (the API's maximum, counting every profile's events).
pub const MAX_EVENTS_PER_JOB: usize = KLAVIYO_BULK.max_events;
/// Bytes per bulk job body: "5MB", [U] read as 5,000,000 (the smaller reading).
pub const MAX_EVENT_JOB_BYTES: usize = KLAVIYO_BULK.max_bytes;
/// Bytes per string in an event: "100KB", [U] read as 100,000.
pub const MAX_STRING_BYTES: usize = 100_000;

pub const BULK_EVENTS: &str = "POST /api/event-bulk-create-jobs";
pub const ACCOUNTS: &str = "GET /api/accounts";

const BODY_HEAD: &str =
    r#"{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":["#;
const BODY_TAIL: &str = "]}}}}";
const ENTRY_TAIL: &str = "]}}}";
const POINTER_PREFIX: &str = "/data/attributes/events-bulk-create/data/";

/// Order events into Klaviyo metrics.
pub struct KlaviyoEventSink {
    client: Client,
    write_concurrency: usize,
}

impl std::fmt::Debug for KlaviyoEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KlaviyoEventSink").finish_non_exhaustive()
    }
}

impl KlaviyoEventSink {
    /// Checks the key, base URL and revision of `config` (its list, poll and history settings
    /// are not used) without calling the API.
    pub fn new(config: KlaviyoConfig) -> Result<Self, ConnectorError> {
        Ok(KlaviyoEventSink {
            client: super::checked_client(&config)?,
            write_concurrency: config.write_concurrency.clamp(1, super::MAX_CONNECTIONS),
        })
    }
}

/// One event's JSON (`{type:"event", attributes{…}}`).
pub fn encode_event(event: &OrderEvent) -> Vec<u8> {
    let properties = match &event.properties {
        Value::Object(map) => Value::Object(map.clone()),
        _ => Value::Object(Map::new()),
    };
    let doc = json!({
        "type": "event",
        "attributes": {
            "properties": properties,
            "time": event.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "value": decimal_json(event.value),
            "value_currency": event.currency,
            "unique_id": event.unique_id,
            "backfill": event.backfill,
            "metric": {"data": {"type": "metric", "attributes": {"name": event.metric}}},
        }
    });
    serde_json::to_vec(&doc).expect("a JSON value always encodes")
}

/// The profile of an entry: the email, and the non-empty name and location fields.
pub fn profile_json(event: &OrderEvent) -> Value {
    let person = &event.person;
    let mut attributes = Map::new();
    attributes.insert("email".into(), json!(event.email.as_str()));
    for (key, value) in [
        ("first_name", &person.first_name),
        ("last_name", &person.last_name),
    ] {
        if !value.is_empty() {
            attributes.insert(key.into(), json!(value));
        }
    }
    let mut location = Map::new();
    for (key, value) in [
        ("city", &person.city),
        ("region", &person.region),
        ("zip", &person.postal_code),
        ("country", &person.country),
    ] {
        if !value.is_empty() {
            location.insert(key.into(), json!(value));
        }
    }
    if !location.is_empty() {
        attributes.insert("location".into(), Value::Object(location));
    }
    json!({"type": "profile", "attributes": attributes})
}

/// The head of a profile entry, up to where its events go.
fn entry_head(event: &OrderEvent) -> Vec<u8> {
    let profile = serde_json::to_string(&profile_json(event)).expect("a JSON value always encodes");
    format!(
        r#"{{"type":"event-bulk-create","attributes":{{"profile":{{"data":{profile}}},"events":{{"data":["#
    )
    .into_bytes()
}

/// The longest string anywhere in a JSON value, in bytes.
fn longest_string(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::Array(items) => items.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.len().max(longest_string(v)))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// The events encoded once; sizes for the batch planner.
struct Encoded<'a> {
    events: &'a [OrderEvent],
    json: Vec<Vec<u8>>,
    heads: Vec<Vec<u8>>,
}

impl BatchSizer for Encoded<'_> {
    fn overhead(&self) -> usize {
        BODY_HEAD.len() + BODY_TAIL.len()
    }
    fn profile_bytes(&self, index: usize, _: &OrderEvent) -> usize {
        self.heads[index].len() + ENTRY_TAIL.len()
    }
    fn event_bytes(&self, index: usize, _: &OrderEvent) -> usize {
        self.json[index].len()
    }
}

/// One job: the entries (one per profile) with the indexes of their events.
struct Job {
    entries: Vec<Vec<usize>>,
}

impl Job {
    /// Groups `indexes` by email, in the order the emails first appear.
    fn of(events: &[OrderEvent], indexes: impl Iterator<Item = usize>) -> Job {
        let mut position: HashMap<&str, usize> = HashMap::new();
        let mut entries: Vec<Vec<usize>> = Vec::new();
        for i in indexes {
            let email = events[i].email.as_str();
            let at = *position.entry(email).or_insert_with(|| {
                entries.push(Vec::new());
                entries.len() - 1
            });
            entries[at].push(i);
        }
        Job { entries }
    }

    fn len(&self) -> usize {
        self.entries.iter().map(Vec::len).sum()
    }

    fn body(&self, encoded: &Encoded<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(BODY_HEAD.as_bytes());
        for (n, entry) in self.entries.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&encoded.heads[entry[0]]);
            for (m, i) in entry.iter().enumerate() {
                if m > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&encoded.json[*i]);
            }
            body.extend_from_slice(ENTRY_TAIL.as_bytes());
        }
        body.extend_from_slice(BODY_TAIL.as_bytes());
        body
    }

    /// The events a pointer into the body refers to: the order of the event it names, or every
    /// event of the entry it names (an error in the profile).
    fn pointed(&self, events: &[OrderEvent], pointer: &str) -> Option<Vec<usize>> {
        let rest = pointer.strip_prefix(POINTER_PREFIX)?;
        let mut parts = rest.split('/');
        let entry: usize = parts.next()?.parse().ok()?;
        let indexes = self.entries.get(entry)?;
        let event = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("attributes"), Some("events"), Some("data"), Some(j)) => j
                .parse::<usize>()
                .ok()
                .and_then(|j| indexes.get(j).copied()),
            _ => None,
        };
        Some(match event {
            Some(i) => {
                let order = (&events[i].source, &events[i].order_id);
                indexes
                    .iter()
                    .copied()
                    .filter(|k| (&events[*k].source, &events[*k].order_id) == order)
                    .collect()
            }
            None => indexes.clone(),
        })
    }

    fn without(&self, drop: &BTreeSet<usize>) -> Job {
        Job {
            entries: self
                .entries
                .iter()
                .map(|e| e.iter().copied().filter(|i| !drop.contains(i)).collect())
                .filter(|e: &Vec<usize>| !e.is_empty())
                .collect(),
        }
    }
}

/// What one job (and its resends without refused orders) did.
#[derive(Default)]
struct JobOutcome {
    accepted: u64,
    rejected: Vec<EventRejection>,
    calls: u64,
}

/// `GET /api/accounts`.
#[derive(Debug, Deserialize)]
struct AccountsPage {
    data: Vec<WireAccount>,
}

#[derive(Debug, Deserialize)]
struct WireAccount {
    #[serde(default)]
    attributes: AccountAttributes,
}

#[derive(Debug, Default, Deserialize)]
struct AccountAttributes {
    #[serde(default)]
    timezone: Option<String>,
}

impl KlaviyoEventSink {
    async fn send_job(
        &self,
        events: &[OrderEvent],
        encoded: &Encoded<'_>,
        mut job: Job,
    ) -> Result<JobOutcome, ConnectorError> {
        let mut outcome = JobOutcome::default();
        while job.len() > 0 {
            let call = Call::new(
                Method::POST,
                BULK_EVENTS,
                "/api/event-bulk-create-jobs".into(),
            )
            .raw_body(job.body(encoded));
            let response = self
                .client
                .send_allowing(&call, Some(StatusCode::BAD_REQUEST))
                .await?;
            outcome.calls += 1;
            if response.status().is_success() {
                outcome.accepted += job.len() as u64;
                return Ok(outcome);
            }
            // A 400: find what it refused; without a pointer into the job, the job failed.
            let bytes = response.bytes().await.unwrap_or_default();
            let doc: ErrorDocument = serde_json::from_slice(&bytes).unwrap_or_default();
            let mut refused: BTreeSet<usize> = BTreeSet::new();
            let mut reasons: HashMap<usize, String> = HashMap::new();
            for error in &doc.errors {
                let pointer = error.source.as_ref().and_then(|s| s.pointer.as_deref());
                if let Some(indexes) = pointer.and_then(|p| job.pointed(events, p)) {
                    let reason = truncate(&self.client.redact_text(&error.text()), 300);
                    for i in indexes {
                        refused.insert(i);
                        reasons.entry(i).or_insert_with(|| reason.clone());
                    }
                }
            }
            if refused.is_empty() {
                let text = self.client.redact_text(&doc.text());
                return Err(crate::http::status_error(
                    VENDOR,
                    BULK_EVENTS,
                    StatusCode::BAD_REQUEST,
                    &text,
                ));
            }
            for i in &refused {
                outcome.rejected.push(EventRejection {
                    unique_id: events[*i].unique_id.clone(),
                    reason: reasons.remove(i).unwrap_or_default(),
                });
            }
            job = job.without(&refused);
        }
        Ok(outcome)
    }
}

/// The jobs `events` go out in (each event once, grouped per profile, cut by count and bytes
/// between orders), and the events refused before sending with their orders (too large).
fn plan_jobs(events: &[OrderEvent]) -> (Encoded<'_>, Vec<Job>, Vec<EventRejection>) {
    let mut refused = Vec::new();
    let encoded = Encoded {
        events,
        json: events.iter().map(encode_event).collect(),
        heads: events.iter().map(entry_head).collect(),
    };
    // Events no job can carry are refused before sending, with the rest of their order.
    let overhead = encoded.overhead();
    let mut too_large: HashMap<(&str, &str), String> = HashMap::new();
    for (i, event) in encoded.events.iter().enumerate() {
        let alone = overhead + encoded.heads[i].len() + ENTRY_TAIL.len() + encoded.json[i].len();
        let longest = longest_string(&event.properties)
            .max(longest_string(&profile_json(event)))
            .max(event.unique_id.len());
        let reason = if alone > MAX_EVENT_JOB_BYTES {
            Some(format!(
                "event of {alone} bytes is over Klaviyo's limit of 5 MB a job"
            ))
        } else if longest > MAX_STRING_BYTES {
            Some(format!(
                "a string of {longest} bytes is over Klaviyo's limit of 100 KB a string"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            too_large
                .entry((event.source.as_str(), event.order_id.as_str()))
                .or_insert(reason);
        }
    }
    // An event given twice is sent once: Klaviyo fails a whole job that repeats a unique id
    // for one profile and metric.
    let mut seen: std::collections::HashSet<(&str, &str, &str)> = std::collections::HashSet::new();
    let sendable: Vec<usize> = (0..events.len())
        .filter(|i| {
            let e = &events[*i];
            if !seen.insert((e.email.as_str(), e.metric.as_str(), e.unique_id.as_str())) {
                return false;
            }
            match too_large.get(&(e.source.as_str(), e.order_id.as_str())) {
                Some(reason) => {
                    refused.push(EventRejection {
                        unique_id: e.unique_id.clone(),
                        reason: reason.clone(),
                    });
                    false
                }
                None => true,
            }
        })
        .collect();
    let batches = if sendable.len() == events.len() {
        plan_batches(events, KLAVIYO_BULK, &encoded)
    } else {
        // Plan over the sendable events only, mapping back to their indexes.
        let kept: Vec<OrderEvent> = sendable.iter().map(|i| events[*i].clone()).collect();
        let sub = Encoded {
            events: &kept,
            json: sendable.iter().map(|i| encoded.json[*i].clone()).collect(),
            heads: sendable.iter().map(|i| encoded.heads[*i].clone()).collect(),
        };
        plan_batches(&kept, KLAVIYO_BULK, &sub)
            .into_iter()
            .map(|r| sendable[r.start]..sendable[r.end - 1] + 1)
            .collect()
    };
    let sendable_set: std::collections::HashSet<usize> = sendable.iter().copied().collect();
    let jobs: Vec<Job> = batches
        .into_iter()
        .map(|range| Job::of(events, range.filter(|i| sendable_set.contains(i))))
        .filter(|job| job.len() > 0)
        .collect();
    (encoded, jobs, refused)
}

/// The bodies [`KlaviyoEventSink::send_events`] would send for `events`, one per job, without a
/// call (a dry run's job count; what the contract tests check sizes on).
pub fn bulk_bodies(events: &[OrderEvent]) -> Vec<Vec<u8>> {
    let (encoded, jobs, _) = plan_jobs(events);
    jobs.iter().map(|job| job.body(&encoded)).collect()
}

#[async_trait]
impl EventSink for KlaviyoEventSink {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn send_events(
        &self,
        events: &[OrderEvent],
        control: &ApplyControl,
    ) -> Result<EventReport, ConnectorError> {
        let mut report = EventReport::default();
        if events.is_empty() {
            return Ok(report);
        }
        let total = events.len() as u64;
        control.report(0, total);
        let (encoded, jobs, refused) = plan_jobs(events);
        report.rejected = refused;
        let jobs_count = jobs.len();
        let mut outcomes = stream::iter(jobs.into_iter().take_while(|_| !control.stop_requested()))
            .map(|job| self.send_job(events, &encoded, job))
            .buffer_unordered(self.write_concurrency)
            .boxed();
        let mut finished = 0usize;
        let mut done = report.rejected.len() as u64;
        while let Some(result) = outcomes.next().await {
            let outcome = result?;
            finished += 1;
            report.write_calls += outcome.calls;
            report.accepted += outcome.accepted;
            done += outcome.accepted + outcome.rejected.len() as u64;
            report.rejected.extend(outcome.rejected);
            control.report(done.min(total), total);
        }
        report.stopped_early = finished < jobs_count;
        Ok(report)
    }

    async fn time_zone(&self) -> Result<Option<String>, ConnectorError> {
        let call = Call::new(Method::GET, ACCOUNTS, "/api/accounts".into());
        let page: AccountsPage = self.client.json(&call).await?;
        let account = page
            .data
            .first()
            .ok_or_else(|| invalid_response(VENDOR, ACCOUNTS, "no account in the answer"))?;
        Ok(account
            .attributes
            .timezone
            .as_deref()
            .map(str::trim)
            .filter(|tz| !tz.is_empty())
            .map(|tz| truncate(tz, 64)))
    }
}
