//! List members (`/lists/{list_id}/members…`), their tags, archiving and permanent deletion.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::error::{ApiError, FieldError};
use super::params::{Fields, Params, json_object};
use super::render::{self, Links};
use super::state::{Member, MemberInput, MemberStatus, Mode, State as Account};
use super::{Mailchimp, respond};

const STATUS_FILTER: &[&str] = &[
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
    "archived",
];

/// Reads the member fields of a write body (`Add_List_Members*`); type errors collect in
/// `fields.errors`. `tags` (an array of names) is read only where the operation takes it.
///
/// Schema rules checked here, before any merge-field or member rule:
/// - a merge value may not be `null` (`merge_fields.FNAME`: "Data did not match any of the
///   schemas described in anyOf.", Mailchimp's answer to the official spec's `anyOf` of value
///   types; a missing value is left out, a value is cleared with `""`);
/// - interest values are booleans (`interests.{id}`).
pub fn member_input(fields: &mut Fields<'_>, with_tags: bool) -> MemberInput {
    let merge_fields = fields.object("merge_fields").cloned();
    for (tag, value) in merge_fields.iter().flatten() {
        if value.is_null() {
            fields.errors.push(FieldError::new(
                format!("merge_fields.{tag}"),
                "Data did not match any of the schemas described in anyOf.",
            ));
        }
    }
    let interests = fields.object("interests").cloned();
    for (id, value) in interests.iter().flatten() {
        if !value.is_boolean() {
            let found = match value {
                Value::Null => "NULL",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                _ => "object",
            };
            fields.errors.push(FieldError::new(
                format!("interests.{id}"),
                format!("Schema describes boolean, {found} found instead"),
            ));
        }
    }
    let mut input = MemberInput {
        email_address: fields.string("email_address"),
        status: fields.status("status"),
        status_if_new: fields.status("status_if_new"),
        email_type: fields.one_of("email_type", &["html", "text"]),
        merge_fields,
        interests,
        language: fields.string("language"),
        vip: fields.boolean("vip"),
        ip_signup: fields.string("ip_signup"),
        ip_opt: fields.string("ip_opt"),
        ..MemberInput::default()
    };
    if let Some(location) = fields.object("location") {
        let mut location = Fields::with_prefix(location, "location");
        input.latitude = location.number("latitude");
        input.longitude = location.number("longitude");
        fields.errors.append(&mut location.errors);
    }
    // Accepted (the spec lists it) but not modelled.
    fields.array("marketing_permissions");
    input.timestamp_signup = written_timestamp(fields, "timestamp_signup");
    input.timestamp_opt = written_timestamp(fields, "timestamp_opt");
    super::sms::read_input(fields, &mut input);
    if with_tags {
        input.tags = fields.strings("tags");
        for (i, tag) in input.tags.iter().flatten().enumerate() {
            if let Some(error) = tag_name_error(&format!("tags.{i}"), tag) {
                fields.errors.push(error);
            }
        }
    }
    input
}

/// The longest tag name Mailchimp takes ([U] 100 characters, the limit Mailchimp's help gives for
/// tag names; the spec is silent).
pub const MAX_TAG_NAME: usize = 100;

/// A tag name that is blank or longer than [`MAX_TAG_NAME`] characters is a field error.
pub fn tag_name_error(field: &str, name: &str) -> Option<FieldError> {
    if name.trim().is_empty() {
        Some(FieldError::new(field, "This value should not be blank."))
    } else if name.chars().count() > MAX_TAG_NAME {
        Some(FieldError::new(
            field,
            format!("This value is too long. It should have {MAX_TAG_NAME} characters or less."),
        ))
    } else {
        None
    }
}

/// A timestamp in a write: ISO 8601 (`2015-10-21T15:41:36+00:00`) or `YYYY-MM-DD HH:MM:SS`
/// (read as UTC).
fn written_timestamp(fields: &mut Fields<'_>, key: &str) -> Option<DateTime<Utc>> {
    let text = fields.string(key)?;
    if text.is_empty() {
        return None;
    }
    let parsed = DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        });
    if parsed.is_none() {
        fields.errors.push(FieldError::new(
            key,
            format!("\"{text}\" is not a valid date and time"),
        ));
    }
    parsed
}

fn render_one(
    state: &Account,
    list_id: &str,
    hash: &str,
    links: &Links,
) -> Result<Value, ApiError> {
    let list = state.list(list_id)?;
    let member = list.members.get(hash).ok_or(ApiError::NotFound)?;
    Ok(render::member(list, hash, member, links))
}

