//! Contract tests of `RetailCrmSource` against the RetailCRM simulator: full, incremental (history)
//! and segment reads, call counts, the per-key rate limit, and failures.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use audience_connectors::http::RetryPolicy;
use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
use audience_core::{ConnectorError, Consent, ErrorKind, ReadScope, Source, SourcePage};
use audience_sandbox::retailcrm::Customer;
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

fn unique_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "rcrm_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn start(customers: usize) -> (RunningSandbox, String) {
    let sandbox = Sandbox::new(SandboxOptions {
        customers,
        seed: 42,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let key = unique_key();
    sandbox.sandbox.retailcrm.set_api_key(&key);
    (sandbox, key)
}

fn config(sandbox: &RunningSandbox, key: &str) -> RetailCrmConfig {
    let mut config = RetailCrmConfig::with_base_url(sandbox.vendor_url(Vendor::Retailcrm), key);
    config.retry = RetryPolicy {
        max_retries: 6,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        timeout: Duration::from_secs(10),
    };
    config
}

fn source(sandbox: &RunningSandbox, key: &str) -> RetailCrmSource {
    RetailCrmSource::new(config(sandbox, key)).unwrap()
}

async fn read(
    source: &RetailCrmSource,
    scope: ReadScope,
) -> Result<Vec<SourcePage>, ConnectorError> {
    source.read(scope).try_collect().await
}

fn calls(sandbox: &RunningSandbox, route: &str) -> u64 {
    sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Retailcrm && k.route == route)
        .map(|(_, n)| n)
        .sum()
}

