//! Lightspeed Retail R-Series customers, through API V3.
//!
//! `GET {base}/Customer.json?load_relations=["Contact"]&limit=100&sort=timeStamp` returns up to 100
//! customers and `@attributes.next`, the full URL of the next page (empty on the last), which the
//! connector follows as given. Values arrive as strings and single children as bare objects (see
//! [`wire`]).
//!
//! Incremental reads filter on `timeStamp` with R-Series' query-operator syntax
//! (`timeStamp=>,<time>`, URL-encoded) and add `archived=true`, so archived customers come back and
//! are reported as deleted. The syntax and the `archived` values follow the vendor's "Query
//! parameters" documentation as remembered, not a copy in this repository [U].
//!
//! Rate limit: a leaky bucket per account (90 drips, draining 1/s by default; a read costs 1). Every
//! answer carries `X-LS-API-Bucket-Level: <level>/<size>` and `X-LS-API-Drip-Rate`. Before a
//! request would overflow (level + cost > size), the connector holds the token's key budget for
//! `(level + cost − size) / drip` seconds. A 429's `Retry-After` (seconds) is honoured by
//! [`http::send`].
//!
//! Completed sales are read as orders by the same source ([`audience_core::OrderSource`], in
//! [`orders`]).

mod orders;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use audience_core::{
    Address, ConnectorError, Consent, ReadScope, Source, SourceContact, SourcePage,
};
use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use reqwest::header::HeaderMap;

use crate::config::{checked_secret, invalid_config};
use crate::http::{self, KeyBudget, RetryPolicy};
use crate::vendor::VendorDescriptor;

/// The vendor name in errors, metrics and budgets.
pub const VENDOR: &str = "lightspeed-r";
/// What the operator needs to know about Lightspeed R-Series.
pub const DESCRIPTOR: VendorDescriptor = VendorDescriptor {
    name: VENDOR,
    default_secret_key: "token",
    credential_name: "access token",
    hosts: &["api.lightspeedapp.com"],
};

/// The API base for an `endpoint` override or a sandbox's vendor URL: the URL plus
/// `/API/V3/Account/{account_id}` unless it already holds an account path.
pub fn api_base(endpoint: &str, account_id: &str) -> String {
    let base = endpoint.trim().trim_end_matches('/');
    if base.contains("/API/V3/Account/") {
        base.to_string()
    } else {
        format!("{base}/API/V3/Account/{}", account_id.trim())
    }
}
/// The endpoint as errors name it.
const ENDPOINT: &str = "GET /Customer.json";
/// The documented maximum page size.
pub const PAGE_LIMIT: u32 = 100;
/// What one read costs in the leaky bucket.
const READ_COST: f64 = 1.0;
/// One request at a time per token: the bucket level in each answer then tells exactly how long to
/// wait before the next.
const MAX_CONCURRENT: usize = 1;
/// Added to every computed drain wait, against rounding in the level header.
const DRAIN_MARGIN: Duration = Duration::from_millis(10);
/// Never wait longer than this for the bucket, whatever the headers say.
const MAX_DRAIN_WAIT: Duration = Duration::from_secs(300);
/// How long after its second a timeStamp may still be handed out by the server (see [`checkpoint`]).
const SETTLE: TimeDelta = TimeDelta::seconds(60);

/// Reads customers from one R-Series account.
#[derive(Clone)]
pub struct LightspeedRSource {
    base_url: String,
    origin: url::Origin,
    token: String,
    retry: RetryPolicy,
    budget: Arc<KeyBudget>,
    client: reqwest::Client,
    /// The account's currency for orders (sales name none).
    currency: String,
}

