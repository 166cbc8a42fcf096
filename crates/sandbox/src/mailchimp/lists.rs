//! The API root, `/ping`, audiences (`/lists`) and batch subscribe (`POST /lists/{list_id}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::{ApiError, FieldError};
use super::members::member_input;
use super::params::{Fields, Params, json_object};
use super::render::{self, Links};
use super::state::{Mode, Outcome};
use super::{Mailchimp, respond};

/// Most members one batch-subscribe call takes ("Up to 500 members may be added or updated with
/// each API call").
pub const MAX_BATCH_MEMBERS: usize = 500;

/// `GET /` — the account (spec `API_Root`).
pub async fn root(State(sim): State<Mailchimp>, params: Params, links: Links) -> Response {
    let state = sim.lock();
    let doc = render::account(
        state.total_subscribers(),
        state.contact_limit.is_some(),
        state.created,
        &links,
    );
    respond(doc, &params)
}

/// `GET /ping` — "Everything's Chimpy!".
pub async fn ping() -> Response {
    Json(json!({"health_status": "Everything's Chimpy!"})).into_response()
}

/// `GET /lists` (spec `Subscriber_Lists`).
pub async fn get_lists(
    State(sim): State<Mailchimp>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let (count, offset) = params.paging()?;
    let include_total = params.boolean("include_total_contacts")?.unwrap_or(false);
    let sort_dir = params.one_of("sort_dir", &["ASC", "DESC"])?;
    params.one_of("sort_field", &["date_created"])?;
    let since = params.timestamp("since_date_created")?;
    let before = params.timestamp("before_date_created")?;
    let email = params.get("email").map(|e| super::subscriber_hash(&e));
    let state = sim.lock();
    let mut lists: Vec<_> = state
        .lists
        .values()
        .filter(|l| since.is_none_or(|t| l.date_created > t))
        .filter(|l| before.is_none_or(|t| l.date_created < t))
        .filter(|l| {
            email
                .as_ref()
                .is_none_or(|h| l.members.get(h).is_some_and(|m| !m.archived))
        })
        .collect();
    lists.sort_by_key(|l| (l.date_created, l.seq));
    if sort_dir.as_deref() == Some("DESC") {
        lists.reverse();
    }
    let total = lists.len();
    let page: Vec<Value> = lists
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|l| render::list(l, include_total, &links))
        .collect();
    let doc = json!({
        "lists": page,
        "total_items": total,
        "constraints": {
            "may_create": true,
            "max_instances": 100_000,
            "current_total_instances": state.lists.len(),
        },
        "_links": links.collection("/lists", "/", true),
    });
    Ok(respond(doc, &params))
}

