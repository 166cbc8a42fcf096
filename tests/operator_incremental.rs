//! Incremental runs through the operator on a real control plane: after the first (full) run the
//! status saves the checkpoint; a run with no change makes a few reads and no write; an edit
//! reaches the target in the next incremental run touching one member; a deletion waits for a
//! full reconcile (asked for with `sync-now: full-…`); a spec change makes the next run full.

mod operator_support;

use audience_operator::crd::AudienceSync;
use audience_sandbox::{Vendor, seed};
use operator_support::*;
use serde_json::json;

/// The shop size; the whole test stays well under a minute in debug.
const CUSTOMERS: usize = 20_000;

fn calls(h: &Harness, vendor: Vendor) -> u64 {
    h.sandbox
        .sandbox
        .stats
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.vendor == vendor)
        .map(|(_, n)| n)
        .sum()
}

fn mode(sync: &AudienceSync) -> String {
    let status = sync.status.as_ref().expect("status");
    status
        .last_run
        .as_ref()
        .and_then(|r| r.mode.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_read_only_the_changes_and_a_full_reconcile_finds_deletions() {
    let h = harness("incremental", true).await;
    h.default_secrets().await;
    h.shopify().set_bucket(1e9, 1e9);
    h.shopify().seed_demo(&seed::people(CUSTOMERS, 42));
    h.create::<AudienceSync>(audience_sync("shop", json!({"mode": "mirror"})))
        .await;
    let api = h.api::<AudienceSync>();
    let first = wait_reason(&api, "shop", "Synced").await;
    assert_eq!(mode(&first), "full");
    let status = first.status.as_ref().unwrap();
    assert!(status.checkpoint.is_some());
    assert!(status.checkpoint_time.is_some());
    assert_eq!(status.checkpoint_generation, first.metadata.generation);
    let last_full = status
        .last_full_sync_time
        .clone()
        .expect("lastFullSyncTime");
    let next_full = status
        .next_full_sync_time
        .clone()
        .expect("nextFullSyncTime");
    assert_eq!(
        next_full.0.duration_since(last_full.0).as_secs(),
        24 * 3600,
        "the default fullResync"
    );
    let created = status.last_run.as_ref().unwrap().counts.created;
    assert!(created as usize > CUSTOMERS * 9 / 10, "created {created}");

    // No change: a few reads to each vendor, no write.
    h.sandbox.sandbox.stats.clear();
    let quiet = h.sync_now::<AudienceSync>("shop", "1").await;
    assert_eq!(mode(&quiet), "incremental");
    let counts = quiet
        .status
        .as_ref()
        .unwrap()
        .last_run
        .as_ref()
        .unwrap()
        .counts;
    assert_eq!(
        (
            counts.source,
            counts.created,
            counts.updated,
            counts.archived
        ),
        (0, 0, 0, 0)
    );
    assert!(
        calls(&h, Vendor::Shopify) <= 3,
        "{}",
        calls(&h, Vendor::Shopify)
    );
    assert!(
        calls(&h, Vendor::Mailchimp) <= 3,
        "{}",
        calls(&h, Vendor::Mailchimp)
    );
    assert_eq!(vendor_writes(&h, Vendor::Mailchimp), 0);
    assert_eq!(
        quiet.status.as_ref().unwrap().last_full_sync_time,
        Some(last_full.clone()),
        "an incremental run is not a full reconcile"
    );

    // One edit: the next incremental run touches that one member.
    let id = h.shopify().customer_ids()[11];
    let email = h.shopify().customer(id).unwrap().email.unwrap();
    h.shopify()
        .edit_customer(id, |c| c.first_name = Some("Edited".into()));
    h.sandbox.sandbox.stats.clear();
    let edited = h.sync_now::<AudienceSync>("shop", "2").await;
    assert_eq!(mode(&edited), "incremental");
    let counts = edited
        .status
        .as_ref()
        .unwrap()
        .last_run
        .as_ref()
        .unwrap()
        .counts;
    assert_eq!((counts.source, counts.created, counts.updated), (1, 0, 1));
    let member = h.mailchimp().member(AUDIENCE, &email).unwrap();
    assert_eq!(member.merge_fields["FNAME"], "Edited");
    let writes = vendor_writes(&h, Vendor::Mailchimp);
    assert_eq!(writes, 1);
    // Facts (2), the member's look-up (1), the merge fields checked before writing (1).
    assert!(calls(&h, Vendor::Mailchimp) - writes <= 4);
    assert!(calls(&h, Vendor::Shopify) <= 3);

    // A deletion: incremental runs do not see it; a full reconcile asked for by hand archives it.
    let gone = h.shopify().customer_ids()[4];
    let gone_email = h.shopify().customer(gone).unwrap().email.unwrap();
    assert!(h.shopify().delete_customer(gone));
    let after = h.sync_now::<AudienceSync>("shop", "3").await;
    assert_eq!(mode(&after), "incremental");
    assert_ne!(
        h.mailchimp()
            .member(AUDIENCE, &gone_email)
            .unwrap()
            .status
            .as_str(),
        "archived"
    );
    let full = h.sync_now::<AudienceSync>("shop", "full-1").await;
    assert_eq!(mode(&full), "full");
    let status = full.status.as_ref().unwrap();
    assert_eq!(status.last_run.as_ref().unwrap().counts.archived, 1);
    assert_eq!(
        h.mailchimp()
            .member(AUDIENCE, &gone_email)
            .unwrap()
            .status
            .as_str(),
        "archived"
    );
    assert!(status.last_full_sync_time.as_ref().unwrap().0 > last_full.0);

    // A spec change makes the next run full, and fullResync moves the next full reconcile.
    h.patch_spec::<AudienceSync>("shop", json!({"fullResync": "2h"}))
        .await;
    let changed = wait_for(&api, "shop", "a run of the new spec", |o: &AudienceSync| {
        o.status.as_ref().is_some_and(|s| {
            s.observed_generation == o.metadata.generation
                && s.checkpoint_generation == o.metadata.generation
        })
    })
    .await;
    assert_eq!(mode(&changed), "full");
    let status = changed.status.as_ref().unwrap();
    let (last, next) = (
        status.last_full_sync_time.clone().unwrap(),
        status.next_full_sync_time.clone().unwrap(),
    );
    assert_eq!(next.0.duration_since(last.0).as_secs(), 2 * 3600);
    h.assert_no_secret_leaked().await;
}
