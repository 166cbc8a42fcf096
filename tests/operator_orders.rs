//! OrderSync on a real API server: Lightspeed R-Series sales (the sandbox's seeded demo sales)
//! into Klaviyo metrics, the seed 003 flow. The history import is marked as backfill (no flows),
//! a second run sends nothing, a refund made later gives exactly one live Refunded Order, and the
//! shop's and Klaviyo's time zones are compared in a status condition.

mod operator_support;

use std::path::Path;

use audience_operator::crd::OrderSync;
use audience_sandbox::lightspeed_r::{DEMO_ACCOUNT_ID, DEMO_TOKEN};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};
use audience_testenv::TestEnv;
use operator_support::*;
use serde_json::json;

/// The usual harness, but with 12 demo people, so each source seeds its demo sales.
async fn harness_with_sales(prefix: &str) -> Harness {
    init_logging();
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
    let ns = env.namespace(prefix).await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 12,
        ..Default::default()
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("serving the sandbox");
    let mut h = Harness {
        client: env.client(),
        ns,
        sandbox,
        operator: None,
    };
    h.start_operator().await;
    h
}

fn order_sync(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "OrderSync",
        "metadata": {"name": name},
        "spec": {
            "source": {"lightspeedRSeries": {"accountId": DEMO_ACCOUNT_ID, "credentialsSecretRef": {"name": "lightspeed-r"}}},
            "target": {"klaviyo": {"credentialsSecretRef": {"name": "klaviyo"}}},
            "backfill": {"since": "2020-01-01"},
            "schedule": {"interval": "1h"}
        }
    })
}

#[tokio::test]
async fn lightspeed_r_sales_become_klaviyo_events_once_history_as_backfill_and_a_later_refund_once()
{
    let h = harness_with_sales("op-orders").await;
    h.secret("lightspeed-r", &[("token", DEMO_TOKEN)]).await;
    h.secret("klaviyo", &[("apiKey", &h.klaviyo_key())]).await;
    let kl = h.klaviyo();
    kl.set_timezone("Europe/Stockholm");

    let api = h.api::<OrderSync>();
    h.create::<OrderSync>(order_sync("ls-orders")).await;
    let synced = wait_reason(&api, "ls-orders", "Synced").await;
    let status = synced.status.clone().unwrap();
    let c = status.last_run.clone().unwrap().counts;
    // The seeded demo sales (see audience_sandbox::lightspeed_r::DEMO_SALES): 11 orders read,
    // one worth $0 and one without a customer skipped.
    assert_eq!(c.source, 11, "{c:?}");
    assert_eq!(
        (
            c.events.placed_order,
            c.events.ordered_product,
            c.events.fulfilled_order
        ),
        (9, 17, 1),
        "{c:?}"
    );
    assert_eq!(
        (c.orders_skipped.no_email, c.orders_skipped.zero_value),
        (1, 1),
        "{c:?}"
    );
    assert!(status.checkpoint.is_some(), "the cursor is saved");
    // The simulator holds exactly what the status counts, all of it history (no flows).
    let placed = kl.events("Placed Order");
    assert_eq!(placed.len(), 9);
    assert_eq!(kl.events("Ordered Product").len(), 17);
    assert_eq!(kl.events("Shipped Order").len(), 1);
    let refunded_before = kl.events("Refunded Order");
    assert_eq!(
        refunded_before.len() as u64,
        c.events.refunded_order,
        "{c:?}"
    );
    for metric in [
        "Placed Order",
        "Ordered Product",
        "Shipped Order",
        "Refunded Order",
    ] {
        assert!(kl.events(metric).iter().all(|e| e.backfill), "{metric}");
        assert_eq!(
            kl.metric_flows(metric),
            0,
            "{metric}: backfill fires no flow"
        );
    }
    // The shops are in New York, the Klaviyo account in Stockholm: said, naming both.
    let tz = status
        .conditions
        .iter()
        .find(|c| c.type_ == "TimeZonesDiffer")
        .expect("a TimeZonesDiffer condition");
    assert_eq!(tz.status, "True");
    assert!(
        tz.message.contains("America/New_York") && tz.message.contains("Europe/Stockholm"),
        "{}",
        tz.message
    );

    // Nothing new: the second run reads once and sends nothing.
    let writes = vendor_writes(&h, Vendor::Klaviyo);
    let second = h.sync_now::<OrderSync>("ls-orders", "1").await;
    let c2 = second
        .status
        .as_ref()
        .unwrap()
        .last_run
        .clone()
        .unwrap()
        .counts;
    assert_eq!(c2.events.total(), 0, "{c2:?}");
    assert_eq!(vendor_writes(&h, Vendor::Klaviyo), writes, "no write call");

    // A refund made now of sale 5's first line: exactly one more Refunded Order, live (it may
    // start a flow), and nothing else recorded twice.
    let lr = &h.sandbox.sandbox.lightspeed_r;
    let line = lr.sale(5).expect("demo sale 5").lines[0].sale_line_id;
    lr.refund_line(5, line, 1).expect("a refund");
    let third = h.sync_now::<OrderSync>("ls-orders", "2").await;
    let c3 = third
        .status
        .as_ref()
        .unwrap()
        .last_run
        .clone()
        .unwrap()
        .counts;
    assert_eq!(c3.events.refunded_order, 1, "{c3:?}");
    let refunded = kl.events("Refunded Order");
    assert_eq!(refunded.len(), refunded_before.len() + 1);
    assert_eq!(refunded.iter().filter(|e| !e.backfill).count(), 1);
    assert_eq!(kl.metric_flows("Refunded Order"), 1);
    assert_eq!(kl.events("Placed Order").len(), 9, "no Placed Order twice");
    assert_eq!(kl.events("Ordered Product").len(), 17);
    h.assert_no_secret_leaked().await;
}
