//! Lists: `GET /api/lists` (pages of at most 10, filter on name/id), `POST /api/lists` (201),
//! `GET /api/lists/{id}`, members `GET /api/lists/{id}/profiles` (pages ≤100), and
//! `POST`/`DELETE /api/lists/{id}/relationships/profiles` (≤1,000 profiles a call, 204). Adding or
//! removing members never changes consent [S].
//!
//! [U] A profile id in a relationships call that does not exist is refused (400 with its pointer)
//! and nothing of that call is applied; Klaviyo's exact answer is not documented.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Klaviyo;
use super::error::ApiError;
use super::filter;
use super::jsonapi::{self, Base, Query, time};
use super::profiles::{self, View};
use super::state::{List, OptIn, Profile};

pub const MAX_LIST_PAGE: usize = 10;
pub const MAX_RELATIONSHIP_PROFILES: usize = 1000;

pub fn render(list: &List, base: &Base) -> Value {
    let link = base.url(&format!("/api/lists/{}/", list.id));
    json!({
        "type": "list",
        "id": list.id,
        "attributes": {
            "name": list.name,
            "created": time(list.created),
            "updated": time(list.updated),
            "opt_in_process": list.opt_in_process.as_str(),
        },
        "relationships": {
            "profiles": {"links": {"self": format!("{link}relationships/profiles/"), "related": format!("{link}profiles/")}},
        },
        "links": {"self": link},
    })
}

pub async fn get_lists(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        raw.as_deref(),
        &[
            "fields[list]",
            "filter",
            "page[cursor]",
            "page[size]",
            "sort",
        ],
    )?;
    let size = query.page_size(MAX_LIST_PAGE, MAX_LIST_PAGE)?;
    profiles::check_sort(&query, &["id", "created"])?;
    let conditions = match query.get("filter") {
        None => Vec::new(),
        Some(raw) => filter::parse(
            raw,
            &[
                ("name", &["any", "equals"]),
                ("id", &["any", "equals"]),
                ("created", &["greater-than"]),
                ("updated", &["greater-than"]),
            ],
            &["created", "updated"],
        )?,
    };
    let lists: Vec<(String, List)> = sim
        .lock()
        .lists
        .values()
        .filter(|l| {
            conditions.iter().all(|c| match c.field.as_str() {
                "name" => c.matches_text(Some(&l.name)),
                "id" => c.matches_text(Some(&l.id)),
                "created" => c.matches_time(l.created),
                "updated" => c.matches_time(l.updated),
                _ => true,
            })
        })
        .map(|l| (l.id.clone(), l.clone()))
        .collect();
    let (chunk, links) = jsonapi::page(&lists, &query, size, &base, "/api/lists")?;
    let data: Vec<Value> = chunk.iter().map(|l| render(l, &base)).collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub async fn get_list(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["fields[list]", "additional-fields[list]"])?;
    let with_count = !query
        .list("additional-fields[list]", &["profile_count"])?
        .is_empty();
    let list = sim
        .lock()
        .lists
        .get(&id)
        .cloned()
        .ok_or_else(|| no_list(&id))?;
    let mut doc = render(&list, &base);
    if with_count {
        // The spec's one additional field: how many profiles the list holds.
        doc["attributes"]["profile_count"] = json!(list.members.len());
    }
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": doc, "links": {"self": link}}),
    ))
}

fn no_list(id: &str) -> ApiError {
    ApiError::not_found(format!("A list with id {id} does not exist."))
}

pub async fn create_list(
    State(sim): State<Klaviyo>,
    base: Base,
    body: Bytes,
) -> Result<Response, ApiError> {
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(&doc, "list", &["type", "attributes"])?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    attrs.only(&["name", "opt_in_process"])?;
    let name = attrs.req_str("name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid(
            "/data/attributes/name",
            "'name' must not be blank.",
        ));
    }
    let mut state = sim.lock();
    let opt_in = match attrs.opt_str("opt_in_process")? {
        None => state.account.default_opt_in,
        Some(raw) => OptIn::parse(&raw).ok_or_else(|| {
            ApiError::invalid(
                "/data/attributes/opt_in_process",
                format!("'{raw}' is not one of double_opt_in, single_opt_in."),
            )
        })?,
    };
    let id = state.create_list(&name, opt_in);
    let list = state.lists[&id].clone();
    drop(state);
    let doc = render(&list, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::CREATED,
        json!({"data": doc, "links": {"self": link}}),
    ))
}

