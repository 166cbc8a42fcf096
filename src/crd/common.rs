//! Spec parts shared by `AudienceSync` and `SegmentSync`: the source union, credentials, the
//! schedule, the safety limit, the field mapping and the consent policy.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where an API key or token lives: a key of a Secret in the sync's own namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of a Secret in the same namespace as the sync.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret. Defaults to the vendor's usual key: Shopify `accessToken`,
    /// Lightspeed X-Series and R-Series `token`, RetailCRM `apiKey`, Mailchimp `apiKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

impl SecretKeyRef {
    /// The key to read, falling back to the vendor default.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.key.as_deref().unwrap_or(default)
    }
}

fn default_shopify_api_version() -> String {
    "2025-01".into()
}

/// A Shopify store, read through the Admin GraphQL API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShopifySource {
    /// The shop's `*.myshopify.com` domain, e.g. `my-shop.myshopify.com`.
    #[schemars(
        length(max = 255),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9-]*\.myshopify\.com$")
    )]
    pub shop_domain: String,
    /// Admin API version (`YYYY-MM`).
    #[serde(default = "default_shopify_api_version")]
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}$"))]
    pub api_version: String,
    /// Base URL override (a proxy or a simulator). Defaults to `https://{shopDomain}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Secret holding the Admin API access token (key `accessToken` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
}

/// A Lightspeed Retail X-Series (formerly Vend) account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LightspeedXSeriesSource {
    /// The account's domain prefix: `{domainPrefix}.retail.lightspeed.app`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")
    )]
    pub domain_prefix: String,
    /// Base URL override (a proxy or a simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Secret holding the personal or OAuth access token (key `token` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
}

/// A Lightspeed Retail R-Series account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LightspeedRSeriesSource {
    /// The numeric account id.
    #[schemars(length(min = 1, max = 20), regex(pattern = r"^[0-9]+$"))]
    pub account_id: String,
    /// Base URL override (a proxy or a simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Secret holding the OAuth access token (key `token` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
}

/// A RetailCRM (Simla.com) account: give `account` or `url`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.account) != has(self.url)").message("give exactly one of account or url"))]
pub struct RetailcrmSource {
    /// The account subdomain: `{account}.retailcrm.ru`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9-]*$")
    )]
    pub account: Option<String>,
    /// The full URL of the CRM (custom domains), e.g. `https://crm.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub url: Option<String>,
    /// Restrict to one site (store) code of a multi-site account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub site: Option<String>,
    /// The account's time zone (an IANA name such as `Europe/Moscow`): RetailCRM writes times
    /// as wall-clock times in it with no marker. Default: the account's own setting (read from
    /// `GET /api/v5/settings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: Option<String>,
    /// Base URL override (a proxy or a simulator); wins over `account` and `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Secret holding the API key (key `apiKey` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
}

/// Where customers come from: exactly one source kind.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.shopify), has(self.lightspeedXSeries), has(self.lightspeedRSeries), has(self.retailcrm)].exists_one(x, x)"
).message("give exactly one source: shopify, lightspeedXSeries, lightspeedRSeries or retailcrm"))]
pub struct SourceSpec {
    /// A Shopify store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shopify: Option<ShopifySource>,
    /// A Lightspeed X-Series account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightspeed_x_series: Option<LightspeedXSeriesSource>,
    /// A Lightspeed R-Series account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lightspeed_r_series: Option<LightspeedRSeriesSource>,
    /// A RetailCRM account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retailcrm: Option<RetailcrmSource>,
}

/// The source kind, as named in specs, metrics and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Shopify,
    LightspeedXSeries,
    LightspeedRSeries,
    Retailcrm,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Shopify => "shopify",
            SourceKind::LightspeedXSeries => "lightspeedXSeries",
            SourceKind::LightspeedRSeries => "lightspeedRSeries",
            SourceKind::Retailcrm => "retailcrm",
        }
    }
}

