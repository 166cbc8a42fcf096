//! `SegmentSync`: shapes a Mailchimp static segment (tag) from a source segment.

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads that as a duplicate.
#![allow(clippy::duplicated_attributes)]

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

/// The source segment whose members are taken: exactly one of the fields.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.retailcrmSegment), has(self.shopifySegment), has(self.allCustomers) && self.allCustomers].exists_one(x, x)"
).message("give exactly one of retailcrmSegment, shopifySegment or allCustomers: true"))]
pub struct SourceSegmentSpec {
    /// A RetailCRM segment, by its code (the source must be `retailcrm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub retailcrm_segment: Option<String>,
    /// A Shopify customer segment, by id (numeric or `gid://shopify/Segment/...`; the source must
    /// be `shopify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub shopify_segment: Option<String>,
    /// Every customer of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_customers: Option<bool>,
}

impl SourceSegmentSpec {
    pub fn to_core(&self) -> Option<audience_core::SourceSegment> {
        if let Some(code) = &self.retailcrm_segment {
            Some(audience_core::SourceSegment::Segment(code.clone()))
        } else if let Some(id) = &self.shopify_segment {
            Some(audience_core::SourceSegment::Segment(id.clone()))
        } else if self.all_customers == Some(true) {
            Some(audience_core::SourceSegment::AllCustomers)
        } else {
            None
        }
    }
}

/// A Mailchimp static segment (shown as a tag) inside an audience.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MailchimpSegmentTarget {
    /// The audience (list) id.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub audience_id: String,
    /// Secret holding the API key (key `apiKey` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Name of the static segment (tag); created when missing.
    #[schemars(length(min = 1, max = 100))]
    pub segment: String,
    /// The plan's contact limit: segment members missing from the audience are added to it first,
    /// and a run that would pass the limit stops with `CapacityExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub contact_limit: Option<u64>,
}

/// A Klaviyo list kept equal to the source segment. Klaviyo's own segments are computed by
/// Klaviyo and cannot be written, so a source segment becomes a list, which flows can start from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.listId) != has(self.listName)").message("give exactly one of listId or listName"))]
#[x_kube(validation = Rule::new("!has(self.listName) || self.listName.trim() != self.segmentList.trim()").message("segmentList must differ from listName: the segment list is kept equal to the segment, the list holds every synced customer"))]
pub struct KlaviyoSegmentTarget {
    /// The list every synced customer belongs to (the AudienceSync's list), by id: segment members
    /// missing from it are added to it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9]+$"))]
    pub list_id: Option<String>,
    /// That list by name (created when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub list_name: Option<String>,
    /// Name of the Klaviyo list kept in step with the source segment; created when missing.
    #[schemars(length(min = 1, max = 255))]
    pub segment_list: String,
    /// Secret holding the private API key (key `apiKey` unless `key` says otherwise).
    pub credentials_secret_ref: SecretKeyRef,
    /// Base URL override (a proxy or a simulator). Defaults to `https://a.klaviyo.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
}

/// Where the segment lives: exactly one target kind.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.mailchimp), has(self.klaviyo)].exists_one(x, x)").message("give exactly one target: mailchimp or klaviyo"))]
pub struct SegmentTarget {
    /// A Mailchimp static segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailchimp: Option<MailchimpSegmentTarget>,
    /// A Klaviyo list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub klaviyo: Option<KlaviyoSegmentTarget>,
}

impl SegmentTarget {
    /// The connection part of the one target given (Mailchimp first).
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
            trigger_list_flows: false,
        }))
    }

    /// The name of the segment (tag, list) kept in step, trimmed.
    pub fn segment_name(&self) -> Option<&str> {
        match (&self.mailchimp, &self.klaviyo) {
            (Some(m), _) => Some(m.segment.trim()),
            (None, Some(k)) => Some(k.segment_list.trim()),
            (None, None) => None,
        }
    }
}

/// How the target segment is shaped from the source segment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum SegmentSyncMode {
    /// The target segment becomes exactly the source segment.
    #[default]
    Exact,
    /// Add the source segment's members; leave the others.
    Union,
    /// Remove the source segment's members from the target segment.
    Subtract,
}

impl SegmentSyncMode {
    pub fn to_core(self) -> audience_core::SegmentMode {
        match self {
            SegmentSyncMode::Exact => audience_core::SegmentMode::Exact,
            SegmentSyncMode::Union => audience_core::SegmentMode::Union,
            SegmentSyncMode::Subtract => audience_core::SegmentMode::Subtract,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SegmentSyncMode::Exact => "exact",
            SegmentSyncMode::Union => "union",
            SegmentSyncMode::Subtract => "subtract",
        }
    }
}

/// Keeps a Mailchimp static segment (tag) in step with a source segment (a RetailCRM segment, a
/// Shopify customer segment or every customer). Members missing from the audience are added first.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sync.audience-operator.io",
    version = "v1alpha1",
    kind = "SegmentSync",
    plural = "segmentsyncs",
    singular = "segmentsync",
    namespaced,
    status = "SyncStatus",
    shortname = "ss",
    shortname = "segsync",
    category = "audience",
    doc = "Keeps a Mailchimp static segment in step with a segment of a commerce system.",
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
        name = "Added",
        type_ = "integer",
        json_path = ".status.lastRun.counts.segmentAdded"
    ),
    printcolumn(
        name = "Removed",
        type_ = "integer",
        json_path = ".status.lastRun.counts.segmentRemoved"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.sourceSegment.retailcrmSegment) || has(self.source.retailcrm)").message("retailcrmSegment needs a retailcrm source"))]
#[x_kube(validation = Rule::new("!has(self.sourceSegment.shopifySegment) || has(self.source.shopify)").message("shopifySegment needs a shopify source"))]
#[x_kube(validation = Rule::new(MAILCHIMP_MERGE_TAGS_RULE).message(MAILCHIMP_MERGE_TAGS_MESSAGE))]
#[x_kube(validation = Rule::new(KLAVIYO_NO_PENDING_RULE).message(KLAVIYO_NO_PENDING_MESSAGE))]
#[x_kube(validation = Rule::new(KLAVIYO_NO_TAGS_RULE).message(KLAVIYO_NO_TAGS_MESSAGE))]
pub struct SegmentSyncSpec {
    /// Where customers come from (exactly one kind).
    pub source: SourceSpec,
    /// Which of the source's customers form the segment.
    pub source_segment: SourceSegmentSpec,
    /// The segment to keep in step.
    pub target: SegmentTarget,
    /// `exact` (default): the target segment becomes the source segment; `union`: only add;
    /// `subtract`: remove the source segment's members from the target segment.
    #[serde(default)]
    pub mode: SegmentSyncMode,
    /// Merge fields written when a segment member is added to the audience.
    #[serde(default)]
    pub field_mapping: FieldMappingSpec,
    /// Consent rules for members added to the audience.
    #[serde(default)]
    pub consent_policy: ConsentPolicySpec,
    /// When to run. Defaults to every hour.
    #[serde(default = "schedule_default")]
    pub schedule: Schedule,
    /// Stop scheduling runs (a run under way finishes).
    #[serde(default)]
    pub suspend: bool,
    /// Plan only: write nothing and report the plan in `status.plan`.
    #[serde(default)]
    pub dry_run: bool,
    /// The safety stop for removals from the segment.
    #[serde(default)]
    pub safety: Safety,
    /// The log of recent record changes (members added, segment joins and leaves).
    #[serde(
        default,
        skip_serializing_if = "crate::crd::audience::ActivityLogSpec::is_default"
    )]
    pub activity_log: crate::crd::audience::ActivityLogSpec,
}
