//! Profiles: `GET /api/profiles` (filter, cursor pages ≤100, `additional-fields[profile]`,
//! `fields[profile]`), `GET/PATCH /api/profiles/{id}`, `POST /api/profiles` (409 on a duplicate
//! with the existing id in the error's `meta.duplicate_profile_id`), and the upsert
//! `POST /api/profile-import` (201 created / 200 updated). Writes are at most 100 KB.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::directory::{Identifier, Profiles};
use super::error::ApiError;
use super::filter::{self, Condition};
use super::jsonapi::{self, Base, Obj, Query, opt_time, time};
use super::state::{ProfileConflict, ProfileInput};
use super::{Klaviyo, state::Profile};

/// Largest profile write body (`POST /api/profiles`, `PATCH`, `profile-import`).
pub const MAX_PROFILE_BYTES: usize = 100 * 1024;
pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 100;

const GET_PARAMS: &[&str] = &[
    "additional-fields[profile]",
    "fields[profile]",
    "filter",
    "page[cursor]",
    "page[size]",
    "sort",
];

const FILTERS: &[(&str, &[&str])] = &[
    ("id", &["any", "equals"]),
    ("email", &["any", "equals"]),
    ("phone_number", &["any", "equals"]),
    ("external_id", &["any", "equals"]),
    ("created", &["greater-than", "less-than"]),
    ("updated", &["greater-than", "less-than"]),
];

/// Profile fields `fields[profile]` may name.
const FIELDS: &[&str] = &[
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "created",
    "updated",
    "last_event_date",
    "location",
    "location.address1",
    "location.address2",
    "location.city",
    "location.country",
    "location.ip",
    "location.latitude",
    "location.longitude",
    "location.region",
    "location.timezone",
    "location.zip",
    "properties",
    "subscriptions",
    "predictive_analytics",
    "joined_group_at",
];

/// How a profile is rendered: with `subscriptions` or not, and the sparse fieldset.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub subscriptions: bool,
    pub fields: Vec<String>,
}

impl View {
    /// Reads `additional-fields[profile]` and `fields[profile]`.
    pub fn from_query(query: &Query) -> Result<View, ApiError> {
        let additional = query.list(
            "additional-fields[profile]",
            &["subscriptions", "predictive_analytics"],
        )?;
        if additional.iter().any(|a| a == "predictive_analytics") {
            return Err(ApiError::invalid_parameter(
                "additional-fields[profile]",
                "predictive_analytics is not simulated [U].",
            ));
        }
        Ok(View {
            subscriptions: additional.iter().any(|a| a == "subscriptions"),
            fields: query.list("fields[profile]", FIELDS)?,
        })
    }
}

/// The conditions of a profile-collection `filter`, and whether a profile passes them. Email
/// values are lowercased here, once, as Klaviyo matches emails without regard to case [U].
pub fn profile_filter(
    query: &Query,
    allowed: &[(&str, &[&str])],
) -> Result<Vec<Condition>, ApiError> {
    let mut conditions = match query.get("filter") {
        None => Vec::new(),
        Some(raw) => filter::parse(raw, allowed, &["created", "updated", "joined_group_at"])?,
    };
    for c in conditions.iter_mut().filter(|c| c.field == "email") {
        match &mut c.value {
            filter::Operand::Text(t) => *t = t.to_lowercase(),
            filter::Operand::List(l) => l.iter_mut().for_each(|t| *t = t.to_lowercase()),
            filter::Operand::Time(_) => {}
        }
    }
    Ok(conditions)
}

/// Whether a profile passes conditions made by [`profile_filter`].
pub fn passes(profile: &Profile, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| match c.field.as_str() {
        "id" | "profile_id" => c.matches_text(Some(&profile.id)),
        "email" => c.matches_text(profile.email.as_deref()),
        "phone_number" => c.matches_text(profile.phone_number.as_deref()),
        "external_id" => c.matches_text(profile.external_id.as_deref()),
        "created" => c.matches_time(profile.created),
        "updated" => c.matches_time(profile.updated),
        _ => true,
    })
}

