//! Per-object registries are pruned when objects go (issue 13): a sync whose runs fail keeps a
//! backoff counter between reconciles; once the sync is deleted, the counter is dropped, as
//! `/metrics` shows (`audience_operator_tracked_objects`). Its own binary: the metrics are
//! process-wide.

mod operator_support;

use std::time::{Duration, Instant};

use audience_operator::crd::AudienceSync;
use audience_operator::engine::customer_events::{
    QueuedShopperEvent, queue_shopper_event, queued_shopper_events,
};
use audience_operator::metrics::Metrics;
use audience_sandbox::{Fault, FaultKind, Vendor};
use kube::api::DeleteParams;
use operator_support::*;
use serde_json::json;

/// The value of `audience_operator_tracked_objects` on `/metrics`.
fn tracked() -> Option<i64> {
    Metrics::global()
        .render()
        .lines()
        .find(|l| l.starts_with("audience_operator_tracked_objects "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn wait_tracked(want: i64, what: &str) {
    let deadline = Instant::now() + WAIT;
    while tracked() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{what}: tracked objects {:?}, want {want}",
            tracked()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_deleted_syncs_backoff_counter_is_dropped() {
    let h = harness("op-prune", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    // Every Shopify call fails: each run ends in a transient error and the sync backs off.
    h.sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::ServerError,
            count: 10_000,
            path_contains: None,
        },
    );
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("failing", json!({})))
        .await;
    wait_for(&api, "failing", "a failed run", |o: &AudienceSync| {
        reason(o).is_some_and(|r| r != "Synced" && r != "Progressing")
    })
    .await;
    wait_tracked(1, "the failing sync's backoff counter").await;
    // A shopper event waits for the sync's next run.
    let queue_key = format!("{}/failing", h.ns);
    queue_shopper_event(
        &queue_key,
        QueuedShopperEvent {
            event: "page_viewed".into(),
            email: Some("a@gmail.com".into()),
            customer_id: None,
            occurred_at: chrono::Utc::now(),
            properties: Default::default(),
        },
    );
    assert_eq!(queued_shopper_events(&queue_key), 1);

    api.delete("failing", &DeleteParams::default())
        .await
        .expect("deleting the sync");
    wait_tracked(0, "after the delete").await;
    // Pruned in the same sweep as the counter.
    assert_eq!(queued_shopper_events(&queue_key), 0, "the queue goes too");
}
