//! Contract tests of `ShopifySource` against the Shopify simulator: what it reads, how many calls it
//! makes, how it behaves under the cost bucket, and how it fails.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use audience_connectors::http::RetryPolicy;
use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_core::{ConnectorError, Consent, ErrorKind, ReadScope, Source, SourcePage};
use audience_sandbox::shopify::Customer;
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

/// Each test gets its own token, so process-wide key budgets never couple two tests.
fn unique_token() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shpat_test_{}_{}",
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
    let token = unique_token();
    sandbox.sandbox.shopify.set_access_token(&token);
    // Plus-like: 1000 points/s; large enough that only the tests about limits wait.
    sandbox.sandbox.shopify.set_bucket(20_000.0, 1000.0);
    (sandbox, token)
}

fn source(sandbox: &RunningSandbox, token: &str) -> ShopifySource {
    let mut config = ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), token);
    config.retry = RetryPolicy {
        max_retries: 4,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    };
    ShopifySource::new(config).unwrap()
}

async fn read(source: &ShopifySource, scope: ReadScope) -> Result<Vec<SourcePage>, ConnectorError> {
    source.read(scope).try_collect().await
}

fn graphql_calls(sandbox: &RunningSandbox) -> u64 {
    sandbox
        .sandbox
        .stats
        .count(Vendor::Shopify, Some("POST"), "/graphql.json")
}

