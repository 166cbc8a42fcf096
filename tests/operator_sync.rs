//! The operator on a real API server against the vendor simulators: syncs, re-syncs on demand,
//! modes, dry runs, suspension and segment syncs.

mod operator_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use audience_operator::crd::{AudienceSync, SegmentSync};
use audience_operator::operator::Operator;
use audience_sandbox::Vendor;
use audience_sandbox::mailchimp::MemberStatus;
use operator_support::*;
use serde_json::json;

#[tokio::test]
async fn create_syncs_and_sync_now_applies_exactly_the_edits() {
    let h = harness("op-create", true).await;
    h.default_secrets().await;
    h.add_shopify("ann@gmail.com", "Ann", "Lee");
    let bob = h.add_shopify("bob@gmail.com", "Bob", "Stone");
    let cat = h.add_shopify("cat@gmail.com", "Cat", "Moss");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("shop", json!({})))
        .await;

    let synced = wait_reason(&api, "shop", "Synced").await;
    let status = synced.status.clone().unwrap();
    let run = status.last_run.clone().unwrap();
    assert_eq!(
        (run.counts.source, run.counts.created, run.counts.updated),
        (3, 3, 0),
        "{run:?}"
    );
    assert_eq!(ready(&synced).unwrap().status, "True");
    assert!(status.last_sync_time.is_some());
    let next = status.next_sync_time.clone().expect("next run scheduled").0;
    let last = status.last_sync_time.clone().unwrap().0;
    let gap = last.duration_until(next).as_secs();
    assert!((3590..=3610).contains(&gap), "interval 1h, got {gap}s");
    assert_eq!(status.observed_generation, synced.metadata.generation);
    assert_eq!(
        h.members(),
        vec![
            ("ann@gmail.com".to_string(), "subscribed".to_string()),
            ("bob@gmail.com".into(), "subscribed".into()),
            ("cat@gmail.com".into(), "subscribed".into()),
        ]
    );
    let bob_member = h.mailchimp().member(AUDIENCE, "bob@gmail.com").unwrap();
    assert_eq!(bob_member.merge_fields.get("FNAME"), Some(&json!("Bob")));
    h.wait_event("shop", "RunStarted", "Normal").await;
    h.wait_event("shop", "Synced", "Normal").await;

    // Edit the source: rename Bob, Cat unsubscribes, Dan arrives. A sync-now runs once and changes
    // exactly those; an unrelated label change and the operator's own status writes start nothing.
    h.shopify()
        .edit_customer(bob, |c| c.first_name = Some("Robert".into()));
    h.shopify()
        .edit_customer(cat, |c| c.marketing_state = "UNSUBSCRIBED".into());
    h.add_shopify("dan@gmail.com", "Dan", "Oak");
    h.annotate::<AudienceSync>("shop", "sync.audience-operator.io/sync-now", "1")
        .await;
    let second = wait_for(&api, "shop", "sync-now 1 handled", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some("1"))
            && reason(o).as_deref() == Some("Synced")
    })
    .await;
    let run = second.status.as_ref().unwrap().last_run.clone().unwrap();
    assert_eq!(run.counts.created, 1, "{run:?}");
    assert!(run.counts.updated >= 1, "{run:?}");
    assert_eq!(run.counts.unsubscribed, 1, "{run:?}");
    // An incremental run: Ann is read again only if she shares the boundary second.
    assert!(run.counts.unchanged <= 1, "{run:?}");
    assert_eq!(run.mode.as_deref(), Some("incremental"));
    assert_eq!(
        h.members(),
        vec![
            ("ann@gmail.com".to_string(), "subscribed".to_string()),
            ("bob@gmail.com".into(), "subscribed".into()),
            ("cat@gmail.com".into(), "unsubscribed".into()),
            ("dan@gmail.com".into(), "subscribed".into()),
        ]
    );
    let bob_member = h.mailchimp().member(AUDIENCE, "bob@gmail.com").unwrap();
    assert_eq!(bob_member.merge_fields.get("FNAME"), Some(&json!("Robert")));

    let labels = json!({"metadata": {"labels": {"team": "crm"}}});
    api.patch(
        "shop",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&labels),
    )
    .await
    .unwrap();
    h.annotate::<AudienceSync>("shop", "sync.audience-operator.io/sync-now", "2")
        .await;
    let third = wait_for(&api, "shop", "sync-now 2 handled", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some("2"))
            && reason(o).as_deref() == Some("Synced")
    })
    .await;
    assert_eq!(
        runs(&third),
        3,
        "exactly one run per trigger: {:#?}",
        third.status.as_ref().unwrap().history
    );
    let run = third.status.as_ref().unwrap().last_run.clone().unwrap();
    // Incremental: nothing changed, so nothing is written (records of the last boundary second
    // may be read again, as unchanged).
    assert_eq!((run.counts.created, run.counts.updated), (0, 0), "{run:?}");
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn upsert_keeps_and_mirror_archives_members_the_source_lost() {
    let h = harness("op-modes", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    h.add_shopify("b@gmail.com", "B", "B");
    let gone = h.add_shopify("c@gmail.com", "C", "C");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("modes", json!({"mode": "upsert"})))
        .await;
    wait_reason(&api, "modes", "Synced").await;
    assert_eq!(h.mailchimp().member_count(AUDIENCE), 3);

    h.shopify().delete_customer(gone);
    h.annotate::<AudienceSync>("modes", "sync.audience-operator.io/sync-now", "upsert")
        .await;
    let o = wait_for(&api, "modes", "upsert re-run", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some("upsert"))
            && reason(o).as_deref() == Some("Synced")
    })
    .await;
    assert_eq!(o.status.unwrap().last_run.unwrap().counts.archived, 0);
    let c = h.mailchimp().member(AUDIENCE, "c@gmail.com").unwrap();
    assert_eq!(c.status, MemberStatus::Subscribed, "upsert never removes");

    // Switching to mirror is a spec change: it runs at once and archives the lost customer.
    h.patch_spec::<AudienceSync>("modes", json!({"mode": "mirror"}))
        .await;
    let o = wait_for(&api, "modes", "mirror run", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == o.metadata.generation)
            && reason(o).as_deref() == Some("Synced")
            && o.status
                .as_ref()
                .unwrap()
                .last_run
                .as_ref()
                .is_some_and(|r| r.counts.archived == 1)
    })
    .await;
    assert_eq!(o.spec.mode.as_str(), "mirror");
    let c = h.mailchimp().member(AUDIENCE, "c@gmail.com").unwrap();
    assert_eq!(c.status, MemberStatus::Archived);
    assert_eq!(h.mailchimp().member_count(AUDIENCE), 2);
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn mirror_archives_only_the_members_the_sync_manages() {
    let h = harness("op-owned", true).await;
    h.default_secrets().await;
    // 1,000 people who joined through the merchant's signup form: in the audience before the
    // sync, never created or updated by it, not in the source.
    for i in 0..1000 {
        h.mailchimp().insert_member(
            AUDIENCE,
            &format!("form{i}@signup-mail.net"),
            MemberStatus::Subscribed,
        );
    }
    let buyers: Vec<u64> = (0..1000)
        .map(|i| h.add_shopify(&format!("buyer{i}@gmail.com"), "Buyer", &format!("N{i}")))
        .collect();
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("owned", json!({"mode": "mirror"})))
        .await;
    let first = wait_reason(&api, "owned", "Synced").await;
    let counts = first.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.created, counts.archived, counts.not_managed),
        (1000, 0, 1000),
        "{counts:?}"
    );
    let namespace = first.metadata.namespace.clone().unwrap();
    let owner = format!("audience-operator:{namespace}/owned");
    assert_eq!(h.mailchimp().tag_members(AUDIENCE, &owner).len(), 1000);

    // The source loses 100 of its own customers.
    for id in &buyers[..100] {
        h.shopify().delete_customer(*id);
    }
    // Deletions are found by a full reconcile: ask for one.
    h.annotate::<AudienceSync>("owned", "sync.audience-operator.io/sync-now", "full-lost")
        .await;
    let o = wait_for(&api, "owned", "mirror re-run", |o: &AudienceSync| {
        o.status
            .as_ref()
            .is_some_and(|s| s.handled_sync_now.as_deref() == Some("full-lost"))
            && reason(o).as_deref() == Some("Synced")
    })
    .await;
    let counts = o.status.clone().unwrap().last_run.unwrap().counts;
    assert_eq!(
        (
            counts.archived,
            counts.not_managed,
            counts.created,
            counts.updated,
            counts.adopted
        ),
        (100, 1000, 0, 0, 0),
        "{counts:?}"
    );
    // Exactly those 100 archived; the signup-form members untouched (status and tags).
    let members = h.members();
    let archived: Vec<&str> = members
        .iter()
        .filter(|(_, s)| s == "archived")
        .map(|(e, _)| e.as_str())
        .collect();
    let mut lost: Vec<String> = (0..100).map(|i| format!("buyer{i}@gmail.com")).collect();
    lost.sort();
    assert_eq!(
        archived,
        lost.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for i in 0..1000 {
        let m = h
            .mailchimp()
            .member(AUDIENCE, &format!("form{i}@signup-mail.net"))
            .unwrap();
        assert_eq!(m.status, MemberStatus::Subscribed, "form{i}");
        assert!(m.tags.is_empty(), "form{i}: {:?}", m.tags);
    }
    assert_eq!(h.mailchimp().member_count(AUDIENCE), 1900);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_the_plan() {
    let h = harness("op-dry", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    h.add_shopify("b@gmail.com", "B", "B");
    h.add_shopify("not-an-email", "X", "X");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("dry", json!({"dryRun": true})))
        .await;
    let o = wait_reason(&api, "dry", "DryRun").await;
    assert_eq!(ready(&o).unwrap().status, "True");
    let status = o.status.unwrap();
    let plan = status.plan.expect("the plan is in the status");
    assert_eq!(plan.counts.created, 2, "{plan:?}");
    assert_eq!(plan.counts.rejected, 1, "{plan:?}");
    let mut sample: Vec<(String, String)> = plan
        .sample
        .iter()
        .map(|c| (c.action.clone(), c.email.clone()))
        .collect();
    sample.sort();
    assert_eq!(
        sample,
        vec![
            ("create".to_string(), "a@gmail.com".to_string()),
            ("create".into(), "b@gmail.com".into())
        ]
    );
    assert!(status.last_run.unwrap().dry_run);
    assert_eq!(status.rejected_sample.len(), 1);
    assert_eq!(status.rejected_sample[0].email, "not-an-email");
    assert!(h.members().is_empty(), "a dry run writes nothing");
    assert_eq!(
        vendor_writes(&h, Vendor::Mailchimp),
        0,
        "no write call reached Mailchimp"
    );
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn suspended_syncs_do_not_run_until_resumed() {
    let h = harness("op-suspend", true).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("paused", json!({"suspend": true})))
        .await;
    let o = wait_reason(&api, "paused", "Suspended").await;
    assert_eq!(ready(&o).unwrap().status, "False");
    assert!(o.status.as_ref().unwrap().next_sync_time.is_none());
    assert_eq!(runs(&o), 0);
    assert!(h.members().is_empty());

    h.patch_spec::<AudienceSync>("paused", json!({"suspend": false}))
        .await;
    let o = wait_reason(&api, "paused", "Synced").await;
    assert_eq!(runs(&o), 1);
    assert_eq!(h.members().len(), 1);
    h.assert_no_secret_leaked().await;
}

fn segment_sync(name: &str, mode: &str, tag: &str) -> serde_json::Value {
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "SegmentSync",
        "metadata": {"name": name},
        "spec": {
            "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "retailcrm"}}},
            "sourceSegment": {"retailcrmSegment": "vip"},
            "target": {"mailchimp": {"audienceId": AUDIENCE, "segment": tag, "credentialsSecretRef": {"name": "mailchimp"}}},
            "mode": mode,
            "schedule": {"cron": "0 6 * * *", "timeZone": "Europe/Amsterdam"}
        }
    })
}

