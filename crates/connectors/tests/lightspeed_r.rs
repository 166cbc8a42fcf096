//! Contract tests of `LightspeedRSource` against the R-Series simulator.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use audience_connectors::lightspeed_r::LightspeedRSource;
use audience_core::{ConnectorError, Consent, ErrorKind, ReadScope, Source, SourcePage};
use audience_sandbox::lightspeed_r::{
    Contact, ContactEmail, ContactPhone, Customer, DEMO_ACCOUNT_ID,
};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use chrono::{DateTime, FixedOffset};
use futures::TryStreamExt;

async fn start(customers: usize, token: &str) -> RunningSandbox {
    let running = Sandbox::new(SandboxOptions {
        customers,
        seed: 42,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("sandbox serves");
    // Each test has its own token, so the process-wide key budgets of parallel tests stay apart.
    running.sandbox.lightspeed_r.set_token(token);
    running
}

fn source(running: &RunningSandbox, token: &str) -> LightspeedRSource {
    LightspeedRSource::new(DEMO_ACCOUNT_ID, token)
        .unwrap()
        .with_base_url(&format!(
            "{}/API/V3/Account/{DEMO_ACCOUNT_ID}",
            running.vendor_url(Vendor::LightspeedR)
        ))
        .unwrap()
}

async fn read_all(
    source: &LightspeedRSource,
    scope: ReadScope,
) -> Result<Vec<SourcePage>, ConnectorError> {
    source.read(scope).try_collect().await
}

fn calls(running: &RunningSandbox) -> u64 {
    running
        .sandbox
        .stats
        .count(Vendor::LightspeedR, Some("GET"), "/Customer.json")
}

#[tokio::test]
async fn a_full_read_of_10000_customers_takes_one_call_per_page() {
    let token = "lsr-full-read";
    let running = start(10_000, token).await;
    let sim = &running.sandbox.lightspeed_r;
    // Not a rate-limit test: a bucket big enough for the whole read.
    sim.set_bucket(1_000.0, 100.0);
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();

    assert_eq!(pages.len(), 100);
    assert_eq!(calls(&running), 100, "next is empty on the last page");
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert_eq!(contacts.len(), 10_000);
    let ids: BTreeSet<&str> = contacts.iter().map(|c| c.source_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(pages.iter().all(|p| p.deleted.is_empty()));

    // The checkpoint is the latest timeStamp (settled long ago, so exact), with its zone.
    let latest = (1..=10_000u64)
        .map(|id| sim.customer(id).unwrap().time_stamp)
        .max()
        .unwrap();
    let checkpoint = pages.last().unwrap().checkpoint.clone().unwrap();
    assert_eq!(
        checkpoint,
        latest.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    );

    let by_id: HashMap<&str, _> = contacts
        .iter()
        .map(|c| (c.source_id.as_str(), *c))
        .collect();
    for id in (1..=10_000u64).step_by(499) {
        let record = sim.customer(id).unwrap();
        let contact = by_id[id.to_string().as_str()];
        let primary = record
            .contact
            .emails
            .iter()
            .find(|e| e.use_type == "Primary")
            .unwrap();
        assert_eq!(contact.email, primary.address);
        assert_eq!(contact.first_name, record.first_name);
        assert_eq!(contact.last_name, record.last_name);
        assert_eq!(contact.updated_at, record.time_stamp);
        let address = contact.address.as_ref().unwrap();
        assert_eq!(address.city, record.contact.addresses[0].city);
        assert_eq!(address.country, record.contact.addresses[0].country_code);
        let expected = if record.contact.no_email {
            Consent::Unsubscribed
        } else {
            // Lightspeed records opt-outs only: no opt-out is not an opt-in.
            Consent::NoOptOut
        };
        assert_eq!(contact.consent, expected);
    }
    // Customers with a Secondary email listed first still get their Primary one (the demo data
    // gives every seventh customer two emails).
    let two_emails = sim.customer(4).unwrap();
    assert_eq!(two_emails.contact.emails.len(), 2);
    assert_eq!(two_emails.contact.emails[0].use_type, "Secondary");
    assert_eq!(by_id["4"].email, two_emails.contact.emails[1].address);
}

#[tokio::test]
async fn an_incremental_read_returns_exactly_the_edits_and_archivals_across_zones() {
    let token = "lsr-incremental";
    let running = start(300, token).await;
    let sim = &running.sandbox.lightspeed_r;
    // The shop's clock is UTC-5: times come with -05:00, and the checkpoint keeps it.
    sim.set_utc_offset(FixedOffset::west_opt(5 * 3600).unwrap());
    let source = source(&running, token);
    let full = read_all(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();
    assert!(checkpoint.ends_with("-05:00"), "{checkpoint}");

    sim.edit_customer(10, |c| {
        c.contact.emails[0].address = "changed@example.com".into()
    });
    sim.edit_customer(20, |c| c.contact.no_email = true);
    sim.archive_customer(30);
    let added = sim.add_customer(Customer {
        first_name: "New".into(),
        contact: Contact {
            emails: vec![ContactEmail {
                address: "new@example.com".into(),
                use_type: "Primary".into(),
            }],
            ..Contact::default()
        },
        ..Customer::default()
    });
    let before = calls(&running);

    let pages = read_all(&source, ReadScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let changed: BTreeSet<String> = pages
        .iter()
        .flat_map(|p| &p.contacts)
        .map(|c| c.source_id.clone())
        .collect();
    let deleted: Vec<&String> = pages.iter().flat_map(|p| &p.deleted).collect();
    assert_eq!(
        changed,
        BTreeSet::from(["10".to_string(), "20".to_string(), added.to_string()])
    );
    assert_eq!(deleted, ["30"]);
    assert_eq!(calls(&running) - before, 1);
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert_eq!(
        contacts.iter().find(|c| c.source_id == "10").unwrap().email,
        "changed@example.com"
    );
    assert_eq!(
        contacts
            .iter()
            .find(|c| c.source_id == "20")
            .unwrap()
            .consent,
        Consent::Unsubscribed
    );

    // The edits are seconds old, so the new checkpoint is a second before them: the next read may
    // see them again (never miss a same-second write), and sees nothing older.
    let next = pages.last().unwrap().checkpoint.clone().unwrap();
    let next_time = DateTime::parse_from_rfc3339(&next).unwrap();
    assert!(next.ends_with("-05:00"), "{next}");
    let again = read_all(&source, ReadScope::ChangedSince(next))
        .await
        .unwrap();
    for page in &again {
        for contact in &page.contacts {
            assert!(changed.contains(&contact.source_id));
            assert!(contact.updated_at > next_time);
        }
        assert!(page.deleted.iter().all(|id| id == "30"));
    }
}

#[tokio::test]
async fn a_bucket_storm_slows_the_read_without_overflowing() {
    let token = "lsr-storm";
    let running = start(3_000, token).await;
    let sim = &running.sandbox.lightspeed_r;
    // 10 drips draining 10 per second; the read needs 30 calls.
    sim.set_bucket(10.0, 10.0);
    let started = Instant::now();
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(pages.iter().map(|p| p.contacts.len()).sum::<usize>(), 3_000);
    assert_eq!(sim.refused(), 0, "the bucket never overflowed");
    assert!(sim.max_level() <= 10.0);
    assert_eq!(calls(&running), 30, "no retries were needed");
    assert!(
        elapsed >= Duration::from_millis(1_500),
        "20 calls past the bucket's size drain at 10/s: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_is_waited_out() {
    let token = "lsr-429";
    let running = start(250, token).await;
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 1,
            path_contains: Some("/Customer.json".into()),
        },
    );
    let started = Instant::now();
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(pages.iter().map(|p| p.contacts.len()).sum::<usize>(), 250);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(calls(&running), 3 + 1);
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_that_does_not_show_the_token() {
    let running = start(5, "the-right-token").await;
    let secret = "wrong-secret-token-456";
    let error = read_all(&source(&running, secret), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth);
    assert_eq!(error.vendor, "lightspeed-r");
    assert!(!error.to_string().contains(secret));
    assert!(!format!("{error:?}").contains(secret));
}

#[tokio::test]
async fn a_malformed_body_is_an_invalid_response_naming_vendor_and_endpoint() {
    let token = "lsr-malformed";
    let running = start(5, token).await;
    running.sandbox.faults.push(
        Vendor::LightspeedR,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/Customer.json".into()),
        },
    );
    let error = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    let text = error.to_string();
    assert!(
        text.starts_with("lightspeed-r GET /Customer.json:"),
        "{text}"
    );
}

#[tokio::test]
async fn a_one_customer_page_and_string_values_parse() {
    let token = "lsr-single";
    let running = start(0, token).await;
    let sim = &running.sandbox.lightspeed_r;
    let id = sim.add_customer(Customer {
        first_name: "Solo".into(),
        last_name: "Person".into(),
        company: "Solo Ltd".into(),
        contact: Contact {
            emails: vec![ContactEmail {
                address: "solo@example.com".into(),
                use_type: "Secondary".into(),
            }],
            phones: vec![ContactPhone {
                number: "+15550001".into(),
                use_type: "Work".into(),
            }],
            no_email: true,
            ..Contact::default()
        },
        ..Customer::default()
    });
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    let contact = &pages[0].contacts[0];
    assert_eq!(contact.source_id, id.to_string());
    assert_eq!(
        contact.email, "solo@example.com",
        "no Primary: the first email"
    );
    assert_eq!(contact.phone, "+15550001");
    assert_eq!(contact.consent, Consent::Unsubscribed, "noEmail \"true\"");
    assert_eq!(contact.custom_fields["company"], "Solo Ltd");
    assert_eq!(contact.address, None, "Addresses was an empty string");

    // 101 customers: the second page holds one customer, as an object.
    for n in 0..100 {
        sim.add_customer(Customer {
            first_name: format!("Bulk{n}"),
            ..Customer::default()
        });
    }
    let before = calls(&running);
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].contacts.len(), 1);
    assert_eq!(pages.iter().map(|p| p.contacts.len()).sum::<usize>(), 101);
    assert_eq!(calls(&running) - before, 2);
}

#[tokio::test]
async fn unusable_checkpoints_and_segments_are_refused() {
    let token = "lsr-scopes";
    let running = start(1, token).await;
    let source = source(&running, token);
    // A time without a zone is exactly the mistake that skips records: refused, not guessed.
    let error = read_all(
        &source,
        ReadScope::ChangedSince("2025-03-01T10:00:00".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
    let error = read_all(&source, ReadScope::Segment("vip".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unsupported);
    assert_eq!(calls(&running), 0);
}

#[tokio::test]
async fn an_idle_store_yields_no_pages() {
    let token = "lsr-idle";
    let running = start(20, token).await;
    let source = source(&running, token);
    let full = read_all(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();
    let again = read_all(&source, ReadScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "settled checkpoint, no changes: {again:?}"
    );
    assert_eq!(calls(&running), 2);
}
