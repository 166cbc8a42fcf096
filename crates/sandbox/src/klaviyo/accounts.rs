//! The account: `GET /api/accounts` (the one account of the key) and `GET /api/accounts/{id}`.
//! Its time zone is settable for tests ([`super::Klaviyo::set_timezone`]).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Klaviyo;
use super::error::ApiError;
use super::jsonapi::{self, Base, Query};
use super::state::Account;

fn render(account: &Account, base: &Base) -> Value {
    json!({
        "type": "account",
        "id": account.id,
        "attributes": {
            "test_account": false,
            "contact_information": {
                "default_sender_name": account.organization_name,
                "default_sender_email": "owner@example.com",
                "website_url": "https://example.com",
                "organization_name": account.organization_name,
                "street_address": {
                    "address1": "1 Sandbox Way", "address2": null, "city": "Boston",
                    "region": "MA", "country": "US", "zip": "02110",
                },
            },
            "industry": "Retail",
            "timezone": account.timezone,
            "preferred_currency": account.preferred_currency,
            "public_api_key": account.public_api_key,
            "locale": account.locale,
        },
        "links": {"self": base.url(&format!("/api/accounts/{}/", account.id))},
    })
}

pub async fn get_accounts(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(raw.as_deref(), &["fields[account]"])?;
    let account = sim.lock().account.clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": [render(&account, &base)], "links": {"self": base.url("/api/accounts")}}),
    ))
}

pub async fn get_account(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(raw.as_deref(), &["fields[account]"])?;
    let account = sim.lock().account.clone();
    if account.id != id {
        return Err(ApiError::not_found(format!(
            "An account with id {id} does not exist."
        )));
    }
    let doc = render(&account, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": doc, "links": {"self": link}}),
    ))
}
