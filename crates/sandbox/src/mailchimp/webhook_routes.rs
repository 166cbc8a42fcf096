//! The list webhook API: `GET`/`POST /lists/{list_id}/webhooks`, `GET`/`DELETE
//! /lists/{list_id}/webhooks/{webhook_id}` (spec 3.0.55, `Add_Webhook`, `Events_2`,
//! `Sources_1`). A registered webhook receives the member changes its `events` and `sources`
//! ask for (see [`super::webhooks`]).
//!
//! Rules:
//! - `url` is required and must be an absolute http(s) URL; Mailchimp checks it with a GET
//!   before creating the webhook [D: "Mailchimp sends a GET request to validate the URL"] and
//!   refuses a URL that does not answer 2xx with 400 Invalid Resource (field `url`);
//! - the same URL twice on one audience is 400 "Sorry, you can't use the same URL more than
//!   once." [U: Mailchimp's wording in its web UI];
//! - `events` and `sources` are objects of booleans; events left out are on, sources left out
//!   are `user` and `admin` on, `api` off [U: the spec gives no defaults; these are the web
//!   UI's];
//! - a webhook's `id` is 10 hex characters [U]; an unknown id is 404.
//!
//! The spec's response schema for both the collection and one webhook is `List_Webhooks`, a
//! generator artefact whose items refer to itself; the simulator answers the collection as
//! `{webhooks, list_id, total_items, _links}` and one webhook as `{id, url, events, sources,
//! list_id, _links}` (what the API sends).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::{ApiError, FieldError};
use super::params::{Fields, Params, json_object};
use super::render::Links;
use super::webhooks::Registered;
use super::{Mailchimp, respond};

const EVENTS: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "profile",
    "cleaned",
    "upemail",
    "campaign",
];
const SOURCES: &[&str] = &["user", "admin", "api"];
/// How long the validation GET may take [U].
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(5);

fn flags(
    given: Option<&Map<String, Value>>,
    names: &[&str],
    default: impl Fn(&str) -> bool,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, bool)> {
    names
        .iter()
        .map(|name| {
            let value = match given.and_then(|g| g.get(*name)) {
                None => default(name),
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("{field}.{name}"),
                        "Data presented is not one of the accepted values: true, false.",
                    ));
                    false
                }
            };
            (name.to_string(), value)
        })
        .collect()
}

fn render(list_id: &str, hook: &Registered, links: &Links) -> Value {
    let path = format!("/lists/{list_id}/webhooks/{}", hook.id);
    let to_map = |pairs: &[(String, bool)]| {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                .collect(),
        )
    };
    json!({
        "id": hook.id,
        "url": hook.url,
        "events": to_map(&hook.events),
        "sources": to_map(&hook.sources),
        "list_id": list_id,
        "_links": [
            links.link("self", "GET", &path),
            links.link("parent", "GET", &format!("/lists/{list_id}/webhooks")),
            links.link("delete", "DELETE", &path),
        ],
    })
}

/// `GET /lists/{list_id}/webhooks`.
pub async fn list_webhooks(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    sim.lock().list(&list_id)?;
    let hooks: Vec<Value> = sim
        .registered(&list_id)
        .iter()
        .map(|h| render(&list_id, h, &links))
        .collect();
    let path = format!("/lists/{list_id}/webhooks");
    let doc = json!({
        "webhooks": hooks,
        "list_id": list_id,
        "total_items": hooks.len(),
        "_links": links.collection(&path, &format!("/lists/{list_id}"), true),
    });
    Ok(respond(doc, &params))
}

/// `GET /lists/{list_id}/webhooks/{webhook_id}`.
pub async fn get_webhook(
    State(sim): State<Mailchimp>,
    Path((list_id, id)): Path<(String, String)>,
    params: Params,
    links: Links,
) -> Result<Response, ApiError> {
    sim.lock().list(&list_id)?;
    let hooks = sim.registered(&list_id);
    let hook = hooks
        .iter()
        .find(|h| h.id == id)
        .ok_or(ApiError::NotFound)?;
    Ok(respond(render(&list_id, hook, &links), &params))
}

/// `DELETE /lists/{list_id}/webhooks/{webhook_id}`: 204.
pub async fn delete_webhook(
    State(sim): State<Mailchimp>,
    Path((list_id, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    sim.lock().list(&list_id)?;
    if sim.unregister(&list_id, &id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /lists/{list_id}/webhooks` — body `Add_Webhook`.
pub async fn create_webhook(
    State(sim): State<Mailchimp>,
    Path(list_id): Path<String>,
    params: Params,
    links: Links,
    body: Bytes,
) -> Result<Response, ApiError> {
    sim.lock().list(&list_id)?;
    let body = json_object(&body)?;
    let mut fields = Fields::new(&body);
    let url = fields.required_string("url");
    let events = fields.object("events");
    let sources = fields.object("sources");
    let mut errors = Vec::new();
    let events = flags(events, EVENTS, |_| true, "events", &mut errors);
    let sources = flags(sources, SOURCES, |s| s != "api", "sources", &mut errors);
    match url.as_deref().map(url::Url::parse) {
        Some(Ok(u)) if !matches!(u.scheme(), "http" | "https") => {
            errors.push(FieldError::new("url", "The URL must be http or https."));
        }
        Some(Err(_)) => errors.push(FieldError::new("url", "This value is not a valid URL.")),
        _ => {}
    }
    fields.errors.extend(errors);
    fields.into_result()?;
    let Some(url) = url else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "url",
            "This value should not be blank.",
        )]));
    };
    if sim.registered(&list_id).iter().any(|h| h.url == url) {
        return Err(ApiError::InvalidResource(
            "Sorry, you can't use the same URL more than once.".into(),
        ));
    }
    // The validation GET, as Mailchimp sends it before creating the webhook.
    let validated = reqwest::Client::builder()
        .timeout(VALIDATION_TIMEOUT)
        .build()
        .expect("a plain HTTP client builds")
        .get(&url)
        .header("User-Agent", "MailChimp.com WebHook Validator")
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if !validated {
        return Err(ApiError::Validation(vec![FieldError::new(
            "url",
            "The URL did not answer Mailchimp's validation request with 200.",
        )]));
    }
    let hook = sim.register(&list_id, url, events, sources);
    Ok(respond(render(&list_id, &hook, &links), &params))
}
