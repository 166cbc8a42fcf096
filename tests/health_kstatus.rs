//! Health as GitOps tools read it, on the real control plane: each state a sync reaches, read
//! back from the API server, goes through kstatus (what Flux and kpt use) and the Argo CD health
//! check in `docs/health/` (run by gopher-lua, Argo CD's interpreter).

mod health_support;
mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::{Fault, FaultKind, Vendor};
use health_support::{argo, kstatus};
use operator_support::*;
use serde_json::json;

fn object(o: &AudienceSync) -> serde_json::Value {
    serde_json::to_value(o).unwrap()
}

fn condition(o: &AudienceSync, type_: &str) -> Option<(String, String)> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.message.clone()))
}

/// kstatus says Failed with the Ready message, Argo CD says Degraded with the reason.
fn assert_failed(o: &AudienceSync, reason: &str) {
    let message = ready(o).unwrap().message.clone();
    assert_eq!(
        kstatus(&object(o)),
        ("Failed".to_string(), message.clone()),
        "{reason}"
    );
    assert_eq!(
        argo(&object(o)),
        ("Degraded".to_string(), format!("{reason}: {message}"))
    );
    assert!(
        o.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.observed_generation == o.metadata.generation),
        "observedGeneration on every condition: {:#?}",
        o.status
    );
}

fn assert_current(o: &AudienceSync) {
    assert_eq!(kstatus(&object(o)).0, "Current", "{:#?}", o.status);
    assert_eq!(argo(&object(o)).0, "Healthy", "{:#?}", o.status);
}

#[tokio::test]
async fn synced_is_current_a_spec_edit_is_in_progress_until_applied() {
    let mut h = harness("health-edit", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("edit", json!({})))
        .await;
    let o = wait_reason(&api, "edit", "Synced").await;
    assert_current(&o);
    assert_eq!(condition(&o, "Stalled").unwrap().0, "False");
    assert_eq!(condition(&o, "Reconciling").unwrap().0, "False");

    // The edit before the operator saw it: the generation is ahead of the status.
    h.stop_operator().await;
    h.patch_spec::<AudienceSync>("edit", json!({"schedule": {"interval": "2h"}}))
        .await;
    let o = api.get("edit").await.unwrap();
    let (status, message) = kstatus(&object(&o));
    assert_eq!(status, "InProgress");
    assert!(message.contains("generation is 2"), "{message}");
    assert_eq!(argo(&object(&o)).0, "Progressing");

    // While its first run goes on (one Mailchimp call hangs until the client's timeout):
    // Reconciling=True.
    h.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::Timeout,
            count: 1,
            path_contains: None,
        },
    );
    h.start_operator().await;
    let o = wait_for(&api, "edit", "Reconciling=True", |o: &AudienceSync| {
        condition(o, "Reconciling").is_some_and(|(s, _)| s == "True")
    })
    .await;
    let (_, message) = condition(&o, "Reconciling").unwrap();
    assert!(message.contains("applying generation 2"), "{message}");
    assert_eq!(condition(&o, "Stalled").unwrap().0, "False");
    assert_eq!(kstatus(&object(&o)).0, "InProgress");
    assert_eq!(argo(&object(&o)).0, "Progressing");

    let o = wait_reason(&api, "edit", "Synced").await;
    assert_current(&o);
}

#[tokio::test]
async fn missing_credentials_fail_at_once_and_recover() {
    let h = harness("health-creds", true).await;
    h.secret("mailchimp", &[("apiKey", &h.mailchimp_key())])
        .await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("creds", json!({})))
        .await;
    let o = wait_reason(&api, "creds", "CredentialsMissing").await;
    assert!(ready(&o).unwrap().message.contains("shopify"));
    assert_failed(&o, "CredentialsMissing");

    let token = h.shopify().access_token();
    h.secret("shopify", &[("accessToken", &token)]).await;
    let o = wait_reason(&api, "creds", "Synced").await;
    assert_current(&o);
}

#[tokio::test]
async fn a_rejected_key_fails_and_recovers() {
    let h = harness("health-auth", true).await;
    h.default_secrets().await;
    let good = "0123456789abcdef0123456789abcdef-us6";
    h.mailchimp().set_valid_keys([good]);
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("auth", json!({})))
        .await;
    let o = wait_reason(&api, "auth", "AuthFailed").await;
    assert_failed(&o, "AuthFailed");
    h.secret("mailchimp", &[("apiKey", good)]).await;
    assert_current(&wait_reason(&api, "auth", "Synced").await);
}

