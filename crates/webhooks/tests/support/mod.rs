//! Shared fixtures: a receiver with known secrets, and requests signed as each vendor signs them.
#![allow(dead_code)]

use audience_webhooks::{Config, Hint, Secret, Vendor, Webhooks, hmac_sha256};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::mpsc;
use tower::ServiceExt;

pub const SHOP: &str = "demo-shop.myshopify.com";
pub const SHOPIFY_SECRET: &str = "shpss_app_client_secret";
pub const SHOPIFY_OLD_SECRET: &str = "shpss_previous_client_secret";
pub const LIST: &str = "a1b2c3d4e5";
pub const MAILCHIMP_SECRET: &str = "mc-url-secret-7f3a9";
pub const PREFIX: &str = "mystore";
pub const LIGHTSPEED_SECRET: &str = "ls_x_client_secret";

pub fn resolver(vendor: Vendor, account: &str) -> Vec<Secret> {
    match (vendor, account) {
        (Vendor::Shopify, SHOP) => vec![SHOPIFY_OLD_SECRET.into(), SHOPIFY_SECRET.into()],
        (Vendor::Mailchimp, LIST) => vec![MAILCHIMP_SECRET.into()],
        (Vendor::LightspeedX, PREFIX) => vec![LIGHTSPEED_SECRET.into()],
        _ => vec![],
    }
}

pub struct Harness {
    pub webhooks: Webhooks,
    pub router: Router,
    pub hints: mpsc::Receiver<Hint>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(Config::default(), 64)
    }

    pub fn with(config: Config, queue: usize) -> Harness {
        let (tx, hints) = mpsc::channel(queue);
        let webhooks = Webhooks::new(config, resolver, tx);
        let router = webhooks.router();
        Harness {
            webhooks,
            router,
            hints,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, headers, body)
    }

    /// Every hint emitted so far (the receiver emits synchronously, before answering).
    pub fn drain(&mut self) -> Vec<Hint> {
        let mut out = Vec::new();
        while let Ok(h) = self.hints.try_recv() {
            out.push(h);
        }
        out
    }
}

pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    B64.encode(hmac_sha256(secret.as_bytes(), body))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A Shopify delivery as Shopify sends it, signed with `secret`.
pub fn shopify(topic: &str, body: &str, secret: &str, webhook_id: &str) -> Request<Body> {
    shopify_at(topic, body, secret, webhook_id, Some(now_rfc3339()))
}

pub fn shopify_at(
    topic: &str,
    body: &str,
    secret: &str,
    webhook_id: &str,
    triggered_at: Option<String>,
) -> Request<Body> {
    let mut request = Request::post("/webhooks/shopify")
        .header("content-type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header(
            "X-Shopify-Hmac-Sha256",
            shopify_signature(secret, body.as_bytes()),
        )
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-API-Version", "2025-01")
        .header("X-Shopify-Webhook-Id", webhook_id)
        .header("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5");
    if let Some(at) = triggered_at {
        request = request.header("X-Shopify-Triggered-At", at);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

pub fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

pub fn mailchimp_post(secret: &str, body: String) -> Request<Body> {
    Request::post(format!("/webhooks/mailchimp/{secret}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

pub fn lightspeed_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "signature={},algorithm=HMAC-SHA256",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

pub fn lightspeed(path: &str, body: String, secret: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Signature", lightspeed_signature(secret, body.as_bytes()))
        .body(Body::from(body))
        .unwrap()
}
