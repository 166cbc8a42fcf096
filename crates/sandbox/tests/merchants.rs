//! Many merchants in one sandbox: each under `/merchants/{id}` with its own data, credentials and
//! counters, while the single-account routes at the root stay as they were.

use audience_sandbox::merchants::{self, DEFAULT_AUDIENCE};
use audience_sandbox::{Sandbox, SandboxOptions, Vendor};

async fn get(url: &str, key: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(url)
        .basic_auth("anystring", Some(key))
        .send()
        .await
        .expect("request")
        .status()
}

#[tokio::test]
async fn each_merchant_is_its_own_account() {
    let running = Sandbox::new(SandboxOptions::default())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = running.url();
    let (a, b) = ("a.myshopify.com", "b.myshopify.com");
    let list = |id: &str| format!("{base}/merchants/{id}/mailchimp/3.0/lists/{DEFAULT_AUDIENCE}");

    // Created on first use, with an audience of its own.
    assert_eq!(get(&list(a), &merchants::mailchimp_key(a)).await, 200);
    assert_eq!(get(&list(a), &merchants::mailchimp_key(a)).await, 200);
    assert_eq!(get(&list(b), &merchants::mailchimp_key(b)).await, 200);
    let all = &running.sandbox.merchants;
    assert_eq!(all.ids(), vec![a.to_string(), b.to_string()]);
    assert_eq!(all.get(a).stats.total(Vendor::Mailchimp), 2);
    assert_eq!(all.get(b).stats.total(Vendor::Mailchimp), 1);
    // The root account saw none of it, and has no such audience.
    assert_eq!(running.sandbox.stats.total(Vendor::Mailchimp), 0);
    assert_eq!(
        get(
            &format!("{base}/mailchimp/3.0/lists/{DEFAULT_AUDIENCE}"),
            &merchants::mailchimp_key(a)
        )
        .await,
        404
    );

    // Data of its own: a's customers are not b's.
    let emails = |id: &str| -> Vec<String> {
        let shop = all.get(id).shopify;
        let mut e: Vec<String> = shop
            .customer_ids()
            .into_iter()
            .filter_map(|c| shop.customer(c).and_then(|c| c.email))
            .collect();
        e.sort();
        e
    };
    assert_eq!(emails(a).len(), merchants::DEFAULT_CUSTOMERS);
    assert_ne!(emails(a), emails(b));

    // Credentials of its own: a's Shopify token does not open b's shop.
    let shop = |id: &str, token: &str| {
        reqwest::Client::new()
            .post(format!(
                "{base}/merchants/{id}/shopify/admin/api/2025-01/graphql.json"
            ))
            .header("X-Shopify-Access-Token", token.to_string())
            .json(&serde_json::json!({"query": "{ shop { name } }"}))
            .send()
    };
    let ok = shop(a, &merchants::shopify_token(a)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = shop(b, &merchants::shopify_token(a)).await.unwrap();
    assert_eq!(refused.status(), 401);

    // The aggregate.
    let stats: serde_json::Value = reqwest::get(format!("{base}/_sandbox/merchants"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["merchants"], 2);
    assert_eq!(stats["totals"]["mailchimp"]["total"], 3);
    assert_eq!(stats["by_merchant"][b]["shopify"], 1);
}
