//! Events and metrics: `POST /api/events` (202), `POST /api/event-bulk-create-jobs` (≤1,000 events
//! in all, ≤5 MB; 202), `GET /api/metrics`, `GET /api/metrics/{id}`.
//!
//! - The profile of an event is found by its identifiers or created, and its attributes are
//!   applied as an upsert [S: "this endpoint allows you to create a new profile or update an
//!   existing profile's properties"]; the metric is found by name or created.
//! - `unique_id` dedupes per profile and metric: a second event with the same triple sent in a
//!   later request is accepted (202) and not stored [S/U: Klaviyo documents the dedupe, not the
//!   answer]. Within one bulk request a repeated `unique_id` for the same profile and metric fails
//!   the whole request and nothing is processed [S: "the request will fail and no events will be
//!   processed"]; [U] the profile is compared by its identifiers as sent (email lower-cased,
//!   phone, external id, id), before any look-up.
//! - The body is at most 5 MB [S], [U] read as 5,000,000 bytes (the stricter reading); a single
//!   string (a property value or key, a profile attribute, the unique id …) at most 100 KB [S],
//!   [U] read as 100,000 bytes.
//! - `time` is an RFC 3339 date-time [S: format date-time; U: offsets required, no date-only or
//!   local times on this route], after 1990 and at most one year ahead of the simulator's clock
//!   [S]; `value` a JSON number [S]; `value_currency` three upper-case letters [S: "ISO 4217
//!   currency code"; U: the code list itself is not checked].
//! - `backfill: true` records the event without triggering flows; otherwise the event counts one
//!   `metric:{name}` flow trigger ([`super::Klaviyo::flows_triggered`]). In bulk jobs `backfill`
//!   may be set per profile entry and per event; the event's own value wins [U].
//! - `properties` is required, at most 400 keys [S]; metric names are under 128 characters [S].
//!
//! [U] Bulk event jobs are applied when accepted and have no readable status in the spec.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use chrono::Timelike;

use super::Klaviyo;
use super::error::ApiError;
use super::jsonapi::{self, Base, Obj, Query, time};
use super::state::{Event, Metric, State as Account};

pub const MAX_BULK_EVENTS: usize = 1000;
pub const MAX_EVENT_BYTES: usize = 5_000_000;
pub const MAX_STRING_BYTES: usize = 100_000;
pub const MAX_PROPERTY_KEYS: usize = 400;
pub const MAX_METRIC_NAME: usize = 127;

/// One validated event, before it is stored.
struct NewEvent {
    metric: String,
    properties: Map<String, Value>,
    time: Option<chrono::DateTime<chrono::Utc>>,
    value: Option<f64>,
    value_currency: Option<String>,
    unique_id: Option<String>,
    backfill: Option<bool>,
}

/// The first string (value or key) over [`MAX_STRING_BYTES`] in `value`: its path below `value`
/// (built only on a hit: this runs over every event of a job) and its length.
fn long_string(value: &Value) -> Option<(Vec<String>, usize)> {
    let found = match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => return Some((Vec::new(), s.len())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| long_string(v).map(|hit| (i.to_string(), hit))),
        Value::Object(map) => return long_in_map(map),
        _ => None,
    };
    found.map(|(step, (mut path, len))| {
        path.insert(0, step);
        (path, len)
    })
}

/// [`long_string`] of an object's keys and values.
fn long_in_map(map: &Map<String, Value>) -> Option<(Vec<String>, usize)> {
    map.iter().find_map(|(k, v)| {
        let hit = if k.len() > MAX_STRING_BYTES {
            Some((Vec::new(), k.len()))
        } else {
            long_string(v)
        };
        hit.map(|(mut path, len)| {
            path.insert(0, k.replace('~', "~0").replace('/', "~1"));
            (path, len)
        })
    })
}

/// A hit of [`long_string`] as a JSON pointer under `pointer`.
fn pointer_to(hit: Option<(Vec<String>, usize)>, pointer: &str) -> Option<(String, usize)> {
    hit.map(|(path, len)| {
        let mut at = pointer.to_string();
        for step in path {
            at.push('/');
            at.push_str(&step);
        }
        (at, len)
    })
}

