//! `AudienceSync`: keeps a Mailchimp audience in step with a source's customers.

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ConsentPolicySpec, FieldMappingSpec, KLAVIYO_NO_PENDING_MESSAGE, KLAVIYO_NO_PENDING_RULE,
    KLAVIYO_NO_TAGS_MESSAGE, KLAVIYO_NO_TAGS_RULE, KlaviyoRef, MAILCHIMP_MERGE_TAGS_MESSAGE,
    MAILCHIMP_MERGE_TAGS_RULE, MailchimpRef, Safety, Schedule, SecretKeyRef, SourceSpec, TargetRef,
    klaviyo_list, schedule_default,
};
use super::status::SyncStatus;

/// A Mailchimp audience (list).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MailchimpTarget {
    /// The audience (list) id, e.g. `a1b2c3d4e5`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub audience_id: String,
    /// Secret holding the API key (key `apiKey` unless `key` says otherwise). The data centre is
    /// taken from the key's suffix (`...-us21`).
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator). Defaults to `https://{dc}.api.mailchimp.com/3.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// The plan's contact limit (e.g. 2000 on Mailchimp's free plan): a run that would take the
    /// audience past it stops with `CapacityExceeded` before writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub contact_limit: Option<u64>,
}

/// A Klaviyo list: profiles join it, their consent is given for it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.listId) != has(self.listName)").message("give exactly one of listId or listName"))]
pub struct KlaviyoTarget {
    /// The list id, e.g. `Y6nRLr` (a list that does not exist is an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub list_id: Option<String>,
    /// The list name; the list is created on the first write when no list has that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub list_name: Option<String>,
    /// Secret holding the private API key (key `apiKey` unless `key` says otherwise); the key
    /// needs the profiles, lists and subscriptions scopes (read and write).
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator). Defaults to `https://a.klaviyo.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Start the list's "added to list" flows (e.g. a welcome series) for the customers a run
    /// subscribes after the first. Off by default, as in Klaviyo's own Lightspeed integration:
    /// a returning customer would otherwise be welcomed as if new. The first run is always a
    /// history import and starts no flow.
    #[serde(default)]
    pub trigger_list_flows: bool,
}

/// Where the audience lives: exactly one target kind.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.mailchimp), has(self.klaviyo)].exists_one(x, x)").message("give exactly one target: mailchimp or klaviyo"))]
pub struct AudienceTarget {
    /// A Mailchimp audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailchimp: Option<MailchimpTarget>,
    /// A Klaviyo list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub klaviyo: Option<KlaviyoTarget>,
}

impl AudienceTarget {
    /// The one target given (Mailchimp first, should a spec bypass the CEL rule).
    pub fn get(&self) -> Option<TargetRef<'_>> {
        if let Some(m) = &self.mailchimp {
            return Some(TargetRef::Mailchimp(MailchimpRef {
                audience_id: &m.audience_id,
                credentials: &m.credentials_secret_ref,
                endpoint: m.endpoint.as_deref(),
                contact_limit: m.contact_limit,
            }));
        }
        let k = self.klaviyo.as_ref()?;
        Some(TargetRef::Klaviyo(KlaviyoRef {
            list: klaviyo_list(k.list_id.as_ref(), k.list_name.as_ref())?,
            credentials: &k.credentials_secret_ref,
            endpoint: k.endpoint.as_deref(),
            trigger_list_flows: k.trigger_list_flows,
        }))
    }

    /// How many target kinds are given (one in a valid spec).
    pub fn kinds_given(&self) -> usize {
        usize::from(self.mailchimp.is_some()) + usize::from(self.klaviyo.is_some())
    }
}

/// How members the source does not have are treated.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AudienceMode {
    /// Create and update members; never remove any.
    #[default]
    Upsert,
    /// Also archive members the source no longer has (subject to the safety stop).
    Mirror,
}

impl AudienceMode {
    pub fn to_core(self) -> audience_core::Mode {
        match self {
            AudienceMode::Upsert => audience_core::Mode::Upsert,
            AudienceMode::Mirror => audience_core::Mode::Mirror,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AudienceMode::Upsert => "upsert",
            AudienceMode::Mirror => "mirror",
        }
    }
}

