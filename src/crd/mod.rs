//! The custom resources: `AudienceSync` and `SegmentSync` in `sync.audience-operator.io/v1alpha1`.
//!
//! `audience-operator crd` prints both CRDs; `crds/` holds the same text (a test keeps them equal).

pub mod audience;
pub mod common;
pub mod customer_events;
pub mod order;
pub mod segment;
pub mod status;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use audience::{
    AudienceMode, AudienceSync, AudienceSyncSpec, AudienceTarget, KlaviyoTarget, MailchimpTarget,
};
pub use common::{
    ConsentPolicySpec, FieldMappingSpec, KlaviyoListRef, KlaviyoRef, LightspeedRSeriesSource,
    LightspeedXSeriesSource, MailchimpRef, Resubscribe, RetailcrmSource, Safety, Schedule,
    SecretKeyRef, ShopifySource, SourceKind, SourceRef, SourceSpec, TargetRef,
    WhenSourceCannotOptIn,
};
pub use order::{
    BackfillSpec, EventTargetRef, KlaviyoEventTarget, MailchimpOrderTarget, OrderEventKindSpec,
    OrderSync, OrderSyncSpec, OrderTarget,
};
pub use segment::{
    KlaviyoSegmentTarget, MailchimpSegmentTarget, SegmentSync, SegmentSyncMode, SegmentSyncSpec,
    SegmentTarget, SourceSegmentSpec,
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
/// Annotation the operator sets when a vendor webhook for a sync reaches a replica that does not
/// own the sync's shard: `<time>;<what the webhook said>`. The owner's watch sees the change and
/// runs the sync, as if the webhook had reached it (see `crate::webhooks`).
pub const WEBHOOK_HINT_ANNOTATION: &str = "sync.audience-operator.io/webhook-hint";
/// Annotation: the `planId` of a plan stopped by the safety limit that may go ahead.
pub const APPROVE_PLAN_ANNOTATION: &str = "sync.audience-operator.io/approve-plan";

/// Both CRDs, AudienceSync first, with field descriptions as prose.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        kubernetes_formats(prose(AudienceSync::crd())),
        kubernetes_formats(prose(SegmentSync::crd())),
        kubernetes_formats(prose(OrderSync::crd())),
    ]
}

/// Replaces schemars' unsigned integer formats (`uint64`, `uint32`, …), which the API server does
/// not know and warns about on every apply, with the signed ones it does, plus `minimum: 0` so
/// the range stays unsigned.
pub fn kubernetes_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD serialises to JSON");
    rewrite_formats(&mut value);
    serde_json::from_value(value).expect("rewriting formats keeps a CRD a CRD")
}

fn rewrite_formats(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let unsigned = match map.get("format").and_then(|f| f.as_str()) {
                Some("uint64" | "uint" | "usize") => Some("int64"),
                Some("uint32" | "uint16" | "uint8") => Some("int32"),
                _ => None,
            };
            if let Some(format) = unsigned {
                map.insert("format".into(), format.into());
                let floor = map.get("minimum").and_then(|m| m.as_f64()).unwrap_or(0.0);
                if floor <= 0.0 {
                    map.insert("minimum".into(), 0.into());
                }
            }
            map.values_mut().for_each(rewrite_formats);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rewrite_formats),
        _ => {}
    }
}

/// Joins the hard line breaks that doc comments wrap at into spaces, so `kubectl explain` reads
/// sentences rather than broken lines. Paragraph breaks (blank lines) stay, and so does the
/// break before a list item (`- `, `* `, `1. `).
pub fn prose(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let mut value = serde_json::to_value(&crd).expect("a CRD serialises to JSON");
    join_descriptions(&mut value);
    serde_json::from_value(value).expect("joining descriptions keeps a CRD a CRD")
}

fn join_descriptions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    serde_json::Value::String(text) if k == "description" => {
                        *text = join_lines(text);
                    }
                    _ => join_descriptions(child),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(join_descriptions),
        _ => {}
    }
}

/// One paragraph a line; see [`prose`].
pub fn join_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            let mut out = String::new();
            for line in paragraph.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !out.is_empty() {
                    out.push(if starts_list_item(line) { '\n' } else { ' ' });
                }
                out.push_str(line);
            }
            out
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn starts_list_item(line: &str) -> bool {
    if line.starts_with("- ") || line.starts_with("* ") {
        return true;
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
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
    let [audience, segment, order]: [CustomResourceDefinition; 3] =
        crds().try_into().expect("three CRDs");
    vec![
        ("audiencesyncs.yaml", crd_yaml(&audience)),
        ("segmentsyncs.yaml", crd_yaml(&segment)),
        ("ordersyncs.yaml", crd_yaml(&order)),
    ]
}

#[cfg(test)]
mod tests {
    use super::{crd_yaml, crds, join_lines};

    #[test]
    fn no_crd_carries_a_format_the_api_server_does_not_know() {
        let known = ["int32", "int64", "double", "float", "date-time", "byte"];
        for crd in crds() {
            let yaml = crd_yaml(&crd);
            for line in yaml
                .lines()
                .filter(|l| l.trim_start().starts_with("format:"))
            {
                let format = line.trim_start().trim_start_matches("format:").trim();
                assert!(
                    known.contains(&format),
                    "{format} in {}",
                    crd.spec.names.kind
                );
            }
        }
        let yaml = crd_yaml(&crds()[0]);
        assert!(
            yaml.contains("format: int64"),
            "unsigned counts become int64"
        );
    }

    #[test]
    fn wrapped_lines_join_and_paragraphs_and_lists_stay() {
        assert_eq!(
            join_lines("A five-field cron expression, e.g.\n`0 * * * *` for hourly."),
            "A five-field cron expression, e.g. `0 * * * *` for hourly."
        );
        assert_eq!(
            join_lines("First paragraph\nwraps.\n\nSecond one.\n- item one\n- item two\n  wrapped"),
            "First paragraph wraps.\n\nSecond one.\n- item one\n- item two wrapped"
        );
        assert_eq!(join_lines("one line"), "one line");
    }
}
