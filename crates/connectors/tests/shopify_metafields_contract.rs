//! Contract tests of the Shopify metafield write (`metafieldsSet`) against the simulator: 25 a
//! call, atomic refusals reported per owner.

mod shopify_support;

use audience_connectors::shopify::ShopifySource;
use audience_connectors::shopify::metafields::{MAX_PER_CALL, MetafieldWrite};
use audience_sandbox::shopify::Customer;
use audience_sandbox::{RunningSandbox, Vendor};
use shopify_support::start_shop;

async fn start() -> (RunningSandbox, ShopifySource) {
    start_shop("metafields").await
}

fn write(owner: &str, key: &str, kind: &str, value: &str) -> MetafieldWrite {
    MetafieldWrite {
        owner_id: owner.into(),
        namespace: "audience_operator".into(),
        key: key.into(),
        kind: kind.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn metafields_are_written_twenty_five_a_call() {
    let (sandbox, source) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let ids: Vec<u64> = (0..13)
        .map(|i| {
            shop.add_customer(Customer {
                email: Some(format!("c{i}@example.com")),
                ..Default::default()
            })
        })
        .collect();
    let writes: Vec<MetafieldWrite> = ids
        .iter()
        .flat_map(|id| {
            let gid = format!("gid://shopify/Customer/{id}");
            [
                write(&gid, "email_opens", "number_integer", "2"),
                write(
                    &gid,
                    "last_email_opened_at",
                    "date_time",
                    "2026-12-01T10:00:00Z",
                ),
            ]
        })
        .collect();
    let report = source.set_metafields(&writes).await.unwrap();
    assert_eq!(report.written, 26);
    assert_eq!(report.calls, 26usize.div_ceil(MAX_PER_CALL) as u64);
    assert!(report.rejected.is_empty());
    let stored = shop.customer_metafields(ids[12]);
    assert_eq!(
        stored[&("audience_operator".to_string(), "email_opens".to_string())].value,
        "2"
    );
}

#[tokio::test]
async fn a_refused_call_is_reported_for_its_owners_and_sets_nothing() {
    let (sandbox, source) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let id = shop.add_customer(Customer {
        email: Some("d@example.com".into()),
        ..Default::default()
    });
    let gid = format!("gid://shopify/Customer/{id}");
    let report = source
        .set_metafields(&[
            write(&gid, "email_opens", "number_integer", "1"),
            write(&gid, "email_clicks", "number_integer", "lots"),
        ])
        .await
        .unwrap();
    assert_eq!(report.written, 0);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].0, gid);
    assert!(
        report.rejected[0].1.contains("INVALID_VALUE"),
        "{:?}",
        report.rejected
    );
    assert!(shop.customer_metafields(id).is_empty());
}

#[tokio::test]
async fn customers_are_found_by_address_or_id_without_reading_the_shop() {
    let (sandbox, source) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let ids: Vec<u64> = (0..120)
        .map(|i| {
            shop.add_customer(Customer {
                email: Some(format!("Shopper{i}@Example.com")),
                ..Default::default()
            })
        })
        .collect();
    let emails: Vec<String> = (0..70).map(|i| format!("shopper{i}@example.com")).collect();
    let by_id = vec![
        format!("gid://shopify/Customer/{}", ids[100]),
        ids[101].to_string(),
    ];
    let before = sandbox.sandbox.stats.total(Vendor::Shopify);
    let mut found = source
        .find_customers(
            &[emails.clone(), vec!["nobody@example.com".into()]].concat(),
            &by_id,
        )
        .await
        .unwrap();
    found.sort();
    // 73 terms: two queries of at most 50.
    assert_eq!(sandbox.sandbox.stats.total(Vendor::Shopify) - before, 2);
    assert_eq!(found.len(), 72, "{found:?}");
    assert!(found.contains(&(
        format!("gid://shopify/Customer/{}", ids[3]),
        "shopper3@example.com".to_string()
    )));
    assert!(found.contains(&(
        format!("gid://shopify/Customer/{}", ids[101]),
        "shopper101@example.com".to_string()
    )));
    assert!(!found.iter().any(|(_, e)| e == "shopper110@example.com"));
}
