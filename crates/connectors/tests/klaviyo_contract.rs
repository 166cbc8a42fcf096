//! Contract tests of `KlaviyoTarget` against the Klaviyo simulator: what it writes and reads,
//! with exactly how many calls, how it keeps consent, and which refusals it reports.

mod klaviyo_support;

use std::collections::HashMap;

use audience_connectors::klaviyo::{KlaviyoTarget, ListRef};
use audience_core::{
    Address, ApplyControl, ErrorKind, FieldValue, MemberStatus, SegmentPlan, Target, plan_segment,
};
use audience_sandbox::klaviyo::{Consent, OptIn, SeedConsent, Suppression};
use audience_sandbox::{Fault, FaultKind, Vendor};
use chrono::{TimeZone, Utc};
use klaviyo_support::*;

/// The case (the simulator's identifier indexes keep it to seconds in a debug build).
#[tokio::test]
async fn twenty_thousand_new_profiles_take_two_import_jobs_and_twenty_subscribe_jobs() {
    push_new_profiles(20_000).await;
}

/// The same shape at a size a debug build runs in seconds: 10,050 profiles are still two import
/// jobs (10,000 + 50) and eleven subscribe jobs.
#[tokio::test]
async fn ten_thousand_and_fifty_new_profiles_take_two_import_jobs_and_eleven_subscribe_jobs() {
    push_new_profiles(10_050).await;
}

