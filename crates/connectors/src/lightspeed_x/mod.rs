//! Lightspeed Retail X-Series (formerly Vend) customers, through API 2.0.
//!
//! `GET {base}/customers?after=<version>&page_size=…&deleted=…` answers
//! `{"data": [Customer], "version": {"min", "max"}}` ordered by `version`, a global integer bumped
//! on every change. The next page is `after=version.max`, and an empty `data` ends the list. That
//! makes `version` an exact change cursor: the checkpoint of every page is its `version.max`.
//!
//! Rate limit (per retailer and app, `300 × registers + 50` requests per 5 minutes): every answer
//! carries `X-RateLimit-Limit`/`X-RateLimit-Remaining`. Near the end of the window the connector
//! spaces its requests out, and at zero it holds the key until the window resets. A 429 carries
//! `Retry-After` as an HTTP date; [`http::send`] honours it and pauses the shared key budget.
//!
//! Sales are read as orders by the same source ([`audience_core::OrderSource`], in [`orders`]).

mod orders;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use audience_core::{
    Address, ConnectorError, Consent, ReadScope, Source, SourceContact, SourcePage,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::config::{self, checked_secret, invalid_config};
use crate::http::{self, KeyBudget, RetryPolicy};
use crate::vendor::{self, VendorDescriptor};

/// The vendor name in errors, metrics and budgets.
pub const VENDOR: &str = "lightspeed-x";
/// What the operator needs to know about Lightspeed X-Series.
pub const DESCRIPTOR: VendorDescriptor = VendorDescriptor {
    name: VENDOR,
    default_secret_key: "token",
    credential_name: "access token",
    hosts: &["*.retail.lightspeed.app", "*.vendhq.com"],
};
/// The API path below the retailer's origin.
pub const API_PATH: &str = "/api/2.0";

/// The API base for an `endpoint` override or a sandbox's vendor URL: the URL plus `/api/2.0`
/// unless it already ends with it.
pub fn api_base(endpoint: &str) -> String {
    vendor::with_suffix(endpoint, API_PATH)
}
/// The endpoint as errors name it.
const ENDPOINT: &str = "GET /customers";
/// Customers asked for per page. The 2.0 maximum is not documented [U]: the connector stops on an
/// empty `data`, never on a short page, so a server that returns fewer costs calls, not records.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Requests in flight per token (reads are sequential; this bounds several syncs sharing a token).
const MAX_CONCURRENT: usize = 2;
/// Never believe a reset further away than this (the documented window is 5 minutes).
const MAX_RESET_WAIT: Duration = Duration::from_secs(600);

/// Reads customers from one X-Series retailer.
#[derive(Clone)]
pub struct LightspeedXSource {
    base_url: String,
    token: String,
    page_size: u32,
    retry: RetryPolicy,
    budget: Arc<KeyBudget>,
    client: reqwest::Client,
}

impl fmt::Debug for LightspeedXSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LightspeedXSource")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl LightspeedXSource {
    /// A source for the store at `https://{domain_prefix}.retail.lightspeed.app/api/2.0`, reading
    /// with an OAuth access token or personal token.
    pub fn new(domain_prefix: &str, token: impl Into<String>) -> Result<Self, ConnectorError> {
        let domain_prefix = domain_prefix.trim();
        let valid = !domain_prefix.is_empty()
            && domain_prefix.len() <= 63
            && domain_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !domain_prefix.starts_with('-');
        if !valid {
            return Err(config_error(
                "the domain prefix must be the store's subdomain (letters, digits and hyphens)",
            ));
        }
        let token = checked_secret(VENDOR, DESCRIPTOR.credential_name, &token.into())?;
        Ok(LightspeedXSource {
            base_url: format!("https://{domain_prefix}.retail.lightspeed.app/api/2.0"),
            budget: http::budget_for(VENDOR, &token, MAX_CONCURRENT),
            token,
            page_size: DEFAULT_PAGE_SIZE,
            retry: RetryPolicy::default(),
            client: http::client(),
        })
    }