impl fmt::Debug for LightspeedRSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LightspeedRSource")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl LightspeedRSource {
    /// A source for account `account_id` at `https://api.lightspeedapp.com/API/V3/Account/{id}`,
    /// reading with an OAuth access token.
    pub fn new(account_id: &str, token: impl Into<String>) -> Result<Self, ConnectorError> {
        let account_id = account_id.trim();
        if account_id.is_empty() || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(config_error("the account id must be a number"));
        }
        let token = checked_secret(VENDOR, DESCRIPTOR.credential_name, &token.into())?;
        let base_url = format!("https://api.lightspeedapp.com/API/V3/Account/{account_id}");
        let origin = url::Url::parse(&base_url)
            .expect("static URL with a numeric account")
            .origin();
        Ok(LightspeedRSource {
            base_url,
            origin,
            budget: http::budget_for(VENDOR, &token, MAX_CONCURRENT),
            token,
            retry: RetryPolicy::default(),
            client: http::client(),
            currency: "USD".to_string(),
        })
    }

    /// Replaces the account's API base (the URL ending in `/API/V3/Account/{accountID}`), e.g. to
    /// talk to the sandbox. `next` links are only followed on this base's scheme, host and port.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, ConnectorError> {
        let checked = crate::config::checked_base_url(VENDOR, base_url)?;
        self.origin = url::Url::parse(&checked)
            .map_err(|_| config_error("the base URL does not parse"))?
            .origin();
        self.base_url = checked;
        Ok(self)
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// One page: the first one from the query, later ones from the `next` URL the server gave,
    /// with the server's clock (for checkpoints; ours if it sent no Date). Customers and orders
    /// read through it alike. Whatever the vendor's error text echoes, the token never leaves in
    /// an error.
    pub(super) async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: &Request,
    ) -> Result<(T, DateTime<Utc>), ConnectorError> {
        self.fetch_unredacted(endpoint, request)
            .await
            .map_err(|e| http::redact_error(e, &[&self.token]))
    }

    async fn fetch_unredacted<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: &Request,
    ) -> Result<(T, DateTime<Utc>), ConnectorError> {
        let budget = &self.budget;
        let response = http::send(
            VENDOR,
            endpoint,
            budget,
            &self.retry,
            || {
                let builder = match request {
                    Request::First { resource, query } => self
                        .client
                        .get(format!("{}/{resource}", self.base_url))
                        .query(query),
                    Request::Next(url) => self.client.get(url.as_str()),
                };
                builder.bearer_auth(&self.token)
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
                endpoint,
                status,
                &vendor_message(&body),
            ));
        }
        let server_now = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(Utc::now);
        let body = http::json_body(VENDOR, endpoint, response).await?;
        Ok((body, server_now))
    }

    /// Checks a `next` link (see [`checked_next`]).
    fn next_request(
        &self,
        next: &str,
        current: &Request,
    ) -> Result<Option<Request>, ConnectorError> {
        let current = match current {
            Request::Next(url) => Some(url),
            Request::First { .. } => None,
        };
        Ok(checked_next(&self.origin, ENDPOINT, next, current)?.map(Request::Next))
    }
}

/// Checks a `next` link: same origin as the base (the bearer token goes with it), and not the
/// page just read (which would loop forever). `None`: no more pages.
pub(super) fn checked_next(
    origin: &url::Origin,
    endpoint: &'static str,
    next: &str,
    current: Option<&url::Url>,
) -> Result<Option<url::Url>, ConnectorError> {
    let next = next.trim();
    if next.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(next)
        .map_err(|_| http::invalid_response(VENDOR, endpoint, "@attributes.next is not a URL"))?;
    if url.origin() != *origin {
        return Err(http::invalid_response(
            VENDOR,
            endpoint,
            format!(
                "@attributes.next points to another host ({}); not sending the token there",
                url.host_str().unwrap_or("?")
            ),
        ));
    }
    if current == Some(&url) {
        return Err(http::invalid_response(
            VENDOR,
            endpoint,
            "@attributes.next repeats the page just read",
        ));
    }
    Ok(Some(url))
}