fn event_attributes(
    attrs: Obj<'_>,
    with_profile: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NewEvent, ApiError> {
    let mut allowed = vec![
        "properties",
        "time",
        "value",
        "value_currency",
        "unique_id",
        "backfill",
        "metric",
    ];
    if with_profile {
        allowed.push("profile");
    }
    attrs.only(&allowed)?;
    let properties = match attrs.required("properties")? {
        Value::Object(map) => map.clone(),
        _ => {
            return Err(ApiError::invalid(
                attrs.at("properties"),
                "'properties' must be an object.",
            ));
        }
    };
    if properties.len() > MAX_PROPERTY_KEYS {
        return Err(ApiError::invalid(
            attrs.at("properties"),
            format!("At most {MAX_PROPERTY_KEYS} properties are allowed."),
        ));
    }
    let time = match attrs.opt_str("time")? {
        None => None,
        Some(raw) => {
            let at = chrono::DateTime::parse_from_rfc3339(&raw)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::invalid(
                        attrs.at("time"),
                        format!("'{raw}' is not a valid date-time."),
                    )
                })?;
            let earliest = chrono::DateTime::parse_from_rfc3339("1990-01-01T00:00:00Z")
                .expect("a fixed time")
                .with_timezone(&chrono::Utc);
            if at <= earliest || at > now + chrono::Duration::days(365) {
                return Err(ApiError::invalid(
                    attrs.at("time"),
                    "The time must be after the year 1990 and at most 1 year in the future.",
                ));
            }
            // Klaviyo truncates event times to the second [S].
            Some(at.with_nanosecond(0).unwrap_or(at))
        }
    };
    let value_currency = attrs.opt_str("value_currency")?;
    if let Some(code) = &value_currency
        && !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(ApiError::invalid(
            attrs.at("value_currency"),
            format!("'{code}' is not an ISO 4217 currency code."),
        ));
    }
    if let Some((pointer, len)) = pointer_to(long_in_map(&properties), &attrs.at("properties")) {
        return Err(ApiError::invalid(
            pointer,
            format!("A string of {len} bytes is over the limit of {MAX_STRING_BYTES}."),
        ));
    }
    let value = match attrs.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            return Err(ApiError::invalid(
                attrs.at("value"),
                "'value' must be a number.",
            ));
        }
    };
    let metric_ptr = attrs.at("metric");
    let metric = jsonapi::object(attrs.required("metric")?, &metric_ptr)?;
    metric.only(&["data"])?;
    let metric_data_ptr = format!("{metric_ptr}/data");
    let metric_data = jsonapi::object(metric.required("data")?, &metric_data_ptr)?;
    metric_data.only(&["type", "attributes"])?;
    metric_data.resource_type("metric")?;
    let metric_attrs_ptr = format!("{metric_data_ptr}/attributes");
    let metric_attrs = jsonapi::object(metric_data.required("attributes")?, &metric_attrs_ptr)?;
    metric_attrs.only(&["name", "service"])?;
    let name = metric_attrs.req_str("name")?;
    if name.is_empty() || name.chars().count() > MAX_METRIC_NAME {
        return Err(ApiError::invalid(
            metric_attrs.at("name"),
            "The metric name must be 1 to 127 characters.",
        ));
    }
    let unique_id = attrs.opt_str("unique_id")?;
    if let Some(id) = &unique_id
        && id.len() > MAX_STRING_BYTES
    {
        return Err(ApiError::invalid(
            attrs.at("unique_id"),
            format!(
                "A string of {} bytes is over the limit of {MAX_STRING_BYTES}.",
                id.len()
            ),
        ));
    }
    Ok(NewEvent {
        metric: name,
        properties,
        time,
        value,
        value_currency,
        unique_id,
        backfill: attrs.opt_bool("backfill")?,
    })
}

