//! Mailchimp allows 10 simultaneous connections per API key; the 11th gets 429. Injected latency
//! keeps requests in flight, as a slow Mailchimp would.

mod mailchimp_support;

use std::time::{Duration, Instant};

use audience_sandbox::Vendor;
use mailchimp_support::*;
use reqwest::Method;

/// Waits (bounded) until `condition` holds; polling an observable state, not a fixed sleep.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eleventh_simultaneous_request_of_a_key_gets_429() {
    let mc = Mc::start().await;
    // Another key of the same account (and so of its data centre, us6).
    let other_key = "abcdefabcdefabcdefabcdefabcdefab-us6";
    // Long enough that the first ten are certainly still waiting when the 11th arrives.
    mc.sandbox()
        .faults
        .set_latency(Vendor::Mailchimp, Duration::from_secs(3));

    let mut slow = Vec::new();
    for _ in 0..10 {
        let client = mc.client.clone();
        let url = format!("{}/lists/list/members", mc.base);
        let key = mc.key.clone();
        slow.push(tokio::spawn(async move {
            client
                .get(url)
                .basic_auth("u", Some(key))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }));
    }
    until("ten requests in flight", || {
        mc.sim().in_flight(&mc.key) == 10
    })
    .await;

    // Another key has its own ten connections.
    let other = {
        let client = mc.client.clone();
        let url = format!("{}/ping", mc.base);
        tokio::spawn(async move {
            client
                .get(url)
                .basic_auth("u", Some(other_key))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    };

    let eleventh = mc.get("/lists/list/members").await;
    assert_eq!(eleventh.status, 429);
    assert_eq!(eleventh.title(), "Too Many Requests");
    assert!(
        eleventh
            .content_type
            .starts_with("application/problem+json")
    );

    for request in slow {
        assert_eq!(request.await.expect("task"), 200);
    }
    assert_eq!(other.await.expect("task"), 200);
    let connections = mc.sim().connections(&mc.key);
    assert_eq!(connections.max_seen, 10);
    assert_eq!(connections.refused, 1);
    assert_eq!(connections.in_flight, 0);
    assert_eq!(mc.sim().max_concurrent_seen(other_key), 1);

    // Slots are given back: the key works again.
    mc.sandbox()
        .faults
        .set_latency(Vendor::Mailchimp, Duration::ZERO);
    assert_eq!(
        mc.send(Method::GET, "/lists/list/members", None)
            .await
            .status,
        200
    );
    let stats = mc.stats().await;
    let refused = stats["mailchimp"]["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["status"] == 429)
        .expect("429 counted");
    assert_eq!(refused["route"], "/3.0/lists/{list_id}/members");
    assert_eq!(refused["count"], 1);
}

#[tokio::test]
async fn a_lower_connection_limit_applies_without_injected_latency_too() {
    let mc = Mc::start().await;
    mc.sim().set_connection_limit(0);
    let refused = mc.get("/ping").await;
    assert_eq!(refused.status, 429);
    mc.sim().set_connection_limit(1);
    assert_eq!(mc.get("/ping").await.status, 200);
    // Without credentials there is no key to count: 401, never 429.
    mc.sim().set_connection_limit(0);
    assert_eq!(
        mc.send_with_key(Method::GET, "/ping", None, None)
            .await
            .status,
        401
    );
}