/// A page to read: the first of a listing (resource and query), or the `next` link of the last.
pub(super) enum Request {
    First {
        resource: &'static str,
        query: Vec<(&'static str, String)>,
    },
    Next(url::Url),
}

struct Cursor {
    request: Request,
    incremental: bool,
    /// The greatest `timeStamp` seen so far, with the offset the server wrote it in.
    max_seen: Option<DateTime<FixedOffset>>,
}

#[async_trait]
impl Source for LightspeedRSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// `Full`: customers not archived. `ChangedSince(time)`: customers whose `timeStamp` is after
    /// the RFC 3339 time (zone required), archived ones reported by id in [`SourcePage::deleted`].
    /// Checkpoints are RFC 3339 times in the server's own offset (see [`checkpoint`]).
    fn read(&self, scope: ReadScope) -> BoxStream<'_, Result<SourcePage, ConnectorError>> {
        let mut query = vec![
            ("load_relations", "[\"Contact\"]".to_string()),
            ("limit", PAGE_LIMIT.to_string()),
            // Oldest change first, so each page's checkpoint covers everything before it.
            ("sort", "timeStamp".to_string()),
        ];
        let incremental = match scope {
            ReadScope::Full => false,
            ReadScope::ChangedSince(checkpoint) => {
                let Ok(since) = DateTime::parse_from_rfc3339(checkpoint.trim()) else {
                    let error = config_error(format!(
                        "checkpoint {checkpoint:?} is not an RFC 3339 time with a zone"
                    ));
                    return stream::once(async move { Err(error) }).boxed();
                };
                // reqwest encodes the value, `+` of the offset included (a bare `+` would reach the
                // server as a space).
                query.push(("timeStamp", format!(">,{}", rfc3339(since))));
                query.push(("archived", "true".to_string()));
                true
            }
            ReadScope::Segment(_) => {
                return stream::once(async {
                    Err(ConnectorError::unsupported(VENDOR, "segments"))
                })
                .boxed();
            }
        };
        let start = Cursor {
            request: Request::First {
                resource: "Customer.json",
                query,
            },
            incremental,
            max_seen: None,
        };
        stream::try_unfold(Some(start), move |cursor| async move {
            let Some(mut cursor) = cursor else {
                return Ok(None);
            };
            let (page, server_now) = self.fetch::<wire::Page>(ENDPOINT, &cursor.request).await?;
            let next = self.next_request(&page.attributes.next, &cursor.request)?;
            if page.customers.is_empty() && next.is_none() {
                // Nothing (more) to read: end without an empty, checkpoint-less page.
                return Ok(None);
            }
            let mut out = SourcePage::default();
            for customer in page.customers {
                let stamp = parse_time(&customer.time_stamp).ok_or_else(|| {
                    http::invalid_response(
                        VENDOR,
                        ENDPOINT,
                        format!(
                            "customer {}: timeStamp {:?} is not an ISO 8601 time with offset",
                            customer.customer_id, customer.time_stamp
                        ),
                    )
                })?;
                if cursor.max_seen.is_none_or(|max| stamp > max) {
                    cursor.max_seen = Some(stamp);
                }
                if customer.archived {
                    // Archiving is R-Series' delete. Full reads never ask for archived customers.
                    if cursor.incremental {
                        out.deleted.push(customer.customer_id);
                    }
                    continue;
                }
                out.contacts.push(into_contact(customer, stamp)?);
            }
            out.checkpoint = cursor.max_seen.map(|max| checkpoint(max, server_now));
            Ok(Some((
                out,
                next.map(|request| Cursor { request, ..cursor }),
            )))
        })
        .boxed()
    }
}