/// The one source a spec names, as a value every vendor dispatch `match`es on (so a new source
/// kind is a compile error wherever it is not handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRef<'a> {
    Shopify(&'a ShopifySource),
    LightspeedXSeries(&'a LightspeedXSeriesSource),
    LightspeedRSeries(&'a LightspeedRSeriesSource),
    Retailcrm(&'a RetailcrmSource),
}

impl<'a> SourceRef<'a> {
    pub fn kind(self) -> SourceKind {
        match self {
            SourceRef::Shopify(_) => SourceKind::Shopify,
            SourceRef::LightspeedXSeries(_) => SourceKind::LightspeedXSeries,
            SourceRef::LightspeedRSeries(_) => SourceKind::LightspeedRSeries,
            SourceRef::Retailcrm(_) => SourceKind::Retailcrm,
        }
    }

    /// The Secret reference of the source.
    pub fn credentials(self) -> &'a SecretKeyRef {
        match self {
            SourceRef::Shopify(s) => &s.credentials_secret_ref,
            SourceRef::LightspeedXSeries(s) => &s.credentials_secret_ref,
            SourceRef::LightspeedRSeries(s) => &s.credentials_secret_ref,
            SourceRef::Retailcrm(s) => &s.credentials_secret_ref,
        }
    }
}

impl SourceSpec {
    /// Every source kind given, in field order (one in a valid spec).
    fn given(&self) -> impl Iterator<Item = SourceRef<'_>> {
        [
            self.shopify.as_ref().map(SourceRef::Shopify),
            self.lightspeed_x_series
                .as_ref()
                .map(SourceRef::LightspeedXSeries),
            self.lightspeed_r_series
                .as_ref()
                .map(SourceRef::LightspeedRSeries),
            self.retailcrm.as_ref().map(SourceRef::Retailcrm),
        ]
        .into_iter()
        .flatten()
    }

    /// The one source given (the API server enforces exactly one; the first wins otherwise).
    pub fn get(&self) -> Option<SourceRef<'_>> {
        self.given().next()
    }

    /// The one source kind given.
    pub fn kind(&self) -> Option<SourceKind> {
        self.get().map(SourceRef::kind)
    }

    /// How many source kinds are given (1 in a valid spec).
    pub fn kinds_given(&self) -> usize {
        self.given().count()
    }

    /// The Secret reference of the source.
    pub fn credentials(&self) -> Option<&SecretKeyRef> {
        self.get().map(SourceRef::credentials)
    }
}

/// The target a spec names, as a value every vendor dispatch `match`es on. AudienceSync and
/// SegmentSync targets both lend one, so the connection part of a target is read one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRef<'a> {
    Mailchimp(MailchimpRef<'a>),
    Klaviyo(KlaviyoRef<'a>),
}

/// A Klaviyo list as a target names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KlaviyoRef<'a> {
    pub list: KlaviyoListRef<'a>,
    pub credentials: &'a SecretKeyRef,
    pub endpoint: Option<&'a str>,
    /// Subscriptions after the first run are live (the list's flows start).
    pub trigger_list_flows: bool,
}

/// A Klaviyo list by id, or by name (created when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlaviyoListRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

/// A Klaviyo list: `listId` or `listName`, checked by a CEL rule on the struct that holds them.
pub(crate) fn klaviyo_list<'a>(
    id: Option<&'a String>,
    name: Option<&'a String>,
) -> Option<KlaviyoListRef<'a>> {
    match (id, name) {
        (Some(id), _) => Some(KlaviyoListRef::Id(id)),
        (None, Some(name)) => Some(KlaviyoListRef::Name(name)),
        (None, None) => None,
    }
}

/// A Mailchimp audience as a target names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailchimpRef<'a> {
    pub audience_id: &'a str,
    pub credentials: &'a SecretKeyRef,
    pub endpoint: Option<&'a str>,
    pub contact_limit: Option<u64>,
}

impl<'a> TargetRef<'a> {
    /// The target kind as specs name it.
    pub fn kind_str(self) -> &'static str {
        match self {
            TargetRef::Mailchimp(_) => "mailchimp",
            TargetRef::Klaviyo(_) => "klaviyo",
        }
    }

    /// The Secret reference of the target.
    pub fn credentials(self) -> &'a SecretKeyRef {
        match self {
            TargetRef::Mailchimp(m) => m.credentials,
            TargetRef::Klaviyo(k) => k.credentials,
        }
    }

    /// The audience or list written to, for reports.
    pub fn destination(self) -> &'a str {
        match self {
            TargetRef::Mailchimp(m) => m.audience_id,
            TargetRef::Klaviyo(k) => match k.list {
                KlaviyoListRef::Id(id) => id,
                KlaviyoListRef::Name(name) => name,
            },
        }
    }

    /// The plan's contact limit, where the target has one.
    pub fn contact_limit(self) -> Option<u64> {
        match self {
            TargetRef::Mailchimp(m) => m.contact_limit,
            // Klaviyo limits the account's active profiles, not a list: nothing to check per list.
            TargetRef::Klaviyo(_) => None,
        }
    }
}

fn default_interval() -> Option<String> {
    Some("1h".into())
}

fn default_schedule() -> Schedule {
    Schedule {
        interval: default_interval(),
        cron: None,
        time_zone: None,
    }
}

