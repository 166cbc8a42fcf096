//! Segments: `/lists/{list_id}/segments…`. Only static segments exist here; "Static segments are
//! now known as tags", so a tag created on a member is a segment too, with the same id.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{ApiError, FieldError};
use super::params::{Fields, Params, json_object};
use super::render::{self, Links};
use super::state::{List, MemberStatus, Segment, State as Account};
use super::{Mailchimp, respond, subscriber_hash};

/// Most addresses in each of `members_to_add` and `members_to_remove` ("A maximum of 500 members
/// can be sent").
pub const MAX_SEGMENT_BATCH: usize = 500;

fn segment_of<'a>(list: &'a List, segment_id: &str) -> Result<&'a Segment, ApiError> {
    segment_id
        .parse::<u64>()
        .ok()
        .and_then(|id| list.segments.get(&id))
        .ok_or(ApiError::NotFound)
}

/// `GET /lists/{list_id}/segments` (spec `Collection_of_Segments`), filter `type`.
pub async fn list_segments(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let kind = params.one_of("type", &["saved", "static", "fuzzy"])?;
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let segments: Vec<&Segment> = list
        .segments
        .values()
        .filter(|_| kind.as_deref().is_none_or(|k| k == "static"))
        .collect();
    let total = segments.len();
    let page: Vec<Value> = segments
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|s| render::segment(list, s, &links))
        .collect();
    let path = format!("/lists/{list_id}/segments");
    let doc = json!({
        "segments": page,
        "list_id": list_id,
        "total_items": total,
        "_links": links.collection(&path, &format!("/lists/{list_id}"), true),
    });
    Ok(respond(doc, &params))
}