#[tokio::test]
async fn segment_sync_modes_keep_their_promise() {
    let h = harness("op-segment", true).await;
    h.default_secrets().await;
    let crm = h.retailcrm();
    let add = |email: &str| {
        crm.add_customer(audience_sandbox::retailcrm::Customer {
            email: Some(email.into()),
            first_name: Some("X".into()),
            subscribed: true,
            ..Default::default()
        })
    };
    let a = add("a@gmail.com");
    let b = add("b@gmail.com");
    add("c@gmail.com");
    crm.create_segment("vip", "VIP", &[a, b]);
    // Mailchimp already has x (tagged in every target segment) and a (tagged in SUB).
    let mc = h.mailchimp();
    mc.insert_member(AUDIENCE, "x@gmail.com", MemberStatus::Subscribed);
    mc.insert_member(AUDIENCE, "a@gmail.com", MemberStatus::Subscribed);
    for tag in ["EXACT", "UNION", "SUB"] {
        mc.tag_member(AUDIENCE, "x@gmail.com", tag);
    }
    mc.tag_member(AUDIENCE, "a@gmail.com", "SUB");

    let api = h.api::<SegmentSync>();
    h.create::<SegmentSync>(segment_sync("exact", "exact", "EXACT"))
        .await;
    h.create::<SegmentSync>(segment_sync("union", "union", "UNION"))
        .await;
    h.create::<SegmentSync>(segment_sync("sub", "subtract", "SUB"))
        .await;
    for name in ["exact", "union", "sub"] {
        wait_reason(&api, name, "Synced").await;
    }
    let tagged = |tag: &str| {
        let mut m = mc.tag_members(AUDIENCE, tag);
        m.sort();
        m
    };
    assert_eq!(
        tagged("EXACT"),
        ["a@gmail.com", "b@gmail.com"],
        "exact: the target becomes the source"
    );
    assert_eq!(
        tagged("UNION"),
        ["a@gmail.com", "b@gmail.com", "x@gmail.com"],
        "union only adds"
    );
    assert_eq!(
        tagged("SUB"),
        ["x@gmail.com"],
        "subtract removes the source's members"
    );
    // Members of the segment missing from the audience were added to it first; c never was.
    assert!(mc.member(AUDIENCE, "b@gmail.com").is_some());
    assert!(mc.member(AUDIENCE, "c@gmail.com").is_none());
    let exact = api.get("exact").await.unwrap();
    let counts = exact.status.unwrap().last_run.unwrap().counts;
    assert_eq!(
        (counts.segment_added, counts.segment_removed),
        (2, 1),
        "{counts:?}"
    );
    let next = api
        .get("exact")
        .await
        .unwrap()
        .status
        .unwrap()
        .next_sync_time
        .unwrap()
        .0;
    let local = next.to_zoned(jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap());
    assert_eq!(
        (local.hour(), local.minute()),
        (6, 0),
        "cron runs at 06:00 Amsterdam time, got {local}"
    );
    h.assert_no_secret_leaked().await;
}