/// A profile as sent, by its identifiers (what a repeated `unique_id` is compared within).
fn identity(data: &Value) -> String {
    let attr = |k: &str| {
        data.pointer(&format!("/attributes/{k}"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_lowercase())
            .unwrap_or_default()
    };
    let id = data.get("id").and_then(Value::as_str).unwrap_or_default();
    format!(
        "{id}\u{0}{}\u{0}{}\u{0}{}",
        attr("email"),
        attr("phone_number"),
        attr("external_id")
    )
}

/// Reads `{type: "profile", id?, attributes{...}}` and finds or creates the profile.
fn event_profile(
    state: &mut Account,
    data: Obj<'_>,
) -> Result<(Option<String>, super::state::ProfileInput), ApiError> {
    data.only(&["type", "id", "attributes", "meta"])?;
    data.resource_type("profile")?;
    if data.get("meta").is_some() {
        return Err(ApiError::invalid(
            data.at("meta"),
            "meta.patch_properties / patch_identifiers are not simulated [U].",
        ));
    }
    let id = data.opt_str("id")?;
    let attrs_ptr = data.at("attributes");
    let attrs = jsonapi::object(data.required("attributes")?, &attrs_ptr)?;
    let input = jsonapi::profile_attributes(attrs, &["anonymous_id", "_kx"])?;
    if id.is_none() && !input.has_identifier() {
        return Err(ApiError::invalid(
            attrs_ptr,
            "The profile needs one of 'id', 'email', 'phone_number' or 'external_id'.",
        ));
    }
    if let Some(id) = &id
        && !state.profiles.contains_key(id)
    {
        return Err(ApiError::not_found(format!(
            "A profile with id {id} does not exist."
        )));
    }
    Ok((id, input))
}

/// Stores an event (unless it duplicates one) and counts its flow trigger.
fn record(state: &mut Account, profile_id: &str, event: NewEvent, backfill: bool) {
    let metric_id = state.metric_id(&event.metric);
    if let Some(unique) = &event.unique_id
        && !state
            .event_keys
            .insert((profile_id.to_string(), metric_id.clone(), unique.clone()))
    {
        return;
    }
    let now = state.now();
    let id = state.job_id().replacen("job_", "evt_", 1);
    let at = event.time.unwrap_or(now);
    state.events.push(Event {
        id,
        metric_id,
        profile_id: profile_id.to_string(),
        time: at,
        value: event.value,
        value_currency: event.value_currency,
        unique_id: event.unique_id,
        properties: event.properties,
        backfill,
    });
    if let Some(mut profile) = state.profiles.get_mut(profile_id)
        && profile.last_event_date.is_none_or(|d| d < at)
    {
        profile.last_event_date = Some(at);
    }
    if !backfill {
        state.count_flow(format!("metric:{}", event.metric));
    }
}

fn size_check(body: &Bytes) -> Result<(), ApiError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(ApiError::too_large(format!(
            "The payload is {} bytes; at most {MAX_EVENT_BYTES} are allowed.",
            body.len()
        )));
    }
    Ok(())
}

pub async fn create_event(State(sim): State<Klaviyo>, body: Bytes) -> Result<Response, ApiError> {
    size_check(&body)?;
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "event", &["type", "attributes"])?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    let event = event_attributes(attrs, true, sim.now())?;
    let profile = jsonapi::object(attrs.required("profile")?, "/data/attributes/profile")?;
    profile.only(&["data"])?;
    let profile_data = jsonapi::object(profile.required("data")?, "/data/attributes/profile/data")?;
    let mut state = sim.lock();
    let (id, input) = event_profile(&mut state, profile_data)?;
    let (profile_id, _) = state.upsert_profile(id.as_deref(), &input).map_err(
        |super::state::ProfileConflict::Duplicate { existing_id }| {
            ApiError::duplicate_profile(&existing_id)
        },
    )?;
    let backfill = event.backfill.unwrap_or(false);
    record(&mut state, &profile_id, event, backfill);
    Ok(jsonapi::accepted())
}

