//! Email-marketing consent: `POST /api/profile-subscription-bulk-create-jobs` (≤1,000 profiles)
//! and `POST /api/profile-subscription-bulk-delete-jobs` (≤100), both 202 without a body.
//!
//! Subscribe, as the spec's description says [S]:
//! - removes `UNSUBSCRIBE`, `SPAM_COMPLAINT` (the prose's SPAM_REPORT) and `USER_SUPPRESSED`
//!   suppressions; `HARD_BOUNCE` and `INVALID_EMAIL` stay, so such a profile is SUBSCRIBED but
//!   still cannot receive email marketing [U: that consent changes under a bounce];
//! - follows the list's opt-in process (the account default without a list): on a double opt-in
//!   list the profile is sent a confirmation and neither its consent nor the list changes until it
//!   confirms ([`super::Klaviyo::confirm_double_opt_in`]) [U: the pending state Klaviyo shows];
//! - `historical_import: true` needs a `consented_at` in the past on every profile, skips double
//!   opt-in and fires no "added to list" flow; otherwise each profile newly added to the list
//!   counts one `list:{id}` flow ([`super::Klaviyo::flows_triggered`]);
//! - unknown profiles are created [D].
//!
//! Unsubscribe: a profile in the given list gets a list suppression for that list; a profile not
//! in it (or every profile, without a list) is unsubscribed globally (consent UNSUBSCRIBED plus an
//! `UNSUBSCRIBE` suppression), as the spec's warning says [S]. [U] Unknown profiles are created
//! unsubscribed, so a later import cannot make them look never-subscribed.
//!
//! [U] Jobs are applied when accepted (Klaviyo runs them shortly after); the answer is 202.
//! Only email is simulated: `sms`, `whatsapp` and `push` subscriptions are refused with 400.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::Klaviyo;
use super::error::ApiError;
use super::jsonapi::{self, Obj, parse_time};
use super::state::{Consent, OptIn, Patch, ProfileInput, State as Account, Suppression};

pub const MAX_SUBSCRIBE: usize = 1000;
pub const MAX_UNSUBSCRIBE: usize = 100;

/// One profile of a job.
struct Entry {
    id: Option<String>,
    email: String,
    consented_at: Option<DateTime<Utc>>,
}