fn ids(pages: &[SourcePage]) -> BTreeSet<u64> {
    pages
        .iter()
        .flat_map(|p| &p.contacts)
        .map(|c| c.source_id.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_read_of_10000_customers_in_100_calls() {
    let (sandbox, key) = start(10_000).await;
    let crm = &sandbox.sandbox.retailcrm;
    // This test is about calls and fields; the limit has its own tests.
    crm.set_rate_limit(None);
    let mut config = config(&sandbox, &key);
    config.requests_per_second = 1000;
    let source = RetailCrmSource::new(config).unwrap();
    let pages = read(&source, ReadScope::Full).await.unwrap();

    assert_eq!(pages.len(), 100);
    assert_eq!(
        calls(&sandbox, "/api/v5/customers"),
        100,
        "one call per 100 customers"
    );
    // The newest history id: page 1 of 100 pages, then the last page.
    assert_eq!(calls(&sandbox, "/api/v5/customers/history"), 2);
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert_eq!(contacts.len(), 10_000);
    assert_eq!(ids(&pages).len(), 10_000);
    // Only the last page carries the checkpoint: the history id read before the first page.
    assert!(pages[..99].iter().all(|p| p.checkpoint.is_none()));
    assert_eq!(pages[99].checkpoint, Some(crm.max_history_id().to_string()));

    for contact in contacts.iter().step_by(991) {
        let record = crm.customer(contact.source_id.parse().unwrap()).unwrap();
        assert_eq!(Some(&contact.email), record.email.as_ref());
        assert_eq!(Some(&contact.first_name), record.first_name.as_ref());
        assert_eq!(Some(&contact.last_name), record.last_name.as_ref());
        assert_eq!(contact.phone, record.phones[0]);
        assert_eq!(
            contact.tags,
            record.tags.iter().cloned().collect::<BTreeSet<_>>()
        );
        // createdAt travels as Moscow wall time and comes back as the same instant.
        assert_eq!(contact.updated_at, record.created_at);
        let address = contact.address.as_ref().unwrap();
        let wire = record.address.as_ref().unwrap();
        assert_eq!(Some(&address.country), wire.country_iso.as_ref());
        assert_eq!(Some(&address.city), wire.city.as_ref());
        assert_eq!(Some(&address.postal_code), wire.index.as_ref());
        let expected = if record.email_marketing_unsubscribed_at.is_some() {
            Consent::Unsubscribed
        } else if record.subscribed {
            Consent::Subscribed
        } else {
            Consent::NotSubscribed
        };
        assert_eq!(contact.consent, expected);
        let fields: Vec<(&String, &String)> = contact.custom_fields.iter().collect();
        assert_eq!(fields.len(), record.custom_fields.len());
    }
    assert!(contacts.iter().any(|c| c.consent == Consent::Unsubscribed));
    assert!(contacts.iter().any(|c| {
        c.custom_fields
            .get("loyalty_level")
            .is_some_and(|v| v == "gold")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_read_returns_exactly_the_changes_and_deletions() {
    let (sandbox, key) = start(500).await;
    let crm = &sandbox.sandbox.retailcrm;
    let source = source(&sandbox, &key);
    let full = read(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();
    assert_eq!(checkpoint, "500");

    for id in [3, 77, 400] {
        assert!(crm.edit_customer(id, |c| {
            c.first_name = Some("Edited".into());
            c.email_marketing_unsubscribed_at = Some(chrono::Utc::now());
        }));
    }
    assert!(crm.delete_customer(10));
    assert!(crm.delete_customer(11));
    assert!(crm.edit_customer(12, |c| c.last_name = Some("Gone soon".into())));
    assert!(crm.delete_customer(12));
    let added = crm.add_customer(Customer {
        email: Some("new@example.com".into()),
        subscribed: true,
        ..Default::default()
    });

    let (history_before, customers_before) = (
        calls(&sandbox, "/api/v5/customers/history"),
        calls(&sandbox, "/api/v5/customers"),
    );
    let pages = read(&source, ReadScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    assert_eq!(
        calls(&sandbox, "/api/v5/customers/history") - history_before,
        1
    );
    assert_eq!(calls(&sandbox, "/api/v5/customers") - customers_before, 1);
    assert_eq!(ids(&pages), BTreeSet::from([3, 77, 400, added]));
    let deleted: BTreeSet<String> = pages.iter().flat_map(|p| p.deleted.clone()).collect();
    assert_eq!(
        deleted,
        BTreeSet::from(["10".to_string(), "11".into(), "12".into()])
    );
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert!(
        contacts
            .iter()
            .filter(|c| c.first_name == "Edited")
            .all(|c| c.consent == Consent::Unsubscribed)
    );
    let new = contacts
        .iter()
        .find(|c| c.source_id == added.to_string())
        .unwrap();
    assert_eq!(new.consent, Consent::Subscribed);
    // An edited customer's updated_at is the time of its change (read in the account zone).
    let edited = contacts.iter().find(|c| c.source_id == "3").unwrap();
    let change = crm
        .history()
        .into_iter()
        .filter(|h| h.customer_id == 3)
        .map(|h| h.created_at)
        .max()
        .unwrap();
    assert_eq!(edited.updated_at, change);
    let last = pages.last().unwrap().checkpoint.clone().unwrap();
    assert_eq!(last, crm.max_history_id().to_string());

    // Caught up: one history call, nothing delivered, the same checkpoint.
    let again = read(&source, ReadScope::ChangedSince(last.clone()))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].contacts.is_empty() && again[0].deleted.is_empty());
    assert_eq!(again[0].checkpoint, Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_changes_are_fetched_100_ids_per_call_with_safe_checkpoints() {
    let (sandbox, key) = start(400).await;
    let crm = &sandbox.sandbox.retailcrm;
    let start_id = crm.max_history_id();
    for id in 1..=250 {
        assert!(crm.edit_customer(id, |c| c.first_name = Some(format!("N{id}"))));
    }
    let source = source(&sandbox, &key);
    let pages = read(&source, ReadScope::ChangedSince(start_id.to_string()))
        .await
        .unwrap();
    assert_eq!(ids(&pages), (1..=250).collect());
    // 250 history entries: pages of 100, 100 and 50; 250 customers: fetches of 100, 100 and 50.
    assert_eq!(calls(&sandbox, "/api/v5/customers/history"), 3);
    assert_eq!(calls(&sandbox, "/api/v5/customers"), 3);
    let checkpoints: Vec<Option<String>> = pages.iter().map(|p| p.checkpoint.clone()).collect();
    assert_eq!(
        checkpoints,
        vec![
            Some((start_id + 100).to_string()),
            Some((start_id + 200).to_string()),
            Some((start_id + 250).to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_keeps_under_the_limit_and_rides_out_injected_503s() {
    let (sandbox, key) = start(2_000).await;
    let crm = &sandbox.sandbox.retailcrm;
    // RetailCRM's default of 10 requests/s per key, and a storm of throttling answers on top.
    sandbox.sandbox.faults.push(
        Vendor::Retailcrm,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 5,
            path_contains: Some("/api/v5/customers".into()),
        },
    );
    let started = Instant::now();
    let pages = read(&source(&sandbox, &key), ReadScope::Full)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(ids(&pages).len(), 2_000);
    let counters = crm.counters();
    // The connector never made the account refuse it: every 503 was an injected one.
    assert_eq!(counters.rate_limited, 0);
    assert!(counters.max_per_second <= 10, "{counters:?}");
    let refused: u64 = sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::Retailcrm && k.status == 503)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 5);
    // 20 pages, 2 history calls and the account's time zone served, at no more than 10 per
    // 1.1 s: at least ~2 s.
    assert_eq!(counters.served, 23);
    assert!(elapsed >= Duration::from_millis(1_900), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_paced_faster_than_the_account_still_finishes() {
    let (sandbox, key) = start(1_000).await;
    let crm = &sandbox.sandbox.retailcrm;
    crm.set_rate_limit(Some(4));
    let mut config = config(&sandbox, &key);
    config.requests_per_second = 50;
    config.retry.max_retries = 10;
    let pages = read(&RetailCrmSource::new(config).unwrap(), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(ids(&pages).len(), 1_000);
    let counters = crm.counters();
    assert!(
        counters.rate_limited > 0,
        "the account had to refuse some calls"
    );
    assert_eq!(
        counters.served, 13,
        "10 pages, 2 history calls and the account's time zone"
    );
    assert!(counters.max_per_second <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_an_auth_error_without_the_key() {
    let (sandbox, _) = start(5).await;
    let wrong = "rcrm_wrong_key_never_to_be_shown";
    let err = read(&source(&sandbox, wrong), ReadScope::Segment("vip".into()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(err.vendor, "retailcrm");
    // The first call asks the account for its time zone (the config names none).
    assert_eq!(err.endpoint, "GET /api/v5/settings");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(
        shown.contains("Wrong \\\"apiKey\\\" value") || shown.contains("Wrong \"apiKey\" value"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_invalid_responses_naming_vendor_and_endpoint() {
    let (sandbox, key) = start(5).await;
    let source = source(&sandbox, &key);
    let malformed = |path: &str| Fault {
        kind: FaultKind::Malformed,
        count: 1,
        path_contains: Some(path.into()),
    };
    sandbox
        .sandbox
        .faults
        .push(Vendor::Retailcrm, malformed("/customers/history"));
    let err = read(&source, ReadScope::Full).await.unwrap_err();
    assert_eq!(
        (err.kind, err.vendor),
        (ErrorKind::InvalidResponse, "retailcrm")
    );
    assert_eq!(err.endpoint, "GET /api/v5/customers/history");
    sandbox
        .sandbox
        .faults
        .push(Vendor::Retailcrm, malformed("/api/v5/customers"));
    let err = read(&source, ReadScope::Segment("vip".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind, err.vendor),
        (ErrorKind::InvalidResponse, "retailcrm")
    );
    assert_eq!(err.endpoint, "GET /api/v5/customers");
    assert!(
        err.to_string()
            .starts_with("retailcrm GET /api/v5/customers: ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_read_and_segment_list() {
    let (sandbox, key) = start(400).await;
    let crm = &sandbox.sandbox.retailcrm;
    let members: Vec<u64> = (1..=400).filter(|id| id % 3 == 0).collect();
    crm.create_segment("thirds", "Every third customer", &members);
    let source = source(&sandbox, &key);
    let segments = source.segments().await.unwrap();
    let info = segments.iter().find(|s| s.id == "thirds").unwrap();
    assert_eq!(info.name, "Every third customer");
    assert_eq!(info.size, Some(members.len() as u64));
    assert!(segments.iter().any(|s| s.id == "vip"));

    let pages = read(&source, ReadScope::Segment("thirds".into()))
        .await
        .unwrap();
    assert_eq!(ids(&pages), members.iter().copied().collect());
    assert_eq!(
        calls(&sandbox, "/api/v5/customers"),
        2,
        "133 members in pages of 100"
    );
    assert_eq!(calls(&sandbox, "/api/v5/customers/history"), 0);
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));
    let unknown = read(&source, ReadScope::Segment("no-such-segment".into()))
        .await
        .unwrap();
    assert_eq!(unknown.iter().map(|p| p.contacts.len()).sum::<usize>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_travels_in_the_url() {
    let (sandbox, key) = start(3).await;
    let pages = read(&source(&sandbox, &key), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(ids(&pages).len(), 3);
    let counters = sandbox.sandbox.retailcrm.counters();
    assert!(counters.served > 0);
    assert_eq!(
        counters.key_in_query, 0,
        "the key went in the X-API-KEY header only"
    );
}

#[tokio::test]
async fn a_segment_stamp_is_one_call_and_changes_only_when_the_segment_is_recomputed() {
    let (sandbox, key) = start(0).await;
    let crm = &sandbox.sandbox.retailcrm;
    let a = crm.add_customer(Customer {
        email: Some("a@example.com".into()),
        ..Default::default()
    });
    let b = crm.add_customer(Customer {
        email: Some("b@example.com".into()),
        ..Default::default()
    });
    crm.create_segment("vip", "VIP", &[a]);
    let source = source(&sandbox, &key);

    let first = source.segment_stamp("vip").await.unwrap().expect("a stamp");
    assert!(first.contains("size=1"), "{first}");
    assert_eq!(calls(&sandbox, "/api/v5/segments"), 1);
    assert_eq!(
        source.segment_stamp("vip").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(calls(&sandbox, "/api/v5/segments"), 2);
    assert_eq!(calls(&sandbox, "/api/v5/customers"), 0, "no member read");

    // RetailCRM's recomputation: the segment's size changes, and so does the stamp.
    assert!(crm.set_segment_members("vip", &[a, b]));
    let second = source.segment_stamp("vip").await.unwrap().expect("a stamp");
    assert_ne!(second, first);
    assert!(second.contains("size=2"), "{second}");

    assert_eq!(source.segment_stamp("no-such-code").await.unwrap(), None);
}