#[tokio::test]
async fn a_syncs_connectors_are_kept_between_runs_and_rebuilt_for_a_rotated_secret() {
    let mut h = harness("op-keep", false).await;
    h.default_secrets().await;
    h.add_shopify("a@gmail.com", "A", "A");
    let log = BuildLog::default();
    let built = || log.lock().unwrap().len();
    let mut options = h.options();
    options.connectors = Arc::new(RecordingConnectors {
        process: 0,
        inner: sandbox_connectors(),
        log: log.clone(),
    });
    h.operator = Some(
        Operator::start(h.client.clone(), options)
            .await
            .expect("starting the operator"),
    );
    let api = h.api::<AudienceSync>();
    h.create::<AudienceSync>(audience_sync("keep", json!({})))
        .await;
    wait_reason(&api, "keep", "Synced").await;
    h.add_shopify("b@gmail.com", "B", "B");
    h.sync_now::<AudienceSync>("keep", "second").await;
    assert_eq!(
        h.members().len(),
        2,
        "the second run synced the new customer"
    );
    assert_eq!(built(), 1, "the second run used the first run's connectors");

    // The Mailchimp key is rotated and the old one stops working: only connectors built with
    // the new key can sync. (A run that still saw the old Secret fails, drops its connectors,
    // and the changed Secret runs it again.)
    let rotated = "fedcba9876543210fedcba9876543210-us6";
    h.mailchimp().set_valid_keys([rotated]);
    h.secret("mailchimp", &[("apiKey", rotated)]).await;
    h.add_shopify("c@gmail.com", "C", "C");
    h.sync_now::<AudienceSync>("keep", "after-rotation").await;
    let deadline = Instant::now() + WAIT;
    while h.members().len() < 3 {
        assert!(Instant::now() < deadline, "the rotated key never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_rotation = built();
    assert!(after_rotation >= 2, "new connectors for the new key");

    // And those are kept in turn.
    h.add_shopify("d@gmail.com", "D", "D");
    h.sync_now::<AudienceSync>("keep", "kept-again").await;
    assert_eq!(h.members().len(), 4);
    assert_eq!(built(), after_rotation);
}