/// Members of a list or segment, in pages.
pub fn members_page(
    members: Vec<(String, (&Profile, DateTime<Utc>))>,
    query: &Query,
    base: &Base,
    path: &str,
) -> Result<Response, ApiError> {
    let view = View::from_query(query)?;
    let size = query.page_size(profiles::DEFAULT_PAGE, profiles::MAX_PAGE)?;
    let (chunk, links) = jsonapi::page(&members, query, size, base, path)?;
    let data: Vec<Value> = chunk
        .iter()
        .map(|(p, joined)| {
            let mut doc = profiles::render(p, base, &view);
            if view.fields.is_empty() || view.fields.iter().any(|f| f == "joined_group_at") {
                doc["attributes"]["joined_group_at"] = time(*joined);
            }
            doc
        })
        .collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub const MEMBER_PARAMS: &[&str] = &[
    "additional-fields[profile]",
    "fields[profile]",
    "filter",
    "page[cursor]",
    "page[size]",
    "sort",
];

pub async fn list_profiles(
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
            ("email", &["any", "equals"]),
            ("phone_number", &["any", "equals"]),
        ],
    )?;
    let state = sim.lock();
    let list = state.lists.get(&id).ok_or_else(|| no_list(&id))?;
    let members: Vec<(String, (&Profile, DateTime<Utc>))> = list
        .members
        .iter()
        .filter_map(|(pid, joined)| state.profiles.get(pid).map(|p| (p, *joined)))
        .filter(|(p, _)| profiles::passes(p, &conditions))
        .map(|(p, joined)| (p.id.clone(), (p, joined)))
        .collect();
    // Rendered under the lock: only the page's profiles, never a copy of every member.
    let page = members_page(members, &query, &base, &format!("/api/lists/{id}/profiles"));
    drop(state);
    page
}

/// Reads `{"data": [{"type": "profile", "id"}]}` of a relationships call.
fn relationship_ids(body: &Bytes) -> Result<Vec<String>, ApiError> {
    let doc = jsonapi::parse_body(body)?;
    let root = jsonapi::object(&doc, "")?;
    root.only(&["data"])?;
    let items = root.array("data")?;
    if items.len() > MAX_RELATIONSHIP_PROFILES {
        return Err(ApiError::invalid(
            "/data",
            format!(
                "At most {MAX_RELATIONSHIP_PROFILES} profiles may be given per call; got {}.",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(ApiError::invalid("/data", "'data' must not be empty."));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let ptr = format!("/data/{i}");
            let obj = jsonapi::object(item, &ptr)?;
            obj.only(&["type", "id"])?;
            obj.resource_type("profile")?;
            obj.req_str("id")
        })
        .collect()
}

fn check_profiles_exist(sim: &Klaviyo, list_id: &str, ids: &[String]) -> Result<(), ApiError> {
    let state = sim.lock();
    if !state.lists.contains_key(list_id) {
        return Err(no_list(list_id));
    }
    match ids.iter().position(|id| !state.profiles.contains_key(id)) {
        Some(i) => Err(ApiError::invalid(
            format!("/data/{i}/id"),
            format!("A profile with id {} does not exist.", ids[i]),
        )),
        None => Ok(()),
    }
}

pub async fn add_profiles(
    State(sim): State<Klaviyo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ids = relationship_ids(&body)?;
    check_profiles_exist(&sim, &id, &ids)?;
    let mut state = sim.lock();
    for pid in &ids {
        state.add_member(&id, pid);
    }
    Ok(jsonapi::no_content())
}

pub async fn remove_profiles(
    State(sim): State<Klaviyo>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ids = relationship_ids(&body)?;
    check_profiles_exist(&sim, &id, &ids)?;
    let mut state = sim.lock();
    let now = state.now();
    if let Some(list) = state.lists.get_mut(&id) {
        for pid in &ids {
            if list.members.remove(pid).is_some() {
                list.updated = now;
            }
        }
    }
    Ok(jsonapi::no_content())
}