/// When the sync runs: every `interval`, or on a `cron` schedule in `timeZone`. Either way a run
/// also starts when the spec changes and when the `sync.audience-operator.io/sync-now` annotation
/// gets a new value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.interval) != has(self.cron)").message("give exactly one of interval or cron"))]
#[x_kube(validation = Rule::new("!has(self.timeZone) || has(self.cron)").message("timeZone applies to cron schedules only"))]
pub struct Schedule {
    /// Time between the end of one run and the start of the next, e.g. `15m`, `1h30m` (units s, m,
    /// h; at least 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]+(s|m|h))+$') || duration(self) >= duration('60s')").message("interval must be at least 1m"))]
    pub interval: Option<String>,
    /// A five-field cron expression (minute hour day-of-month month day-of-week), e.g.
    /// `0 * * * *` for hourly, or a nickname such as `@daily`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^(@[a-z]+|\S+(\s+\S+){4})$")
    )]
    pub cron: Option<String>,
    /// IANA time zone the cron expression is read in, e.g. `Europe/Amsterdam`. Defaults to `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: Option<String>,
}

impl Default for Schedule {
    fn default() -> Self {
        default_schedule()
    }
}

pub(crate) fn schedule_default() -> Schedule {
    default_schedule()
}

fn default_true() -> bool {
    true
}

fn default_max_removal_percent() -> u32 {
    10
}

fn default_always_allowed() -> u64 {
    10
}

/// The safety stop: a run that would archive or unsubscribe more than this stops, reports the plan
/// in `status.pendingApproval` and waits until the annotation
/// `sync.audience-operator.io/approve-plan: <planId>` approves exactly that plan.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Safety {
    /// Check plans against the limit.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The most of the audience (in percent) one run may remove without approval.
    #[serde(default = "default_max_removal_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_removal_percent: u32,
    /// Removals up to this many are always allowed, whatever the percentage (small audiences
    /// would trip any share).
    #[serde(default = "default_always_allowed")]
    #[schemars(range(min = 0))]
    pub always_allowed: u64,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            enabled: true,
            max_removal_percent: default_max_removal_percent(),
            always_allowed: default_always_allowed(),
        }
    }
}

impl Safety {
    pub fn to_limit(&self) -> Option<audience_core::SafetyLimit> {
        self.enabled.then(|| audience_core::SafetyLimit {
            max_removal_share: f64::from(self.max_removal_percent.min(100)) / 100.0,
            always_allowed: self.always_allowed,
        })
    }
}

/// Which customer attributes are written, and into which target fields. Field names are the
/// target's: Mailchimp merge tags (up to 10 upper-case letters, digits and `_`; missing merge
/// fields are created), or Klaviyo profile attributes (`first_name`, `last_name`, `phone_number`,
/// `organization`, `title`, `location`) and custom properties (any other name). A field left out
/// takes the target's default (first and last name: `FNAME`/`LNAME` in Mailchimp,
/// `first_name`/`last_name` in Klaviyo); an empty string turns it off. Fields not named here are
/// never touched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FieldMappingSpec {
    /// Target field for the first name (default `FNAME` in Mailchimp, `first_name` in Klaviyo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub first_name: Option<String>,
    /// Target field for the last name (default `LNAME` in Mailchimp, `last_name` in Klaviyo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub last_name: Option<String>,
    /// Target field for the phone number (off unless given; Mailchimp's usual is `PHONE`,
    /// Klaviyo's `phone_number`, which takes E.164 numbers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub phone: Option<String>,
    /// Target field for the postal address (off unless given; Mailchimp's usual is `ADDRESS`,
    /// Klaviyo's is `location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub address: Option<String>,
    /// Source attribute → target field, e.g. `{company: COMPANY}` (Mailchimp) or
    /// `{company: organization, title: title}` (Klaviyo).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 30))]
    pub custom_fields: BTreeMap<String, String>,
    /// Copy the source's customer tags onto the member (added, never removed; Mailchimp only).
    #[serde(default)]
    pub tags: bool,
}

/// Mailchimp merge tags in the named mapping fields (the custom ones are checked by the
/// connector's own rules, with a message naming the field).
pub(crate) const MAILCHIMP_MERGE_TAGS_RULE: &str = "!has(self.target.mailchimp) || !has(self.fieldMapping) || [has(self.fieldMapping.firstName) ? self.fieldMapping.firstName : '', has(self.fieldMapping.lastName) ? self.fieldMapping.lastName : '', has(self.fieldMapping.phone) ? self.fieldMapping.phone : '', has(self.fieldMapping.address) ? self.fieldMapping.address : ''].all(t, t.matches('^([A-Z][A-Z0-9_]{0,9})?$'))";
pub(crate) const MAILCHIMP_MERGE_TAGS_MESSAGE: &str =
    "fieldMapping: Mailchimp merge tags are up to 10 upper-case letters, digits and _ (e.g. FNAME)";
