//! Two operator processes (in-process instances) on one Lease: only the leader syncs, the standby
//! takes over when the leader shuts down; health and metrics endpoints; a graceful shutdown stops
//! a run at a safe point and records what it applied.

mod operator_support;

use std::time::Duration;

use audience_operator::crd::AudienceSync;
use audience_operator::leader::LeaseSettings;
use audience_operator::operator::Operator;
use audience_sandbox::Vendor;
use operator_support::*;
use serde_json::json;

async fn start(h: &Harness, identity: &str) -> Operator {
    let mut options = h.options();
    options.settings.instance = identity.into();
    let mut lease = LeaseSettings::new("audience-operator", &h.ns, identity);
    lease.duration = Duration::from_secs(4);
    lease.grace = Duration::from_secs(2);
    options.lease = Some(lease);
    options.http_addr = Some("127.0.0.1:0".parse().unwrap());
    Operator::start(h.client.clone(), options)
        .await
        .expect("operator starts")
}

/// Waits (deadline) until exactly one of the operators leads; returns its index.
async fn one_leader(ops: &[&Operator]) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leaders: Vec<usize> = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.health.is_leader())
            .map(|(i, _)| i)
            .collect();
        if leaders.len() == 1 {
            return leaders[0];
        }
        assert!(leaders.len() <= 1, "two leaders at once");
        assert!(tokio::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reporters(events: &[k8s_openapi::api::events::v1::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.reporting_instance.clone())
        .collect()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("http get");
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn only_the_leader_syncs_and_the_standby_takes_over() {
    let h = harness("op-leader", false).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let a = start(&h, "replica-a").await;
    let b = start(&h, "replica-b").await;
    let leader = one_leader(&[&a, &b]).await;
    let (leader_op, standby_op, leader_id, standby_id) = if leader == 0 {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };

    // Both serve health; both become ready (the leader once its watches start).
    for op in [&leader_op, &standby_op] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !op.health.is_ready() {
            assert!(tokio::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let addr = op.http_addr.unwrap();
        assert_eq!(get(addr, "/healthz").await, (200, "ok".to_string()));
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 200, "{body}");
    }
    assert!(
        get(standby_op.http_addr.unwrap(), "/readyz")
            .await
            .1
            .contains("standby")
    );

    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("ha", json!({})))
        .await;
    wait_reason(&api, "ha", "Synced").await;
    let events = h.events("ha").await;
    assert!(!events.is_empty());
    assert!(
        reporters(&events).iter().all(|r| r == leader_id),
        "only the leader acts: {:?}",
        reporters(&events)
    );
    assert_eq!(h.members().len(), 1);

    // Metrics of the run (process-wide registry) on the leader's endpoint.
    let (code, metrics) = get(leader_op.http_addr.unwrap(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("audience_sync_runs_total{kind=\"AudienceSync\",outcome=\"Synced\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("audience_vendor_api_calls_total{vendor=\"mailchimp\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("audience_contacts_changed_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("audience_sync_run_duration_seconds_bucket"),
        "{metrics}"
    );

    // The leader leaves (releasing the lease); the standby takes over and handles the next run.
    leader_op.shutdown().await.expect("leader shuts down");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !standby_op.health.is_leader() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby never took over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.add_shopify("b@gmail.com", "B", "B");
    h.annotate::<AudienceSync>("ha", "sync.audience-operator.io/sync-now", "after-failover")
        .await;
    wait_for(&api, "ha", "run by the new leader", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some("after-failover"))
            && reason(o).as_deref() == Some("Synced")
    })
    .await;
    assert_eq!(h.members().len(), 2);
    let events = h.events("ha").await;
    assert!(
        reporters(&events).iter().any(|r| r == standby_id),
        "{:?}",
        reporters(&events)
    );
    standby_op.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_a_run_at_a_safe_point_and_records_it() {
    let mut h = harness("op-shutdown", true).await;
    h.default_secrets().await;
    // 6,000 customers are twelve batches of 500, more than the ten Mailchimp calls in flight at
    // once; each Mailchimp call takes a second, so a stop lands between batches.
    for i in 0..6000 {
        h.add_shopify(&format!("c{i:04}@gmail.com"), "C", "C");
    }
    h.shopify().set_bucket(1e9, 1e9);
    h.sandbox
        .sandbox
        .faults
        .set_latency(Vendor::Mailchimp, Duration::from_millis(1000));
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("big", json!({})))
        .await;
    wait_for(&api, "big", "applying", |o: &AudienceSync| {
        o.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Progressing" && c.status == "True" && c.reason == "Applying")
        })
    })
    .await;
    let operator = h.operator.take().unwrap();
    operator.shutdown().await.expect("graceful shutdown");
    let o = api.get("big").await.unwrap();
    let status = o.status.unwrap();
    let run = status.last_run.expect("the interrupted run is recorded");
    let members = h.mailchimp().member_count(AUDIENCE) as u64;
    assert_eq!(
        run.counts.created, members,
        "status records exactly what was applied: {run:?}"
    );
    assert!(
        run.stopped_early,
        "the run stopped at a safe point: {run:?}"
    );
    assert!(members < 6000, "{members}");
    assert!(
        status.next_sync_time.is_some(),
        "the next leader finishes the job"
    );
    // A cut-short run is not reported as a success: Progressing says it was interrupted, and
    // Ready is not set to Synced by it (issue 14: "a cut-short run reports success").
    assert_eq!(run.outcome, "Interrupted", "{run:?}");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.status == "True" && c.reason == "Interrupted"),
        "{:?}",
        status.conditions
    );
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "Synced"),
        "the interrupted first run must not read as synced: {:?}",
        status.conditions
    );
}