    /// Replaces the API base (the URL ending in `/api/2.0`), e.g. to talk to the sandbox.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, ConnectorError> {
        self.base_url = config::checked_base_url(VENDOR, base_url)?;
        Ok(self)
    }

    /// Customers per page (at least 1).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One page after `after`; `None` once `data` is empty. Whatever the vendor's error text
    /// echoes, the token never leaves in an error.
    async fn fetch(
        &self,
        after: u64,
        incremental: bool,
    ) -> Result<Option<(SourcePage, u64)>, ConnectorError> {
        self.fetch_unredacted(after, incremental)
            .await
            .map_err(|e| http::redact_error(e, &[&self.token]))
    }

    async fn fetch_unredacted(
        &self,
        after: u64,
        incremental: bool,
    ) -> Result<Option<(SourcePage, u64)>, ConnectorError> {
        let url = format!("{}/customers", self.base_url);
        let after_text = after.to_string();
        let page_size = self.page_size.to_string();
        // A full read wants live customers only: deleted ones would cost page slots and calls, and
        // a full diff finds removals anyway. An incremental read needs deletions reported.
        let deleted = if incremental { "true" } else { "false" };
        let budget = &self.budget;
        let response = http::send(
            VENDOR,
            ENDPOINT,
            budget,
            &self.retry,
            || {
                self.client.get(&url).bearer_auth(&self.token).query(&[
                    ("after", after_text.as_str()),
                    ("page_size", page_size.as_str()),
                    ("deleted", deleted),
                ])
            },
            |response| {
                pace(budget, response.headers());
                http::default_verdict(response)
            },
        )
        .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(http::status_error(
                VENDOR,
                ENDPOINT,
                status,
                &vendor_message(&body),
            ));
        }
        let collection: Collection = http::json_body(VENDOR, ENDPOINT, response).await?;
        if collection.data.is_empty() {
            return Ok(None);
        }
        let max = collection
            .version
            .map(|v| v.max)
            .or_else(|| collection.data.iter().filter_map(|c| c.version).max())
            .ok_or_else(|| {
                http::invalid_response(VENDOR, ENDPOINT, "a page of customers without a version")
            })?;
        if max <= after {
            return Err(http::invalid_response(
                VENDOR,
                ENDPOINT,
                format!("the version cursor did not advance past {after} (version.max {max})"),
            ));
        }
        let mut page = SourcePage {
            contacts: Vec::with_capacity(collection.data.len()),
            deleted: Vec::new(),
            checkpoint: Some(max.to_string()),
        };
        for customer in collection.data {
            if customer
                .deleted_at
                .as_deref()
                .is_some_and(|d| !d.is_empty())
            {
                // Only incremental reads ask for deleted records; a full read skips any stray one.
                if incremental {
                    page.deleted.push(customer.id);
                }
                continue;
            }
            page.contacts.push(customer.into_contact()?);
        }
        Ok(Some((page, max)))
    }
}

#[async_trait]
impl Source for LightspeedXSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// `Full`: live customers from version 0. `ChangedSince(version)`: everything changed after
    /// that version, deletions included (reported by id in [`SourcePage::deleted`]). Each page's
    /// checkpoint is its `version.max`, a decimal integer.
    fn read(&self, scope: ReadScope) -> BoxStream<'_, Result<SourcePage, ConnectorError>> {
        let (start, incremental) = match scope {
            ReadScope::Full => (0, false),
            ReadScope::ChangedSince(checkpoint) => match checkpoint.trim().parse::<u64>() {
                Ok(version) => (version, true),
                Err(_) => {
                    let error = config_error(format!(
                        "checkpoint {checkpoint:?} is not an X-Series version number"
                    ));
                    return stream::once(async move { Err(error) }).boxed();
                }
            },
            ReadScope::Segment(_) => {
                return stream::once(async {
                    Err(ConnectorError::unsupported(VENDOR, "segments"))
                })
                .boxed();
            }
        };
        stream::try_unfold(Some(start), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            Ok(self
                .fetch(after, incremental)
                .await?
                .map(|(page, max)| (page, Some(max))))
        })
        .boxed()
    }
}

