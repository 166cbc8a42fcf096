//! Contract tests of `LightspeedXSource` against the X-Series simulator.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_core::{ConnectorError, Consent, ErrorKind, ReadScope, Source, SourcePage};
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
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
    running.sandbox.lightspeed_x.set_token(token);
    running
}

fn source(running: &RunningSandbox, token: &str) -> LightspeedXSource {
    LightspeedXSource::new("sandbox", token)
        .unwrap()
        .with_base_url(&format!(
            "{}/api/2.0",
            running.vendor_url(Vendor::LightspeedX)
        ))
        .unwrap()
}

async fn read_all(
    source: &LightspeedXSource,
    scope: ReadScope,
) -> Result<Vec<SourcePage>, ConnectorError> {
    source.read(scope).try_collect().await
}

fn calls(running: &RunningSandbox) -> u64 {
    running
        .sandbox
        .stats
        .count(Vendor::LightspeedX, Some("GET"), "/customers")
}

#[tokio::test]
async fn a_full_read_of_10000_customers_takes_one_call_per_page() {
    let token = "lsx-full-read";
    let running = start(10_000, token).await;
    let sim = &running.sandbox.lightspeed_x;
    let pages = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap();

    // 10 pages of 1000, plus the empty page that says the list ended.
    assert_eq!(pages.len(), 10);
    assert_eq!(calls(&running), 11);
    assert!(
        pages
            .iter()
            .all(|p| p.contacts.len() <= 1000 && p.deleted.is_empty())
    );
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    assert_eq!(contacts.len(), 10_000);
    let ids: BTreeSet<&str> = contacts.iter().map(|c| c.source_id.as_str()).collect();
    assert_eq!(ids.len(), 10_000);

    // Checkpoints are the versions, increasing, ending at the store's latest.
    let checkpoints: Vec<u64> = pages
        .iter()
        .map(|p| p.checkpoint.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(checkpoints.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*checkpoints.last().unwrap(), sim.max_version());

    // Sample fields against the simulator's records.
    let by_id: HashMap<&str, _> = contacts
        .iter()
        .map(|c| (c.source_id.as_str(), *c))
        .collect();
    for id in sim.live_ids().iter().step_by(997) {
        let record = sim.customer(id).unwrap();
        let contact = by_id[id.as_str()];
        assert_eq!(Some(&contact.email), record.email.as_ref());
        assert_eq!(Some(&contact.first_name), record.first_name.as_ref());
        assert_eq!(Some(&contact.last_name), record.last_name.as_ref());
        assert_eq!(Some(&contact.phone), record.phone.as_ref());
        let address = contact.address.as_ref().unwrap();
        assert_eq!(Some(&address.city), record.physical_city.as_ref());
        assert_eq!(Some(&address.country), record.physical_country_id.as_ref());
        assert_eq!(
            contact.updated_at,
            chrono::DateTime::parse_from_rfc3339(&record.updated_at).unwrap()
        );
        assert_eq!(contact.custom_fields["customer_code"], record.customer_code);
        let expected = if record.do_not_email {
            Consent::Unsubscribed
        } else {
            // Lightspeed records opt-outs only: no opt-out is not an opt-in.
            Consent::NoOptOut
        };
        assert_eq!(contact.consent, expected);
    }
    let opted_out = contacts
        .iter()
        .filter(|c| c.consent == Consent::Unsubscribed)
        .count();
    assert!(
        opted_out > 500 && opted_out < 1500,
        "about a tenth opted out: {opted_out}"
    );
}

#[tokio::test]
async fn an_incremental_read_returns_exactly_the_edits_and_deletions() {
    let token = "lsx-incremental";
    let running = start(300, token).await;
    let sim = &running.sandbox.lightspeed_x;
    let source = source(&running, token);
    let full = read_all(&source, ReadScope::Full).await.unwrap();
    let checkpoint = full.last().unwrap().checkpoint.clone().unwrap();

    let ids = sim.live_ids();
    sim.edit_customer(&ids[10], |c| c.email = Some("changed@example.com".into()));
    sim.edit_customer(&ids[20], |c| c.do_not_email = true);
    sim.delete_customer(&ids[30]);
    sim.delete_customer(&ids[40]);
    let added = sim.add_customer(audience_sandbox::lightspeed_x::Customer {
        first_name: Some("New".into()),
        email: Some("new@example.com".into()),
        ..Default::default()
    });
    let before = calls(&running);

    let pages = read_all(&source, ReadScope::ChangedSince(checkpoint))
        .await
        .unwrap();
    let changed: BTreeSet<&str> = pages
        .iter()
        .flat_map(|p| &p.contacts)
        .map(|c| c.source_id.as_str())
        .collect();
    let deleted: BTreeSet<&str> = pages
        .iter()
        .flat_map(|p| &p.deleted)
        .map(String::as_str)
        .collect();
    assert_eq!(
        changed,
        BTreeSet::from([ids[10].as_str(), ids[20].as_str(), added.as_str()])
    );
    assert_eq!(
        deleted,
        BTreeSet::from([ids[30].as_str(), ids[40].as_str()])
    );
    let contacts: Vec<_> = pages.iter().flat_map(|p| &p.contacts).collect();
    let edited = contacts.iter().find(|c| c.source_id == ids[10]).unwrap();
    assert_eq!(edited.email, "changed@example.com");
    let opted_out = contacts.iter().find(|c| c.source_id == ids[20]).unwrap();
    assert_eq!(opted_out.consent, Consent::Unsubscribed);
    assert_eq!(calls(&running) - before, 2, "one page and the empty one");

    // The version cursor is exact: nothing changed since, nothing comes back.
    let last = pages.last().unwrap().checkpoint.clone().unwrap();
    assert_eq!(last.parse::<u64>().unwrap(), sim.max_version());
    let again = read_all(&source, ReadScope::ChangedSince(last))
        .await
        .unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn a_rate_limit_storm_slows_the_read_without_refusals() {
    let token = "lsx-storm";
    let running = start(3_000, token).await;
    let sim = &running.sandbox.lightspeed_x;
    // 10 requests per 1-second window; the read needs 31.
    sim.set_rate_limit(10, Duration::from_secs(1));
    let started = Instant::now();
    let pages = read_all(
        &source(&running, token).with_page_size(100),
        ReadScope::Full,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let contacts: usize = pages.iter().map(|p| p.contacts.len()).sum();
    assert_eq!(contacts, 3_000);
    assert_eq!(
        sim.refused(),
        0,
        "the connector waited instead of being refused"
    );
    assert_eq!(calls(&running), 31, "no retries were needed");
    assert!(
        elapsed >= Duration::from_secs(2),
        "31 calls at 10 per second span at least 3 windows: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_429_with_an_http_date_is_waited_out() {
    let token = "lsx-429";
    let running = start(500, token).await;
    running.sandbox.faults.push(
        Vendor::LightspeedX,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 1,
            },
            count: 2,
            path_contains: Some("/customers".into()),
        },
    );
    let pages = read_all(
        &source(&running, token).with_page_size(250),
        ReadScope::Full,
    )
    .await
    .unwrap();
    assert_eq!(pages.iter().map(|p| p.contacts.len()).sum::<usize>(), 500);
    let refused: u64 = running
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == Vendor::LightspeedX && k.status == 429)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(refused, 2);
    assert_eq!(calls(&running), 3 + 2);
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_that_does_not_show_the_token() {
    let running = start(5, "the-right-token").await;
    let secret = "wrong-secret-token-123";
    let error = read_all(&source(&running, secret), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Auth);
    assert_eq!(error.vendor, "lightspeed-x");
    assert!(!error.to_string().contains(secret));
    assert!(!format!("{error:?}").contains(secret));
    assert!(error.to_string().contains("Access token is not valid"));
}

#[tokio::test]
async fn a_malformed_body_is_an_invalid_response_naming_vendor_and_endpoint() {
    let token = "lsx-malformed";
    let running = start(5, token).await;
    running.sandbox.faults.push(
        Vendor::LightspeedX,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/customers".into()),
        },
    );
    let error = read_all(&source(&running, token), ReadScope::Full)
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidResponse);
    let text = error.to_string();
    assert!(text.starts_with("lightspeed-x GET /customers:"), "{text}");
}

#[tokio::test]
async fn unusable_checkpoints_and_segments_are_refused() {
    let token = "lsx-scopes";
    let running = start(1, token).await;
    let source = source(&running, token);
    let error = read_all(&source, ReadScope::ChangedSince("2025-01-01".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidConfig);
    let error = read_all(&source, ReadScope::Segment("vip".into()))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unsupported);
    assert_eq!(calls(&running), 0);
}
