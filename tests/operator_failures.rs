//! Failures become conditions and Warning Events with the right reason, retry as their category
//! says, and recover: missing Secrets, wrong keys, invalid specs, rate limits, capacity, the
//! safety stop and its approval.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::mailchimp::MemberStatus;
use audience_sandbox::{Fault, FaultKind, Vendor};
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn missing_secret_reports_credentials_missing_and_recovers_when_created() {
    let h = harness("op-nosecret", true).await;
    h.add_shopify("a@gmail.com", "A", "A");
    // Only the Mailchimp Secret exists.
    h.secret("mailchimp", &[("apiKey", &h.mailchimp_key())])
        .await;
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("creds", json!({})))
        .await;
    let o = wait_reason(&api, "creds", "CredentialsMissing").await;
    let c = ready(&o).unwrap();
    assert_eq!(c.status, "False");
    assert!(
        c.message.contains("Secret") && c.message.contains("shopify"),
        "{}",
        c.message
    );
    let event = h.wait_event("creds", "CredentialsMissing", "Warning").await;
    assert!(event.note.unwrap_or_default().contains("shopify"));
    assert!(h.members().is_empty());

    // The credentials retry is slow (2 minutes here); creating the Secret retries at once.
    let token = h.shopify().access_token();
    h.secret("shopify", &[("accessToken", &token)]).await;
    let o = wait_reason(&api, "creds", "Synced").await;
    assert_eq!(ready(&o).unwrap().status, "True");
    assert_eq!(h.members().len(), 1);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn wrong_key_is_auth_failed_and_a_fixed_secret_recovers() {
    let h = harness("op-auth", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let good = "fedcba9876543210fedcba9876543210-us6";
    h.mailchimp().set_valid_keys([good]);
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("auth", json!({})))
        .await;
    let o = wait_reason(&api, "auth", "AuthFailed").await;
    let message = ready(&o).unwrap().message.clone();
    assert!(
        !message.contains(&h.mailchimp_key()),
        "a message never carries the key: {message}"
    );
    h.wait_event("auth", "AuthFailed", "Warning").await;

    h.secret("mailchimp", &[("apiKey", good)]).await;
    wait_reason(&api, "auth", "Synced").await;
    assert_eq!(h.members().len(), 1);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn invalid_merge_field_mapping_is_invalid_spec_until_fixed() {
    let h = harness("op-invalid", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let api = h.api::<AudienceSync>();
    // The schema accepts any map; the reconcile refuses a value that is not a merge tag.
    h.create::<AudienceSync>(audience_sync(
        "bad",
        json!({"fieldMapping": {"customFields": {"vat": "vat number"}}}),
    ))
    .await;
    let o = wait_reason(&api, "bad", "InvalidSpec").await;
    let c = ready(&o).unwrap();
    assert!(
        c.message.contains("not a Mailchimp merge tag"),
        "{}",
        c.message
    );
    assert!(
        o.status.as_ref().unwrap().next_sync_time.is_none(),
        "an invalid spec waits for a change"
    );
    h.wait_event("bad", "InvalidSpec", "Warning").await;
    assert!(h.members().is_empty());

    // Mapping two attributes onto one merge field is refused too.
    h.patch_spec::<AudienceSync>(
        "bad",
        json!({"fieldMapping": {"customFields": {"vat": "FNAME"}}}),
    )
    .await;
    let o = wait_reason(&api, "bad", "InvalidSpec").await;
    assert!(
        ready(&o).unwrap().message.contains("mapped twice"),
        "{:?}",
        ready(&o)
    );

    h.patch_spec::<AudienceSync>(
        "bad",
        json!({"fieldMapping": {"customFields": {"vat": "VAT"}}}),
    )
    .await;
    wait_reason(&api, "bad", "Synced").await;
    assert_eq!(h.members().len(), 1);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn rate_limit_storm_backs_off_and_eventually_syncs() {
    let h = harness("op-429", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    h.add_shopify("b@gmail.com", "B", "B");
    // More 429s than one run's retries absorb (each request is tried 4 times).
    h.sandbox.sandbox.faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 10,
            path_contains: None,
        },
    );
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("storm", json!({})))
        .await;
    let o = wait_reason(&api, "storm", "Synced").await;
    let history = o.status.unwrap().history;
    assert!(
        history.iter().any(|e| e.outcome == "RateLimited"),
        "a run gave up on the rate limit first: {history:#?}"
    );
    assert_eq!(history[0].outcome, "Synced");
    assert_eq!(h.members().len(), 2);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn contact_limit_stops_before_writing() {
    let h = harness("op-capacity", true).await;
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
    assert!(
        ready(&o).unwrap().message.contains("limit of 2"),
        "{:?}",
        ready(&o)
    );
    h.wait_event("cap", "CapacityExceeded", "Warning").await;
    assert!(h.members().is_empty(), "nothing written past the limit");

    h.patch_spec::<AudienceSync>(
        "cap",
        json!({"target": {"mailchimp": {"contactLimit": 2000}}}),
    )
    .await;
    wait_reason(&api, "cap", "Synced").await;
    assert_eq!(h.members().len(), 3);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn safety_stop_waits_for_approval_of_exactly_that_plan() {
    let h = harness("op-safety", true).await;
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
    let pending = o
        .status
        .as_ref()
        .unwrap()
        .pending_approval
        .clone()
        .expect("pendingApproval");
    assert_eq!(
        (pending.removals, pending.audience),
        (20, 20),
        "{pending:?}"
    );
    assert!(ready(&o).unwrap().message.contains(&pending.plan_id));
    h.wait_event("mirror", "SafetyStop", "Warning").await;
    assert_eq!(
        h.mailchimp()
            .count_by_status(AUDIENCE, MemberStatus::Archived),
        0,
        "nothing removed"
    );
    assert!(
        h.mailchimp().member(AUDIENCE, "keep@gmail.com").is_none(),
        "nothing written at all"
    );

    // Approving this plan id lets exactly this plan go ahead.
    h.annotate::<AudienceSync>(
        "mirror",
        "sync.audience-operator.io/approve-plan",
        &pending.plan_id,
    )
    .await;
    let o = wait_reason(&api, "mirror", "Synced").await;
    let status = o.status.unwrap();
    assert!(status.pending_approval.is_none());
    assert_eq!(status.last_run.unwrap().counts.archived, 20);
    assert_eq!(
        h.mailchimp()
            .count_by_status(AUDIENCE, MemberStatus::Archived),
        20
    );
    assert_eq!(
        h.mailchimp()
            .member(AUDIENCE, "keep@gmail.com")
            .unwrap()
            .status,
        MemberStatus::Subscribed
    );
    h.assert_no_secret_leaked().await;
}
