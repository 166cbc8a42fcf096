//! Mailchimp Marketing API 3.0 as an audience [`Target`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), audience_core::ConnectorError> {
//! use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
//! let target = MailchimpTarget::new(MailchimpConfig::new("0123456789abcdef-us6", "a1b2c3d4e5"))?;
//! // Against the simulator: .with_base_url("http://127.0.0.1:8080/mailchimp/3.0")
//! # Ok(()) }
//! ```
//!
//! - Reads: members 1,000 to a page (the API's maximum), trimmed with `fields=`, the pages after
//!   the first fetched concurrently; archived members come from a second pass (`status=archived`).
//!   Incremental runs look members up by email instead (one call each, see `read`).
//! - Writes: batch subscribe with 500 members to a call, up to 10 calls in flight; see the `write` module
//!   for the call counts. Nothing to do, no call.
//! - Every request goes through [`crate::http::send`] under the budget of its API key
//!   ([`crate::http::budget_for`] with Mailchimp's 10 connections), shared by every sync in the
//!   process using that key: 429s pause the whole key, 5xx and timeouts back off with jitter.
//! - Errors name the endpoint's route template and never the key.

pub mod activity;
mod client;
mod ecommerce;
pub mod member_events;
mod read;
mod sms;
pub mod webhooks;
mod wire;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use audience_core::{
    ApplyControl, ApplyReport, ConnectorError, Email, ErrorKind, FieldMapping, Plan, SegmentPlan,
    Target, TargetInfo, TargetMember,
};
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::http::{self, RetryPolicy};
use client::{Client, VENDOR};

pub use ecommerce::{MailchimpOrderConfig, MailchimpOrderSink, mailchimp_id};
pub use wire::subscriber_hash;

/// What the operator needs to know about Mailchimp.
pub const DESCRIPTOR: crate::vendor::VendorDescriptor = crate::vendor::VendorDescriptor {
    name: VENDOR,
    default_secret_key: "apiKey",
    credential_name: "API key",
    hosts: &["*.api.mailchimp.com"],
};
/// The API path below Mailchimp's (or a simulator's) origin.
pub const API_PATH: &str = "/3.0";

/// The API base for an `endpoint` override or a sandbox's vendor URL: the URL plus `/3.0` unless
/// it already ends with it.
pub fn api_base(endpoint: &str) -> String {
    crate::vendor::with_suffix(endpoint, API_PATH)
}

/// Merge tags: an upper-case letter, then up to 9 upper-case letters, digits or `_`.
pub fn is_merge_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && tag.len() <= 10
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The mapping a Mailchimp sync starts from: the audience's standard `FNAME` and `LNAME`.
pub fn default_mapping() -> FieldMapping {
    FieldMapping {
        first_name: Some("FNAME".into()),
        last_name: Some("LNAME".into()),
        ..FieldMapping::default()
    }
}

/// Mailchimp's rules for a field mapping: every target field is a valid merge tag, `EMAIL` is not
/// one of them (it is the member's address), and no tag is written twice.
pub fn validate_mapping(mapping: &FieldMapping) -> Result<(), String> {
    for (source, tag) in &mapping.custom {
        if source.trim().is_empty() {
            return Err("fieldMapping.customFields: a source attribute name is empty".into());
        }
        if !is_merge_tag(tag) {
            return Err(format!(
                "fieldMapping.customFields.{source}: {tag:?} is not a Mailchimp merge tag (up to 10 of A-Z, 0-9, _, starting with a letter)"
            ));
        }
    }
    for (tag, _) in mapping.target_fields() {
        if tag.eq_ignore_ascii_case("EMAIL") {
            return Err(
                "fieldMapping: EMAIL is the member's address, not a merge field to map onto".into(),
            );
        }
        if !is_merge_tag(tag) {
            return Err(format!(
                "fieldMapping: {tag:?} is not a Mailchimp merge tag"
            ));
        }
    }
    mapping.validate().map_err(|e| format!("fieldMapping: {e}"))
}

/// Mailchimp allows 10 simultaneous connections per API key.
pub const MAX_CONNECTIONS: usize = 10;
/// Members per batch-subscribe call (the API's maximum).
pub const BATCH_SIZE: usize = write::BATCH_SIZE;
/// Members per page read (the API's maximum).
pub const PAGE_SIZE: u64 = read::PAGE_SIZE;

