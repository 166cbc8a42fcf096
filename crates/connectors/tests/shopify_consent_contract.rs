//! Contract tests of the Shopify consent write (`customerEmailMarketingConsentUpdate`) against
//! the Shopify simulator: batching, consent times, `userErrors`, pacing under the cost bucket.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::shopify::{CONSENT_BATCH, ShopifyConfig, ShopifySource};
use audience_core::{ApplyControl, Consent, ConsentWrite, Email, OptInLevel, Source};
use audience_sandbox::shopify::Customer;
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{DateTime, TimeZone, Utc};

fn unique_token() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shpat_consent_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn start() -> (RunningSandbox, String) {
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 0,
        seed: 7,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let token = unique_token();
    sandbox.sandbox.shopify.set_access_token(&token);
    (sandbox, token)
}

fn source(sandbox: &RunningSandbox, token: &str) -> ShopifySource {
    let mut config = ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), token);
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(10),
    };
    ShopifySource::new(config).unwrap()
}

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap()
}

fn customer(
    sandbox: &RunningSandbox,
    n: usize,
    state: &str,
    updated: Option<DateTime<Utc>>,
) -> u64 {
    sandbox.sandbox.shopify.add_customer(Customer {
        email: Some(format!("c{n}@example.com")),
        marketing_state: state.into(),
        consent_updated_at: updated,
        ..Default::default()
    })
}

fn write(id: u64, n: usize, consent: Consent, time: Option<DateTime<Utc>>) -> ConsentWrite {
    ConsentWrite {
        source_id: format!("gid://shopify/Customer/{id}"),
        email: Email::parse(&format!("c{n}@example.com")).unwrap(),
        consent,
        opt_in_level: OptInLevel::SingleOptIn,
        consented_at: time,
    }
}

fn graphql_calls(sandbox: &RunningSandbox) -> u64 {
    sandbox
        .sandbox
        .stats
        .count(Vendor::Shopify, Some("POST"), "/graphql.json")
}

#[tokio::test]
async fn writes_consent_in_batches_with_the_given_time() {
    let (sandbox, token) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let writes: Vec<ConsentWrite> = (0..25)
        .map(|n| {
            let id = customer(&sandbox, n, "NOT_SUBSCRIBED", None);
            write(id, n, Consent::Subscribed, Some(at(10)))
        })
        .collect();
    let src = source(&sandbox, &token);
    let writer = src.consent_writer().expect("Shopify takes consent writes");
    let report = writer
        .write_consent(&writes, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.written, 25);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.write_calls, 25u64.div_ceil(CONSENT_BATCH as u64));
    assert_eq!(graphql_calls(&sandbox), report.write_calls);
    for w in &writes {
        let id: u64 = w.source_id.rsplit('/').next().unwrap().parse().unwrap();
        let c = shop.customer(id).unwrap();
        assert_eq!(c.marketing_state, "SUBSCRIBED");
        assert_eq!(c.marketing_opt_in_level.as_deref(), Some("SINGLE_OPT_IN"));
        assert_eq!(
            c.consent_updated_at,
            Some(at(10)),
            "the Mailchimp consent time"
        );
    }
    assert_eq!(shop.counters().consent_updates, 25);
    assert_eq!(
        shop.counters()
            .root_fields
            .get("customerEmailMarketingConsentUpdate"),
        Some(&25)
    );
}

#[tokio::test]
async fn without_a_time_shopify_records_the_time_of_the_write() {
    let (sandbox, token) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let id = customer(&sandbox, 0, "SUBSCRIBED", Some(at(9)));
    let before = Utc::now() - chrono::Duration::seconds(2);
    let src = source(&sandbox, &token);
    let report = src
        .consent_writer()
        .unwrap()
        .write_consent(
            &[write(id, 0, Consent::Unsubscribed, None)],
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.written, 1);
    let c = shop.customer(id).unwrap();
    assert_eq!(c.marketing_state, "UNSUBSCRIBED");
    assert!(c.consent_updated_at.unwrap() >= before);
}

