//! The custom resources: `AudienceSync` and `SegmentSync` in `sync.audience-operator.io/v1alpha1`.
//!
//! `audience-operator crd` prints both CRDs; `crds/` holds the same text (a test keeps them equal).

pub mod audience;
pub mod common;
pub mod segment;
pub mod status;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use audience::{AudienceMode, AudienceSync, AudienceSyncSpec, AudienceTarget, MailchimpTarget};
pub use common::{
    ConsentPolicySpec, FieldMappingSpec, LightspeedRSeriesSource, LightspeedXSeriesSource,
    MailchimpRef, Resubscribe, RetailcrmSource, Safety, Schedule, SecretKeyRef, ShopifySource,
    SourceKind, SourceRef, SourceSpec, TargetRef, WhenSourceCannotOptIn,
};
pub use segment::{
    MailchimpSegmentTarget, SegmentSync, SegmentSyncMode, SegmentSyncSpec, SegmentTarget,
    SourceSegmentSpec,
};
pub use status::{
    HistoryEntry, LastRun, PendingApproval, PlanReport, PlannedChange, RejectedRecord, RunCounts,
    SyncStatus,
};

/// The API group.
pub const GROUP: &str = "sync.audience-operator.io";
/// Annotation: set (or change) to any value to start a run now.
pub const SYNC_NOW_ANNOTATION: &str = "sync.audience-operator.io/sync-now";
/// Label a Secret must carry (value `"true"`) for the operator to read it: creating a sync must
/// not amount to reading every Secret of its namespace.
pub const CREDENTIALS_LABEL: &str = "sync.audience-operator.io/credentials";
/// Annotation: the `planId` of a plan stopped by the safety limit that may go ahead.
pub const APPROVE_PLAN_ANNOTATION: &str = "sync.audience-operator.io/approve-plan";

/// Both CRDs, AudienceSync first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![AudienceSync::crd(), SegmentSync::crd()]
}

/// One CRD as YAML (one document, starting with `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml::to_string(crd).expect("a CRD serialises to YAML");
    format!("---\n{body}")
}

/// What `audience-operator crd` prints: both CRDs as a multi-document YAML stream.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_yaml).collect()
}

/// The files in `crds/` and their content.
pub fn crd_files() -> Vec<(&'static str, String)> {
    vec![
        ("audiencesyncs.yaml", crd_yaml(&AudienceSync::crd())),
        ("segmentsyncs.yaml", crd_yaml(&SegmentSync::crd())),
    ]
}
