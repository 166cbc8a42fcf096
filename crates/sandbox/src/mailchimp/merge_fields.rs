//! Merge fields (audience fields): `/lists/{list_id}/merge-fields`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::error::{ApiError, FieldError};
use super::params::{Fields, Params, json_object};
use super::render::{self, Links};
use super::state::{MERGE_FIELD_TYPES, MergeField};
use super::{Mailchimp, respond};

/// Merge tags are at most 10 characters (Mailchimp's limit for audience-field tags).
pub const MAX_TAG_LEN: usize = 10;

/// `GET /lists/{list_id}/merge-fields` (spec `Collection_of_Merge_Fields`), filters `type`,
/// `required`.
pub async fn list_merge_fields(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let kind = params.one_of("type", MERGE_FIELD_TYPES)?;
    let required = params.boolean("required")?;
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let mut fields: Vec<&MergeField> = list
        .merge_fields
        .iter()
        .filter(|f| kind.as_ref().is_none_or(|k| &f.kind == k))
        .filter(|f| required.is_none_or(|r| f.required == r))
        .collect();
    fields.sort_by_key(|f| (f.display_order, f.merge_id));
    let total = fields.len();
    let page: Vec<Value> = fields
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|f| render::merge_field(&list_id, f, &links))
        .collect();
    let path = format!("/lists/{list_id}/merge-fields");
    let doc = json!({
        "merge_fields": page,
        "list_id": list_id,
        "total_items": total,
        "_links": links.collection(&path, &format!("/lists/{list_id}"), true),
    });
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/merge-fields/{merge_id}` (spec `Merge_Field`).
pub async fn get_merge_field(
    State(sim): State<Mailchimp>,
    Path((list_id, merge_id)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let state = sim.lock();
    let list = state.list(&list_id)?;
    let field = merge_id
        .parse::<u64>()
        .ok()
        .and_then(|id| list.merge_fields.iter().find(|f| f.merge_id == id))
        .ok_or(ApiError::NotFound)?;
    Ok(respond(
        render::merge_field(&list_id, field, &links),
        &params,
    ))
}

/// `POST /lists/{list_id}/merge-fields` — body `Merge_Field_1` (required `name`, `type`).
///
/// The tag is upper-cased; without one it becomes `MMERGE{merge_id}`. A tag longer than 10
/// characters, with characters other than A–Z, 0–9 and `_`, or already used (including the
/// implicit `EMAIL`) is refused with 400.
pub async fn create_merge_field(
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
    let kind = if fields.has("type") {
        fields.one_of("type", MERGE_FIELD_TYPES)
    } else {
        fields.required_string("type")
    };
    let tag = fields.string("tag").map(|t| t.trim().to_uppercase());
    let required = fields.boolean("required").unwrap_or(false);
    let default_value = fields.string("default_value").unwrap_or_default();
    let public = fields.boolean("public").unwrap_or(false);
    let display_order = fields.integer("display_order");
    let help_text = fields.string("help_text").unwrap_or_default();
    let options = fields.object("options").cloned();
    if let Some(tag) = &tag
        && (tag.is_empty()
            || tag.len() > MAX_TAG_LEN
            || !tag
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    {
        fields.errors.push(FieldError::new(
            "tag",
            format!(
                "Merge tags are 1 to {MAX_TAG_LEN} characters of A-Z, 0-9 and _, \"{tag}\" given"
            ),
        ));
    }
    fields.into_result()?;
    let (Some(name), Some(kind)) = (name, kind) else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "name",
            "This value should not be blank.",
        )]));
    };

    let mut state = sim.lock();
    let list = state.list_mut(&list_id)?;
    let merge_id = list.next_merge_id;
    let tag = tag.unwrap_or_else(|| format!("MMERGE{merge_id}"));
    if tag == "EMAIL" || list.merge_field(&tag).is_some() {
        return Err(ApiError::InvalidResource(format!(
            "A Merge Field with the tag \"{tag}\" already exists for this list."
        )));
    }
    let mut all_options = MergeField::default_options(&kind);
    for (k, v) in options.into_iter().flatten() {
        all_options.insert(k, v);
    }
    let display_order = display_order.map(|d| d.max(2) as u64).unwrap_or_else(|| {
        list.merge_fields
            .iter()
            .map(|f| f.display_order)
            .max()
            .unwrap_or(1)
            + 1
    });
    list.next_merge_id += 1;
    let field = MergeField {
        merge_id,
        tag,
        name,
        kind,
        required,
        default_value,
        public,
        display_order,
        options: all_options,
        help_text,
    };
    let doc = render::merge_field(&list_id, &field, &links);
    list.merge_fields.push(field);
    Ok(respond(doc, &params))
}