/// Reads `data.attributes.profiles.data[]` of either job; `consent` is the only value allowed.
fn entries(
    attrs: Obj<'_>,
    max: usize,
    consent: &str,
    allow_id: bool,
) -> Result<Vec<Entry>, ApiError> {
    let profiles = jsonapi::object(attrs.required("profiles")?, "/data/attributes/profiles")?;
    profiles.only(&["data"])?;
    let items = profiles.array("data")?;
    if items.is_empty() {
        return Err(ApiError::invalid(
            "/data/attributes/profiles/data",
            "At least one profile is required.",
        ));
    }
    if items.len() > max {
        return Err(ApiError::invalid(
            "/data/attributes/profiles/data",
            format!(
                "At most {max} profiles may be given per call; got {}.",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let ptr = format!("/data/attributes/profiles/data/{i}");
            let obj = jsonapi::object(item, &ptr)?;
            obj.only(if allow_id {
                &["type", "id", "attributes"]
            } else {
                &["type", "attributes"]
            })?;
            obj.resource_type("profile")?;
            let attrs_ptr = format!("{ptr}/attributes");
            let a = jsonapi::object(obj.required("attributes")?, &attrs_ptr)?;
            a.only(&[
                "email",
                "phone_number",
                "subscriptions",
                "age_gated_date_of_birth",
            ])?;
            if a.get("phone_number").is_some_and(|v| !v.is_null()) {
                return Err(ApiError::invalid(
                    a.at("phone_number"),
                    "SMS consent is not simulated [U].",
                ));
            }
            let email = a
                .opt_str("email")?
                .ok_or_else(|| ApiError::required(a.at("email")))?;
            if !jsonapi::valid_email(&email) {
                return Err(ApiError::invalid(
                    a.at("email"),
                    format!("Invalid email address: {email:?}"),
                ));
            }
            let subs_ptr = format!("{attrs_ptr}/subscriptions");
            let subs = jsonapi::object(a.required("subscriptions")?, &subs_ptr)?;
            subs.only(&["email", "sms", "whatsapp", "push"])?;
            if let Some(other) = ["sms", "whatsapp", "push"]
                .into_iter()
                .find(|c| subs.get(c).is_some())
            {
                return Err(ApiError::invalid(
                    subs.at(other),
                    format!("'{other}' subscriptions are not simulated [U]."),
                ));
            }
            let email_ptr = format!("{subs_ptr}/email");
            let email_subs = jsonapi::object(subs.required("email")?, &email_ptr)?;
            email_subs.only(&["marketing", "open_tracking"])?;
            let marketing_ptr = format!("{email_ptr}/marketing");
            let marketing = jsonapi::object(email_subs.required("marketing")?, &marketing_ptr)?;
            let consented_at = if consent == "SUBSCRIBED" {
                marketing.only(&["consent", "consented_at"])?;
                match marketing.opt_str("consented_at")? {
                    None => None,
                    Some(raw) => Some(parse_time(&raw).ok_or_else(|| {
                        ApiError::invalid(
                            marketing.at("consented_at"),
                            format!("'{raw}' is not a valid date-time."),
                        )
                    })?),
                }
            } else {
                marketing.only(&["consent"])?;
                None
            };
            let given = marketing.req_str("consent")?;
            if given != consent {
                return Err(ApiError::invalid(
                    marketing.at("consent"),
                    format!("'{given}' is not a valid choice; expected '{consent}'."),
                ));
            }
            Ok(Entry {
                id: obj.opt_str("id")?,
                email: email.to_lowercase(),
                consented_at,
            })
        })
        .collect()
}

/// `relationships.list.data.id`, if given (the list must exist).
fn list_of(data: Obj<'_>, state: &Account) -> Result<Option<String>, ApiError> {
    let Some(rel) = data.get("relationships") else {
        return Ok(None);
    };
    let rel = jsonapi::object(rel, "/data/relationships")?;
    rel.only(&["list"])?;
    let list = jsonapi::object(rel.required("list")?, "/data/relationships/list")?;
    list.only(&["data"])?;
    let list_data = jsonapi::object(list.required("data")?, "/data/relationships/list/data")?;
    list_data.only(&["type", "id"])?;
    list_data.resource_type("list")?;
    let id = list_data.req_str("id")?;
    if !state.lists.contains_key(&id) {
        return Err(ApiError::not_found(format!(
            "A list with id {id} does not exist."
        )));
    }
    Ok(Some(id))
}

/// The profile of an entry, created when missing.
fn profile_of(state: &mut Account, entry: &Entry) -> Result<String, ApiError> {
    if let Some(id) = &entry.id {
        return match state.profiles.get(id) {
            Some(p) if p.email.as_deref() == Some(entry.email.as_str()) => Ok(id.clone()),
            Some(_) => Err(ApiError::invalid(
                "/data/attributes/profiles/data",
                format!("Profile {id} does not have the email {}.", entry.email),
            )),
            None => Err(ApiError::not_found(format!(
                "A profile with id {id} does not exist."
            ))),
        };
    }
    if let Some(p) = state.find_by_email(&entry.email) {
        return Ok(p.id.clone());
    }
    let input = ProfileInput {
        email: Patch::Set(entry.email.clone()),
        ..ProfileInput::default()
    };
    state
        .create_profile(&input)
        .map_err(|_| ApiError::server_error())
}

pub async fn subscribe(State(sim): State<Klaviyo>, body: Bytes) -> Result<Response, ApiError> {
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(
        &doc,
        "profile-subscription-bulk-create-job",
        &["type", "attributes", "relationships"],
    )?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    attrs.only(&["custom_source", "profiles", "historical_import"])?;
    let custom_source = attrs.opt_str("custom_source")?;
    let historical = attrs.opt_bool("historical_import")?.unwrap_or(false);
    let entries = entries(attrs, MAX_SUBSCRIBE, "SUBSCRIBED", true)?;
    let mut state = sim.lock();
    let now = state.now();
    let list = list_of(data, &state)?;
    for (i, entry) in entries.iter().enumerate() {
        let pointer = format!(
            "/data/attributes/profiles/data/{i}/attributes/subscriptions/email/marketing/consented_at"
        );
        match (historical, entry.consented_at) {
            (true, None) => {
                return Err(ApiError::invalid(
                    pointer,
                    "'consented_at' is required when 'historical_import' is true.",
                ));
            }
            (true, Some(at)) if at >= now => {
                return Err(ApiError::invalid(
                    pointer,
                    "'consented_at' must be in the past when 'historical_import' is true.",
                ));
            }
            // [U] A future consent time is refused without historical_import too.
            (false, Some(at)) if at > now => {
                return Err(ApiError::invalid(
                    pointer,
                    "'consented_at' must not be in the future.",
                ));
            }
            _ => {}
        }
    }
    let opt_in = match &list {
        Some(id) => state.lists[id].opt_in_process,
        None => state.account.default_opt_in,
    };
    for entry in &entries {
        let id = profile_of(&mut state, entry)?;
        let mut guard = state.profiles.get_mut(&id).expect("profile exists");
        let profile = &mut *guard;
        let marketing = &mut profile.email_marketing;
        marketing
            .suppressions
            .retain(|(reason, _)| !reason.cleared_by_subscribe());
        if let Some(list) = &list {
            marketing.list_suppressions.retain(|(l, _, _)| l != list);
        }
        marketing.last_updated = Some(now);
        if opt_in == OptIn::Double && !historical {
            // A confirmation email goes out; nothing else changes until the person confirms.
            let key = list.clone().unwrap_or_default();
            if let Some(l) = &list {
                profile.pending_double_opt_in.insert(l.clone());
            }
            drop(guard);
            *state.double_opt_in_sent.entry(key).or_default() += 1;
            continue;
        }
        marketing.consent = Consent::Subscribed;
        marketing.consent_timestamp = Some(entry.consented_at.unwrap_or(now));
        marketing.method = Some(custom_source.clone().unwrap_or_else(|| "API".to_string()));
        marketing.method_detail = custom_source.clone();
        marketing.double_optin = Some(false);
        profile.updated = now;
        drop(guard);
        if let Some(list) = &list {
            let joined = state.add_member(list, &id);
            if joined && !historical {
                state.count_flow(format!("list:{list}"));
            }
        }
    }
    Ok(jsonapi::accepted())
}

pub async fn unsubscribe(State(sim): State<Klaviyo>, body: Bytes) -> Result<Response, ApiError> {
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(
        &doc,
        "profile-subscription-bulk-delete-job",
        &["type", "attributes", "relationships"],
    )?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    attrs.only(&["profiles"])?;
    let entries = entries(attrs, MAX_UNSUBSCRIBE, "UNSUBSCRIBED", false)?;
    let mut state = sim.lock();
    let now = state.now();
    let list = list_of(data, &state)?;
    for entry in &entries {
        let id = profile_of(&mut state, entry)?;
        let in_list = list
            .as_ref()
            .is_some_and(|l| state.lists[l].members.contains_key(&id));
        let mut guard = state.profiles.get_mut(&id).expect("profile exists");
        let profile = &mut *guard;
        let marketing = &mut profile.email_marketing;
        marketing.last_updated = Some(now);
        profile.updated = now;
        match (&list, in_list) {
            (Some(list), true) => {
                if !marketing
                    .list_suppressions
                    .iter()
                    .any(|(l, _, _)| l == list)
                {
                    marketing.list_suppressions.push((
                        list.clone(),
                        "USER_SUPPRESSED".to_string(),
                        now,
                    ));
                }
            }
            _ => {
                marketing.consent = Consent::Unsubscribed;
                marketing.consent_timestamp = Some(now);
                marketing.method = Some("API".to_string());
                marketing.suppress(Suppression::Unsubscribe, now);
            }
        }
    }
    Ok(jsonapi::accepted())
}