/// Keeps a Mailchimp audience in step with the customers of a Shopify, Lightspeed or RetailCRM
/// account: creates and updates members, honours unsubscribes, and in `mirror` mode archives
/// members the source no longer has.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sync.audience-operator.io",
    version = "v1alpha1",
    kind = "AudienceSync",
    plural = "audiencesyncs",
    singular = "audiencesync",
    namespaced,
    status = "SyncStatus",
    shortname = "as",
    shortname = "audsync",
    category = "audience",
    doc = "Keeps a Mailchimp audience in step with the customers of a commerce system.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Created",
        type_ = "integer",
        json_path = ".status.lastRun.counts.created"
    ),
    printcolumn(
        name = "Updated",
        type_ = "integer",
        json_path = ".status.lastRun.counts.updated"
    ),
    printcolumn(
        name = "Removed",
        type_ = "integer",
        json_path = ".status.lastRun.counts.archived"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(MAILCHIMP_MERGE_TAGS_RULE).message(MAILCHIMP_MERGE_TAGS_MESSAGE))]
#[x_kube(validation = Rule::new(KLAVIYO_NO_PENDING_RULE).message(KLAVIYO_NO_PENDING_MESSAGE))]
#[x_kube(validation = Rule::new(KLAVIYO_NO_TAGS_RULE).message(KLAVIYO_NO_TAGS_MESSAGE))]
#[x_kube(validation = Rule::new("has(self.source) != has(self.sources)").message("give exactly one of source or sources"))]
#[x_kube(validation = Rule::new("!has(self.fieldPrecedence) || has(self.sources)").message("fieldPrecedence needs sources"))]
#[x_kube(validation = Rule::new(FIELD_PRECEDENCE_SOURCES_RULE).message("fieldPrecedence names a source that is not in sources"))]
#[x_kube(validation = Rule::new(TWO_WAY_RULE).message(TWO_WAY_MESSAGE))]
#[x_kube(validation = Rule::new(TWO_WAY_UNSUBSCRIBES_RULE).message(TWO_WAY_UNSUBSCRIBES_MESSAGE))]
#[x_kube(validation = Rule::new(super::customer_events::CUSTOMER_EVENTS_RULE).message(super::customer_events::CUSTOMER_EVENTS_MESSAGE))]
#[x_kube(validation = Rule::new(SMS_WRITE_BACK_RULE).message(SMS_WRITE_BACK_MESSAGE))]
pub struct AudienceSyncSpec {
    /// Where customers come from (exactly one kind). Use `sources` instead to feed one audience
    /// from several systems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSpec>,
    /// Several systems feeding this one audience together (e.g. a POS in the store and a web
    /// shop), planned as one: per customer the most restrictive consent wins, and each field
    /// takes its value from one source (`fieldPrecedence`). 2 to 5 sources, names unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 2, max = 5))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("source names must be unique"))]
    pub sources: Vec<NamedSource>,
    /// Which source owns a target field when several have a value, by target field name
    /// (`FNAME: [web, store]`): the first listed source with a value gives it. Fields not listed
    /// take the value of the most recently edited record that has one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20))]
    pub field_precedence: BTreeMap<String, PrecedenceList>,
    /// The audience to keep in step.
    pub target: AudienceTarget,
    /// `upsert` (default) creates and updates; `mirror` also archives members the source no longer has.
    #[serde(default)]
    pub mode: AudienceMode,
    /// Which customer attributes land in which merge fields.
    #[serde(default)]
    pub field_mapping: FieldMappingSpec,
    /// Consent rules (unsubscribes always win over the source's "subscribed").
    #[serde(default)]
    pub consent_policy: AudienceConsentPolicy,
    /// When to run. Defaults to every hour.
    #[serde(default = "schedule_default")]
    pub schedule: Schedule,
    /// How often a run reads everything (every source record, every member) instead of only
    /// what changed since the last run, e.g. `24h` (the default), `6h`, `90m` (units s, m, h; at
    /// least 1m). Only a full run finds customers deleted at the source (`mirror` archives them)
    /// and members edited in the target behind the sync's back (drift). A run is also full when
    /// there is no checkpoint yet, when the spec changed since it was saved, on a dry run, while
    /// a plan waits for approval, and when `sync.audience-operator.io/sync-now` gets a new value
    /// starting with `full` (e.g. `full-2026-12-01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 16), regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]+(s|m|h))+$') || duration(self) >= duration('60s')").message("fullResync must be at least 1m"))]
    pub full_resync: Option<String>,
    /// Stop scheduling runs (a run under way finishes).
    #[serde(default)]
    pub suspend: bool,
    /// Plan only: write nothing to Mailchimp and report the plan in `status.plan`.
    #[serde(default)]
    pub dry_run: bool,
    /// The safety stop for removals.
    #[serde(default)]
    pub safety: Safety,
    /// Which audience members this sync manages: `mirror` archives only those. Members that
    /// joined through signup forms or other tools are left alone.
    #[serde(default, skip_serializing_if = "OwnershipSpec::is_default")]
    pub ownership: OwnershipSpec,
    /// Customer events both ways between a Shopify source and a Mailchimp target (see
    /// `CustomerEventsSpec`); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_events: Option<super::customer_events::CustomerEventsSpec>,
    /// The log of recent record changes, kept in the ConfigMap `<name>-activity` next to the sync.
    #[serde(default, skip_serializing_if = "ActivityLogSpec::is_default")]
    pub activity_log: ActivityLogSpec,
    /// SMS subscribers (Shopify → Mailchimp, one way): customers whose SMS consent became
    /// subscribed after `since` get Mailchimp's SMS fields (phone in E.164, SMS subscribed),
    /// once the sync's first email sync has completed. Needs a Shopify source and a Mailchimp
    /// target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<SmsSpec>,
    /// Writes from Mailchimp to the shop: `createCustomers` makes Mailchimp members the sync
    /// did not create (no owner tag) and the shop does not have (any letter case) Shopify
    /// customers. Needs a Shopify source and a Mailchimp target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackSpec>,
    /// Vendor webhooks for this sync (see `WebhooksSpec`); absent: the operator registers none
    /// (webhooks set up by hand still reach it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<WebhooksSpec>,
}