pub async fn bulk_create_events(
    State(sim): State<Klaviyo>,
    body: Bytes,
) -> Result<Response, ApiError> {
    size_check(&body)?;
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "event-bulk-create-job", &["type", "attributes"])?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    attrs.only(&["events-bulk-create"])?;
    let bulk = jsonapi::object(
        attrs.required("events-bulk-create")?,
        "/data/attributes/events-bulk-create",
    )?;
    bulk.only(&["data"])?;
    let entries = bulk.array("data")?;
    let now = sim.now();
    // Read and validate everything before applying anything.
    let mut parsed = Vec::new();
    let mut unique_ids = std::collections::HashSet::new();
    let mut total = 0;
    for (i, entry) in entries.iter().enumerate() {
        let ptr = format!("/data/attributes/events-bulk-create/data/{i}");
        let entry = jsonapi::object(entry, &ptr)?;
        entry.only(&["type", "attributes"])?;
        entry.resource_type("event-bulk-create")?;
        let attrs_ptr = entry.at("attributes");
        let attrs = jsonapi::object(entry.required("attributes")?, &attrs_ptr)?;
        attrs.only(&["backfill", "profile", "events"])?;
        let entry_backfill = attrs.opt_bool("backfill")?;
        let profile_ptr = attrs.at("profile");
        let profile = jsonapi::object(attrs.required("profile")?, &profile_ptr)?;
        profile.only(&["data"])?;
        let profile_data_ptr = format!("{profile_ptr}/data");
        let profile_data = profile.required("data")?.clone();
        if let Some((pointer, len)) = pointer_to(long_string(&profile_data), &profile_data_ptr) {
            return Err(ApiError::invalid(
                pointer,
                format!("A string of {len} bytes is over the limit of {MAX_STRING_BYTES}."),
            ));
        }
        let who = identity(&profile_data);
        let events_ptr = attrs.at("events");
        let events = jsonapi::object(attrs.required("events")?, &events_ptr)?;
        events.only(&["data"])?;
        let mut these = Vec::new();
        for (j, event) in events.array("data")?.iter().enumerate() {
            let eptr = format!("{events_ptr}/data/{j}");
            let event = jsonapi::object(event, &eptr)?;
            event.only(&["type", "attributes"])?;
            event.resource_type("event")?;
            let eattrs_ptr = event.at("attributes");
            let eattrs = jsonapi::object(event.required("attributes")?, &eattrs_ptr)?;
            let event = event_attributes(eattrs, false, now)?;
            if let Some(unique) = &event.unique_id
                && !unique_ids.insert((who.clone(), event.metric.clone(), unique.clone()))
            {
                return Err(ApiError::invalid(
                    eattrs.at("unique_id"),
                    format!(
                        "The unique_id '{unique}' is repeated for the same profile and metric in this request."
                    ),
                ));
            }
            these.push(event);
        }
        total += these.len();
        if total > MAX_BULK_EVENTS {
            return Err(ApiError::invalid(
                "/data/attributes/events-bulk-create/data",
                format!("At most {MAX_BULK_EVENTS} events may be sent per job."),
            ));
        }
        parsed.push((profile_data_ptr, profile_data, entry_backfill, these));
    }
    if total == 0 {
        return Err(ApiError::invalid(
            "/data/attributes/events-bulk-create/data",
            "At least one event is required.",
        ));
    }
    let mut state = sim.lock();
    let mut resolved = Vec::new();
    for (ptr, profile_data, entry_backfill, events) in parsed {
        let obj = jsonapi::object(&profile_data, &ptr)?;
        let (id, input) = event_profile(&mut state, obj)?;
        resolved.push((id, input, entry_backfill, events));
    }
    for (id, input, entry_backfill, events) in resolved {
        let Ok((profile_id, _)) = state.upsert_profile(id.as_deref(), &input) else {
            continue;
        };
        for event in events {
            let backfill = event.backfill.or(entry_backfill).unwrap_or(false);
            record(&mut state, &profile_id, event, backfill);
        }
    }
    let job = state.job_id();
    state.event_jobs.insert(job);
    Ok(jsonapi::accepted())
}

fn render_metric(metric: &Metric, base: &Base) -> Value {
    json!({
        "type": "metric",
        "id": metric.id,
        "attributes": {
            "name": metric.name,
            "created": time(metric.created),
            "updated": time(metric.created),
            "integration": {"object": "integration", "id": "0rG4eQ", "name": "API", "category": "API"},
        },
        "links": {"self": base.url(&format!("/api/metrics/{}/", metric.id))},
    })
}

pub async fn get_metrics(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["fields[metric]", "page[cursor]"])?;
    let metrics: Vec<(String, Metric)> = sim
        .lock()
        .metrics
        .values()
        .map(|m| (m.id.clone(), m.clone()))
        .collect();
    // [S] The spec gives no page size for metrics; 200 a page [U].
    let (chunk, links) = jsonapi::page(&metrics, &query, 200, &base, "/api/metrics")?;
    let data: Vec<Value> = chunk.iter().map(|m| render_metric(m, &base)).collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub async fn get_metric(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(raw.as_deref(), &["fields[metric]"])?;
    let metric = sim
        .lock()
        .metrics
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("A metric with id {id} does not exist.")))?;
    let doc = render_metric(&metric, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": doc, "links": {"self": link}}),
    ))
}