/// The checkpoint after a page whose greatest `timeStamp` so far is `max_seen`.
///
/// R-Series stamps changes to the second and the next read asks for `timeStamp > checkpoint`. A
/// customer saved later in the same second as `max_seen`, after this read, would carry exactly
/// `max_seen` and never be read. So while that second may still be open, i.e. `max_seen` is within
/// [`SETTLE`] of the server's clock, the checkpoint steps back one second and the next read sees
/// that second again (a few records twice at worst; the diff absorbs repeats). Older checkpoints
/// are kept exactly, so an idle store's incremental read returns nothing.
fn checkpoint(max_seen: DateTime<FixedOffset>, server_now: DateTime<Utc>) -> String {
    let settled = max_seen.with_timezone(&Utc) + SETTLE < server_now;
    let at = if settled {
        max_seen
    } else {
        max_seen - TimeDelta::seconds(1)
    };
    rfc3339(at)
}

/// `2025-03-01T10:00:00+00:00`: seconds (fractions only if present) and the explicit offset.
fn rfc3339(time: DateTime<FixedOffset>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn parse_time(raw: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(raw.trim()).ok()
}

fn into_contact(
    customer: wire::Customer,
    stamp: DateTime<FixedOffset>,
) -> Result<SourceContact, ConnectorError> {
    if customer.customer_id.is_empty() {
        return Err(http::invalid_response(
            VENDOR,
            ENDPOINT,
            "a customer without a customerID",
        ));
    }
    let contact = customer.contact.unwrap_or_default();
    let mut updated_at = stamp.with_timezone(&Utc);
    // A contact edit may carry its own, later, timeStamp [U whether it always bumps the customer's].
    if let Some(contact_stamp) = parse_time(&contact.time_stamp) {
        updated_at = updated_at.max(contact_stamp.with_timezone(&Utc));
    }
    let emails = contact.emails.map(|e| e.list).unwrap_or_default();
    // The Primary address, else the first one given.
    let email = emails
        .iter()
        .find(|e| e.use_type.eq_ignore_ascii_case("primary") && !e.address.is_empty())
        .or_else(|| emails.iter().find(|e| !e.address.is_empty()))
        .map(|e| e.address.clone())
        .unwrap_or_default();
    let phones = contact.phones.map(|p| p.list).unwrap_or_default();
    let phone = ["mobile", "home", "work"]
        .iter()
        .find_map(|kind| {
            phones
                .iter()
                .find(|p| p.use_type.eq_ignore_ascii_case(kind) && !p.number.is_empty())
        })
        .or_else(|| phones.iter().find(|p| !p.number.is_empty()))
        .map(|p| p.number.clone())
        .unwrap_or_default();
    let address = contact
        .addresses
        .and_then(|a| a.list.into_iter().next())
        .map(|a| Address {
            line1: a.address1,
            line2: a.address2,
            city: a.city,
            region: a.state,
            postal_code: a.zip,
            country: if a.country_code.is_empty() {
                a.country
            } else {
                a.country_code
            },
        })
        .filter(|a| !a.is_empty());
    let mut custom_fields = BTreeMap::new();
    for (key, value) in [
        ("company", customer.company),
        ("title", customer.title),
        ("dob", customer.dob),
    ] {
        if !value.is_empty() {
            custom_fields.insert(key.to_string(), value);
        }
    }
    // R-Series records one choice, `Contact.noEmail` (the customer asked not to be emailed): an
    // opt-out is Unsubscribed; anything else says nothing about an opt-in, so the sync's
    // `whenSourceCannotOptIn` decides (as for X-Series).
    let consent = if contact.no_email {
        Consent::Unsubscribed
    } else {
        Consent::NoOptOut
    };
    Ok(SourceContact {
        source_id: customer.customer_id,
        email,
        first_name: customer.first_name,
        last_name: customer.last_name,
        phone,
        address,
        tags: Default::default(),
        custom_fields,
        consent,
        consented_at: None,
        updated_at,
    })
}

/// Waits before the next request would overflow the bucket: `level + cost > size` → hold the key
/// for `(level + cost − size) / drip` seconds.
fn pace(budget: &KeyBudget, headers: &HeaderMap) {
    let Some((level, size)) = headers
        .get("x-ls-api-bucket-level")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('/'))
        .and_then(|(level, size)| {
            Some((
                level.trim().parse::<f64>().ok()?,
                size.trim().parse::<f64>().ok()?,
            ))
        })
    else {
        return;
    };
    let Some(drip) = headers
        .get("x-ls-api-drip-rate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
    else {
        return;
    };
    let over = level + READ_COST - size;
    if over.is_finite() && over > 0.0 {
        let wait = Duration::from_secs_f64((over / drip).min(MAX_DRAIN_WAIT.as_secs_f64()));
        budget.pause_for(wait + DRAIN_MARGIN);
    }
}

/// The vendor's words from an error body (`{"httpCode", "httpMessage", "message"}`).
fn vendor_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("httpMessage"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn config_error(message: impl Into<String>) -> ConnectorError {
    invalid_config(VENDOR, message)
}

#[cfg(test)]
mod tests {
    use audience_core::ErrorKind;

    use super::*;

    fn at(raw: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(raw).unwrap()
    }

    #[test]
    fn a_settled_checkpoint_is_exact_and_keeps_its_zone() {
        let now = Utc::now();
        assert_eq!(
            checkpoint(at("2025-03-01T05:00:00-05:00"), now),
            "2025-03-01T05:00:00-05:00"
        );
    }

    #[test]
    fn a_recent_checkpoint_steps_back_a_second() {
        let server_now = at("2025-03-01T10:00:30+00:00").with_timezone(&Utc);
        assert_eq!(
            checkpoint(at("2025-03-01T10:00:20+00:00"), server_now),
            "2025-03-01T10:00:19+00:00"
        );
    }

    #[test]
    fn primary_email_wins_and_no_email_unsubscribes() {
        let page: wire::Page = serde_json::from_str(
            r#"{"@attributes":{"next":""},"Customer":{"customerID":"5","firstName":"A","lastName":"B",
              "archived":"false","company":"Acme","title":"Buyer","timeStamp":"2025-03-01T10:00:00+00:00",
              "Contact":{"noEmail":"true","timeStamp":"2025-03-01T11:00:00+00:00",
                "Emails":{"ContactEmail":[{"address":"work@x.co","useType":"Secondary"},{"address":"me@x.co","useType":"Primary"}]},
                "Phones":{"ContactPhone":[{"number":"1","useType":"Home"},{"number":"2","useType":"Mobile"}]},
                "Addresses":{"ContactAddress":{"address1":"1 Road","city":"Town","country":"Netherlands","countryCode":"NL"}}}}}"#,
        )
        .unwrap();
        let customer = page.customers.into_iter().next().unwrap();
        let stamp = parse_time(&customer.time_stamp).unwrap();
        let contact = into_contact(customer, stamp).unwrap();
        assert_eq!(contact.email, "me@x.co");
        assert_eq!(contact.phone, "2");
        assert_eq!(contact.consent, Consent::Unsubscribed);
        assert_eq!(contact.address.unwrap().country, "NL");
        assert_eq!(contact.custom_fields["company"], "Acme");
        assert_eq!(contact.custom_fields["title"], "Buyer");
        assert_eq!(contact.updated_at.to_rfc3339(), "2025-03-01T11:00:00+00:00");
    }

    #[test]
    fn configuration_is_checked_without_echoing_the_token() {
        let error = LightspeedRSource::new("12a", "tok").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidConfig);
        let error = LightspeedRSource::new("12", "bad token").unwrap_err();
        assert!(!error.to_string().contains("bad token"));
        let source = LightspeedRSource::new("12", "secret-token").unwrap();
        assert!(!format!("{source:?}").contains("secret-token"));
        assert_eq!(
            source.base_url(),
            "https://api.lightspeedapp.com/API/V3/Account/12"
        );
    }
}