/// Webhook registration: with `register: true` and the operator's public URL set
/// (`--webhook-public-url`, chart value `webhooks.publicUrl`), the operator creates its
/// subscriptions at the vendors on the sync's first reconcile (Shopify: one per customer topic,
/// pointing at `<publicUrl>/webhooks/shopify`; Mailchimp: one list webhook pointing at
/// `<publicUrl>/webhooks/mailchimp/<webhookSecret>`), never twice, and removes them when the sync
/// is deleted or `register` turns false. Each side needs the key `webhookSecret` in its
/// credentials Secret (the Shopify app's client secret; any secret for Mailchimp).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhooksSpec {
    #[serde(default)]
    pub register: bool,
}

/// The activity log: the last 1,000 or so record changes (512 KiB at most), as JSON lines in a
/// ConfigMap owned by the sync (`audience-operator activity <sync>` reads it).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActivityLogSpec {
    /// Keep the log (default true); `false` deletes the ConfigMap.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Store SHA-256 hex digests of the (lowercased) addresses instead of the addresses.
    #[serde(default)]
    pub hash_emails: bool,
}

fn default_true() -> bool {
    true
}

impl Default for ActivityLogSpec {
    fn default() -> Self {
        ActivityLogSpec {
            enabled: true,
            hash_emails: false,
        }
    }
}

impl ActivityLogSpec {
    pub fn is_default(&self) -> bool {
        *self == ActivityLogSpec::default()
    }
}

/// `spec.sms`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SmsSpec {
    /// The date (`YYYY-MM-DD`, UTC) after which an SMS opt-in is synced: customers who
    /// subscribed to SMS on or before it are not.
    #[schemars(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub since: String,
}

impl SmsSpec {
    /// `since` as the end of that day's first instant (an opt-in must be later than it).
    pub fn since_time(&self) -> Result<chrono::DateTime<chrono::Utc>, String> {
        chrono::NaiveDate::parse_from_str(self.since.trim(), "%Y-%m-%d")
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            .map_err(|_| format!("sms.since {:?} is not a date (YYYY-MM-DD)", self.since))
    }
}

/// `spec.writeBack`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WriteBackSpec {
    /// Create Shopify customers for new Mailchimp members (default false).
    #[serde(default)]
    pub create_customers: bool,
}

/// `sms` and `writeBack` run between one Shopify `source` and a Mailchimp target.
pub const SMS_WRITE_BACK_RULE: &str = "(!has(self.sms) && !has(self.writeBack)) || (has(self.source) && has(self.source.shopify) && has(self.target.mailchimp))";
pub const SMS_WRITE_BACK_MESSAGE: &str = "sms and writeBack need a single Shopify source (source.shopify, not sources) and a Mailchimp target";