fn numeric(gid: &str) -> u64 {
    gid.rsplit('/').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_read_of_10000_customers_in_40_calls() {
    let (sandbox, token) = start(10_000).await;
    let shop = &sandbox.sandbox.shopify;
    let source = source(&sandbox, &token);
    let pages = read(&source, ReadScope::Full).await.unwrap();

    assert_eq!(pages.len(), 40);
    assert_eq!(graphql_calls(&sandbox), 40, "one call per 250 customers");
    assert_eq!(shop.counters().throttled, 0);
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert_eq!(contacts.len(), 10_000);
    let ids: HashSet<&str> = contacts.iter().map(|c| c.source_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(
        contacts
            .windows(2)
            .all(|w| w[0].updated_at <= w[1].updated_at)
    );
    assert!(
        pages
            .iter()
            .all(|p| p.deleted.is_empty() && p.checkpoint.is_some())
    );

    // A sample compared field by field with the shop's own record.
    for contact in contacts.iter().step_by(997) {
        let record = shop.customer(numeric(&contact.source_id)).unwrap();
        assert_eq!(
            contact.source_id,
            format!("gid://shopify/Customer/{}", record.id)
        );
        assert_eq!(Some(&contact.email), record.email.as_ref());
        assert_eq!(Some(&contact.first_name), record.first_name.as_ref());
        assert_eq!(Some(&contact.last_name), record.last_name.as_ref());
        assert_eq!(Some(&contact.phone), record.phone.as_ref());
        assert_eq!(
            contact.tags,
            record.tags.iter().cloned().collect::<BTreeSet<_>>()
        );
        assert_eq!(contact.updated_at, record.updated_at);
        let address = contact.address.as_ref().unwrap();
        let wire = record.default_address.as_ref().unwrap();
        assert_eq!(Some(&address.city), wire.city.as_ref());
        assert_eq!(Some(&address.region), wire.province_code.as_ref());
        assert_eq!(Some(&address.postal_code), wire.zip.as_ref());
        assert_eq!(Some(&address.country), wire.country_code.as_ref());
        assert_eq!(contact.custom_fields.get("company"), wire.company.as_ref());
        let expected = match record.marketing_state.as_str() {
            "SUBSCRIBED" => Consent::Subscribed,
            "UNSUBSCRIBED" => Consent::Unsubscribed,
            _ => Consent::NotSubscribed,
        };
        assert_eq!(contact.consent, expected);
    }
    // The company (kept on the default address) is read where the shop has one.
    let with_company = contacts
        .iter()
        .filter(|c| c.custom_fields.contains_key("company"))
        .count();
    assert!(
        with_company > 0,
        "the demo shop has wholesale customers with a company"
    );
    // The last page's checkpoint is the newest updatedAt, in UTC with its zone.
    let newest = contacts.iter().map(|c| c.updated_at).max().unwrap();
    let checkpoint = pages.last().unwrap().checkpoint.clone().unwrap();
    assert!(
        checkpoint.starts_with(&newest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{checkpoint}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_read_returns_exactly_the_changes() {
    let (sandbox, token) = start(300).await;
    let shop = &sandbox.sandbox.shopify;
    let source = source(&sandbox, &token);
    let full = read(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();

    let ids = shop.customer_ids();
    let edited = [ids[3], ids[50], ids[299]];
    for id in edited {
        assert!(shop.edit_customer(id, |c| {
            c.first_name = Some("Edited".into());
            c.marketing_state = "REDACTED".into();
        }));
    }
    let deleted = [ids[10], ids[11]];
    for id in deleted {
        assert!(shop.delete_customer(id));
    }
    let added = shop.add_customer(Customer {
        email: Some("new.customer@example.com".into()),
        marketing_state: "PENDING".into(),
        ..Default::default()
    });

    let before = graphql_calls(&sandbox);
    let pages = read(&source, ReadScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    assert_eq!(graphql_calls(&sandbox) - before, 1);
    let got: BTreeSet<u64> = pages
        .iter()
        .flat_map(|p| &p.contacts)
        .map(|c| numeric(&c.source_id))
        .collect();
    let expected: BTreeSet<u64> = edited.iter().copied().chain([added]).collect();
    assert_eq!(got, expected);
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert!(
        contacts
            .iter()
            .filter(|c| c.first_name == "Edited")
            .all(|c| c.consent == Consent::Cleaned)
    );
    let new = contacts
        .iter()
        .find(|c| numeric(&c.source_id) == added)
        .unwrap();
    assert_eq!(new.consent, Consent::Pending);
    // Shopify announces deletions only by webhook: the full diff finds them.
    assert!(pages.iter().all(|p| p.deleted.is_empty()));

    // Nothing changed since: the boundary second is under a minute old, so a customer read in it
    // may still be edited within it; the checkpoint names no ids and only that second comes again.
    let second = pages.last().unwrap().checkpoint.clone().unwrap();
    assert!(!second.contains('|'), "{second}");
    let boundary = chrono::DateTime::parse_from_rfc3339(&second).unwrap();
    let again = read(&source, ReadScope::ChangedSince(second.clone()))
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .flat_map(|p| &p.contacts)
            .all(|c| c.updated_at == boundary),
        "only customers of the boundary second"
    );

    // A change in the same second as the boundary (or later) is still found.
    assert!(shop.edit_customer(ids[100], |c| c.last_name = Some("Later".into())));
    let third = read(&source, ReadScope::ChangedSince(second))
        .await
        .unwrap();
    let got: Vec<u64> = third
        .iter()
        .flat_map(|p| &p.contacts)
        .map(|c| numeric(&c.source_id))
        .collect();
    assert!(got.contains(&ids[100]), "{got:?}");
    assert!(
        third
            .iter()
            .flat_map(|p| &p.contacts)
            .all(|c| numeric(&c.source_id) == ids[100] || c.updated_at == boundary)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_boundary_delivers_nothing_twice() {
    // Demo customers were last edited long ago: the boundary second is over, its ids are kept.
    let (sandbox, token) = start(300).await;
    let source = source(&sandbox, &token);
    let full = read(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();
    assert!(checkpoint.contains('|'), "{checkpoint}");
    let again = read(&source, ReadScope::ChangedSince(checkpoint.clone()))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|p| p.contacts.len()).sum::<usize>(), 0);
    assert_eq!(again.last().unwrap().checkpoint.as_ref(), Some(&checkpoint));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_bucket_slows_readers_down_without_errors() {
    let (sandbox, token) = start(2_500).await;
    let shop = &sandbox.sandbox.shopify;
    // 10 pages of 252 points per reader, two readers sharing the bucket: 5040 points through a
    // bucket of 600 restoring 1500/s needs at least (5040 - 600) / 1500 ≈ 3 s.
    shop.set_bucket(600.0, 1500.0);
    let started = Instant::now();
    let (a, b) = (source(&sandbox, &token), source(&sandbox, &token));
    let (ra, rb) = tokio::join!(read(&a, ReadScope::Full), read(&b, ReadScope::Full));
    let elapsed = started.elapsed();
    for pages in [ra.unwrap(), rb.unwrap()] {
        let ids: HashSet<String> = pages
            .iter()
            .flat_map(|p| &p.contacts)
            .map(|c| c.source_id.clone())
            .collect();
        assert_eq!(ids.len(), 2_500);
    }
    let counters = shop.counters();
    assert_eq!(counters.executed, 20, "every page read once");
    // The readers waited for the bucket instead of hammering it: they share one estimate, count
    // each other's queries in flight, and never sent a query the bucket could not pay for.
    assert_eq!(counters.throttled, 0);
    assert_eq!(graphql_calls(&sandbox), 20 + counters.throttled);
    assert!(counters.min_available >= 0.0);
    assert!(elapsed >= Duration::from_millis(2_900), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_throttling_is_waited_out_and_retried() {
    let (sandbox, token) = start(600).await;
    // The injected THROTTLED says: 0 of 1000 available, restoring 50/s, query costs 252.
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 1,
            path_contains: None,
        },
    );
    let started = Instant::now();
    let pages = read(&source(&sandbox, &token), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(pages.iter().map(|p| p.contacts.len()).sum::<usize>(), 600);
    assert_eq!(
        graphql_calls(&sandbox),
        3 + 1,
        "three pages and the throttled attempt"
    );
    // 252 points at 50/s: about five seconds before the retry.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_ends_in_a_rate_limited_error() {
    let (sandbox, token) = start(10).await;
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 10,
            path_contains: None,
        },
    );
    let mut config = ShopifyConfig::with_base_url(sandbox.vendor_url(Vendor::Shopify), &token);
    config.max_throttle_retries = 0;
    let err = read(&ShopifySource::new(config).unwrap(), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.retry_after.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_an_auth_error_without_the_token() {
    let (sandbox, _) = start(5).await;
    let wrong = "shpat_this_token_is_wrong_123";
    let err = read(&source(&sandbox, wrong), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert_eq!(err.vendor, "shopify");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(shown.contains("graphql.json"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_an_invalid_response_naming_vendor_and_endpoint() {
    let (sandbox, token) = start(5).await;
    sandbox.sandbox.faults.push(
        Vendor::Shopify,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: None,
        },
    );
    let err = read(&source(&sandbox, &token), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.vendor, "shopify");
    assert_eq!(
        err.endpoint,
        "POST /admin/api/2025-01/graphql.json (customers)"
    );
    assert!(
        err.to_string()
            .starts_with("shopify POST /admin/api/2025-01/graphql.json")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_members_and_segment_list() {
    let (sandbox, token) = start(600).await;
    let shop = &sandbox.sandbox.shopify;
    let ids = shop.customer_ids();
    let members: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| id % 2 == 1)
        .take(300)
        .collect();
    let segment = shop.create_segment("Odd ones", "customer_tags CONTAINS 'odd'", &members);
    let source = source(&sandbox, &token);

    let listed = source.segments().await.unwrap();
    let info = listed.iter().find(|s| s.name == "Odd ones").unwrap();
    assert_eq!(info.id, format!("gid://shopify/Segment/{segment}"));

    let before = graphql_calls(&sandbox);
    let pages = read(&source, ReadScope::Segment(info.id.clone()))
        .await
        .unwrap();
    assert_eq!(
        graphql_calls(&sandbox) - before,
        2,
        "300 members in pages of 250"
    );
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    let got: Vec<u64> = contacts.iter().map(|c| numeric(&c.source_id)).collect();
    assert_eq!(got, members);
    for contact in &contacts {
        let record = shop.customer(numeric(&contact.source_id)).unwrap();
        assert_eq!(
            contact.source_id,
            format!("gid://shopify/Customer/{}", record.id)
        );
        assert_eq!(Some(&contact.email), record.email.as_ref());
    }
    assert!(pages.iter().all(|p| p.checkpoint.is_none()));
    // The bare number works too; an unknown segment is NotFound.
    let bare = read(&source, ReadScope::Segment(segment.to_string()))
        .await
        .unwrap();
    assert_eq!(bare.iter().map(|p| p.contacts.len()).sum::<usize>(), 300);
    let err = read(
        &source,
        ReadScope::Segment("gid://shopify/Segment/1".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.endpoint.contains("customerSegmentMembers"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_checkpoint_is_refused_before_any_call() {
    let (sandbox, token) = start(1).await;
    let err = read(
        &source(&sandbox, &token),
        ReadScope::ChangedSince("2025-01-01 10:00:00".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert_eq!(graphql_calls(&sandbox), 0);
}