/// How to reach one Mailchimp audience.
#[derive(Clone)]
pub struct MailchimpConfig {
    /// `<key>-<dc>`; the data-centre suffix picks the host. A secret: never logged or echoed.
    pub api_key: String,
    /// The audience (list) id.
    pub list_id: String,
    /// Replaces `https://{dc}.api.mailchimp.com/3.0` (e.g. the simulator's
    /// `http://HOST/mailchimp/3.0`).
    pub base_url: Option<String>,
    /// Retries of rate limits, 5xx and timeouts.
    pub retry: RetryPolicy,
    /// Write calls in flight at once (batches, archives, tag and segment calls); the key budget
    /// caps all calls on the key at [`MAX_CONNECTIONS`] whatever this says.
    pub write_concurrency: usize,
    /// Pages read ahead concurrently when reading members.
    pub read_ahead: usize,
}

impl MailchimpConfig {
    pub fn new(api_key: impl Into<String>, list_id: impl Into<String>) -> Self {
        MailchimpConfig {
            api_key: api_key.into(),
            list_id: list_id.into(),
            base_url: None,
            retry: RetryPolicy {
                // Mailchimp answers within 120 s; a 500-member batch can take a while.
                timeout: std::time::Duration::from_secs(120),
                ..RetryPolicy::default()
            },
            write_concurrency: MAX_CONNECTIONS,
            read_ahead: 4,
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

impl fmt::Debug for MailchimpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailchimpConfig")
            .field("api_key", &"***")
            .field("list_id", &self.list_id)
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .field("write_concurrency", &self.write_concurrency)
            .field("read_ahead", &self.read_ahead)
            .finish()
    }
}

/// The data centre of an API key (`…-us6` → `us6`), or why the key is unusable. The message never
/// contains the key.
pub fn data_center(api_key: &str) -> Result<&str, ConnectorError> {
    let invalid = |why: &str| {
        crate::config::invalid_credentials(
            VENDOR,
            format!("the API key {why}; expected the form <key>-<dc>, e.g. …-us6"),
        )
    };
    let key = api_key.trim();
    if key.is_empty() {
        return Err(invalid("is empty"));
    }
    if key.len() != api_key.len() {
        return Err(invalid("has leading or trailing whitespace"));
    }
    let Some((secret, dc)) = key.rsplit_once('-') else {
        return Err(invalid("has no data-centre suffix"));
    };
    if secret.is_empty() || !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(invalid("has a malformed key part"));
    }
    let mut chars = dc.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_with_letter
        || !dc
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        || dc.len() > 10
    {
        return Err(invalid("has a malformed data-centre suffix"));
    }
    Ok(dc)
}

/// A Mailchimp audience.
pub struct MailchimpTarget {
    inner: Inner,
}

pub(crate) struct Inner {
    client: Client,
    api_key: String,
    list_id: String,
    write_concurrency: usize,
    read_ahead: usize,
    /// Static segment (tag) name → id, learnt from listings and creations.
    segments: Mutex<HashMap<String, u64>>,
    /// The audience size the last `info` read (`u64::MAX`: not read yet), which decides whether
    /// look-ups by email or a whole read take fewer calls.
    size: std::sync::atomic::AtomicU64,
}