/// Leader failover in the middle of a run (issue 14): the leader leaves while a 6,000-contact
/// push is under way; the standby takes the lease and finishes the job. Afterwards the audience
/// holds every contact once, and the Mailchimp write calls are the minimum (twelve batches of
/// 500) plus at most the batches in flight when the leader stopped: nothing applied is sent again.
#[tokio::test]
async fn the_new_leader_finishes_a_run_the_old_one_left_and_repeats_nothing() {
    let h = harness("op-failover", false).await;
    h.default_secrets().await;
    for i in 0..6000 {
        h.add_shopify(&format!("f{i:04}@gmail.com"), "F", "F");
    }
    h.shopify().set_bucket(1e9, 1e9);
    h.sandbox
        .sandbox
        .faults
        .set_latency(Vendor::Mailchimp, Duration::from_millis(700));
    let a = start(&h, "replica-a").await;
    let b = start(&h, "replica-b").await;
    let leader = one_leader(&[&a, &b]).await;
    let (leader_op, standby_op) = if leader == 0 { (a, b) } else { (b, a) };
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("big", json!({})))
        .await;
    wait_for(&api, "big", "applying", |o: &AudienceSync| {
        o.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Progressing" && c.status == "True" && c.reason == "Applying")
        })
    })
    .await;
    leader_op.shutdown().await.expect("the leader leaves");
    let applied_by_first = h.mailchimp().member_count(AUDIENCE);
    assert!(applied_by_first < 6000, "the push was cut short");
    let done = wait_for(
        &api,
        "big",
        "finished by the new leader",
        |o: &AudienceSync| reason(o).as_deref() == Some("Synced"),
    )
    .await;
    assert!(standby_op.health.is_leader());
    let run = done.status.unwrap().last_run.unwrap();
    assert_eq!(
        run.counts.created as usize,
        6000 - applied_by_first,
        "the new leader created only what was missing: {run:?}"
    );
    let members = h.mailchimp().members(AUDIENCE);
    assert_eq!(members.len(), 6000);
    let writes = vendor_writes(&h, Vendor::Mailchimp);
    assert!(
        writes <= 12 + 10,
        "{writes} write calls for twelve batches and one stop"
    );
    standby_op.shutdown().await.unwrap();
}