/// The profiles passing `conditions`, in id order. A condition on an identifier narrows the
/// candidates through the account's indexes first (every condition is still checked on each), so
/// a look-up by email does not scan the account.
pub fn matching<'a>(profiles: &'a Profiles, conditions: &[Condition]) -> Vec<&'a Profile> {
    let narrowing = conditions.iter().find_map(|c| {
        let values: Vec<&str> = match &c.value {
            filter::Operand::Text(t) if c.op == "equals" => vec![t.as_str()],
            filter::Operand::List(l) if c.op == "any" => l.iter().map(String::as_str).collect(),
            _ => return None,
        };
        let by = match c.field.as_str() {
            "id" | "profile_id" => None,
            "email" => Some(Identifier::Email),
            "phone_number" => Some(Identifier::PhoneNumber),
            "external_id" => Some(Identifier::ExternalId),
            _ => return None,
        };
        Some((by, values))
    });
    let Some((by, values)) = narrowing else {
        return profiles
            .values()
            .filter(|p| passes(p, conditions))
            .collect();
    };
    let ids: BTreeSet<&str> = match by {
        None => values.into_iter().collect(),
        Some(by) => values
            .into_iter()
            .flat_map(|v| profiles.ids_by(by, v).map(String::as_str))
            .collect(),
    };
    ids.into_iter()
        .filter_map(|id| profiles.get(id))
        .filter(|p| passes(p, conditions))
        .collect()
}

/// Only the sort orders that keep id order are simulated: `id` and `created` (ids grow with
/// creation) [U].
pub fn check_sort(query: &Query, allowed: &[&str]) -> Result<(), ApiError> {
    match query.get("sort") {
        None => Ok(()),
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(s) => Err(ApiError::invalid_parameter(
            "sort",
            format!("'{s}' is not a valid (or simulated) sort value."),
        )),
    }
}

/// A profile as a JSON:API resource object.
pub fn render(profile: &Profile, base: &Base, view: &View) -> Value {
    let mut attributes = json!({
        "email": profile.email,
        "phone_number": profile.phone_number,
        "external_id": profile.external_id,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "organization": profile.organization,
        "locale": profile.locale,
        "title": profile.title,
        "image": profile.image,
        "created": time(profile.created),
        "updated": time(profile.updated),
        "last_event_date": opt_time(profile.last_event_date),
        "location": location(&profile.location),
        "properties": Value::Object(profile.properties.clone()),
    });
    if view.subscriptions {
        attributes["subscriptions"] = subscriptions(profile);
    }
    if !view.fields.is_empty() {
        attributes = sparse(attributes, &view.fields);
    }
    let link = base.url(&format!("/api/profiles/{}/", profile.id));
    json!({
        "type": "profile",
        "id": profile.id,
        "attributes": attributes,
        "relationships": {
            "lists": {"links": {"self": format!("{link}relationships/lists/"), "related": format!("{link}lists/")}},
            "segments": {"links": {"self": format!("{link}relationships/segments/"), "related": format!("{link}segments/")}},
        },
        "links": {"self": link},
    })
}