/// Slows down as the window runs out: in its last tenth the remaining requests are spread evenly
/// over the time left, and at zero the key waits for the reset. Without a readable reset the
/// connector carries on, and a 429's `Retry-After` pauses it instead.
fn pace(budget: &KeyBudget, headers: &HeaderMap) {
    let Some(remaining) = header_number(headers, "x-ratelimit-remaining") else {
        return;
    };
    let Some(until_reset) = reset_in(headers) else {
        return;
    };
    let limit = header_number(headers, "x-ratelimit-limit").unwrap_or(0);
    let low_water = (limit / 10).max(1);
    if remaining == 0 {
        budget.pause_for(until_reset);
    } else if remaining <= low_water {
        let spread = u32::try_from(remaining + 1).unwrap_or(u32::MAX);
        budget.pause_for(until_reset / spread);
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `X-RateLimit-Reset` is not in the vendor's docs [U]; it is read as seconds from now, Unix
/// seconds, an HTTP date or an RFC 3339 time, whichever it parses as.
fn reset_in(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let now = SystemTime::now();
    let at = if let Ok(number) = raw.parse::<u64>() {
        if number > 1_000_000_000 {
            // A nonsense far-future time is no hint rather than an overflow.
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(number))?
        } else {
            now + Duration::from_secs(number)
        }
    } else if let Ok(date) = httpdate::parse_http_date(raw) {
        date
    } else {
        let time = DateTime::parse_from_rfc3339(raw).ok()?;
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).ok()?)
    };
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .min(MAX_RESET_WAIT),
    )
}

/// The vendor's words from an error body (`{"error": …, "message": …}`), never the request.
fn vendor_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return String::new();
    };
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("");
    match (text("error"), text("message")) {
        ("", "") => String::new(),
        (error, "") => error.to_string(),
        ("", message) => message.to_string(),
        (error, message) => format!("{error}: {message}"),
    }
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    invalid_config(VENDOR, message)
}

#[derive(Deserialize)]
struct Collection {
    data: Vec<WireCustomer>,
    #[serde(default)]
    version: Option<VersionRange>,
}

#[derive(Deserialize)]
struct VersionRange {
    max: u64,
}

/// `components.schemas.Customer`; every string is nullable in the spec, and the spec's own second
/// example omits most fields.
#[derive(Deserialize)]
struct WireCustomer {
    id: String,
    #[serde(default)]
    customer_code: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    do_not_email: Option<bool>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    mobile: Option<String>,
    #[serde(default)]
    company_name: Option<String>,
    #[serde(default)]
    date_of_birth: Option<String>,
    #[serde(default)]
    physical_address_1: Option<String>,
    #[serde(default)]
    physical_address_2: Option<String>,
    #[serde(default)]
    physical_suburb: Option<String>,
    #[serde(default)]
    physical_city: Option<String>,
    #[serde(default)]
    physical_postcode: Option<String>,
    #[serde(default)]
    physical_state: Option<String>,
    #[serde(default)]
    physical_country_id: Option<String>,
    #[serde(default)]
    custom_field_1: Option<String>,
    #[serde(default)]
    custom_field_2: Option<String>,
    #[serde(default)]
    custom_field_3: Option<String>,
    #[serde(default)]
    custom_field_4: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    deleted_at: Option<String>,
    #[serde(default)]
    version: Option<u64>,
}

fn text(value: Option<String>) -> String {
    value.map(|v| v.trim().to_string()).unwrap_or_default()
}