#[tokio::test]
async fn an_older_consent_time_leaves_the_state_as_it_is() {
    // Shopify keeps the consent record with the most recent consentUpdatedAt.
    let (sandbox, token) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let id = customer(&sandbox, 0, "UNSUBSCRIBED", Some(at(12)));
    let src = source(&sandbox, &token);
    src.consent_writer()
        .unwrap()
        .write_consent(
            &[write(id, 0, Consent::Subscribed, Some(at(11)))],
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let c = shop.customer(id).unwrap();
    assert_eq!(c.marketing_state, "UNSUBSCRIBED");
    assert_eq!(c.consent_updated_at, Some(at(12)));
    assert_eq!(shop.counters().consent_updates, 0);
}

#[tokio::test]
async fn user_errors_are_rejections_naming_the_customer_and_the_rest_are_written() {
    let (sandbox, token) = start().await;
    let shop = &sandbox.sandbox.shopify;
    let good = customer(&sandbox, 0, "NOT_SUBSCRIBED", None);
    let no_email = shop.add_customer(Customer {
        email: None,
        ..Default::default()
    });
    let writes = vec![
        write(good, 0, Consent::Subscribed, None),
        write(no_email, 1, Consent::Subscribed, None),
        write(999_999_999, 2, Consent::Subscribed, None),
        // A future consent time [U: refused].
        write(
            good,
            3,
            Consent::Unsubscribed,
            Some(Utc::now() + chrono::Duration::days(2)),
        ),
        // Not an input state: refused before any call.
        write(good, 4, Consent::Cleaned, None),
    ];
    let src = source(&sandbox, &token);
    let report = src
        .consent_writer()
        .unwrap()
        .write_consent(&writes, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.written, 1);
    let mut rejected: Vec<(String, String)> = report
        .rejected
        .iter()
        .map(|r| (r.email.clone(), r.reason.clone()))
        .collect();
    rejected.sort();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert_eq!(rejected[0].0, "c1@example.com");
    assert!(
        rejected[0].1.contains("must have an email") && rejected[0].1.contains("INVALID"),
        "{}",
        rejected[0].1
    );
    assert!(
        rejected[1].1.contains("Customer not found"),
        "{}",
        rejected[1].1
    );
    assert!(rejected[2].1.contains("future"), "{}", rejected[2].1);
    assert!(
        rejected[3].1.contains("not a consent Shopify takes"),
        "{}",
        rejected[3].1
    );
    assert!(!rejected.iter().any(|(_, r)| r.contains(&token)));
    assert_eq!(shop.customer(good).unwrap().marketing_state, "SUBSCRIBED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_cost_bucket_instead_of_being_throttled() {
    let (sandbox, token) = start().await;
    let shop = &sandbox.sandbox.shopify;
    // A document of 10 mutations costs 100 points; a 150-point bucket restoring 400/s holds one
    // at a time, so 60 writes need the connector to pace itself.
    shop.set_bucket(150.0, 400.0);
    let writes: Vec<ConsentWrite> = (0..60)
        .map(|n| {
            let id = customer(&sandbox, n, "NOT_SUBSCRIBED", None);
            write(id, n, Consent::Subscribed, None)
        })
        .collect();
    let src = source(&sandbox, &token);
    let report = src
        .consent_writer()
        .unwrap()
        .write_consent(&writes, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.written, 60);
    let counters = shop.counters();
    assert_eq!(counters.consent_updates, 60);
    assert!(counters.min_available >= 0.0);
    // At most the first document is refused while the connector learns the real cost.
    assert!(
        counters.throttled <= 1,
        "throttled {} times",
        counters.throttled
    );
}

#[tokio::test]
async fn a_stop_ends_between_batches() {
    let (sandbox, token) = start().await;
    let id = customer(&sandbox, 0, "NOT_SUBSCRIBED", None);
    let control = ApplyControl::default();
    control.stop.store(true, Ordering::Relaxed);
    let src = source(&sandbox, &token);
    let report = src
        .consent_writer()
        .unwrap()
        .write_consent(&[write(id, 0, Consent::Subscribed, None)], &control)
        .await
        .unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.written, 0);
    assert_eq!(graphql_calls(&sandbox), 0);
}