/// `GET /lists/{list_id}/members`.
///
/// Filters: `status` (one of the spec's enum; archived members are left out unless
/// `status=archived` — archived contacts leave the audience's views and counts), `since_/
/// before_last_changed` (strictly after / before, at Mailchimp's one-second resolution),
/// `since_/before_timestamp_opt`, `vip_only`, `email_type`, `unique_email_id`,
/// `unsubscribed_since` (only with `status=unsubscribed`). Sorting: `sort_field`, `sort_dir`;
/// the default order is the order members were added. Paging: `count` (default 10, ≤1000),
/// `offset`; `total_items` counts every match.
pub async fn list_members(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let status = params
        .one_of("status", STATUS_FILTER)?
        .and_then(|s| MemberStatus::parse(&s));
    let since_changed = params.timestamp("since_last_changed")?;
    let before_changed = params.timestamp("before_last_changed")?;
    let since_opt = params.timestamp("since_timestamp_opt")?;
    let before_opt = params.timestamp("before_timestamp_opt")?;
    let unsubscribed_since = params.timestamp("unsubscribed_since")?;
    if unsubscribed_since.is_some() && status != Some(MemberStatus::Unsubscribed) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "unsubscribed_since",
            "unsubscribed_since can only be used with status=unsubscribed",
        )]));
    }
    let vip_only = params.boolean("vip_only")?.unwrap_or(false);
    let email_type = params.one_of("email_type", &["html", "text"])?;
    let unique_email_id = params.get("unique_email_id");
    let sort_field = params.one_of(
        "sort_field",
        &["timestamp_opt", "timestamp_signup", "last_changed"],
    )?;
    let sort_dir = params.one_of("sort_dir", &["ASC", "DESC"])?;

    let state = sim.lock();
    let list = state.list(&list_id)?;
    let after = |t: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>| {
        bound.is_none_or(|b| t.is_some_and(|t| t > b))
    };
    let before = |t: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>| {
        bound.is_none_or(|b| t.is_some_and(|t| t < b))
    };
    let mut selected: Vec<(&String, &Member)> = list
        .ordered_members()
        .into_iter()
        .filter(|(_, m)| match status {
            Some(s) => m.visible_status() == s,
            None => !m.archived,
        })
        .filter(|(_, m)| after(Some(m.last_changed), since_changed))
        .filter(|(_, m)| before(Some(m.last_changed), before_changed))
        .filter(|(_, m)| after(m.timestamp_opt, since_opt))
        .filter(|(_, m)| before(m.timestamp_opt, before_opt))
        .filter(|(_, m)| unsubscribed_since.is_none_or(|b| m.last_changed >= b))
        .filter(|(_, m)| !vip_only || m.vip)
        .filter(|(_, m)| email_type.as_ref().is_none_or(|t| &m.email_type == t))
        .filter(|(_, m)| {
            unique_email_id
                .as_ref()
                .is_none_or(|u| &super::email::unique_email_id(&m.email_address) == u)
        })
        .collect();
    if let Some(field) = sort_field {
        let key = |m: &Member| match field.as_str() {
            "timestamp_opt" => m.timestamp_opt,
            "timestamp_signup" => m.timestamp_signup,
            _ => Some(m.last_changed),
        };
        selected.sort_by(|a, b| key(a.1).cmp(&key(b.1)).then(a.1.seq.cmp(&b.1.seq)));
    }
    if sort_dir.as_deref() == Some("DESC") {
        selected.reverse();
    }
    let total = selected.len();
    let members: Vec<Value> = selected
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|(hash, member)| render::member(list, hash, member, &links))
        .collect();
    let path = format!("/lists/{list_id}/members");
    let doc = json!({
        "members": members,
        "list_id": list_id,
        "total_items": total,
        "_links": links.collection(&path, &format!("/lists/{list_id}"), true),
    });
    Ok(respond(doc, &params))
}

