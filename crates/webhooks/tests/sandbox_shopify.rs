//! End to end over real HTTP: the sandbox's Shopify simulator, with webhooks on, posts its
//! customer changes to this receiver, signed as Shopify signs them; they arrive as verified hints
//! and coalesce into a trigger. A simulator signing with the wrong secret changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use audience_sandbox::shopify::webhooks::DEFAULT_SHOP_DOMAIN;
use audience_sandbox::shopify::{Customer, DEFAULT_ACCESS_TOKEN};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor as SandboxVendor};
use audience_webhooks::{Config, Scope, Secret, Trigger, Vendor, Webhooks};
use serde_json::json;
use tokio::sync::mpsc;

const APP_SECRET: &str = "shpss_sandbox_app_secret";

async fn receiver() -> (Webhooks, String, mpsc::Receiver<Trigger>) {
    let resolver = |vendor: Vendor, account: &str| -> Vec<Secret> {
        if vendor == Vendor::Shopify && account == DEFAULT_SHOP_DOMAIN {
            vec![APP_SECRET.into()]
        } else {
            vec![]
        }
    };
    let (webhooks, triggers) =
        Webhooks::with_triggers(Config::default(), resolver, Duration::from_millis(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/shopify", listener.local_addr().unwrap());
    let app = webhooks.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (webhooks, url, triggers)
}

#[tokio::test]
async fn simulator_customer_changes_arrive_as_verified_hints() {
    let (webhooks, url, mut triggers) = receiver().await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 0,
        seed: 7,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let shop = &sandbox.sandbox.shopify;
    shop.send_webhooks_to(&url, APP_SECRET);

    let id = shop.add_customer(Customer {
        email: Some("Ada@Example.com".into()),
        ..Customer::default()
    });
    shop.edit_customer(id, |c| c.first_name = Some("Ada".into()));
    // The consent mutation over the simulator's GraphQL API sends two topics.
    let response: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/2025-01/graphql.json",
            sandbox.vendor_url(SandboxVendor::Shopify)
        ))
        .header("X-Shopify-Access-Token", DEFAULT_ACCESS_TOKEN)
        .json(&json!({
            "query": r#"mutation($input: CustomerEmailMarketingConsentUpdateInput!) {
                customerEmailMarketingConsentUpdate(input: $input) { userErrors { code } } }"#,
            "variables": {"input": {"customerId": format!("gid://shopify/Customer/{id}"),
                "emailMarketingConsent": {"marketingState": "SUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN"}}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        response["data"]["customerEmailMarketingConsentUpdate"]["userErrors"],
        json!([])
    );

    let outbox = shop.webhook_outbox();
    tokio::time::timeout(Duration::from_secs(30), outbox.wait_for(4))
        .await
        .expect("four deliveries finish");
    assert!(
        outbox.records().iter().all(|r| r.delivered),
        "{:?}",
        outbox.records()
    );

    // Every delivery verified and was handed on; the debouncer coalesces them per shop.
    let mut hints = 0;
    let mut topics = BTreeSet::new();
    let mut emails = BTreeSet::new();
    while hints < 4 {
        let t = tokio::time::timeout(Duration::from_secs(10), triggers.recv())
            .await
            .expect("a trigger")
            .expect("open");
        assert_eq!(
            (t.vendor, t.account.as_str()),
            (Vendor::Shopify, DEFAULT_SHOP_DOMAIN)
        );
        assert_eq!(t.scopes, BTreeSet::from([Scope::Customers]));
        hints += t.hints;
        topics.extend(t.topics);
        emails.extend(t.emails);
    }
    assert_eq!(hints, 4);
    assert_eq!(
        topics,
        BTreeSet::from([
            "customers/create".to_string(),
            "customers/update".to_string(),
            "customers_email_marketing_consent/update".to_string(),
        ])
    );
    assert_eq!(emails, BTreeSet::from(["ada@example.com".to_string()]));
    let c = webhooks.counters();
    assert_eq!((c.accepted, c.unauthorized, c.malformed), (4, 0, 0));
}

#[tokio::test]
async fn a_simulator_signing_with_the_wrong_secret_changes_nothing() {
    let (webhooks, url, mut triggers) = receiver().await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 0,
        seed: 7,
    });
    let shop = &sandbox.shopify;
    shop.send_webhooks_to(&url, "not-the-app-secret");
    let id = shop.add_customer(Customer {
        email: Some("eve@example.com".into()),
        ..Customer::default()
    });
    shop.edit_customer(id, |_| {});
    let outbox = shop.webhook_outbox();
    tokio::time::timeout(Duration::from_secs(30), outbox.wait_for(2))
        .await
        .expect("two deliveries finish");
    for record in outbox.records() {
        assert_eq!(record.attempts, vec![Some(401)], "{record:?}");
    }
    assert_eq!(webhooks.counters().unauthorized, 2);
    assert_eq!(webhooks.counters().accepted, 0);
    // Nothing was accepted, so the debouncer holds nothing and has sent nothing.
    assert!(triggers.try_recv().is_err(), "no trigger");
}