#[tokio::test]
async fn an_invalid_spec_fails_and_recovers() {
    let h = harness("health-invalid", true).await;
    h.default_secrets().await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "bad",
        json!({"fieldMapping": {"customFields": {"vat": "vat number"}}}),
    ))
    .await;
    let o = wait_reason(&api, "bad", "InvalidSpec").await;
    assert!(ready(&o).unwrap().message.contains("merge tag"));
    assert_failed(&o, "InvalidSpec");
    h.patch_spec::<AudienceSync>(
        "bad",
        json!({"fieldMapping": {"customFields": {"vat": "VAT"}}}),
    )
    .await;
    assert_current(&wait_reason(&api, "bad", "Synced").await);
}

#[tokio::test]
async fn capacity_exceeded_fails_and_recovers() {
    let h = harness("health-capacity", true).await;
    h.default_secrets().await;
    for i in 0..3 {
        h.add_shopify(&format!("c{i}@gmail.com"), "C", "C");
    }
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "cap",
        json!({"target": {"mailchimp": {"contactLimit": 2}}}),
    ))
    .await;
    let o = wait_reason(&api, "cap", "CapacityExceeded").await;
    assert_failed(&o, "CapacityExceeded");
    h.patch_spec::<AudienceSync>(
        "cap",
        json!({"target": {"mailchimp": {"contactLimit": 2000}}}),
    )
    .await;
    assert_current(&wait_reason(&api, "cap", "Synced").await);
}

#[tokio::test]
async fn a_safety_stop_fails_until_approved() {
    let h = harness("health-safety", true).await;
    h.default_secrets().await;
    h.add_shopify("keep@gmail.com", "K", "K");
    for i in 0..20 {
        h.mailchimp().insert_member(
            AUDIENCE,
            &format!("old{i}@gmail.com"),
            MemberStatus::Subscribed,
        );
    }
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync(
        "mirror",
        // The members put in by hand are not the sync's: adopting the whole audience on the
        // first run is what lets mirror remove them.
        json!({"mode": "mirror", "ownership": {"adopt": "all"}}),
    ))
    .await;
    let o = wait_reason(&api, "mirror", "SafetyStop").await;
    assert_failed(&o, "SafetyStop");
    let plan = o.status.unwrap().pending_approval.unwrap().plan_id;
    h.annotate::<AudienceSync>("mirror", "sync.audience-operator.io/approve-plan", &plan)
        .await;
    assert_current(&wait_reason(&api, "mirror", "Synced").await);
}

#[tokio::test]
async fn a_rate_limit_after_a_good_run_is_not_failed() {
    let h = harness("health-429", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("storm", json!({})))
        .await;
    assert_current(&wait_reason(&api, "storm", "Synced").await);

    // More 429s than a run absorbs; the retries back off (up to 3 s here).
    h.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            // Enough that every concurrent read exhausts its four tries.
            count: 16,
            path_contains: None,
        },
    );
    h.annotate::<AudienceSync>("storm", "sync.audience-operator.io/sync-now", "1")
        .await;
    let o = wait_reason(&api, "storm", "RateLimited").await;
    assert_eq!(condition(&o, "Stalled").unwrap().0, "False");
    assert_eq!(condition(&o, "Reconciling").unwrap().0, "False");
    let (status, message) = kstatus(&object(&o));
    assert_eq!(status, "InProgress", "transient: never Failed ({message})");
    assert_eq!(argo(&object(&o)).0, "Progressing");
    assert_current(&wait_reason(&api, "storm", "Synced").await);
}

#[tokio::test]
async fn a_suspended_sync_is_suspended_for_argo() {
    let h = harness("health-suspend", true).await;
    h.default_secrets().await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("idle", json!({"suspend": true})))
        .await;
    let o = wait_reason(&api, "idle", "Suspended").await;
    assert_eq!(argo(&object(&o)).0, "Suspended");
    assert_eq!(condition(&o, "Stalled").unwrap().0, "False");
    // kstatus has no "suspended": it reads Ready=False as InProgress (docs/gitops.md).
    assert_eq!(kstatus(&object(&o)).0, "InProgress");
}