/// `POST /lists/{list_id}/segments` — body `List_8`: `{name, static_segment: [emails]}`.
/// Addresses not on the list are ignored (spec). A name already used by a tag or segment is 400.
/// Saved segments (`options` with conditions) are not simulated: 400.
pub async fn create_segment(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    sim.lock().list(&list_id)?;
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let name = fields.required_string("name");
    if let Some(error) = name
        .as_deref()
        .and_then(|n| super::members::tag_name_error("name", n))
    {
        fields.errors.push(error);
    }
    let emails = fields.strings("static_segment");
    let has_options = fields.has("options");
    if has_options && fields.has("static_segment") {
        fields.errors.push(FieldError::new(
            "static_segment",
            "This field cannot be provided with the options field.",
        ));
    }
    fields.into_result()?;
    if has_options {
        return Err(ApiError::InvalidResource(
            "The sandbox simulates static segments (tags) only; saved segments with conditions \
             are not supported."
                .to_string(),
        ));
    }
    let name = name.unwrap_or_default();
    let mut state = sim.lock();
    let id = state.create_static_segment(&list_id, &name, &emails.unwrap_or_default())?;
    let list = state.list(&list_id)?;
    let doc = render::segment(list, &list.segments[&id], &links);
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/segments/{segment_id}` (spec `List_7`).
pub async fn get_segment(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let segment = segment_of(list, &segment_id)?;
    Ok(respond(render::segment(list, segment, &links), &params))
}

/// `DELETE /lists/{list_id}/segments/{segment_id}` — deletes the segment (the tag); 204.
pub async fn delete_segment(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    let now = state.now();
    let list = state.list_mut(&list_id)?;
    let id = segment_of(list, &segment_id)?.id;
    if let Some(segment) = list.segments.remove(&id) {
        for hash in segment.members.keys() {
            if let Some(member) = list.members.get_mut(hash) {
                member.last_changed = now;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /lists/{list_id}/segments/{segment_id}` — batch add/remove (body
/// `Members_to_add_remove_to_from_a_static_segment`, answer
/// `Batch_add_remove_List_members_to_from_static_segment`).
///
/// More than 500 addresses in either array is 400 for the whole call (Mailchimp's detail:
/// "Maximum allowed member items exceeded, please provide at most 500 items in members_to_add
/// field or members_to_remove field"). Addresses that are not (non-archived) members of the list
/// are not added; they are reported in `errors[{email_addresses, error}]`.
pub async fn batch_segment(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id)): Path<(String, String)>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = {
        let state = sim.lock();
        let list = state.list(&list_id)?;
        segment_of(list, &segment_id)?.name.clone()
    };
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let to_add = fields.strings("members_to_add").unwrap_or_default();
    let to_remove = fields.strings("members_to_remove").unwrap_or_default();
    fields.into_result()?;
    if to_add.len() > MAX_SEGMENT_BATCH || to_remove.len() > MAX_SEGMENT_BATCH {
        return Err(ApiError::InvalidResource(format!(
            "Maximum allowed member items exceeded, please provide at most {MAX_SEGMENT_BATCH} \
             items in members_to_add field or members_to_remove field"
        )));
    }
    let mut state = sim.lock();
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut missing_add = Vec::new();
    let mut missing_remove = Vec::new();
    for email in &to_add {
        let hash = subscriber_hash(email);
        let on_list = state
            .list(&list_id)?
            .members
            .get(&hash)
            .is_some_and(|m| !m.archived);
        if !on_list {
            missing_add.push(email.clone());
        } else if state.tag_member(&list_id, &hash, &name, true)? {
            added.push(hash);
        }
    }
    for email in &to_remove {
        let hash = subscriber_hash(email);
        if !state.list(&list_id)?.members.contains_key(&hash) {
            missing_remove.push(email.clone());
        } else if state.tag_member(&list_id, &hash, &name, false)? {
            removed.push(hash);
        }
    }
    let list = state.list(&list_id)?;
    let render_all = |hashes: &[String]| -> Vec<Value> {
        hashes
            .iter()
            .filter_map(|h| {
                list.members
                    .get(h)
                    .map(|m| render::member(list, h, m, &links))
            })
            .collect()
    };
    let mut errors = Vec::new();
    if !missing_add.is_empty() {
        errors.push(json!({
            "email_addresses": missing_add,
            "error": "Email addresses are not members of this list and were not added to the segment.",
        }));
    }
    if !missing_remove.is_empty() {
        errors.push(json!({
            "email_addresses": missing_remove,
            "error": "Email addresses are not members of this list and could not be removed from the segment.",
        }));
    }
    let error_count = missing_add.len() + missing_remove.len();
    let doc = json!({
        "members_added": render_all(&added),
        "members_removed": render_all(&removed),
        "errors": errors,
        "total_added": added.len(),
        "total_removed": removed.len(),
        "error_count": error_count,
        "_links": [links.link("self", "GET", &format!("/lists/{list_id}/segments/{segment_id}"))],
    });
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/segments/{segment_id}/members` (spec `Segment_Members`). Unsubscribed,
/// cleaned and transactional members appear only with `include_unsubscribed`,
/// `include_cleaned`, `include_transactional`; archived members never.
pub async fn segment_members(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let include_cleaned = params.boolean("include_cleaned")?.unwrap_or(false);
    let include_transactional = params.boolean("include_transactional")?.unwrap_or(false);
    let include_unsubscribed = params.boolean("include_unsubscribed")?.unwrap_or(false);
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let segment = segment_of(list, &segment_id)?;
    let mut members: Vec<_> = segment
        .members
        .iter()
        .filter_map(|(hash, added)| list.members.get(hash).map(|m| (hash, m, *added)))
        .filter(|(_, m, _)| match m.visible_status() {
            MemberStatus::Archived => false,
            MemberStatus::Cleaned => include_cleaned,
            MemberStatus::Transactional => include_transactional,
            MemberStatus::Unsubscribed => include_unsubscribed,
            MemberStatus::Subscribed | MemberStatus::Pending => true,
        })
        .collect();
    members.sort_by_key(|(_, m, added)| (*added, m.seq));
    let total = members.len();
    let page: Vec<Value> = members
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|(hash, m, _)| render::member(list, hash, m, &links))
        .collect();
    let path = format!("/lists/{list_id}/segments/{segment_id}/members");
    let doc = json!({
        "members": page,
        "total_items": total,
        "_links": links.collection(&path, &format!("/lists/{list_id}/segments/{segment_id}"), true),
    });
    Ok(respond(doc, &params))
}

/// `POST /lists/{list_id}/segments/{segment_id}/members` — body `{email_address}`; adds one
/// member and answers with it. An address that is not a (non-archived) member is 404.
pub async fn add_segment_member(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id)): Path<(String, String)>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = {
        let state = sim.lock();
        let list = state.list(&list_id)?;
        segment_of(list, &segment_id)?.name.clone()
    };
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let email = fields.required_string("email_address");
    fields.into_result()?;
    let hash = subscriber_hash(&email.unwrap_or_default());
    let mut state = sim.lock();
    if state
        .list(&list_id)?
        .members
        .get(&hash)
        .is_none_or(|m| m.archived)
    {
        return Err(ApiError::NotFound);
    }
    state.tag_member(&list_id, &hash, &name, true)?;
    let list = state.list(&list_id)?;
    let doc = render::member(list, &hash, &list.members[&hash], &links);
    Ok(respond(doc, &params))
}

/// `DELETE /lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}` — 204; 404 when the
/// member is not in the segment.
pub async fn remove_segment_member(
    State(sim): State<Mailchimp>,
    Path((list_id, segment_id, hash)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    let list = state.list(&list_id)?;
    let name = segment_of(list, &segment_id)?.name.clone();
    let hash = Account::resolve_hash(&hash)?;
    if !list.members.contains_key(&hash) {
        return Err(ApiError::NotFound);
    }
    if state.tag_member(&list_id, &hash, &name, false)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}
