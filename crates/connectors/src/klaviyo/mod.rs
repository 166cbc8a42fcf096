//! Klaviyo (API revision 2026-07-15) as an audience [`Target`]: a Klaviyo list.
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_core::ConnectorError> {
//! use audience_connectors::klaviyo::{KlaviyoConfig, KlaviyoTarget, ListRef};
//! let target = KlaviyoTarget::new(KlaviyoConfig::new("pk_…", ListRef::Name("Customers".into())))?;
//! // Against the simulator: .with_base_url("http://127.0.0.1:8080/klaviyo")
//! # Ok(()) }
//! ```
//!
//! # Target field names
//! A fixed vocabulary names Klaviyo's own profile attributes:
//!
//! | field          | Klaviyo attribute | value |
//! |----------------|-------------------|-------|
//! | `first_name`   | `first_name`      | text |
//! | `last_name`    | `last_name`       | text |
//! | `phone_number` | `phone_number`    | text, E.164 (Klaviyo refuses others: a rejected record) |
//! | `organization` | `organization`    | text (the company) |
//! | `title`        | `title`           | text (job title) |
//! | `location`     | `location{address1, address2, city, region, zip, country}` | an address |
//!
//! Any other name is a custom profile property under `properties`. [`validate_mapping`] refuses
//! names Klaviyo reserves, Mailchimp merge tags, tags (Klaviyo profiles have none) and an address
//! mapped anywhere but `location`; [`default_mapping`] maps first and last name.
//!
//! # Consent
//! Consent changes only through subscription jobs, never through profile attributes, and list
//! membership is not consent (see [`write`] for the rules and the call counts). Statuses read back
//! from `subscriptions.email.marketing`: SUBSCRIBED → `subscribed`, UNSUBSCRIBED → `unsubscribed`,
//! NEVER_SUBSCRIBED → `transactional`; a global suppression wins over the consent word: HARD_BOUNCE
//! and INVALID_EMAIL → `cleaned` (an address that bounced, as in Mailchimp), SPAM_COMPLAINT,
//! UNSUBSCRIBE, USER_SUPPRESSED (and any reason not known yet) → `unsubscribed`; a suppression
//! from this list → `unsubscribed`. Both keep the core from ever planning a resubscribe.
//!
//! # Calls and limits
//! Every request is paced per endpoint under the limits of its `x-klaviyo-ratelimit` (burst per
//! second and steady per minute, see [`pacing`]), shared by every sync in the process using the
//! key, and sent through [`crate::http::send`] (bounded retries with backoff and jitter, 429 after
//! `Retry-After`). Errors name the endpoint's route template and never the key.

mod client;
pub mod events;
mod jobs;
pub mod pacing;
mod read;
mod wire;
pub mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use audience_core::{
    ApplyControl, ApplyReport, ConnectorError, Email, ErrorKind, FieldMapping, Plan, SegmentPlan,
    Target, TargetInfo, TargetMember,
};
use futures::stream::BoxStream;
use reqwest::header::HeaderValue;

use crate::http::{self, RetryPolicy};
use client::{Client, VENDOR};

pub use events::{
    ACCOUNTS, BULK_EVENTS, KlaviyoEventSink, MAX_EVENT_JOB_BYTES, MAX_EVENTS_PER_JOB,
    MAX_STRING_BYTES, bulk_bodies,
};
pub use jobs::{MAX_IMPORT_BYTES, MAX_IMPORT_PROFILES, MAX_PROFILE_BYTES, split_batches};
pub use write::{LIST_BATCH, LOOKUP_BATCH, SUBSCRIBE_BATCH, UNSUBSCRIBE_BATCH};

/// The key of the credentials Secret that holds the private API key.
pub const DEFAULT_SECRET_KEY: &str = "apiKey";
/// Klaviyo's API host.
pub const DEFAULT_BASE_URL: &str = "https://a.klaviyo.com";
/// What the operator needs to know about Klaviyo.
pub const DESCRIPTOR: crate::vendor::VendorDescriptor = crate::vendor::VendorDescriptor {
    name: VENDOR,
    default_secret_key: DEFAULT_SECRET_KEY,
    credential_name: "private API key",
    hosts: &["a.klaviyo.com"],
};
/// The API revision this connector is written against.
pub const REVISION: &str = "2026-07-15";
/// Calls in flight at once on one key (Klaviyo limits rates, not connections).
pub const MAX_CONNECTIONS: usize = 16;

/// The target field names that are Klaviyo profile attributes; any other name is a property.
pub const VOCABULARY: &[&str] = &[
    "first_name",
    "last_name",
    "phone_number",
    "organization",
    "title",
    "location",
];

/// Names a mapping may not write: Klaviyo's identifiers and attributes this connector does not
/// own (writing them as custom properties would shadow or confuse the real ones).
const RESERVED: &[&str] = &[
    "email",
    "id",
    "external_id",
    "anonymous_id",
    "_kx",
    "locale",
    "image",
    "properties",
    "subscriptions",
    "predictive_analytics",
    "created",
    "updated",
    "last_event_date",
    "joined_group_at",
    "timezone",
    "ip",
    "latitude",
    "longitude",
];

/// Mailchimp merge tags a mapping copied from a Mailchimp sync would carry.
const MAILCHIMP_TAGS: &[(&str, &str)] = &[
    ("FNAME", "first_name"),
    ("LNAME", "last_name"),
    ("PHONE", "phone_number"),
    ("ADDRESS", "location"),
    ("COMPANY", "organization"),
];

/// The mapping a Klaviyo sync starts from: first and last name.
pub fn default_mapping() -> FieldMapping {
    FieldMapping {
        first_name: Some("first_name".into()),
        last_name: Some("last_name".into()),
        phone: None,
        address: None,
        custom: Default::default(),
        tags: false,
    }
}

/// Klaviyo's own rules for a field mapping, beyond the core's (each field mapped once).
pub fn validate_mapping(mapping: &FieldMapping) -> Result<(), String> {
    mapping.validate()?;
    if mapping.tags {
        return Err(
            "Klaviyo profiles have no tags: turn tags off in the field mapping (use a SegmentSync into a Klaviyo list instead)"
                .into(),
        );
    }
    if let Some(address) = &mapping.address
        && address != "location"
    {
        return Err(format!(
            "the address can only be written to Klaviyo's location, not to {address:?}"
        ));
    }
    for (field, kind) in mapping.target_fields() {
        if field == "location" && kind != audience_core::mapping::FieldKind::Address {
            return Err(
                "location is Klaviyo's address: only the address can be mapped to it".into(),
            );
        }
        if field.trim() != field {
            return Err(format!(
                "target field {field:?} has leading or trailing spaces"
            ));
        }
        if field.starts_with('$') {
            return Err(format!(
                "target field {field:?}: names starting with $ are Klaviyo's special properties"
            ));
        }
        if RESERVED.contains(&field.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "target field {field:?} is reserved by Klaviyo and cannot be written by a sync"
            ));
        }
        if let Some((_, klaviyo)) = MAILCHIMP_TAGS.iter().find(|(tag, _)| *tag == field) {
            return Err(format!(
                "target field {field:?} is a Mailchimp merge tag; Klaviyo calls it {klaviyo:?}"
            ));
        }
        if field.chars().count() > 255 {
            return Err(format!(
                "target field {}… is longer than 255 characters",
                field.chars().take(20).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Which list the audience is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRef {
    /// A list id (e.g. `Y6nRLr`); a missing one is [`ErrorKind::NotFound`].
    Id(String),
    /// A list name, created when missing (on the first write).
    Name(String),
}

/// How bulk import jobs are polled until they finish.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    /// First wait after the job was created; doubled each poll up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long a job may take before the apply gives up on it (the job itself goes on).
    pub max_wait: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(30 * 60),
        }
    }
}

/// How to reach one Klaviyo list.
#[derive(Clone)]
pub struct KlaviyoConfig {
    /// The private API key (`pk_…`). A secret: never logged or echoed.
    pub api_key: String,
    pub list: ListRef,
    /// Replaces [`DEFAULT_BASE_URL`] (e.g. the simulator's `http://HOST/klaviyo`).
    pub base_url: Option<String>,
    /// The `revision` header, [`REVISION`] by default.
    pub revision: String,
    /// Retries of rate limits, 5xx and timeouts.
    pub retry: RetryPolicy,
    pub poll: PollPolicy,
    /// Every subscription is a history import: consent is given with `historical_import` and a
    /// past `consented_at`, so no "added to list" flows fire and no double opt-in mail goes out.
    /// A plan marked [`Plan::history_import`] (the sync's first push) is one whatever this says.
    pub historical_import: bool,
    /// Per-endpoint pacing under the spec's limits, with windows this many times as long as
    /// Klaviyo's (1.0; a simulator scaled down for tests takes its scale). `None`: no pacing,
    /// only 429 handling.
    pub pacing: Option<f64>,
    /// Write calls in flight at once.
    pub write_concurrency: usize,
}

impl KlaviyoConfig {
    pub fn new(api_key: impl Into<String>, list: ListRef) -> Self {
        KlaviyoConfig {
            api_key: api_key.into(),
            list,
            base_url: None,
            revision: REVISION.to_string(),
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            historical_import: false,
            pacing: Some(1.0),
            write_concurrency: 8,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

impl fmt::Debug for KlaviyoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KlaviyoConfig")
            .field("api_key", &"***")
            .field("list", &self.list)
            .field("base_url", &self.base_url)
            .field("revision", &self.revision)
            .field("retry", &self.retry)
            .field("poll", &self.poll)
            .field("historical_import", &self.historical_import)
            .field("pacing", &self.pacing)
            .field("write_concurrency", &self.write_concurrency)
            .finish()
    }
}

/// A Klaviyo list.
pub struct KlaviyoTarget {
    inner: Inner,
}

pub(crate) struct Inner {
    client: Client,
    list: ListRef,
    /// The list's id once known (a named list is looked up, or created, once).
    list_id: Mutex<Option<String>>,
    /// Serialises the find-or-create of lists, so two concurrent writers create one list.
    list_creation: tokio::sync::Mutex<()>,
    /// Profile ids by email, learnt from reads (removing from a list takes ids).
    ids: Mutex<HashMap<String, String>>,
    /// Segment lists by name.
    segment_lists: Mutex<HashMap<String, String>>,
    /// Every subscription is a history import (the sync asks for no list flows).
    historical_import: bool,
    poll: PollPolicy,
    write_concurrency: usize,
}

fn invalid_config(what: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(VENDOR, what, ErrorKind::InvalidConfig, message)
}

/// The client of a configuration: the key, the base URL and the revision checked (no call is
/// made), the key's shared budget and pacing windows.
pub(crate) fn checked_client(config: &KlaviyoConfig) -> Result<Client, ConnectorError> {
    // The shared rule of every vendor (trimmed; empty, inner spaces or control characters
    // refused as unusable credentials), plus Klaviyo's: a private key is printable ASCII, as
    // the `Authorization` header must be. No message names the value.
    let key = crate::config::checked_secret(VENDOR, DESCRIPTOR.credential_name, &config.api_key)?;
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(crate::config::invalid_credentials(
            VENDOR,
            format!(
                "the {} holds characters a key never has (printable ASCII only)",
                DESCRIPTOR.credential_name
            ),
        ));
    }
    let revision = HeaderValue::from_str(config.revision.trim())
        .ok()
        .filter(|_| {
            let r = config.revision.trim();
            r.len() >= 10
                && r.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        *b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
        .ok_or_else(|| {
            invalid_config(
                "revision",
                format!(
                    "the revision {:?} is not of the form YYYY-MM-DD",
                    client::truncate(&config.revision, 30)
                ),
            )
        })?;
    let base = match &config.base_url {
        Some(url) => crate::config::checked_base_url(VENDOR, url)?,
        None => DEFAULT_BASE_URL.to_string(),
    };
    let budget = http::budget_for(VENDOR, &key, MAX_CONNECTIONS);
    Ok(Client::new(
        base,
        &key,
        revision,
        budget,
        config.retry.clone(),
        config.pacing,
    ))
}

impl KlaviyoTarget {
    /// Checks the configuration (key, list, base URL, revision) without calling the API.
    pub fn new(config: KlaviyoConfig) -> Result<Self, ConnectorError> {
        let client = checked_client(&config)?;
        let list = match &config.list {
            ListRef::Id(id) => {
                let id = id.trim();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(invalid_config(
                        "list id",
                        format!(
                            "the list id {:?} is not a Klaviyo list id (letters and digits)",
                            client::truncate(id, 40)
                        ),
                    ));
                }
                ListRef::Id(id.to_string())
            }
            ListRef::Name(name) => {
                let name = name.trim();
                if name.is_empty() {
                    return Err(invalid_config("list name", "the list name is empty"));
                }
                ListRef::Name(name.to_string())
            }
        };
        let list_id = match &list {
            ListRef::Id(id) => Some(id.clone()),
            ListRef::Name(_) => None,
        };
        Ok(KlaviyoTarget {
            inner: Inner {
                client,
                list,
                list_id: Mutex::new(list_id),
                list_creation: tokio::sync::Mutex::new(()),
                ids: Mutex::new(HashMap::new()),
                segment_lists: Mutex::new(HashMap::new()),
                historical_import: config.historical_import,
                poll: config.poll,
                write_concurrency: config.write_concurrency.clamp(1, MAX_CONNECTIONS),
            },
        })
    }

    /// The list's id, once known (given, or found or created by a read or write).
    pub fn list_id(&self) -> Option<String> {
        self.inner.known_list_id()
    }
}

impl fmt::Debug for KlaviyoTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KlaviyoTarget")
            .field("list", &self.inner.list)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Target for KlaviyoTarget {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Profile ids and segment lists are learnt again by each run (a profile deleted and made
    /// anew has a new id; the memory of a big list is not held between runs). The audience
    /// list's id is kept: a deleted list is noticed by its 404 and looked up again.
    async fn reset_run_state(&self) {
        self.inner.ids.lock().expect("id cache lock").clear();
        self.inner
            .segment_lists
            .lock()
            .expect("segment lock")
            .clear();
    }

    async fn info(&self) -> Result<TargetInfo, ConnectorError> {
        self.inner.info().await
    }

    fn members(&self) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>> {
        self.inner.members()
    }

    /// Klaviyo properties need no definition: the mapping is checked, no call is made.
    async fn members_by_email(
        &self,
        emails: &[Email],
    ) -> Result<Vec<TargetMember>, ConnectorError> {
        self.inner.members_by_email(emails).await
    }

    async fn ensure_fields(&self, mapping: &FieldMapping) -> Result<(), ConnectorError> {
        validate_mapping(mapping).map_err(|m| invalid_config("field mapping", m))
    }

    async fn apply(
        &self,
        plan: &Plan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        self.inner.apply(plan, control).await
    }

    async fn segment_members(&self, segment: &str) -> Result<Option<Vec<Email>>, ConnectorError> {
        self.inner.segment_members(segment).await
    }

    async fn apply_segment(
        &self,
        segment: &str,
        plan: &SegmentPlan,
        control: &ApplyControl,
    ) -> Result<ApplyReport, ConnectorError> {
        self.inner.apply_segment(segment, plan, control).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_owns_only_klaviyos_api_host() {
        assert_eq!(DESCRIPTOR.name, "klaviyo");
        assert!(DESCRIPTOR.owns_host("a.klaviyo.com"));
        assert!(!DESCRIPTOR.owns_host("klaviyo.com.evil.example"));
        assert_eq!(
            url::Url::parse(DEFAULT_BASE_URL).unwrap().host_str(),
            Some("a.klaviyo.com")
        );
    }

    #[test]
    fn config_is_checked_without_echoing_the_key() {
        let ok = KlaviyoTarget::new(KlaviyoConfig::new(
            "pk_0123456789",
            ListRef::Id("Y6nRLr".into()),
        ))
        .unwrap();
        assert_eq!(ok.list_id().as_deref(), Some("Y6nRLr"));
        let named = KlaviyoTarget::new(KlaviyoConfig::new(
            "pk_0123456789",
            ListRef::Name("VIP".into()),
        ))
        .unwrap();
        assert_eq!(named.list_id(), None);
        // Unusable keys are credential errors, as for every vendor, and never echo the key.
        for key in [
            "",
            "   ",
            "pk_secret secret",
            "pk_secret\nsecret",
            "pk_secr\u{e9}tsecret",
        ] {
            let err =
                KlaviyoTarget::new(KlaviyoConfig::new(key, ListRef::Id("A1".into()))).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidCredentials, "{key:?}: {err}");
            assert!(err.to_string().contains("private API key"), "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
            assert!(!format!("{err:?}").contains("secret"), "{err:?}");
        }
        // Surrounding whitespace (a Secret written with a trailing newline) is trimmed, as for
        // the other vendors.
        assert!(
            KlaviyoTarget::new(KlaviyoConfig::new(
                " pk_secretsecret\n",
                ListRef::Id("A1".into())
            ))
            .is_ok()
        );
        let err =
            KlaviyoTarget::new(KlaviyoConfig::new("pk_1", ListRef::Id("a/b".into()))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        let mut config = KlaviyoConfig::new("pk_1", ListRef::Id("A1".into()));
        config.revision = "latest".into();
        assert_eq!(
            KlaviyoTarget::new(config).unwrap_err().kind,
            ErrorKind::InvalidConfig
        );
        let config = KlaviyoConfig::new("pk_supersecretvalue", ListRef::Id("A1".into()))
            .with_base_url("ftp://x");
        assert!(!format!("{config:?}").contains("supersecretvalue"));
        assert_eq!(
            KlaviyoTarget::new(config).unwrap_err().kind,
            ErrorKind::InvalidConfig
        );
    }

    #[test]
    fn mapping_rules() {
        assert_eq!(validate_mapping(&default_mapping()), Ok(()));
        let mut seed = default_mapping();
        seed.phone = Some("phone_number".into());
        seed.address = Some("location".into());
        seed.custom.insert("company".into(), "organization".into());
        seed.custom.insert("title".into(), "title".into());
        seed.custom
            .insert("custom_field_1".into(), "loyalty_tier".into());
        assert_eq!(validate_mapping(&seed), Ok(()));

        let refused = |edit: &dyn Fn(&mut FieldMapping)| {
            let mut m = default_mapping();
            edit(&mut m);
            validate_mapping(&m).unwrap_err()
        };
        assert!(refused(&|m| m.first_name = Some("FNAME".into())).contains("Mailchimp"));
        assert!(refused(&|m| m.tags = true).contains("tags"));
        assert!(refused(&|m| m.address = Some("ADDR".into())).contains("location"));
        assert!(
            refused(&|m| {
                m.custom.insert("x".into(), "location".into());
            })
            .contains("location")
        );
        assert!(
            refused(&|m| {
                m.custom.insert("x".into(), "email".into());
            })
            .contains("reserved")
        );
        assert!(
            refused(&|m| {
                m.custom.insert("x".into(), "$consent".into());
            })
            .contains("special")
        );
        assert!(
            refused(&|m| {
                m.custom.insert("x".into(), "first_name".into());
            })
            .contains("twice")
        );
        // The core's default mapping is Mailchimp's: refused with a pointer to Klaviyo's names.
        assert!(validate_mapping(&FieldMapping::default()).is_err());
    }
}