impl WireCustomer {
    fn into_contact(self) -> Result<SourceContact, ConnectorError> {
        if self.id.trim().is_empty() {
            return Err(http::invalid_response(
                VENDOR,
                ENDPOINT,
                "a customer without an id",
            ));
        }
        let updated_at = match self.updated_at.as_deref().or(self.created_at.as_deref()) {
            Some(raw) if !raw.trim().is_empty() => parse_time(raw).ok_or_else(|| {
                http::invalid_response(
                    VENDOR,
                    ENDPOINT,
                    format!("customer {}: updated_at {raw:?} is not a time", self.id),
                )
            })?,
            // Unknown edit time: the oldest possible, so a dated duplicate wins.
            _ => DateTime::<Utc>::UNIX_EPOCH,
        };
        let address = Address {
            line1: text(self.physical_address_1),
            line2: text(self.physical_address_2),
            city: {
                let city = text(self.physical_city);
                if city.is_empty() {
                    text(self.physical_suburb)
                } else {
                    city
                }
            },
            region: text(self.physical_state),
            postal_code: text(self.physical_postcode),
            country: text(self.physical_country_id),
        };
        let mobile = text(self.mobile);
        let phone = match text(self.phone) {
            phone if phone.is_empty() => mobile.clone(),
            phone => phone,
        };
        let mut custom_fields = std::collections::BTreeMap::new();
        for (key, value) in [
            ("customer_code", self.customer_code),
            ("company_name", self.company_name),
            ("mobile", Some(mobile)),
            ("date_of_birth", self.date_of_birth),
            ("custom_field_1", self.custom_field_1),
            ("custom_field_2", self.custom_field_2),
            ("custom_field_3", self.custom_field_3),
            ("custom_field_4", self.custom_field_4),
            ("note", self.note),
        ] {
            let value = text(value);
            if !value.is_empty() {
                custom_fields.insert(key.to_string(), value);
            }
        }
        // X-Series stores one flag, `do_not_email` ("opted out of email communications"): an
        // opt-out is Unsubscribed; without it X-Series cannot say whether the customer ever opted
        // in, so the sync's `whenSourceCannotOptIn` decides (Lightspeed's own Mailchimp app makes
        // them subscribers, seed 001; our default is transactional).
        let consent = if self.do_not_email.unwrap_or(false) {
            Consent::Unsubscribed
        } else {
            Consent::NoOptOut
        };
        Ok(SourceContact {
            source_id: self.id,
            email: text(self.email),
            first_name: text(self.first_name),
            last_name: text(self.last_name),
            phone,
            address: (!address.is_empty()).then_some(address),
            tags: Default::default(),
            custom_fields,
            consent,
            consented_at: None,
            updated_at,
        })
    }
}

/// The spec's times carry an offset (`2017-01-19T16:49:35+00:00`) and are described as UTC, so a
/// zone-less time is read as UTC rather than refused.
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(raw) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use audience_core::ErrorKind;

    use super::*;

    #[test]
    fn the_specs_sparse_example_customer_maps() {
        let body = r#"{"data":[{"id":"06bf537b-c783-11e6-ff13-f21286299973","customer_code":"UNNAMED-669D",
            "first_name":null,"last_name":null,"year_to_date":0,"balance":0,"loyalty_balance":0,
            "on_account_limit":null,"do_not_email":false,"customer_group_id":"b1ca8902",
            "enable_loyalty":true,"created_at":"2017-02-13T17:33:25+00:00",
            "updated_at":"2017-02-13T17:33:25+00:00","version":2847386277}]}"#;
        let collection: Collection = serde_json::from_str(body).unwrap();
        assert!(collection.version.is_none());
        let contact = collection
            .data
            .into_iter()
            .next()
            .unwrap()
            .into_contact()
            .unwrap();
        assert_eq!(contact.first_name, "");
        assert_eq!(contact.email, "");
        assert_eq!(contact.consent, Consent::NoOptOut);
        assert_eq!(contact.address, None);
        assert_eq!(contact.custom_fields["customer_code"], "UNNAMED-669D");
        assert_eq!(contact.updated_at.to_rfc3339(), "2017-02-13T17:33:25+00:00");
    }

    #[test]
    fn times_keep_their_zone() {
        let t = parse_time("2025-03-01T10:00:00-05:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-01T15:00:00+00:00");
        let t = parse_time("2025-03-01 10:00:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-01T10:00:00+00:00");
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn reset_is_read_in_any_common_form() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", "30".parse().unwrap());
        assert_eq!(reset_in(&headers), Some(Duration::from_secs(30)));
        let later = SystemTime::now() + Duration::from_secs(90);
        headers.insert(
            "x-ratelimit-reset",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let wait = reset_in(&headers).unwrap();
        assert!(wait > Duration::from_secs(85) && wait <= Duration::from_secs(90));
        headers.insert("x-ratelimit-reset", "garbage".parse().unwrap());
        assert_eq!(reset_in(&headers), None);
    }

    #[test]
    fn errors_never_show_the_token() {
        let error = LightspeedXSource::new("shop", "has space").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidCredentials);
        assert!(!error.to_string().contains("has space"));
        let source = LightspeedXSource::new("shop", "secret-token").unwrap();
        assert!(!format!("{source:?}").contains("secret-token"));
        assert_eq!(
            source.base_url(),
            "https://shop.retail.lightspeed.app/api/2.0"
        );
        assert!(LightspeedXSource::new("bad/prefix", "t").is_err());
    }
}