async fn push_new_profiles(n: usize) {
    let env = Env::start().await;
    let target = env.target();
    let imports = n.div_ceil(10_000) as u64;
    let subscribes = n.div_ceil(1_000) as u64;
    let lookups = n.div_ceil(100) as u64;
    let mut creates: Vec<_> = (0..n).map(create).collect();
    creates[3]
        .fields
        .insert("organization".into(), text("ACME"));
    creates[3].fields.insert("title".into(), text("Buyer"));
    creates[3]
        .fields
        .insert("loyalty_tier".into(), text("gold"));
    creates[3].fields.insert(
        "location".into(),
        FieldValue::Address(Address {
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: "62701".into(),
            country: "US".into(),
        }),
    );
    let report = target
        .apply(
            &plan(creates.clone(), vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert!(
        report.rejected.is_empty(),
        "{:?}",
        &report.rejected[..3.min(report.rejected.len())]
    );
    assert_eq!(report.created, n as u64);
    // The minimum: the import jobs (joining the list rides on them) + the subscribe jobs.
    assert_eq!(report.write_calls, imports + subscribes);
    assert_eq!(env.calls("POST", IMPORT_JOBS), imports);
    assert_eq!(env.calls("POST", SUBSCRIBE), subscribes);
    assert_eq!(env.calls("POST", LIST_RELATIONSHIPS), 0);
    assert_eq!(env.calls("POST", UNSUBSCRIBE), 0);
    assert_eq!(env.writes(), imports + subscribes);
    // Reads: one consent look-up per 100 new subscribed profiles, and the polls (a read answers
    // the stage the job had and moves it on: queued, processing, complete), no import errors.
    assert_eq!(env.calls("GET", PROFILES), lookups);
    assert_eq!(env.calls("GET", IMPORT_JOB), 3 * imports);
    assert_eq!(env.calls("GET", IMPORT_ERRORS), 0);
    assert_eq!(
        env.calls_with_status(429),
        0,
        "pacing keeps under the limits"
    );
    assert_eq!(env.sim().list_members(&env.list_id).len(), n);
    let p = env.sim().profile_by_email(email(3).as_str()).unwrap();
    assert_eq!(p.email_marketing.consent, Consent::Subscribed);
    assert_eq!(p.organization.as_deref(), Some("ACME"));
    assert_eq!(p.title.as_deref(), Some("Buyer"));

    env.clear_stats();
    let members = by_email(read_all(&target).await.unwrap());
    assert_eq!(members.len(), n);
    assert_eq!(
        env.calls("GET", LIST_PROFILES),
        n.div_ceil(100) as u64,
        "pages of 100"
    );
    for write in &creates[..50] {
        let member = &members[write.email.as_str()];
        assert_eq!(member.status, MemberStatus::Subscribed);
        for (field, value) in &write.fields {
            assert_eq!(
                member.fields.get(field),
                Some(value),
                "{} {field}",
                write.email
            );
        }
    }

    // Nothing changed: no call at all.
    env.clear_stats();
    let report = target
        .apply(&plan(vec![], vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0);
    assert_eq!(env.total(), 0);
}

#[tokio::test]
async fn consent_is_never_restored_and_never_given_without_opt_in() {
    let env = Env::start().await;
    let sim = env.sim();
    // In the account, not in the list: unsubscribed, bounced, spam-reported, suppressed by hand.
    sim.seed_profile(email(1).as_str(), None, None, SeedConsent::Unsubscribed);
    sim.seed_profile(email(2).as_str(), None, None, SeedConsent::Bounced);
    sim.seed_profile(email(3).as_str(), None, None, SeedConsent::SpamReported);
    sim.seed_profile(email(4).as_str(), None, None, SeedConsent::UserSuppressed);
    // Subscribed in the account (another list), opted out at the source, new to this list.
    sim.seed_profile(email(5).as_str(), None, None, SeedConsent::Subscribed);
    // A list member, subscribed, who opted out at the source.
    let member = sim.seed_profile(email(6).as_str(), None, None, SeedConsent::Subscribed);
    assert!(sim.add_to_list(&env.list_id, &member));
    // A subscribed profile elsewhere that the source never mentions: untouched.
    sim.seed_profile(email(9).as_str(), None, None, SeedConsent::Subscribed);

    let target = env.target();
    let mut opted_out = update(6);
    opted_out.status = Some(MemberStatus::Unsubscribed);
    let creates = vec![
        create(1),
        create(2),
        create(3),
        create(4),
        create_with(5, MemberStatus::Unsubscribed),
        create_with(7, MemberStatus::Transactional),
        create(8),
        // Opted out at the source, new to the account: the opt-out is recorded at once.
        create_with(10, MemberStatus::Unsubscribed),
    ];
    let report = target
        .apply(
            &plan(creates, vec![opted_out], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();

    let reasons: HashMap<&str, &str> = report
        .rejected
        .iter()
        .map(|r| (r.email.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(
        reasons[email(1).as_str()].contains("UNSUBSCRIBE"),
        "{reasons:?}"
    );
    assert!(reasons[email(2).as_str()].contains("HARD_BOUNCE"));
    assert!(reasons[email(3).as_str()].contains("SPAM_COMPLAINT"));
    assert!(reasons[email(4).as_str()].contains("USER_SUPPRESSED"));
    for (i, suppression) in [
        (1, Suppression::Unsubscribe),
        (2, Suppression::HardBounce),
        (3, Suppression::SpamComplaint),
        (4, Suppression::UserSuppressed),
    ] {
        let p = sim.profile_by_email(email(i).as_str()).unwrap();
        assert!(
            p.email_marketing.is_suppressed(suppression),
            "{i}: suppression cleared: {:?}",
            p.email_marketing
        );
    }
    // Every create joined the list (membership is not consent).
    let members = sim.list_members(&env.list_id);
    for i in 1..=8 {
        assert!(
            members.contains(&email(i).to_string()),
            "{i} not in the list"
        );
    }
    // Never opted in: in the list, no consent.
    let never = sim.profile_by_email(email(7).as_str()).unwrap();
    assert_eq!(never.email_marketing.consent, Consent::NeverSubscribed);
    // Opted in at the source, new to the account: subscribed.
    let new = sim.profile_by_email(email(8).as_str()).unwrap();
    assert_eq!(new.email_marketing.consent, Consent::Subscribed);
    // Opted out at the source: unsubscribed from this list only, never globally.
    for i in [5, 6, 10] {
        let p = sim.profile_by_email(email(i).as_str()).unwrap();
        assert!(
            p.email_marketing
                .list_suppressions
                .iter()
                .any(|(list, _, _)| *list == env.list_id),
            "{i}: {:?}",
            p.email_marketing
        );
        assert!(
            p.email_marketing.suppressions.is_empty(),
            "{i} unsubscribed globally"
        );
    }
    assert_eq!(report.unsubscribed, 3);
    assert_eq!(env.calls("POST", SUBSCRIBE), 1);
    assert_eq!(env.calls("POST", UNSUBSCRIBE), 1);
    let untouched = sim.profile_by_email(email(9).as_str()).unwrap();
    assert!(untouched.email_marketing.can_receive());

    // Read back, the statuses keep the core from planning a resubscribe.
    let read = by_email(read_all(&target).await.unwrap());
    assert_eq!(read[email(1).as_str()].status, MemberStatus::Unsubscribed);
    assert_eq!(read[email(2).as_str()].status, MemberStatus::Cleaned);
    assert_eq!(read[email(3).as_str()].status, MemberStatus::Unsubscribed);
    assert_eq!(read[email(4).as_str()].status, MemberStatus::Unsubscribed);
    assert_eq!(read[email(5).as_str()].status, MemberStatus::Unsubscribed);
    assert_eq!(read[email(6).as_str()].status, MemberStatus::Unsubscribed);
    assert_eq!(read[email(7).as_str()].status, MemberStatus::Transactional);
    assert_eq!(read[email(8).as_str()].status, MemberStatus::Subscribed);
    assert_eq!(
        read[email(10).as_str()].status,
        MemberStatus::Unsubscribed,
        "a new profile opted out at the source must not read back as never subscribed"
    );
}

#[tokio::test]
async fn a_history_import_fires_no_flows_and_keeps_the_source_consent_time() {
    let env = Env::start().await;
    let target = env.target();
    let consented = Utc.with_ymd_and_hms(2021, 3, 4, 5, 6, 7).unwrap();
    let mut creates: Vec<_> = (0..30).map(create).collect();
    creates[0].consented_at = Some(consented);
    let mut history = plan(creates, vec![], vec![]);
    history.history_import = true;
    let report = target
        .apply(&history, &ApplyControl::default())
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(report.created, 30);
    assert_eq!(env.sim().list_members(&env.list_id).len(), 30);
    assert_eq!(env.sim().list_flows(&env.list_id), 0, "no welcome flow");
    let p = env.sim().profile_by_email(email(0).as_str()).unwrap();
    assert_eq!(p.email_marketing.consent, Consent::Subscribed);
    assert_eq!(p.email_marketing.consent_timestamp, Some(consented));
    assert_eq!(p.first_name.as_deref(), Some("First0"));
}

#[tokio::test]
async fn import_errors_become_rejections_with_the_vendors_reason() {
    let env = Env::start().await;
    let target = env.target();
    let mut bad_phone = create(1);
    bad_phone
        .fields
        .insert("phone_number".into(), text("not a phone"));
    let report = target
        .apply(
            &plan(vec![create(0), bad_phone, create(2)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert_eq!(report.rejected[0].email, email(1).as_str());
    assert!(!report.rejected[0].reason.is_empty());
    assert_eq!(report.created, 2);
    assert_eq!(env.calls("GET", IMPORT_ERRORS), 1);
    // The refused profile is neither in the list nor given consent.
    let members = env.sim().list_members(&env.list_id);
    assert!(!members.contains(&email(1).to_string()));
    assert!(
        env.sim()
            .profile_by_email(email(1).as_str())
            .is_none_or(|p| p.email_marketing.consent != Consent::Subscribed)
    );
}

#[tokio::test]
async fn a_429_storm_loses_nothing_and_a_lasting_one_ends_rate_limited() {
    let env = Env::start().await;
    env.sandbox.sandbox.faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 20,
            path_contains: Some("/api/".into()),
        },
    );
    let target = env.target();
    let creates: Vec<_> = (0..1_500).map(create).collect();
    let report = target
        .apply(&plan(creates, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.created, 1_500);
    assert!(env.calls_with_status(429) >= 20);
    assert_eq!(env.sim().list_members(&env.list_id).len(), 1_500);
    for i in 0..1_500 {
        let p = env.sim().profile_by_email(email(i).as_str()).unwrap();
        assert_eq!(p.email_marketing.consent, Consent::Subscribed, "{i}");
    }

    env.sandbox.sandbox.faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::RateLimited {
                retry_after_secs: 0,
            },
            count: 1_000,
            path_contains: Some("/api/".into()),
        },
    );
    let err = target
        .apply(
            &plan(vec![create(5_000)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
}

#[tokio::test]
async fn auth_errors_never_show_the_key() {
    let env = Env::start().await;
    env.sim().set_valid_keys(["pk_theonlyvalidkey000"]);
    let target = env.target();
    let err = read_all(&target).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains(&env.key), "{err}");
    assert!(!err.to_string().contains(&env.key["pk_".len()..]), "{err}");
    let err = target
        .apply(
            &plan(vec![create(1)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(!format!("{err:?}").contains(&env.key));
}

/// A read-only key: the read works, the first write is refused (403 `permission_denied`) and the
/// error is Auth, naming the missing scopes, never the key; nothing was written.
#[tokio::test]
async fn a_key_missing_scopes_reads_but_its_writes_are_auth_errors_naming_the_scopes() {
    let env = Env::start().await;
    env.sim()
        .set_key_scopes(&env.key, &["profiles:read", "lists:read"]);
    let target = env.target();
    assert!(read_all(&target).await.unwrap().is_empty());
    let err = target
        .apply(
            &plan(vec![create(1)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("missing required scopes"), "{shown}");
    assert!(shown.contains("profiles:write"), "{shown}");
    assert!(!shown.contains(&env.key), "{shown}");
    assert_eq!(env.sim().profile_count(), 0);
}

#[tokio::test]
async fn malformed_bodies_are_invalid_responses_naming_vendor_and_endpoint() {
    let env = Env::start().await;
    let target = env.target();
    env.sandbox.sandbox.faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/profiles".into()),
        },
    );
    let err = read_all(&target).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse, "{err}");
    assert_eq!(err.vendor, "klaviyo");
    assert_eq!(err.endpoint, "GET /api/lists/{id}/profiles");
    assert!(
        err.to_string()
            .starts_with("klaviyo GET /api/lists/{id}/profiles")
    );

    env.sandbox.sandbox.faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::Malformed,
            count: 1,
            path_contains: Some("/profile-bulk-import-jobs".into()),
        },
    );
    let err = target
        .apply(
            &plan(
                vec![create_with(1, MemberStatus::Transactional)],
                vec![],
                vec![],
            ),
            &ApplyControl::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse, "{err}");
    assert_eq!(err.endpoint, "POST /api/profile-bulk-import-jobs");
}

#[tokio::test]
async fn an_unknown_list_id_is_not_found_and_a_named_list_is_created_on_write() {
    let env = Env::start().await;
    let mut config = env.config();
    config.list = ListRef::Id("NoSuch1".into());
    let target = KlaviyoTarget::new(config).unwrap();
    let err = read_all(&target).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.message.contains("NoSuch1"));

    let mut config = env.config();
    config.list = ListRef::Name("Brand New".into());
    let named = KlaviyoTarget::new(config).unwrap();
    // Reading a list not made yet: empty, and nothing created.
    assert!(read_all(&named).await.unwrap().is_empty());
    assert_eq!(env.sim().list_id("Brand New"), None);
    let report = named
        .apply(
            &plan(vec![create(1)], vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    let id = env.sim().list_id("Brand New").expect("created");
    assert_eq!(named.list_id().as_deref(), Some(id.as_str()));
    assert_eq!(report.write_calls, 3, "list + import job + subscribe job");
    assert_eq!(env.sim().list_members(&id), vec![email(1).to_string()]);
}

/// A list of `n` members (not subscribed), read whole by the target (which learnt their ids),
/// with the call counts cleared.
async fn members_read(n: usize) -> (Env, KlaviyoTarget) {
    let env = Env::start().await;
    let target = env.target();
    let creates: Vec<_> = (0..n)
        .map(|i| create_with(i, MemberStatus::Transactional))
        .collect();
    target
        .apply(&plan(creates, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    read_all(&target).await.unwrap();
    env.clear_stats();
    (env, target)
}

#[tokio::test]
async fn mirror_removes_from_the_list_never_from_the_account() {
    let (env, target) = members_read(1_200).await;
    let archives: Vec<_> = (0..1_100).map(email).collect();
    let report = target
        .apply(&plan(vec![], vec![], archives), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.archived, 1_100);
    assert_eq!(report.write_calls, 2, "1,000 to a call");
    assert_eq!(env.calls("DELETE", LIST_RELATIONSHIPS), 2);
    assert_eq!(env.sim().list_members(&env.list_id).len(), 100);
    assert!(env.sim().profile_by_email(email(0).as_str()).is_some());
}

#[tokio::test]
async fn segment_lists_follow_the_plan_in_thousands() {
    let env = Env::start().await;
    let target = env.target();
    let creates: Vec<_> = (0..1_500)
        .map(|i| create_with(i, MemberStatus::Transactional))
        .collect();
    target
        .apply(&plan(creates, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(target.segment_members("VIP").await.unwrap(), None);
    let source: Vec<_> = (0..1_200).map(email).collect();
    let seg = plan_segment(audience_core::SegmentMode::Exact, &source, &[]);
    env.clear_stats();
    let report = target
        .apply_segment("VIP", &seg, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.segment_added, 1_200);
    assert_eq!(report.write_calls, 3, "list + 2 adds of ≤1,000");
    let current = target.segment_members("VIP").await.unwrap().unwrap();
    assert_eq!(current.len(), 1_200);

    let source: Vec<_> = (100..1_300).map(email).collect();
    let seg = plan_segment(audience_core::SegmentMode::Exact, &source, &current);
    assert_eq!((seg.add.len(), seg.remove.len()), (100, 100));
    env.clear_stats();
    let report = target
        .apply_segment("VIP", &seg, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!((report.segment_added, report.segment_removed), (100, 100));
    assert_eq!(report.write_calls, 2);
    let after = target.segment_members("VIP").await.unwrap().unwrap();
    let mut expected = source.clone();
    expected.sort();
    assert_eq!(after, expected);
    let report = target
        .apply_segment("VIP", &SegmentPlan::default(), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.write_calls, 0);
    // An email without a profile is a rejection, not a failure.
    let seg = plan_segment(audience_core::SegmentMode::Union, &[email(9_999)], &after);
    let report = target
        .apply_segment("VIP", &seg, &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.rejected.len(), 1);
}

#[tokio::test]
async fn info_of_an_existing_list_gives_its_name_and_profile_count() {
    let env = Env::start().await;
    let target = env.target();
    target
        .apply(
            &plan((0..3).map(create).collect(), vec![], vec![]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    // A second run starts here: the list exists, its size is asked for with the spec's
    // additional field (a simulator that refused the parameter failed every second run).
    let info = target.info().await.unwrap();
    assert_eq!(info.member_count, 3);
    assert!(!info.name.is_empty());
}

/// The import jobs do not wait for the consent look-ups (each operation has its own rate-limit
/// windows, so a large push would otherwise spend the look-ups' time twice): with the first
/// look-up hanging until the client's timeout, every profile is already imported before the
/// look-up's retry answers, and the push still ends with every profile in the list, subscribed.
#[tokio::test]
async fn import_jobs_go_out_while_the_consent_look_ups_are_still_under_way() {
    let env = Env::start().await;
    let mut config = env.config();
    config.retry.timeout = std::time::Duration::from_secs(3);
    let target = KlaviyoTarget::new(config).unwrap();
    env.sandbox.sandbox.faults.push(
        Vendor::Klaviyo,
        Fault {
            kind: FaultKind::Timeout,
            count: 1,
            path_contains: Some("/api/profiles".into()),
        },
    );
    let started = Utc::now();
    let creates: Vec<_> = (0..250).map(create).collect();
    let report = target
        .apply(&plan(creates, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    assert_eq!(report.created, 250);
    assert_eq!(report.write_calls, 2, "one import job, one subscribe job");
    assert!(
        Utc::now() - started >= chrono::Duration::seconds(3),
        "the look-up waited out its timeout"
    );
    let profiles = env.sim().profiles();
    assert_eq!(profiles.len(), 250);
    for p in &profiles {
        assert!(
            p.created - started < chrono::Duration::seconds(3),
            "{:?} was imported {} ms after the start: after the look-ups",
            p.email,
            (p.created - started).num_milliseconds()
        );
        assert_eq!(p.email_marketing.consent, Consent::Subscribed);
    }
    assert_eq!(env.sim().list_members(&env.list_id).len(), 250);
}

/// The sync's owner tag is a profile property (name = the tag, value true): written in the import
/// jobs the plan already sends (creates and adoptions alike, no call of its own) and read back
/// as a tag, so mirror leaves profiles the sync never touched alone.
#[tokio::test]
async fn the_owner_tag_is_a_profile_property_written_in_the_import_and_read_back() {
    use audience_core::diff::{PlanOptions, plan_audience};
    use audience_core::{Consent as SourceConsent, Mode, SourceContact};
    const OWNER: &str = "audience-operator:shop/customers";
    let env = Env::start().await;
    let target = env.target();
    // Five list members from another tool (no owner property).
    let others: Vec<_> = (0..5)
        .map(|i| create_with(i, MemberStatus::Transactional))
        .collect();
    target
        .apply(&plan(others, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    let before = read_all(&target).await.unwrap();
    assert!(before.iter().all(|m| m.tags.is_empty()), "{before:?}");
    // The source has four of them and one new customer.
    let source: Vec<SourceContact> = [0, 1, 2, 3, 5]
        .into_iter()
        .map(|i| SourceContact {
            source_id: format!("c{i}"),
            email: email(i).as_str().to_string(),
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            consent: SourceConsent::NotSubscribed,
            ..Default::default()
        })
        .collect();
    let options = PlanOptions {
        mode: Mode::Mirror,
        mapping: audience_connectors::klaviyo::default_mapping(),
        owner_tag: Some(OWNER.to_string()),
        ..PlanOptions::default()
    };
    let p = plan_audience(&source, &before, options.clone());
    assert_eq!(
        (p.counts.create, p.counts.update, p.counts.adopted),
        (1, 0, 4)
    );
    assert_eq!((p.counts.archive, p.counts.not_managed), (0, 1));
    env.clear_stats();
    let report = target.apply(&p, &ApplyControl::default()).await.unwrap();
    assert_eq!(
        env.calls("POST", IMPORT_JOBS),
        1,
        "one import job for all five"
    );
    assert_eq!(env.calls("POST", SUBSCRIBE), 0);
    assert_eq!((report.created, report.updated, report.adopted), (1, 0, 4));
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let after = by_email(read_all(&target).await.unwrap());
    for i in [0, 1, 2, 3, 5] {
        let member = &after[email(i).as_str()];
        assert!(member.tags.contains(OWNER), "{i}: {:?}", member.tags);
    }
    assert!(after[email(4).as_str()].tags.is_empty());
    let again = plan_audience(&source, after.values(), options);
    assert!(again.is_empty(), "{:?}", again.counts);
    assert_eq!(again.counts.not_managed, 1);
}

#[tokio::test]
async fn members_by_email_reads_the_list_filtered_by_email_100_to_a_call() {
    let env = Env::start().await;
    let target = env.target();
    let creates: Vec<_> = (0..150).map(create).collect();
    target
        .apply(&plan(creates, vec![], vec![]), &ApplyControl::default())
        .await
        .unwrap();
    // Customer 0 leaves the list but stays a profile of the account: not a member.
    target
        .apply(
            &plan(vec![], vec![], vec![email(0)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    env.clear_stats();
    let asked: Vec<_> = (0..150).chain([1000, 1001]).map(email).collect();
    let found = target.members_by_email(&asked).await.unwrap();
    let mut emails: Vec<_> = found.iter().map(|m| m.email.clone()).collect();
    emails.sort();
    let mut expected: Vec<_> = (1..150).map(email).collect();
    expected.sort();
    assert_eq!(emails, expected);
    assert!(found.iter().all(|m| m.status == MemberStatus::Subscribed));
    // 152 emails: two filtered calls of the list's profiles, nothing else.
    assert_eq!(env.calls("GET", LIST_PROFILES), 2);
    assert_eq!(env.total(), 2);
}

#[tokio::test]
async fn a_named_list_is_looked_up_once_per_account_and_again_once_deleted() {
    let env = Env::start().await;
    let named = || {
        let mut config = env.config();
        config.list = ListRef::Name(LIST_NAME.into());
        KlaviyoTarget::new(config).unwrap()
    };
    let lookups = || env.calls("GET", "/api/lists");
    let first = named();
    first.info().await.unwrap();
    assert_eq!(lookups(), 1, "the first run looks the list up by name");
    assert_eq!(first.list_id(), Some(env.list_id.clone()));

    // A later run (its own connector, same account and list): no lookup, the id is known.
    let second = named();
    let info = second.info().await.unwrap();
    assert_eq!(info.name, LIST_NAME);
    assert_eq!(lookups(), 1);
    assert_eq!(second.list_id(), Some(env.list_id.clone()));

    // Someone deletes the list in Klaviyo and makes one of that name again: the next run's
    // known id answers 404, so it looks the name up again and reads the new list.
    assert!(env.sim().delete_list(&env.list_id));
    let new_id = env.sim().create_list(LIST_NAME, OptIn::Single);
    let third = named();
    third.info().await.unwrap();
    assert_eq!(third.list_id(), Some(new_id.clone()));
    assert_eq!(lookups(), 2);
    // And the one after it knows the new id.
    let fourth = named();
    fourth.info().await.unwrap();
    assert_eq!((fourth.list_id(), lookups()), (Some(new_id), 2));
}

/// The operator keeps a sync's target between runs (`reset_run_state` between them): profile ids
/// learnt by a run's reads serve that run, and a new run looks them up again (a profile deleted and
/// made anew has a new id; a big list's ids are not held between runs).
#[tokio::test]
async fn a_new_run_looks_profile_ids_up_again() {
    let (env, target) = members_read(3).await;
    let report = target
        .apply(
            &plan(vec![], vec![], vec![email(0)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.archived, 1);
    assert_eq!(env.total() - env.writes(), 0, "this run's read gave the id");

    target.reset_run_state().await;
    env.clear_stats();
    let report = target
        .apply(
            &plan(vec![], vec![], vec![email(1)]),
            &ApplyControl::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.archived, 1);
    assert_eq!(env.calls("GET", LIST_PROFILES), 1, "looked up afresh");
    assert_eq!(env.sim().list_members(&env.list_id).len(), 1);
}
