//! Contract tests of `MailchimpTarget` against the Mailchimp simulator: what it writes and reads,
//! with exactly how many calls, and which per-member refusals it reports.

mod mailchimp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use audience_connectors::mailchimp::{MailchimpTarget, subscriber_hash};
use audience_core::{
    Address, ApplyControl, Email, ErrorKind, FieldMapping, FieldValue, MemberStatus, SegmentPlan,
    Target, plan_segment,
};
use audience_sandbox::mailchimp::MemberStatus as SimStatus;
use futures::TryStreamExt;
use mailchimp_support::*;
use serde_json::json;

#[tokio::test]
async fn push_of_1200_contacts_takes_three_batch_calls_and_reads_back() {
    let env = Env::start().await;
    let target = env.target();
    let mut creates: Vec<_> = (0..1200).map(create).collect();
    creates[7].tags = BTreeSet::from(["vip".to_string(), "Wholesale".to_string()]);
    creates[8].status = Some(MemberStatus::Transactional);
    creates[9].fields.insert(
        "ADDRESS".into(),
        FieldValue::Address(Address {
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: "62701".into(),
            country: "US".into(),
        }),
    );

    let progress = Arc::new(AtomicU64::new(0));
    let seen = progress.clone();
    let control = ApplyControl {
        progress: Some(Arc::new(move |done, total| {
            assert_eq!(total, 1200);
            seen.fetch_max(done, Ordering::Relaxed);
        })),
        ..ApplyControl::default()
    };
    let report = target
        .apply(&plan(creates.clone(), vec![], vec![]), &control)
        .await
        .unwrap();
    assert_eq!(report.created, 1200);
    assert_eq!(report.updated, 0);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.write_calls, 3);
    assert!(!report.stopped_early);
    assert_eq!(progress.load(Ordering::Relaxed), 1200);
    // ceil(1200 / 500) = 3 batch calls and nothing else: tags of new members travel in the batch.
    assert_eq!(env.calls("POST", BATCH_ROUTE), 3);
    assert_eq!(env.writes(), 3);
    assert_eq!(env.sim().member_count(LIST), 1200);

    env.clear_stats();
    let members = by_email(read_all(&target).await.unwrap());
    assert_eq!(members.len(), 1200);
    // 1,000 to a page: two pages of live members, one (empty) archived pass.
    assert_eq!(env.calls("GET", MEMBERS_ROUTE), 3);
    for write in &creates {
        let member = &members[write.email.as_str()];
        assert_eq!(Some(member.status), write.status, "{}", write.email);
        for (tag, value) in &write.fields {
            assert_eq!(member.fields.get(tag), Some(value), "{} {tag}", write.email);
        }
        assert_eq!(member.tags, write.tags, "{}", write.email);
    }

    // Nothing changed: an empty plan makes no call at all.
    env.clear_stats();
    let report = target
        .apply(&plan(vec![], vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0);
    assert_eq!(
        env.sandbox
            .sandbox
            .stats
            .total(audience_sandbox::Vendor::Mailchimp),
        0
    );
}

#[tokio::test]
async fn updates_send_only_what_the_plan_changes() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..3 {
        env.sim().insert_member_with(
            LIST,
            email(i).as_str(),
            SimStatus::Subscribed,
            json!({"FNAME": format!("First{i}"), "LNAME": format!("Last{i}"), "COMPANY": "Acme"}),
            &["old"],
        );
    }
    env.sim().add_merge_field(LIST, "COMPANY", "text", false);
    let mut rename = update(0);
    rename.fields.insert("FNAME".into(), text("Renamed"));
    let mut unsubscribe = update(1);
    unsubscribe.status = Some(MemberStatus::Unsubscribed);
    let mut clear = update(2);
    clear.fields.insert("LNAME".into(), text(""));

    let report = target
        .apply(
            &plan(vec![], vec![rename, unsubscribe, clear], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.updated, 3);
    assert_eq!(report.unsubscribed, 1);
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.calls("POST", BATCH_ROUTE), 1);

    let m0 = env.sim().member(LIST, email(0).as_str()).unwrap();
    assert_eq!(m0.merge_fields["FNAME"], "Renamed");
    assert_eq!(m0.merge_fields["LNAME"], "Last0");
    assert_eq!(
        m0.merge_fields["COMPANY"], "Acme",
        "unmapped fields are left alone"
    );
    assert_eq!(
        m0.status,
        SimStatus::Subscribed,
        "no status sent, none changed"
    );
    assert_eq!(m0.tags, vec!["old".to_string()], "tags are never replaced");
    let m1 = env.sim().member(LIST, email(1).as_str()).unwrap();
    assert_eq!(m1.status, SimStatus::Unsubscribed);
    assert_eq!(m1.merge_fields["FNAME"], "First1");
    let m2 = env.sim().member(LIST, email(2).as_str()).unwrap();
    assert!(
        m2.merge_fields.get("LNAME").is_none_or(|v| v == ""),
        "blank clears: {:?}",
        m2.merge_fields
    );
}

