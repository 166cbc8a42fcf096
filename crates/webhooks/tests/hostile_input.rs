//! Random bodies, headers and paths: the receiver answers (never panics, never 5xx) and emits
//! nothing, since nothing random carries a valid signature or secret.

mod support;

use audience_webhooks::{Config, RateLimit};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use proptest::prelude::*;
use support::*;

const HEADERS: &[&str] = &[
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-webhook-id",
    "x-shopify-triggered-at",
    "x-signature",
    "content-type",
    "content-length",
];

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/webhooks/shopify".to_string()),
        Just(format!("/webhooks/mailchimp/{}", "x".repeat(3))),
        "[a-zA-Z0-9%._~-]{0,40}".prop_map(|s| format!("/webhooks/mailchimp/{s}")),
        Just("/webhooks/lightspeed-x".to_string()),
        "[a-zA-Z0-9%._~-]{0,40}".prop_map(|s| format!("/webhooks/lightspeed-x/{s}")),
        "/[a-z/]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Plausible shapes with random content.
        ("[a-z_./]{0,20}", "[a-z0-9]{0,12}", ".{0,40}").prop_map(|(t, l, e)| {
            format!("type={t}&data[list_id]={l}&data[email]={e}&payload=%7B%7D&domain_prefix={l}")
                .into_bytes()
        }),
        ".{0,40}".prop_map(|e| format!(r#"{{"id":1,"email":"{e}"}}"#).into_bytes()),
        // Known accounts, so the secret and signature checks are what stands in the way.
        ("[a-z_./]{0,20}", ".{0,40}").prop_map(|(t, e)| {
            form(&[
                ("type", &t),
                ("data[list_id]", LIST),
                ("data[email]", &e),
                ("domain_prefix", PREFIX),
                ("payload", "{}"),
            ])
            .into_bytes()
        }),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    proptest::collection::vec(
        (
            0..HEADERS.len(),
            proptest::collection::vec(any::<u8>(), 0..80),
        ),
        0..8,
    )
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::POST),
        Just(Method::GET),
        Just(Method::PUT),
        Just(Method::HEAD)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_panic_and_never_emit(
        method in method(),
        path in path(),
        headers in headers(),
        body in body(),
        valid_shop in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut h = Harness::with(
                Config {
                    max_body_bytes: 256,
                    per_vendor: RateLimit::new(1_000_000, 1_000_000),
                    ..Config::default()
                },
                16,
            );
            let mut request = Request::builder().method(method);
            if valid_shop {
                // A known shop, so verification is really attempted against its secrets.
                request = request.header("x-shopify-shop-domain", SHOP);
            }
            for (i, value) in &headers {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    request = request.header(HeaderName::from_static(HEADERS[*i]), v);
                }
            }
            let Ok(request) = request.uri(path.as_str()).body(Body::from(body.clone())) else {
                return Ok(());
            };
            let (status, _, _) = h.send(request).await;
            prop_assert!(!status.is_server_error(), "{status} for {path}");
            prop_assert!(h.drain().is_empty(), "emitted a hint for {path}");
            prop_assert_eq!(h.webhooks.counters().accepted, 0);
            Ok(())
        })?;
    }
}