/// `POST /lists` — body `Subscriber_List_1` (required: `name`, `contact{company, address1, city,
/// country}`, `permission_reminder`, `campaign_defaults{from_name, from_email, subject,
/// language}`, `email_type_option`).
pub async fn create_list(
    State(sim): State<Mailchimp>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    fields.required_string("name");
    fields.required_string("permission_reminder");
    if fields.boolean("email_type_option").is_none() && !fields.has("email_type_option") {
        fields.errors.push(FieldError::new(
            "email_type_option",
            "This value should not be blank.",
        ));
    }
    let mut errors = std::mem::take(&mut fields.errors);
    match fields.object("contact") {
        Some(contact) => {
            let mut contact = Fields::with_prefix(contact, "contact");
            for key in ["company", "address1", "city", "country"] {
                contact.required_string(key);
            }
            errors.append(&mut contact.errors);
        }
        None => errors.push(FieldError::new(
            "contact",
            "This value should not be blank.",
        )),
    }
    match fields.object("campaign_defaults") {
        Some(defaults) => {
            let mut defaults = Fields::with_prefix(defaults, "campaign_defaults");
            for key in ["from_name", "from_email", "language"] {
                defaults.required_string(key);
            }
            // Required, but an empty default subject is fine.
            defaults.present_string("subject");
            errors.append(&mut defaults.errors);
        }
        None => errors.push(FieldError::new(
            "campaign_defaults",
            "This value should not be blank.",
        )),
    }
    for key in ["use_archive_bar", "double_optin", "marketing_permissions"] {
        fields.boolean(key);
    }
    fields.one_of("visibility", &["pub", "prv"]);
    errors.append(&mut fields.errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let settings: Map<String, Value> = body
        .into_iter()
        .filter(|(k, _)| {
            [
                "name",
                "contact",
                "permission_reminder",
                "use_archive_bar",
                "campaign_defaults",
                "notify_on_subscribe",
                "notify_on_unsubscribe",
                "email_type_option",
                "double_optin",
                "marketing_permissions",
                "visibility",
            ]
            .contains(&k.as_str())
        })
        .collect();
    let mut state = sim.lock();
    let id = state.create_list(None, settings);
    let doc = render::list(state.list(&id)?, false, &links);
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}` (spec `Subscriber_List`).
pub async fn get_list(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    let include_total = params.boolean("include_total_contacts")?.unwrap_or(false);
    let state = sim.lock();
    let doc = render::list(state.list(&list_id)?, include_total, &links);
    Ok(respond(doc, &params))
}

/// `POST /lists/{list_id}` — batch subscribe or unsubscribe (body
/// `Members_to_Subscribe_Unsubscribe_to_from_a_List_in_batch`, answer
/// `Batch_update_List_members`).
///
/// - more than 500 `members` → 400 for the whole call;
/// - each member is applied on its own: failures land in `errors[]` (with `error_code`
///   `ERROR_CONTACT_EXISTS` for an existing member when `update_existing` is false, else
///   `ERROR_GENERIC`) and the call still answers 200;
/// - `update_existing: false` (the default) leaves existing members alone; archived members are
///   re-added (reported in `new_members`);
/// - new members get the entry's `tags` (an array of tag names, as `POST …/members` takes);
///   existing members (with `update_existing`) get them added, their other tags kept, as
///   Mailchimp does since January 2022 (release note "Added ability to sync tags to existing
///   members" [D]); `sync_tags: true` makes them exactly the entry's `tags` (an entry without
///   `tags` leaves them alone);
/// - `skip_duplicate_check=true` ignores repeats of an address after its first appearance;
///   without it a repeat is a per-member error.
pub async fn batch_subscribe(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    let skip_merge = params.boolean("skip_merge_validation")?.unwrap_or(false);
    let skip_duplicates = params.boolean("skip_duplicate_check")?.unwrap_or(false);
    sim.lock().list(&list_id)?;
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let members = fields.array("members");
    let update_existing = fields.boolean("update_existing").unwrap_or(false);
    let sync_tags = fields.boolean("sync_tags").unwrap_or(false);
    let Some(members) = members else {
        if fields.errors.is_empty() {
            fields.errors.push(FieldError::new(
                "members",
                "This value should not be blank.",
            ));
        }
        return Err(ApiError::Validation(fields.errors));
    };
    fields.into_result()?;
    if members.len() > MAX_BATCH_MEMBERS {
        return Err(ApiError::Validation(vec![FieldError::new(
            "members",
            format!(
                "Maximum allowed member items exceeded, please provide at most \
                 {MAX_BATCH_MEMBERS} items in members field ({} given)",
                members.len()
            ),
        )]));
    }
    let mode = Mode::Batch {
        update_existing,
        sync_tags,
    };
    let mut state = sim.lock();
    let mut created = Vec::new();
    let mut updated = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for entry in members {
        let Value::Object(entry) = entry else {
            errors.push(
                ApiError::Validation(vec![FieldError::new(
                    "members",
                    "Schema describes object, another type found instead",
                )])
                .batch_entry(""),
            );
            continue;
        };
        let mut entry_fields = Fields::new(entry);
        let input = member_input(&mut entry_fields, true);
        let email = input.email_address.clone().unwrap_or_default();
        if let Err(error) = entry_fields.into_result() {
            errors.push(error.batch_entry(&email));
            continue;
        }
        if !email.trim().is_empty() && !seen.insert(super::subscriber_hash(&email)) {
            if !skip_duplicates {
                errors.push(
                    ApiError::InvalidResource(format!(
                        "{email} appears more than once in this request; only its first \
                         appearance was applied. Use skip_duplicate_check to ignore repeats."
                    ))
                    .batch_entry(&email),
                );
            }
            continue;
        }
        match state.write_member(&list_id, None, input, mode, skip_merge) {
            Ok(Outcome::Created(hash)) => created.push(hash),
            Ok(Outcome::Updated(hash)) => updated.push(hash),
            Err(error) => errors.push(error.batch_entry(&email)),
        }
    }
    let list = state.list(&list_id)?;
    // Rendering hundreds of members under the state lock is what a trimmed answer would throw
    // away; skip it when `fields`/`exclude_fields` leave the member arrays out (same answer).
    let (include, exclude) = params.trimming();
    let named = |list: &Option<String>, key: &str, nested: bool| {
        list.as_deref().is_some_and(|fields| {
            fields.split(',').map(str::trim).any(|f| {
                f == key
                    || (nested
                        && f.strip_prefix(key)
                            .is_some_and(|rest| rest.starts_with('.')))
            })
        })
    };
    let wanted = |key: &str| {
        (include.is_none() || named(&include, key, true)) && !named(&exclude, key, false)
    };
    let render_all = |key: &str, hashes: &[String]| -> Vec<Value> {
        if !wanted(key) {
            return Vec::new();
        }
        hashes
            .iter()
            .filter_map(|h| {
                list.members
                    .get(h)
                    .map(|m| render::member(list, h, m, &links))
            })
            .collect()
    };
    let doc = json!({
        "new_members": render_all("new_members", &created),
        "updated_members": render_all("updated_members", &updated),
        "errors": errors,
        "total_created": created.len(),
        "total_updated": updated.len(),
        "error_count": errors.len(),
        "_links": [
            links.link("self", "GET", &format!("/lists/{list_id}")),
        ],
    });
    Ok(respond(doc, &params))
}