/// Klaviyo has no pending status, and its subscribe call clears an unsubscribe.
pub(crate) const KLAVIYO_NO_PENDING_RULE: &str = "!has(self.target.klaviyo) || !has(self.consentPolicy) || !has(self.consentPolicy.resubscribe) || self.consentPolicy.resubscribe != 'pending'";
pub(crate) const KLAVIYO_NO_PENDING_MESSAGE: &str = "consentPolicy.resubscribe: pending has no Klaviyo meaning (Klaviyo has no pending status and never lets a sync resubscribe someone who unsubscribed): use skip";
pub(crate) const KLAVIYO_NO_TAGS_RULE: &str = "!has(self.target.klaviyo) || !has(self.fieldMapping) || !has(self.fieldMapping.tags) || !self.fieldMapping.tags";
pub(crate) const KLAVIYO_NO_TAGS_MESSAGE: &str = "fieldMapping.tags: Klaviyo profiles have no tags (a SegmentSync into a Klaviyo list groups customers instead)";

impl FieldMappingSpec {
    /// The core mapping, with the target's `defaults` for the names left out; empty strings turn
    /// a field off.
    pub fn to_mapping(
        &self,
        defaults: &audience_core::FieldMapping,
    ) -> audience_core::FieldMapping {
        let field = |f: &Option<String>| f.as_ref().filter(|f| !f.trim().is_empty()).cloned();
        let or_default = |f: &Option<String>, default: &Option<String>| match f {
            Some(_) => field(f),
            None => default.clone(),
        };
        audience_core::FieldMapping {
            first_name: or_default(&self.first_name, &defaults.first_name),
            last_name: or_default(&self.last_name, &defaults.last_name),
            phone: field(&self.phone),
            address: field(&self.address),
            custom: self.custom_fields.clone(),
            tags: self.tags,
        }
    }
}

/// What to do when the source says "subscribed" for someone Mailchimp has as unsubscribed.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Resubscribe {
    /// Leave them unsubscribed and report the skip.
    #[default]
    Skip,
    /// Set them `pending`, so Mailchimp asks the person to confirm (double opt-in).
    Pending,
}

/// How customers are added whose source records opt-outs but no opt-ins (Lightspeed X-Series
/// `do_not_email`, R-Series `noEmail`): the absence of an opt-out is not an opt-in.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum WhenSourceCannotOptIn {
    /// As transactional (non-marketing) contacts, until they opt in (GDPR and CAN-SPAM practice).
    #[default]
    Transactional,
    /// As subscribers, as Lightspeed's own Mailchimp app does.
    Subscribed,
}

/// Consent rules.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicySpec {
    /// Unsubscribed members whom the source lists as subscribed again: `skip` (default) or `pending`.
    #[serde(default)]
    pub resubscribe: Resubscribe,
    /// An unsubscribe in the source unsubscribes the member in the target.
    #[serde(default = "default_true")]
    pub propagate_unsubscribes: bool,
    /// Customers of a source that records opt-outs only (Lightspeed) and who have none:
    /// `transactional` (default: not marketing subscribers until they opt in) or `subscribed`
    /// (what Lightspeed's own Mailchimp app does). Status counts how many each run decided so.
    #[serde(default)]
    pub when_source_cannot_opt_in: WhenSourceCannotOptIn,
}

impl Default for ConsentPolicySpec {
    fn default() -> Self {
        ConsentPolicySpec {
            resubscribe: Resubscribe::Skip,
            propagate_unsubscribes: true,
            when_source_cannot_opt_in: WhenSourceCannotOptIn::Transactional,
        }
    }
}

impl ConsentPolicySpec {
    pub fn to_policy(&self) -> audience_core::ConsentPolicy {
        audience_core::ConsentPolicy {
            resubscribe: match self.resubscribe {
                Resubscribe::Skip => audience_core::ResubscribePolicy::Skip,
                Resubscribe::Pending => audience_core::ResubscribePolicy::Pending,
            },
            propagate_unsubscribes: self.propagate_unsubscribes,
            when_source_cannot_opt_in: match self.when_source_cannot_opt_in {
                WhenSourceCannotOptIn::Transactional => audience_core::NoOptInPolicy::Transactional,
                WhenSourceCannotOptIn::Subscribed => audience_core::NoOptInPolicy::Subscribed,
            },
        }
    }
}