#[tokio::test]
async fn per_member_refusals_become_rejections_and_the_rest_is_written() {
    let env = Env::start().await;
    let target = env.target();
    // Unsubscribed in Mailchimp: cannot be set back to subscribed.
    env.sim()
        .insert_member(LIST, email(1).as_str(), SimStatus::Unsubscribed);
    // Permanently deleted: can never be re-added.
    env.sim()
        .insert_member(LIST, email(2).as_str(), SimStatus::Subscribed);
    assert!(env.sim().permanently_delete(LIST, email(2).as_str()));

    let fake = {
        let mut w = create(0);
        w.email = Email::parse("someone@example.com").unwrap();
        w
    };
    let mut resubscribe = update(1);
    resubscribe.status = Some(MemberStatus::Subscribed);
    let forgotten = create(2);
    let fine = create(3);

    let report = target
        .apply(
            &plan(vec![fake, forgotten, fine], vec![resubscribe], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.write_calls, 1, "one batch, refusals are not retried");
    assert_eq!(env.calls("POST", BATCH_ROUTE), 1);
    assert_eq!(report.created, 1);
    assert_eq!(report.updated, 0);
    let reasons: BTreeMap<&str, &str> = report
        .rejected
        .iter()
        .map(|r| (r.email.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons["someone@example.com"].contains("looks fake or invalid"),
        "{reasons:?}"
    );
    assert!(
        reasons[email(1).as_str()].contains("compliance state"),
        "{reasons:?}"
    );
    assert!(
        reasons[email(2).as_str()].contains("permanently deleted"),
        "{reasons:?}"
    );
    assert_eq!(
        env.sim().member(LIST, email(1).as_str()).unwrap().status,
        SimStatus::Unsubscribed
    );
    assert!(env.sim().member(LIST, email(3).as_str()).is_some());
}

#[tokio::test]
async fn archives_are_deletes_and_archived_members_are_read_back() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..5 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    let report = target
        .apply(
            &plan(vec![], vec![], vec![email(0), email(1), email(2)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.archived, 3);
    assert_eq!(report.write_calls, 3);
    assert_eq!(env.calls("DELETE", MEMBER_ROUTE), 3);
    assert_eq!(env.sim().count_by_status(LIST, SimStatus::Archived), 3);

    let members = by_email(read_all(&target).await.unwrap());
    assert_eq!(members.len(), 5, "archived members are read too");
    assert_eq!(members[email(0).as_str()].status, MemberStatus::Archived);
    assert_eq!(members[email(4).as_str()].status, MemberStatus::Subscribed);
    let info = target.info().await.unwrap();
    assert_eq!(info.name, "Contract Audience");
    assert_eq!(info.member_count, 2, "archived members do not count");

    // Bringing one back: an update with a status un-archives it.
    let mut back = update(0);
    back.status = Some(MemberStatus::Subscribed);
    back.unarchive = true;
    let report = target
        .apply(&plan(vec![], vec![back], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(
        env.sim().member(LIST, email(0).as_str()).unwrap().status,
        SimStatus::Subscribed
    );
}

#[tokio::test]
async fn tags_of_existing_members_travel_in_the_batch_and_keep_their_other_tags() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..3 {
        env.sim().insert_member_with(
            LIST,
            email(i).as_str(),
            SimStatus::Subscribed,
            json!({}),
            &["keep"],
        );
    }
    let updates: Vec<_> = (0..3)
        .map(|i| {
            let mut w = update(i);
            w.tags = BTreeSet::from(["vip".to_string()]);
            w
        })
        .collect();
    let report = target
        .apply(&plan(vec![], updates, vec![]), &ApplyControl::default())
        .await
        .unwrap();
    // One batch call and nothing else: no per-member tag call, no segment listing.
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.calls("POST", BATCH_ROUTE), 1);
    assert_eq!(env.calls("POST", TAGS_ROUTE), 0);
    assert_eq!(env.calls("GET", SEGMENTS_ROUTE), 0);
    assert_eq!((report.updated, report.adopted), (3, 0));
    for i in 0..3 {
        let tags = env.sim().member(LIST, email(i).as_str()).unwrap().tags;
        assert_eq!(tags, vec!["keep".to_string(), "vip".to_string()]);
    }
}

#[tokio::test]
async fn a_tag_for_many_existing_members_costs_only_the_batches() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..1200 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    // One member is archived meanwhile: its tag cannot be added and is reported.
    let updates: Vec<_> = (0..1200)
        .map(|i| {
            let mut w = update(i);
            w.tags = BTreeSet::from(["VIP".to_string()]);
            w
        })
        .collect();
    env.sim()
        .set_member_status(LIST, email(5).as_str(), SimStatus::Archived);
    let report = target
        .apply(&plan(vec![], updates, vec![]), &ApplyControl::default())
        .await
        .unwrap();
    // ceil(1200 / 500) = 3 batches, and no tag, segment or listing call.
    assert_eq!(env.calls("POST", BATCH_ROUTE), 3);
    assert_eq!(env.calls("POST", SEGMENTS_ROUTE), 0);
    assert_eq!(env.calls("POST", SEGMENT_ROUTE), 0);
    assert_eq!(env.calls("GET", SEGMENTS_ROUTE), 0);
    assert_eq!(env.calls("POST", TAGS_ROUTE), 0);
    assert_eq!(report.write_calls, 3);
    assert_eq!(env.sim().tag_members(LIST, "VIP").len(), 1199);
    assert!(
        report.rejected.iter().any(|r| r.email == email(5).as_str()),
        "{:?}",
        report.rejected
    );
}

#[tokio::test]
async fn the_owner_tag_travels_with_creates_and_adoptions_and_reads_back() {
    use audience_core::diff::{PlanOptions, plan_audience};
    use audience_core::{Consent, Mode, SourceContact};
    const OWNER: &str = "audience-operator:shop/customers";
    let env = Env::start().await;
    let target = env.target();
    // 700 members from before the sync (some with a tag of their own), 300 signup-form members
    // the source does not have; the source has the 700 and 600 new customers.
    for i in 0..700 {
        let tags: &[&str] = if i % 2 == 0 { &["newsletter"] } else { &[] };
        env.sim().insert_member_with(
            LIST,
            email(i).as_str(),
            SimStatus::Subscribed,
            json!({"FNAME": format!("First{i}"), "LNAME": format!("Last{i}")}),
            tags,
        );
    }
    for i in 0..300 {
        env.sim().insert_member(
            LIST,
            &format!("form{i}@signup-mail.io"),
            SimStatus::Subscribed,
        );
    }
    let source: Vec<SourceContact> = (0..1300)
        .map(|i| SourceContact {
            source_id: format!("c{i}"),
            email: email(i).as_str().to_string(),
            first_name: format!("First{i}"),
            last_name: if i == 3 {
                "Renamed".into()
            } else {
                format!("Last{i}")
            },
            consent: Consent::Subscribed,
            ..Default::default()
        })
        .collect();
    let options = PlanOptions {
        mode: Mode::Mirror,
        owner_tag: Some(OWNER.to_string()),
        ..PlanOptions::default()
    };
    let before = read_all(&target).await.unwrap();
    let plan = plan_audience(&source, &before, options.clone());
    assert_eq!(
        (plan.counts.create, plan.counts.update, plan.counts.adopted),
        (600, 1, 699)
    );
    assert_eq!((plan.counts.archive, plan.counts.not_managed), (0, 300));
    let reads = env.calls("GET", MEMBERS_ROUTE);
    let report = target.apply(&plan, &ApplyControl::default()).await.unwrap();
    // ceil((600 + 700) / 500) = 3 batch calls: the tag costs no call of its own.
    assert_eq!(report.write_calls, 3);
    assert_eq!(env.writes(), 3);
    assert_eq!(env.calls("POST", BATCH_ROUTE), 3);
    assert_eq!(
        (report.created, report.updated, report.adopted),
        (600, 1, 699)
    );
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    // Read back: the 1,300 carry the owner tag (and keep their own), the 300 do not.
    let after = read_all(&target).await.unwrap();
    assert!(env.calls("GET", MEMBERS_ROUTE) > reads);
    assert_eq!(after.len(), 1600);
    for member in &after {
        let owned = member.tags.contains(OWNER);
        let from_form = member.email.as_str().starts_with("form");
        assert_eq!(owned, !from_form, "{}: {:?}", member.email, member.tags);
    }
    let m0 = after.iter().find(|m| m.email == email(0)).unwrap();
    assert!(m0.tags.contains("newsletter"), "{:?}", m0.tags);
    assert_eq!(env.sim().tag_members(LIST, OWNER).len(), 1300);
    // The next run: nothing to do, and the signup-form members are still not the sync's.
    let again = plan_audience(&source, &after, options);
    assert!(again.is_empty(), "{:?}", again.counts);
    assert_eq!(again.counts.not_managed, 300);
}

#[tokio::test]
async fn ensure_fields_creates_only_missing_merge_fields() {
    let env = Env::start().await;
    let target = env.target();
    let mapping = FieldMapping {
        phone: Some("PHONE".into()),
        address: Some("ADDRESS".into()),
        custom: BTreeMap::from([
            ("company".to_string(), "COMPANY".to_string()),
            ("loyalty_tier".to_string(), "TIER".to_string()),
        ]),
        ..FieldMapping::default()
    };
    target.ensure_fields(&mapping).await.unwrap();
    // FNAME, LNAME, PHONE and ADDRESS exist by default.
    assert_eq!(env.calls("POST", MERGE_FIELDS_ROUTE), 2);
    assert_eq!(env.calls("GET", MERGE_FIELDS_ROUTE), 1);
    target.ensure_fields(&mapping).await.unwrap();
    assert_eq!(
        env.calls("POST", MERGE_FIELDS_ROUTE),
        2,
        "second time: nothing to create"
    );

    // The new fields take values.
    let mut w = create(1);
    w.fields.insert("COMPANY".into(), text("Acme"));
    w.fields.insert("TIER".into(), text("gold"));
    let report = target
        .apply(&plan(vec![w], vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let member = env.sim().member(LIST, email(1).as_str()).unwrap();
    assert_eq!(member.merge_fields["COMPANY"], "Acme");

    // An address mapped onto a text field is a configuration error, not a failing sync.
    let wrong = FieldMapping {
        address: Some("COMPANY".into()),
        ..FieldMapping::default()
    };
    let err = target.ensure_fields(&wrong).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("COMPANY"), "{err}");
}

#[tokio::test]
async fn segments_are_created_when_missing_and_changed_500_at_a_time() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..1300 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    env.sim()
        .set_member_status(LIST, email(3).as_str(), SimStatus::Unsubscribed);
    assert_eq!(target.segment_members("Summer buyers").await.unwrap(), None);

    let source: Vec<Email> = (0..1100).map(email).collect();
    let plan1 = plan_segment(audience_core::SegmentMode::Exact, &source, &[]);
    env.clear_stats();
    let report = target
        .apply_segment("Summer buyers", &plan1, &ApplyControl::default())
        .await
        .unwrap();
    // Known missing from the lookup just before? No: apply_segment looks it up (cached miss is not
    // trusted), creates it, then ceil(1100 / 500) = 3 calls.
    assert_eq!(env.calls("POST", SEGMENTS_ROUTE), 1);
    assert_eq!(env.calls("POST", SEGMENT_ROUTE), 3);
    assert_eq!(report.write_calls, 4);
    assert_eq!(report.segment_added, 1100);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);

    let members = target
        .segment_members("summer BUYERS")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(members.len(), 1100, "unsubscribed members are members too");

    // Exact: 200 new ones (one not on the list at all), 600 gone.
    let mut source2: Vec<Email> = (600..1299).map(email).collect();
    source2.push(Email::parse("stranger@shop-mail.io").unwrap());
    let plan2 = plan_segment(audience_core::SegmentMode::Exact, &source2, &members);
    assert_eq!((plan2.add.len(), plan2.remove.len()), (200, 600));
    env.clear_stats();
    let report = target
        .apply_segment("Summer buyers", &plan2, &ApplyControl::default())
        .await
        .unwrap();
    // Cached id, no lookup; additions and removals share calls: max(1, 2) = 2.
    assert_eq!(env.calls("GET", SEGMENTS_ROUTE), 0);
    assert_eq!(env.calls("POST", SEGMENT_ROUTE), 2);
    assert_eq!(report.write_calls, 2);
    assert_eq!(report.segment_added, 199);
    assert_eq!(report.segment_removed, 600);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].email, "stranger@shop-mail.io");

    let id = env.sim().segment_id(LIST, "Summer buyers").unwrap();
    assert_eq!(env.sim().segment_members(LIST, id).len(), 699);

    // Nothing to change: no call.
    env.clear_stats();
    let report = target
        .apply_segment(
            "Summer buyers",
            &SegmentPlan::default(),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0);
    assert_eq!(
        env.sandbox
            .sandbox
            .stats
            .total(audience_sandbox::Vendor::Mailchimp),
        0
    );
}

