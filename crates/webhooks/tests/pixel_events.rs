//! The shopper-event endpoint of a Shopify web pixel: the sync's secret and the shop's origin
//! are required, bodies are small and checked, and a shop with privacy restrictions or events
//! off has its posts accepted and dropped.

use audience_webhooks::pixel::{EVENTS, SECRET_HEADER};
use audience_webhooks::{PixelConfig, PixelReceiver, PixelSync, ShopperEvent};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

const SECRET: &str = "pixel-secret-8d1e";
const ORIGIN: &str = "https://demo-shop.myshopify.com";

fn resolver(namespace: &str, sync: &str) -> Option<PixelSync> {
    let base = PixelSync {
        secrets: vec![SECRET.into()],
        origins: vec![ORIGIN.into()],
        enabled: true,
        privacy_restricted: false,
    };
    match (namespace, sync) {
        ("shop", "open") => Some(base),
        ("shop", "private") => Some(PixelSync {
            privacy_restricted: true,
            ..base
        }),
        ("shop", "off") => Some(PixelSync {
            enabled: false,
            ..base
        }),
        ("shop", "no-secret") => Some(PixelSync {
            secrets: vec![],
            ..base
        }),
        _ => None,
    }
}

struct Harness {
    receiver: PixelReceiver,
    events: mpsc::Receiver<ShopperEvent>,
}

impl Harness {
    fn new(config: PixelConfig) -> Harness {
        let (receiver, events) = PixelReceiver::new(config, resolver);
        Harness { receiver, events }
    }

    async fn post(
        &self,
        sync: &str,
        secret: Option<&str>,
        origin: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Option<String>) {
        let mut request = Request::post(format!("/events/shopify/shop/{sync}"))
            .header("content-type", "application/json");
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = self
            .receiver
            .router()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status(), allow)
    }

    async fn event(&self, sync: &str, body: Value) -> StatusCode {
        self.post(
            sync,
            Some(SECRET),
            Some(ORIGIN),
            body.to_string().into_bytes(),
        )
        .await
        .0
    }

    fn queued(&mut self) -> Vec<ShopperEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }
}

fn viewed() -> Value {
    json!({"event": "product_viewed", "email": "ada@maplemail.net",
           "occurredAt": "2026-12-01T10:00:00Z",
           "properties": {"productId": "gid://shopify/Product/1", "price": 12.5, "nested": {"a": 1}}})
}

#[tokio::test]
async fn a_signed_event_from_the_shop_is_queued_with_string_properties() {
    let mut h = Harness::new(PixelConfig::default());
    let (status, allow) = h
        .post(
            "open",
            Some(SECRET),
            Some(ORIGIN),
            viewed().to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        allow.as_deref(),
        Some(ORIGIN),
        "the browser may read the answer"
    );
    let queued = h.queued();
    assert_eq!(queued.len(), 1);
    let e = &queued[0];
    assert_eq!((e.namespace.as_str(), e.sync.as_str()), ("shop", "open"));
    assert_eq!(e.event, "product_viewed");
    assert_eq!(e.email.as_deref(), Some("ada@maplemail.net"));
    assert_eq!(e.properties["price"], "12.5");
    assert_eq!(e.properties["nested"], r#"{"a":1}"#);
    assert_eq!(e.occurred_at.to_rfc3339(), "2026-12-01T10:00:00+00:00");
    assert_eq!(h.receiver.counters().queued, 1);
    // Every listed event name is taken, with a customer id instead of an email too.
    for name in EVENTS {
        let status = h
            .event("open", json!({"event": name, "customerId": 7001}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}");
    }
    assert_eq!(h.queued().len(), EVENTS.len());
}

#[tokio::test]
async fn forged_or_absent_secrets_and_unknown_syncs_are_401() {
    let mut h = Harness::new(PixelConfig::default());
    let body = || viewed().to_string().into_bytes();
    for (sync, secret) in [
        ("open", None),
        ("open", Some("guess")),
        ("open", Some("")),
        ("no-secret", Some(SECRET)),
        ("nosuch", Some(SECRET)),
    ] {
        let (status, allow) = h.post(sync, secret, Some(ORIGIN), body()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{sync} {secret:?}");
        assert_eq!(allow, None);
    }
    assert_eq!(h.receiver.counters().unauthorized, 5);
    assert!(h.queued().is_empty());
}

#[tokio::test]
async fn another_sites_origin_is_refused() {
    let mut h = Harness::new(PixelConfig::default());
    let (status, _) = h
        .post(
            "open",
            Some(SECRET),
            Some("https://evil.example"),
            viewed().to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(h.queued().is_empty());
}

#[tokio::test]
async fn oversize_and_malformed_bodies_and_unknown_events_are_refused() {
    let mut h = Harness::new(PixelConfig::default());
    let big = json!({"event": "page_viewed", "email": "a@b.example", "properties": {"x": "y".repeat(9000)}});
    let (status, _) = h
        .post(
            "open",
            Some(SECRET),
            Some(ORIGIN),
            big.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    for body in [
        json!({"event": "order_refunded", "email": "a@b.example"}),
        json!({"event": "Page Viewed", "email": "a@b.example"}),
        json!({"event": "page_viewed"}),
        json!({"event": "page_viewed", "email": "not-an-address"}),
        json!({"event": "page_viewed", "email": "a@b.example", "occurredAt": "yesterday"}),
        json!({"event": "page_viewed", "email": "a@b.example", "properties": ["x"]}),
        json!(["page_viewed"]),
    ] {
        assert_eq!(
            h.event("open", body.clone()).await,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    let (status, _) = h
        .post("open", Some(SECRET), Some(ORIGIN), b"{not json".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(h.queued().is_empty());
}

#[tokio::test]
async fn privacy_restricted_or_disabled_syncs_accept_and_drop() {
    let mut h = Harness::new(PixelConfig::default());
    assert_eq!(h.event("private", viewed()).await, StatusCode::ACCEPTED);
    assert_eq!(h.event("off", viewed()).await, StatusCode::ACCEPTED);
    assert!(
        h.queued().is_empty(),
        "nothing is queued, so nothing is sent"
    );
    let c = h.receiver.counters();
    assert_eq!((c.privacy_dropped, c.disabled, c.queued), (1, 1, 0));
}

#[tokio::test]
async fn a_sync_over_its_rate_gets_429_and_a_full_queue_503() {
    let mut h = Harness::new(PixelConfig {
        per_sync_per_second: 1,
        per_sync_burst: 2,
        queue: 100,
        ..PixelConfig::default()
    });
    assert_eq!(h.event("open", viewed()).await, StatusCode::ACCEPTED);
    assert_eq!(h.event("open", viewed()).await, StatusCode::ACCEPTED);
    assert_eq!(
        h.event("open", viewed()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(h.queued().len(), 2);

    let h = Harness::new(PixelConfig {
        queue: 1,
        ..PixelConfig::default()
    });
    assert_eq!(h.event("open", viewed()).await, StatusCode::ACCEPTED);
    assert_eq!(
        h.event("open", viewed()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_cors_preflight_answers_only_the_shops_origin() {
    let h = Harness::new(PixelConfig::default());
    let preflight = |origin: &str| {
        Request::options("/events/shopify/shop/open")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let ok = h
        .receiver
        .router()
        .oneshot(preflight(ORIGIN))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains(SECRET_HEADER)
    );
    let evil = h
        .receiver
        .router()
        .oneshot(preflight("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
}
