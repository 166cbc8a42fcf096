//! `AudienceSync`: keeps a Mailchimp audience in step with a source's customers.

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ConsentPolicySpec, FieldMappingSpec, MailchimpRef, Safety, Schedule, SecretKeyRef, SourceSpec,
    TargetRef, schedule_default,
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

/// Where the audience lives: exactly one target kind. Only `mailchimp` exists today; `klaviyo` is
/// planned and will be added as a sibling field.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.mailchimp)").message("give a target: mailchimp (klaviyo is planned)"))]
pub struct AudienceTarget {
    /// A Mailchimp audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailchimp: Option<MailchimpTarget>,
}

impl AudienceTarget {
    /// The one target given.
    pub fn get(&self) -> Option<TargetRef<'_>> {
        self.mailchimp.as_ref().map(|m| {
            TargetRef::Mailchimp(MailchimpRef {
                audience_id: &m.audience_id,
                credentials: &m.credentials_secret_ref,
                endpoint: m.endpoint.as_deref(),
                contact_limit: m.contact_limit,
            })
        })
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
pub struct AudienceSyncSpec {
    /// Where customers come from (exactly one kind).
    pub source: SourceSpec,
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
    pub consent_policy: ConsentPolicySpec,
    /// When to run. Defaults to every hour.
    #[serde(default = "schedule_default")]
    pub schedule: Schedule,
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