#[tokio::test]
async fn a_segment_deleted_behind_the_cache_is_found_again() {
    let env = Env::start().await;
    let target = env.target();
    env.sim()
        .insert_member(LIST, email(1).as_str(), SimStatus::Subscribed);
    let add = SegmentPlan {
        add: vec![email(1)],
        ..SegmentPlan::default()
    };
    target
        .apply_segment("Gone", &add, &ApplyControl::default())
        .await
        .unwrap();
    // Deleted in Mailchimp by a person.
    let id = env.sim().segment_id(LIST, "Gone").unwrap();
    let client = reqwest::Client::new();
    let response = client
        .delete(format!("{}/lists/{LIST}/segments/{id}", env.base_url()))
        .basic_auth("x", Some(&env.key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let report = target
        .apply_segment("Gone", &add, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.segment_added, 1);
    let new_id = env.sim().segment_id(LIST, "Gone").unwrap();
    assert_ne!(new_id, id);
    assert_eq!(
        env.sim().segment_members(LIST, new_id),
        vec![email(1).to_string()]
    );
}

#[tokio::test]
async fn a_stop_request_ends_the_apply_at_a_batch_boundary() {
    let env = Env::start().await;
    let mut config = env.config();
    config.write_concurrency = 1;
    let target = MailchimpTarget::new(config).unwrap();
    let control = ApplyControl::default();
    let stop = control.stop.clone();
    let control = ApplyControl {
        progress: Some(Arc::new(move |done, _| {
            if done >= 500 {
                stop.store(true, Ordering::Relaxed);
            }
        })),
        ..control
    };
    let report = target
        .apply(
            &plan((0..1200).map(create).collect(), vec![], vec![email(5000)]),
            &control,
        )
        .await
        .unwrap();
    assert!(report.stopped_early);
    assert_eq!(report.created, 500);
    assert_eq!(report.write_calls, 1);
    assert_eq!(env.writes(), 1);
    assert_eq!(env.sim().member_count(LIST), 500);
}

#[tokio::test]
async fn incremental_read_returns_members_changed_since() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..10 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    env.sim().advance_clock(chrono::Duration::hours(1));
    let since = env.sim().now();
    env.sim().advance_clock(chrono::Duration::minutes(5));
    let mut changed = update(2);
    changed.fields.insert("FNAME".into(), text("New"));
    target
        .apply(
            &plan(vec![create(20)], vec![changed], vec![email(3)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let pages: Vec<Vec<_>> = target
        .members_changed_since(since)
        .try_collect()
        .await
        .unwrap();
    let emails: BTreeSet<String> = pages
        .into_iter()
        .flatten()
        .map(|m| m.email.to_string())
        .collect();
    assert_eq!(
        emails,
        BTreeSet::from([
            email(2).to_string(),
            email(3).to_string(),
            email(20).to_string()
        ])
    );
}

#[tokio::test]
async fn a_missing_list_is_not_found_by_name() {
    let env = Env::start().await;
    let mut config = env.config();
    config.list_id = "nosuchlist".into();
    let target = MailchimpTarget::new(config).unwrap();
    let err = target.info().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("nosuchlist"), "{err}");
    let err = read_all(&target).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    let err = target
        .apply(
            &plan(vec![create(1)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("nosuchlist"), "{err}");
}

#[test]
fn subscriber_hash_is_md5_of_the_lowercased_address() {
    assert_eq!(
        subscriber_hash("Ana.Berg@Mail.COM"),
        audience_sandbox::mailchimp::subscriber_hash("ana.berg@mail.com")
    );
}

#[tokio::test]
async fn member_pages_after_the_first_are_read_ahead_concurrently() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..5500 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    env.sandbox.sandbox.faults.set_latency(
        audience_sandbox::Vendor::Mailchimp,
        std::time::Duration::from_millis(30),
    );
    let pages: Vec<Vec<_>> = target.members().try_collect().await.unwrap();
    // In offset order, 1,000 to a page, the last one partial.
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 1000, 1000, 1000, 1000, 500]);
    assert_eq!(pages[0][0].email, email(0));
    assert_eq!(pages[5][499].email, email(5499));
    // 6 live pages + 1 archived pass.
    assert_eq!(env.calls("GET", MEMBERS_ROUTE), 7);
    let seen = env.sim().max_concurrent_seen(&env.key);
    assert!(
        (2..=4).contains(&seen),
        "pages 2-6 are read 4 at a time once the first told the total: {seen}"
    );
}

#[tokio::test]
async fn members_by_email_looks_members_up_one_call_each_or_reads_the_audience_when_cheaper() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..5 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    target
        .apply(
            &plan(vec![], vec![], vec![email(4)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let info = target.info().await.unwrap();
    assert_eq!(info.member_count, 4);

    // Two emails (one archived member, one stranger): two look-ups, nothing else.
    env.clear_stats();
    let found = target
        .members_by_email(&[email(4), email(99)])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].email, email(4));
    assert_eq!(
        found[0].status,
        MemberStatus::Archived,
        "archived members are found"
    );
    assert_eq!(env.calls("GET", MEMBER_ROUTE), 2);
    assert_eq!(env.reads(), 2);

    // Three emails in an audience of four: one live page and the archived pass are fewer calls.
    env.clear_stats();
    let found = by_email(
        target
            .members_by_email(&[email(0), email(1), email(99)])
            .await
            .unwrap(),
    );
    assert_eq!(
        found.keys().cloned().collect::<Vec<_>>(),
        [email(0).as_str(), email(1).as_str()]
    );
    assert_eq!(env.calls("GET", MEMBER_ROUTE), 0);
    assert_eq!(env.calls("GET", MEMBERS_ROUTE), 2);

    // Nothing asked, nothing read.
    env.clear_stats();
    assert!(target.members_by_email(&[]).await.unwrap().is_empty());
    assert_eq!(env.reads(), 0);
}

/// The operator keeps a sync's target between runs (`reset_run_state` between them): the audience
/// size a run reads decides that run's look-ups, so a new run reads it again rather than trusting
/// the last run's.
#[tokio::test]
async fn a_new_run_reads_the_audience_size_again() {
    let env = Env::start().await;
    let target = env.target();
    for i in 0..5 {
        env.sim()
            .insert_member(LIST, email(i).as_str(), SimStatus::Subscribed);
    }
    target.info().await.unwrap();
    env.clear_stats();
    target.members_by_email(&[email(0)]).await.unwrap();
    assert_eq!(env.calls("GET", MEMBER_ROUTE), 1);
    assert_eq!(env.reads(), 1, "this run's size is known: one look-up");

    target.reset_run_state().await;
    env.clear_stats();
    target.members_by_email(&[email(0)]).await.unwrap();
    assert_eq!(env.calls("GET", MEMBER_ROUTE), 1);
    assert_eq!(
        env.calls("GET", BATCH_ROUTE) + env.calls("GET", MEMBERS_ROUTE),
        2,
        "the new run reads the list and its size first"
    );
}