/// `POST /lists/{list_id}/members` — required `email_address` and `status`; an address already
/// on the list is 400 "Member Exists" (an archived one is re-added).
pub async fn add_member(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    let skip_merge = params.boolean("skip_merge_validation")?.unwrap_or(false);
    sim.lock().list(&list_id)?;
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    fields.required_string("email_address");
    if !fields.has("status") {
        fields
            .errors
            .push(FieldError::new("status", "This value should not be blank."));
    }
    let input = member_input(&mut fields, true);
    fields.into_result()?;
    let mut state = sim.lock();
    let outcome = state.write_member(&list_id, None, input, Mode::Create, skip_merge)?;
    let doc = render_one(&state, &list_id, outcome.hash(), &links)?;
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/members/{subscriber_hash}`; the hash may also be the address itself.
pub async fn get_member(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    state.list(&list_id)?;
    let hash = Account::resolve_hash(&hash)?;
    let doc = render_one(&state, &list_id, &hash, &links)?;
    Ok(respond(doc, &params))
}

/// `PUT /lists/{list_id}/members/{subscriber_hash}` — add or update; required `email_address`
/// and `status_if_new` (used only for a new member; `status` applies to an existing one).
pub async fn put_member(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    write(sim, list_id, hash, params, links, body, Mode::Upsert)
}

/// `PATCH /lists/{list_id}/members/{subscriber_hash}` — update an existing member (404 if none).
pub async fn patch_member(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    write(sim, list_id, hash, params, links, body, Mode::Update)
}

fn write(
    sim: Mailchimp,
    list_id: String,
    hash: String,
    params: Params,
    links: Links,
    body: Bytes,
    mode: Mode,
) -> Result<Response, ApiError> {
    let skip_merge = params.boolean("skip_merge_validation")?.unwrap_or(false);
    sim.lock().list(&list_id)?;
    let hash = Account::resolve_hash(&hash)?;
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    if mode == Mode::Upsert {
        fields.required_string("email_address");
        if !fields.has("status_if_new") {
            fields.errors.push(FieldError::new(
                "status_if_new",
                "This value should not be blank.",
            ));
        }
    }
    let input = member_input(&mut fields, false);
    // The PATCH body (`Add_List_Members_3`) has no `transactional` in its status enum.
    if mode == Mode::Update && input.status == Some(MemberStatus::Transactional) {
        fields.errors.push(FieldError::new(
            "status",
            format!(
                "Schema describes enum, \"transactional\" is not one of {:?}",
                MemberStatus::PATCHABLE
            ),
        ));
    }
    fields.into_result()?;
    let mut state = sim.lock();
    let outcome = state.write_member(&list_id, Some(&hash), input, mode, skip_merge)?;
    let doc = render_one(&state, &list_id, outcome.hash(), &links)?;
    Ok(respond(doc, &params))
}

/// `DELETE /lists/{list_id}/members/{subscriber_hash}` — archives the member (204). An unknown
/// or already archived member is 404.
pub async fn archive_member(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    state.list(&list_id)?;
    let hash = Account::resolve_hash(&hash)?;
    let archived = state
        .list(&list_id)?
        .members
        .get(&hash)
        .is_some_and(|m| m.archived);
    if archived {
        return Err(ApiError::NotFound);
    }
    state.set_status_directly(&list_id, &hash, MemberStatus::Archived)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent` — erases the
/// member (204); the address can never be added to this list again ("Forgotten Email Not
/// Subscribed").
pub async fn delete_permanent(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut state = sim.lock();
    state.list(&list_id)?;
    let hash = Account::resolve_hash(&hash)?;
    state.forget(&list_id, &hash)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /lists/{list_id}/members/{subscriber_hash}/tags` (spec `Collection_of_Tags`).
pub async fn get_tags(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let hash = Account::resolve_hash(&hash)?;
    if !list.members.contains_key(&hash) {
        return Err(ApiError::NotFound);
    }
    let tags = list.tags_of(&hash);
    let total = tags.len();
    let page: Vec<Value> = tags
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|(segment, added)| {
            json!({"id": segment.id, "name": segment.name, "date_added": render::timestamp(added)})
        })
        .collect();
    let path = format!("/lists/{list_id}/members/{hash}/tags");
    let doc = json!({
        "tags": page,
        "total_items": total,
        "_links": links.collection(&path, &format!("/lists/{list_id}/members/{hash}"), true),
    });
    Ok(respond(doc, &params))
}

/// `POST /lists/{list_id}/members/{subscriber_hash}/tags` — body `Member_Tags`
/// `{tags: [{name, status: active|inactive}], is_syncing}`; 204. An active tag that does not
/// exist is created. Archived members cannot be tagged (404).
pub async fn post_tags(
    State(sim): State<Mailchimp>,
    Path((list_id, hash)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let hash = {
        let state = sim.lock();
        let list = state.list(&list_id)?;
        let hash = Account::resolve_hash(&hash)?;
        if list.members.get(&hash).is_none_or(|m| m.archived) {
            return Err(ApiError::NotFound);
        }
        hash
    };
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    fields.boolean("is_syncing");
    let mut wanted = Vec::new();
    match fields.array("tags") {
        Some(tags) => {
            for (i, tag) in tags.iter().enumerate() {
                let Value::Object(tag) = tag else {
                    fields.errors.push(FieldError::new(
                        format!("tags.{i}"),
                        "Schema describes object, another type found instead",
                    ));
                    continue;
                };
                let mut tag_fields = Fields::with_prefix(tag, &format!("tags.{i}"));
                let name = tag_fields.required_string("name");
                let status = if tag_fields.has("status") {
                    tag_fields.one_of("status", &["inactive", "active"])
                } else {
                    tag_fields.required_string("status")
                };
                fields.errors.append(&mut tag_fields.errors);
                if let Some(error) = name
                    .as_deref()
                    .and_then(|n| tag_name_error(&format!("tags.{i}.name"), n))
                {
                    fields.errors.push(error);
                    continue;
                }
                if let (Some(name), Some(status)) = (name, status) {
                    wanted.push((name, status == "active"));
                }
            }
        }
        None if fields.errors.is_empty() => fields
            .errors
            .push(FieldError::new("tags", "This value should not be blank.")),
        None => {}
    }
    fields.into_result()?;
    let mut state = sim.lock();
    for (name, active) in wanted {
        state.tag_member(&list_id, &hash, &name, active)?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