fn location(stored: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for key in [
        "address1",
        "address2",
        "city",
        "country",
        "latitude",
        "longitude",
        "region",
        "zip",
        "timezone",
        "ip",
    ] {
        out.insert(
            key.to_string(),
            stored.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

fn sparse(attributes: Value, fields: &[String]) -> Value {
    let Value::Object(all) = attributes else {
        return attributes;
    };
    let mut out = Map::new();
    for field in fields {
        match field.split_once('.') {
            Some((parent, child)) => {
                let value = all[parent].get(child).cloned().unwrap_or(Value::Null);
                if let Value::Object(map) =
                    out.entry(parent.to_string()).or_insert_with(|| json!({}))
                {
                    map.insert(child.to_string(), value);
                }
            }
            None => {
                if let Some(value) = all.get(field) {
                    out.insert(field.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// `subscriptions` as `additional-fields[profile]=subscriptions` shows it.
pub fn subscriptions(profile: &Profile) -> Value {
    let m = &profile.email_marketing;
    json!({
        "email": {"marketing": {
            "can_receive_email_marketing": m.can_receive(),
            "consent": m.consent.as_str(),
            "consent_timestamp": opt_time(m.consent_timestamp),
            "last_updated": opt_time(m.last_updated),
            "method": m.method,
            "method_detail": m.method_detail,
            "custom_method_detail": null,
            "double_optin": m.double_optin,
            "suppression": m.suppressions.iter().map(|(reason, at)| json!({
                "reason": reason.as_str(), "timestamp": time(*at),
            })).collect::<Vec<_>>(),
            "list_suppressions": m.list_suppressions.iter().map(|(list, reason, at)| json!({
                "list_id": list, "reason": reason, "timestamp": time(*at),
            })).collect::<Vec<_>>(),
        }},
        "sms": {"marketing": {
            "can_receive_sms_marketing": false,
            "consent": "NEVER_SUBSCRIBED",
            "consent_timestamp": null,
            "method": null,
            "method_detail": null,
            "last_updated": null,
        }},
    })
}

fn too_large(bytes: &Bytes) -> Result<(), ApiError> {
    if bytes.len() > MAX_PROFILE_BYTES {
        return Err(ApiError::too_large(format!(
            "The payload is {} bytes; at most {MAX_PROFILE_BYTES} are allowed.",
            bytes.len()
        )));
    }
    Ok(())
}

/// Refuses `meta` (`patch_properties`, `patch_identifiers`): not simulated [U].
fn no_meta(data: Obj<'_>) -> Result<(), ApiError> {
    if data.get("meta").is_some() {
        return Err(ApiError::invalid(
            data.at("meta"),
            "meta.patch_properties / patch_identifiers are not simulated [U].",
        ));
    }
    Ok(())
}

fn conflict(e: ProfileConflict) -> ApiError {
    match e {
        ProfileConflict::Duplicate { existing_id } => ApiError::duplicate_profile(&existing_id),
    }
}

fn identifier_required(input: &ProfileInput) -> Result<(), ApiError> {
    if input.has_identifier() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "/data/attributes",
            "One of 'email', 'phone_number' or 'external_id' is required.",
        ))
    }
}

pub async fn get_profiles(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), GET_PARAMS)?;
    let view = View::from_query(&query)?;
    let size = query.page_size(DEFAULT_PAGE, MAX_PAGE)?;
    let conditions = profile_filter(&query, FILTERS)?;
    check_sort(&query, &["id", "created"])?;
    let state = sim.lock();
    let found: Vec<(String, &Profile)> = matching(&state.profiles, &conditions)
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let (chunk, links) = jsonapi::page(&found, &query, size, &base, "/api/profiles")?;
    let data: Vec<Value> = chunk.iter().map(|p| render(p, &base, &view)).collect();
    drop(state);
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub async fn get_profile(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        raw.as_deref(),
        &["additional-fields[profile]", "fields[profile]"],
    )?;
    let view = View::from_query(&query)?;
    let profile =
        sim.lock().profiles.get(&id).cloned().ok_or_else(|| {
            ApiError::not_found(format!("A profile with id {id} does not exist."))
        })?;
    Ok(single(&profile, &base, &view, StatusCode::OK))
}

fn single(profile: &Profile, base: &Base, view: &View, status: StatusCode) -> Response {
    let doc = render(profile, base, view);
    let link = doc["links"]["self"].clone();
    jsonapi::respond(status, json!({"data": doc, "links": {"self": link}}))
}

pub async fn create_profile(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["additional-fields[profile]"])?;
    let view = View::from_query(&query)?;
    too_large(&body)?;
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "profile", &["type", "attributes", "meta"])?;
    no_meta(data)?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    let input = jsonapi::profile_attributes(attrs, &[])?;
    identifier_required(&input)?;
    let mut state = sim.lock();
    let id = state.create_profile(&input).map_err(conflict)?;
    let profile = state.profiles[&id].clone();
    drop(state);
    Ok(single(&profile, &base, &view, StatusCode::CREATED))
}

pub async fn update_profile(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["additional-fields[profile]"])?;
    let view = View::from_query(&query)?;
    too_large(&body)?;
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "profile", &["type", "id", "attributes", "meta"])?;
    no_meta(data)?;
    let body_id = data.req_str("id")?;
    if body_id != id {
        return Err(ApiError::invalid(
            "/data/id",
            format!("The id in the body ({body_id}) does not match the id in the path ({id})."),
        ));
    }
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    let input = jsonapi::profile_attributes(attrs, &[])?;
    let mut state = sim.lock();
    let Some(mut probe) = state.profiles.get(&id).cloned() else {
        return Err(ApiError::not_found(format!(
            "A profile with id {id} does not exist."
        )));
    };
    // A profile keeps at least one identifier [U: Klaviyo's exact answer is not documented].
    let now = state.now();
    probe.apply(&input, now);
    if probe.email.is_none() && probe.phone_number.is_none() && probe.external_id.is_none() {
        return Err(ApiError::invalid(
            "/data/attributes",
            "A profile must keep one of 'email', 'phone_number' or 'external_id'.",
        ));
    }
    state.update_profile(&id, &input).map_err(conflict)?;
    let profile = state.profiles[&id].clone();
    drop(state);
    Ok(single(&profile, &base, &view, StatusCode::OK))
}

pub async fn profile_import(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["additional-fields[profile]"])?;
    let view = View::from_query(&query)?;
    too_large(&body)?;
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "profile", &["type", "id", "attributes", "meta"])?;
    no_meta(data)?;
    let id = data.opt_str("id")?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    let input = jsonapi::profile_attributes(attrs, &["_kx"])?;
    if id.is_none() {
        identifier_required(&input)?;
    }
    let mut state = sim.lock();
    if let Some(id) = &id
        && !state.profiles.contains_key(id)
    {
        return Err(ApiError::not_found(format!(
            "A profile with id {id} does not exist."
        )));
    }
    let (id, created) = state
        .upsert_profile(id.as_deref(), &input)
        .map_err(conflict)?;
    let profile = state.profiles[&id].clone();
    drop(state);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(single(&profile, &base, &view, status))
}
