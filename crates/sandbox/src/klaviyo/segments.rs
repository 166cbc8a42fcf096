//! Segments: `GET /api/segments` (pages of at most 10), `GET /api/segments/{id}`,
//! `GET /api/segments/{id}/profiles` (pages ≤100). Segments are seeded by tests with fixed
//! members ([`super::Klaviyo::create_segment`]); their definitions are not evaluated and
//! `POST /api/segments` is not simulated [U].

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Klaviyo;
use super::error::ApiError;
use super::filter;
use super::jsonapi::{self, Base, Query, time};
use super::lists::{MEMBER_PARAMS, members_page};
use super::profiles;
use super::state::{Profile, Segment};

fn render(segment: &Segment, base: &Base) -> Value {
    let link = base.url(&format!("/api/segments/{}/", segment.id));
    json!({
        "type": "segment",
        "id": segment.id,
        "attributes": {
            "name": segment.name,
            "created": time(segment.created),
            "updated": time(segment.updated),
            "is_active": true,
            "is_processing": false,
            "is_starred": false,
        },
        "relationships": {
            "profiles": {"links": {"self": format!("{link}relationships/profiles/"), "related": format!("{link}profiles/")}},
        },
        "links": {"self": link},
    })
}

fn no_segment(id: &str) -> ApiError {
    ApiError::not_found(format!("A segment with id {id} does not exist."))
}

pub async fn get_segments(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        raw.as_deref(),
        &[
            "fields[segment]",
            "filter",
            "page[cursor]",
            "page[size]",
            "sort",
        ],
    )?;
    let size = query.page_size(10, 10)?;
    profiles::check_sort(&query, &["id", "created"])?;
    let conditions = match query.get("filter") {
        None => Vec::new(),
        Some(raw) => filter::parse(
            raw,
            &[("name", &["any", "equals"]), ("id", &["any", "equals"])],
            &[],
        )?,
    };
    let segments: Vec<(String, Segment)> = sim
        .lock()
        .segments
        .values()
        .filter(|s| {
            conditions.iter().all(|c| match c.field.as_str() {
                "name" => c.matches_text(Some(&s.name)),
                _ => c.matches_text(Some(&s.id)),
            })
        })
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    let (chunk, links) = jsonapi::page(&segments, &query, size, &base, "/api/segments")?;
    let data: Vec<Value> = chunk.iter().map(|s| render(s, &base)).collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub async fn get_segment(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(raw.as_deref(), &["fields[segment]"])?;
    let segment = sim
        .lock()
        .segments
        .get(&id)
        .cloned()
        .ok_or_else(|| no_segment(&id))?;
    let doc = render(&segment, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": doc, "links": {"self": link}}),
    ))
}

pub async fn segment_profiles(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), MEMBER_PARAMS)?;
    profiles::check_sort(&query, &[])?;
    let conditions = profiles::profile_filter(
        &query,
        &[
            ("profile_id", &["any", "equals"]),
            ("email", &["any", "equals"]),
            ("phone_number", &["any", "equals"]),
        ],
    )?;
    let state = sim.lock();
    let segment = state.segments.get(&id).ok_or_else(|| no_segment(&id))?;
    let members: Vec<(String, (&Profile, DateTime<Utc>))> = segment
        .members
        .iter()
        .filter_map(|(pid, joined)| state.profiles.get(pid).map(|p| (p, *joined)))
        .filter(|(p, _)| profiles::passes(p, &conditions))
        .map(|(p, joined)| (p.id.clone(), (p, joined)))
        .collect();
    // Rendered under the lock: only the page's profiles, never a copy of every member.
    let page = members_page(
        members,
        &query,
        &base,
        &format!("/api/segments/{id}/profiles"),
    );
    drop(state);
    page
}
