//! Events of the Klaviyo simulator: dedupe on profile + metric + unique_id, and backfill.

mod klaviyo_support;

use klaviyo_support::*;
use serde_json::{Value, json};

fn event(email: &str, metric: &str, unique_id: &str, backfill: bool) -> Value {
    json!({"data": {"type": "event", "attributes": {
        "properties": {"OrderId": unique_id},
        "value": 12.5,
        "unique_id": unique_id,
        "backfill": backfill,
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
    }}})
}

#[tokio::test]
async fn events_dedupe_per_profile_metric_and_unique_id() {
    let kl = Kl::start().await;
    for _ in 0..2 {
        let r = kl
            .post(
                "/api/events",
                &event("e@example.com", "Placed Order", "1001", false),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    // Same unique_id, other metric or other profile: distinct events.
    assert_eq!(
        kl.post(
            "/api/events",
            &event("e@example.com", "Fulfilled Order", "1001", false)
        )
        .await
        .status,
        202
    );
    assert_eq!(
        kl.post(
            "/api/events",
            &event("f@example.com", "Placed Order", "1001", false)
        )
        .await
        .status,
        202
    );
    assert_eq!(kl.sim().events("Placed Order").len(), 2);
    assert_eq!(kl.sim().events("Fulfilled Order").len(), 1);
    assert_eq!(kl.sim().metric_flows("Placed Order"), 2);
    assert!(
        kl.sim().profile_by_email("f@example.com").is_some(),
        "the event created its profile"
    );

    let r = kl.get("/api/metrics").await;
    let names: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["attributes"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Placed Order", "Fulfilled Order"]);

    // properties is required; unknown attributes refused.
    let mut bad = event("e@example.com", "Placed Order", "1002", false);
    bad["data"]["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("properties");
    let r = kl.post("/api/events", &bad).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointer(), "/data/attributes/properties");
}

#[tokio::test]
async fn backfilled_events_fire_no_flows() {
    let kl = Kl::start().await;
    assert_eq!(
        kl.post(
            "/api/events",
            &event("b@example.com", "Placed Order", "1", true)
        )
        .await
        .status,
        202
    );
    let stored = kl.sim().events("Placed Order");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].backfill);
    assert_eq!(kl.sim().metric_flows("Placed Order"), 0);
}

fn bulk(entries: Vec<(String, Vec<Value>)>, backfill: Option<bool>) -> Value {
    json!({"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data":
        entries.into_iter().map(|(email, events)| {
            let mut attrs = json!({
                "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
                "events": {"data": events},
            });
            if let Some(b) = backfill { attrs["backfill"] = json!(b); }
            json!({"type": "event-bulk-create", "attributes": attrs})
        }).collect::<Vec<_>>()
    }}}})
}

fn bulk_event(unique_id: usize) -> Value {
    json!({"type": "event", "attributes": {
        "properties": {}, "unique_id": unique_id.to_string(),
        "metric": {"data": {"type": "metric", "attributes": {"name": "Placed Order"}}},
    }})
}

#[tokio::test]
async fn bulk_jobs_count_all_events_against_1000() {
    let kl = Kl::start().await;
    let over: Vec<(String, Vec<Value>)> = (0..2)
        .map(|p| {
            (
                format!("p{p}@example.com"),
                (0..501).map(bulk_event).collect(),
            )
        })
        .collect();
    let r = kl
        .post("/api/event-bulk-create-jobs", &bulk(over, None))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(kl.sim().events("Placed Order").len(), 0);

    let ok: Vec<(String, Vec<Value>)> = (0..2)
        .map(|p| {
            (
                format!("p{p}@example.com"),
                (0..500).map(bulk_event).collect(),
            )
        })
        .collect();
    let r = kl
        .post("/api/event-bulk-create-jobs", &bulk(ok, Some(true)))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(kl.sim().events("Placed Order").len(), 1000);
    assert_eq!(kl.sim().metric_flows("Placed Order"), 0, "backfilled");
}

#[tokio::test]
async fn account_shows_the_time_zone_set_for_the_test() {
    let kl = Kl::start().await;
    kl.sim().set_timezone("Europe/Amsterdam");
    let r = kl.get("/api/accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["data"][0]["attributes"]["timezone"],
        "Europe/Amsterdam"
    );
}