impl MailchimpTarget {
    /// Checks the configuration (key format, list id, base URL) without calling the API.
    pub fn new(config: MailchimpConfig) -> Result<Self, ConnectorError> {
        let dc = data_center(&config.api_key)?;
        let list_id = config.list_id.trim().to_string();
        if list_id.is_empty()
            || !list_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConnectorError::new(
                VENDOR,
                "list id",
                ErrorKind::InvalidConfig,
                format!(
                    "the audience (list) id {:?} is not an id (letters and digits)",
                    client::truncate(&list_id, 40)
                ),
            ));
        }
        let base = match &config.base_url {
            Some(url) => {
                let parsed = url::Url::parse(url.trim()).map_err(|e| {
                    ConnectorError::new(
                        VENDOR,
                        "base URL",
                        ErrorKind::InvalidConfig,
                        format!("the base URL is not a URL: {e}"),
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConnectorError::new(
                        VENDOR,
                        "base URL",
                        ErrorKind::InvalidConfig,
                        "the base URL must be http or https",
                    ));
                }
                url.trim().trim_end_matches('/').to_string()
            }
            None => format!("https://{dc}.api.mailchimp.com/3.0"),
        };
        let budget = http::budget_for(VENDOR, &config.api_key, MAX_CONNECTIONS);
        Ok(MailchimpTarget {
            inner: Inner {
                client: Client::new(base, &config.api_key, budget, config.retry),
                api_key: config.api_key,
                list_id,
                write_concurrency: config.write_concurrency.clamp(1, MAX_CONNECTIONS),
                read_ahead: config.read_ahead.clamp(1, MAX_CONNECTIONS),
                segments: Mutex::new(HashMap::new()),
                size: std::sync::atomic::AtomicU64::new(u64::MAX),
            },
        })
    }

    /// The audience (list) id.
    pub fn list_id(&self) -> &str {
        &self.inner.list_id
    }

    /// Members changed after `since` (`since_last_changed`), archived ones included.
    pub fn members_changed_since(
        &self,
        since: DateTime<Utc>,
    ) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>> {
        self.inner.members(Some(since))
    }
}

impl fmt::Debug for MailchimpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailchimpTarget")
            .field("list_id", &self.inner.list_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Target for MailchimpTarget {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The audience size is read again (it picks look-ups or a whole read), and tag ids too (a
    /// tag deleted in Mailchimp since is created again, not written to by a stale id).
    async fn reset_run_state(&self) {
        self.inner.segments.lock().expect("segments lock").clear();
        self.inner
            .size
            .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    }

    fn customer_events(&self) -> Option<&dyn audience_core::customer_events::CustomerEventsTarget> {
        Some(self)
    }

    fn webhook_registry(
        &self,
    ) -> Option<&dyn audience_core::webhook_subscriptions::WebhookRegistry> {
        Some(self)
    }

    async fn info(&self) -> Result<TargetInfo, ConnectorError> {
        self.inner.info().await
    }

    fn members(&self) -> BoxStream<'_, Result<Vec<TargetMember>, ConnectorError>> {
        self.inner.members(None)
    }

    fn members_with_consent(
        &self,
    ) -> BoxStream<'_, Result<Vec<(TargetMember, audience_core::MemberConsent)>, ConnectorError>>
    {
        self.inner.members_with_consent()
    }

    fn audience_members(
        &self,
    ) -> BoxStream<'_, Result<Vec<audience_core::AudienceMember>, ConnectorError>> {
        self.inner.audience_members()
    }

    async fn write_sms(
        &self,
        writes: &[audience_core::SmsWrite],
        control: &ApplyControl,
    ) -> Result<audience_core::ConsentWriteReport, ConnectorError> {
        self.inner.write_sms(writes, control).await
    }

    async fn members_by_email(
        &self,
        emails: &[Email],
    ) -> Result<Vec<TargetMember>, ConnectorError> {
        self.inner.members_by_email(emails).await
    }

    async fn ensure_fields(&self, mapping: &FieldMapping) -> Result<(), ConnectorError> {
        self.inner.ensure_fields(mapping).await
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
    fn data_center_from_key() {
        assert_eq!(
            data_center("0123456789abcdef0123456789abcdef-us6").unwrap(),
            "us6"
        );
        for bad in [
            "", "nodash", "abc-", "-us6", "abc-US6", "abc-us 6", "a b-us6", " abc-us6",
        ] {
            let err = data_center(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidCredentials);
            if bad.len() > 5 {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }

    #[test]
    fn invalid_key_is_not_echoed() {
        let key = "supersecretvalue0123456789-u!s6";
        let err = MailchimpTarget::new(MailchimpConfig::new(key, "list1")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidCredentials);
        assert!(!err.to_string().contains("supersecretvalue"));
        let config = MailchimpConfig::new("supersecretvalue0123456789-us6", "list1");
        assert!(!format!("{config:?}").contains("supersecretvalue"));
    }

    #[test]
    fn host_follows_the_data_center() {
        let target =
            MailchimpTarget::new(MailchimpConfig::new("0123456789abcdef-us19", "abc123")).unwrap();
        assert_eq!(target.list_id(), "abc123");
        let err =
            MailchimpTarget::new(MailchimpConfig::new("0123456789abcdef-us19", "a/b")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
    }
}