/// The CEL rule that two-way consent runs between one Shopify `source` and a Mailchimp target:
/// with several sources the strictest consent decides per customer, and writing one answer back
/// to one of them would break that; only Shopify takes consent writes.
pub const TWO_WAY_RULE: &str = "!has(self.consentPolicy) || !has(self.consentPolicy.twoWay) || !self.consentPolicy.twoWay || (has(self.source) && has(self.source.shopify) && has(self.target.mailchimp))";
pub const TWO_WAY_MESSAGE: &str = "consentPolicy.twoWay needs a single Shopify source (source.shopify, not sources) and a Mailchimp target";
/// Two-way consent carries unsubscribes both ways: it cannot be had without them.
pub const TWO_WAY_UNSUBSCRIBES_RULE: &str = "!has(self.consentPolicy) || !has(self.consentPolicy.twoWay) || !self.consentPolicy.twoWay || !has(self.consentPolicy.propagateUnsubscribes) || self.consentPolicy.propagateUnsubscribes";
pub const TWO_WAY_UNSUBSCRIBES_MESSAGE: &str =
    "consentPolicy.twoWay carries unsubscribes both ways: propagateUnsubscribes cannot be false";

/// An AudienceSync's consent rules: the shared ones, and two-way consent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AudienceConsentPolicy {
    #[serde(flatten)]
    pub rules: ConsentPolicySpec,
    /// Keep email consent in step both ways between a Shopify source and a Mailchimp target
    /// (Mailchimp for Shopify's behaviour): a subscribe or unsubscribe on either side reaches the
    /// other, the later change winning (Shopify's `consentUpdatedAt` against Mailchimp's
    /// `timestamp_opt` / `last_changed`; ties go to the unsubscribe). The first run keeps
    /// members already subscribed in Mailchimp and marks them subscribed in Shopify. Someone
    /// unsubscribed in Mailchimp who opts in again in Shopify is set `pending` (Mailchimp asks
    /// them to confirm); a cleaned address is never resubscribed. Every run reads both sides
    /// whole. Needs a single Shopify `source` (scope `write_customers`) and a Mailchimp target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_way: bool,
}

impl std::ops::Deref for AudienceConsentPolicy {
    type Target = ConsentPolicySpec;
    fn deref(&self) -> &ConsentPolicySpec {
        &self.rules
    }
}

/// The CEL rule that every source `fieldPrecedence` names is one of `sources`.
pub const FIELD_PRECEDENCE_SOURCES_RULE: &str = "!has(self.fieldPrecedence) || !has(self.sources) || self.fieldPrecedence.all(f, self.fieldPrecedence[f].all(n, self.sources.exists(s, s.name == n)))";

/// Source names in order of precedence for one target field.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct PrecedenceList(
    #[schemars(length(min = 1, max = 5), inner(length(max = 63)))] pub Vec<String>,
);

/// One of several sources feeding one audience: a name and exactly one source kind (the kind's
/// rule comes with the flattened `SourceSpec`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamedSource {
    /// What the source is called in `fieldPrecedence`, status and reports (`web`, `store`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    #[serde(flatten)]
    pub source: SourceSpec,
}

/// How a sync marks and adopts the members it manages.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OwnershipSpec {
    /// The owner tag put on every member the sync creates or updates (a Mailchimp tag; a Klaviyo
    /// profile property set to true). Defaults to `audience-operator:{namespace}/{name}` (cut
    /// with a hash past 100 characters); set it to keep ownership across a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^\S(.*\S)?$"))]
    pub tag: Option<String>,
    /// Which existing members the first run takes over: `sourceMatched` (default) those the
    /// source has; `all` every member of the audience (mirror then archives any the source lacks).
    #[serde(default)]
    pub adopt: AdoptPolicy,
}

impl OwnershipSpec {
    pub fn is_default(&self) -> bool {
        *self == OwnershipSpec::default()
    }
}

/// Which existing members a sync adopts on its first run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum AdoptPolicy {
    /// Members the source has (they get the owner tag); the others stay the merchant's.
    #[default]
    SourceMatched,
    /// Every member of the audience.
    All,
}
