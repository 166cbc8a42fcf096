//! Rate limits, fault injection and request counting of the Klaviyo simulator.

mod klaviyo_support;

use audience_sandbox::{Fault, FaultKind, Vendor};
use chrono::TimeZone;
use klaviyo_support::*;

#[tokio::test]
async fn burst_limit_gives_429_with_retry_after_then_reopens() {
    let kl = Kl::start().await;
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 7, 20, 12, 0, 0).unwrap();
    kl.sim().freeze_clock(t0);
    // GET /api/accounts: 1/s burst, 15/m steady.
    let r = kl.get("/api/accounts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("RateLimit-Limit").as_deref(), Some("1"));
    assert_eq!(r.header("RateLimit-Remaining").as_deref(), Some("0"));
    let r = kl.get("/api/accounts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "throttled");
    assert_eq!(r.header("Retry-After").as_deref(), Some("1"));
    assert_eq!(kl.sim().throttled("/api/accounts"), 1);
    // Another operation has its own window.
    assert_eq!(kl.get("/api/profiles").await.status, 200);
    // Another key too.
    let mut other = Kl {
        key: "pk_anotherkey0001".into(),
        ..kl
    };
    assert_eq!(other.get("/api/accounts").await.status, 200);
    other.key = audience_sandbox::klaviyo::EXAMPLE_API_KEY.into();
    let kl = other;

    // The steady window: 15 a minute, one each second.
    for s in 1..15 {
        kl.sim().advance_clock(chrono::Duration::seconds(1));
        assert_eq!(kl.get("/api/accounts").await.status, 200, "second {s}");
    }
    kl.sim().advance_clock(chrono::Duration::seconds(1));
    let r = kl.get("/api/accounts").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After").as_deref(), Some("45"));
    kl.sim().advance_clock(chrono::Duration::seconds(45));
    assert_eq!(kl.get("/api/accounts").await.status, 200);
}

#[tokio::test]
async fn scaled_windows_shrink_retry_after_and_bursts() {
    let kl = Kl::start().await;
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 7, 20, 12, 0, 0).unwrap();
    kl.sim().freeze_clock(t0);
    kl.sim().set_rate_limit_scale(0.01);
    // POST relationships: 10/s, so the eleventh in the 10 ms window is refused.
    let list = kl.sim().create_list("L", OptIn::Single);
    let id = kl
        .sim()
        .seed_profile("a@example.com", None, None, SeedConsent::NeverSubscribed);
    let body = serde_json::json!({"data": [{"type": "profile", "id": id}]});
    let path = format!("/api/lists/{list}/relationships/profiles");
    for _ in 0..10 {
        assert_eq!(kl.post(&path, &body).await.status, 204);
    }
    let r = kl.post(&path, &body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After").as_deref(), Some("1"));
    kl.sim().advance_clock(chrono::Duration::milliseconds(10));
    assert_eq!(kl.post(&path, &body).await.status, 204);
}

#[tokio::test]
async fn faults_are_klaviyo_shaped_and_requests_are_counted() {
    let kl = Kl::start().await;
    let faults = &kl.running.sandbox.faults;
    faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 7,
            },
            count: 1,
            path_contains: Some("/api/profiles".into()),
        },
    );
    let r = kl.get("/api/profiles").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.code(), "throttled");
    assert_eq!(r.header("Retry-After").as_deref(), Some("7"));
    faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::ServerError,
            count: 1,
            path_contains: None,
        },
    );
    let r = kl.get("/api/lists").await;
    assert_eq!(r.status, 500);
    assert!(r.body["errors"][0]["id"].is_string());
    assert_eq!(kl.get("/api/profiles").await.status, 200);

    let stats = &kl.running.sandbox.stats;
    assert_eq!(
        stats.count(Vendor::Klaviyo, Some("GET"), "/api/profiles"),
        2
    );
    assert_eq!(stats.total(Vendor::Klaviyo), 3);
    let json: serde_json::Value = reqwest::get(format!("{}/_sandbox/stats", kl.running.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["klaviyo"]["total"], 3);
    assert!(
        json["klaviyo"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["route"] == "/api/profiles" && r["status"] == 429)
    );
}
