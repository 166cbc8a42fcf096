//! Named scenarios from the vendors' help articles and the law, each a plan decision.

use std::collections::BTreeMap;

use audience_core::diff::{PlanOptions, plan_audience};
use audience_core::{
    Consent, ConsentPolicy, Email, FieldValue, MemberStatus, Mode, Plan, ResubscribePolicy,
    SafetyLimit, SegmentMode, SkipReason, SourceContact, TargetMember, plan_segment,
};
use chrono::{TimeZone, Utc};

fn contact(id: &str, email: &str, first: &str, consent: Consent, minute: u32) -> SourceContact {
    SourceContact {
        source_id: id.into(),
        email: email.into(),
        first_name: first.into(),
        last_name: "Berg".into(),
        consent,
        updated_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, minute, 0).unwrap(),
        ..Default::default()
    }
}

fn member(email: &str, first: &str, status: MemberStatus) -> TargetMember {
    let mut fields = BTreeMap::new();
    fields.insert("FNAME".into(), FieldValue::Text(first.into()));
    fields.insert("LNAME".into(), FieldValue::Text("Berg".into()));
    TargetMember {
        email: Email::parse(email).unwrap(),
        status,
        fields,
        tags: Default::default(),
    }
}

fn plan(
    source: &[SourceContact],
    target: &[TargetMember],
    mode: Mode,
    consent: ConsentPolicy,
) -> Plan {
    plan_audience(
        source,
        target,
        PlanOptions {
            mode,
            consent,
            ..Default::default()
        },
    )
}

#[test]
fn a_customer_who_never_opted_in_is_created_transactional_not_subscribed() {
    let p = plan(
        &[contact(
            "1",
            "ana@shop.com",
            "Ana",
            Consent::NotSubscribed,
            0,
        )],
        &[],
        Mode::Upsert,
        Default::default(),
    );
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.creates[0].status, Some(MemberStatus::Transactional));
}

#[test]
fn two_customers_with_one_email_the_last_edited_wins_and_the_other_is_reported() {
    let source = [
        contact("new", "Ana@Shop.com", "Anna", Consent::Subscribed, 30),
        contact("old", "ana@shop.com ", "Ana", Consent::Subscribed, 10),
    ];
    let p = plan(&source, &[], Mode::Upsert, Default::default());
    assert_eq!(p.creates.len(), 1);
    assert_eq!(p.creates[0].source_id, "new");
    assert_eq!(
        p.creates[0].fields["FNAME"],
        FieldValue::Text("Anna".into())
    );
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].source_id, "old");
    assert_eq!(
        p.skipped[0].reason,
        SkipReason::DuplicateEmail {
            winner_source_id: "new".into()
        }
    );
}

#[test]
fn an_invalid_email_is_rejected_and_never_sent() {
    let p = plan(
        &[contact("1", "not-an-email", "Ana", Consent::Subscribed, 0)],
        &[],
        Mode::Upsert,
        Default::default(),
    );
    assert!(p.creates.is_empty());
    assert_eq!(p.counts.rejected, 1);
    assert!(matches!(
        p.skipped[0].reason,
        SkipReason::InvalidEmail { .. }
    ));
}

#[test]
fn an_unsubscribed_member_is_not_resubscribed_unless_the_policy_asks_for_confirmation() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Unsubscribed)];
    let skip = plan(&source, &target, Mode::Upsert, Default::default());
    assert!(skip.is_empty());
    assert_eq!(
        skip.skipped[0].reason,
        SkipReason::ResubscribeRefused {
            target_status: MemberStatus::Unsubscribed
        }
    );

    let pending = plan(
        &source,
        &target,
        Mode::Upsert,
        ConsentPolicy {
            resubscribe: ResubscribePolicy::Pending,
            propagate_unsubscribes: true,
            ..ConsentPolicy::default()
        },
    );
    assert_eq!(pending.updates[0].status, Some(MemberStatus::Pending));
}

#[test]
fn a_cleaned_member_keeps_its_status_but_still_gets_the_sources_name() {
    let source = [contact("1", "ana@shop.com", "Anna", Consent::Subscribed, 0)];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Cleaned)];
    let p = plan(
        &source,
        &target,
        Mode::Upsert,
        ConsentPolicy {
            resubscribe: ResubscribePolicy::Pending,
            propagate_unsubscribes: true,
            ..ConsentPolicy::default()
        },
    );
    assert_eq!(p.updates.len(), 1);
    assert_eq!(p.updates[0].status, None);
    assert_eq!(p.updates[0].fields.keys().collect::<Vec<_>>(), ["FNAME"]);
}

#[test]
fn an_unsubscribe_in_the_source_unsubscribes_a_subscribed_member() {
    let source = [contact(
        "1",
        "ana@shop.com",
        "Ana",
        Consent::Unsubscribed,
        0,
    )];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Subscribed)];
    let p = plan(&source, &target, Mode::Upsert, Default::default());
    assert_eq!(p.updates[0].status, Some(MemberStatus::Unsubscribed));
    assert_eq!(p.counts.unsubscribe, 1);
}

#[test]
fn a_subscribed_member_stays_subscribed_when_the_source_never_recorded_an_opt_in() {
    let source = [contact(
        "1",
        "ana@shop.com",
        "Ana",
        Consent::NotSubscribed,
        0,
    )];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Subscribed)];
    assert!(plan(&source, &target, Mode::Upsert, Default::default()).is_empty());
}

#[test]
fn nothing_changed_means_an_empty_plan() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Subscribed)];
    let p = plan(&source, &target, Mode::Mirror, Default::default());
    assert!(p.is_empty());
    assert_eq!(p.counts.unchanged, 1);
}

#[test]
fn mirror_archives_members_the_source_no_longer_has_and_upsert_does_not() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [
        member("ana@shop.com", "Ana", MemberStatus::Subscribed),
        member("gone@shop.com", "Bo", MemberStatus::Subscribed),
        member("old@shop.com", "Cy", MemberStatus::Archived),
    ];
    let mirror = plan(&source, &target, Mode::Mirror, Default::default());
    assert_eq!(
        mirror.archives,
        vec![Email::parse("gone@shop.com").unwrap()]
    );
    assert!(
        plan(&source, &target, Mode::Upsert, Default::default())
            .archives
            .is_empty()
    );
}

#[test]
fn an_archived_member_comes_back_only_when_the_source_has_them() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [
        member("ana@shop.com", "Ana", MemberStatus::Archived),
        member("old@shop.com", "Cy", MemberStatus::Archived),
    ];
    let p = plan(&source, &target, Mode::Mirror, Default::default());
    assert_eq!(p.updates.len(), 1);
    assert!(p.updates[0].unarchive);
    assert_eq!(p.updates[0].email.as_str(), "ana@shop.com");
}

#[test]
fn the_safety_limit_stops_a_large_removal_until_that_plan_is_approved() {
    let target: Vec<TargetMember> = (0..100)
        .map(|i| member(&format!("m{i}@shop.com"), "X", MemberStatus::Subscribed))
        .collect();
    let p = plan(&[], &target, Mode::Mirror, Default::default());
    assert_eq!(p.counts.archive, 100);
    let limit = SafetyLimit {
        max_removal_share: 0.1,
        always_allowed: 10,
    };
    let stop = p.check_safety(&limit, None).unwrap_err();
    assert_eq!((stop.removals, stop.audience), (100, 100));
    assert!(p.check_safety(&limit, Some("someother")).is_err());
    assert!(p.check_safety(&limit, Some(&stop.plan_id)).is_ok());
}

#[test]
fn the_contact_limit_stops_a_plan_that_would_overflow_it() {
    let source: Vec<SourceContact> = (0..5)
        .map(|i| {
            contact(
                &i.to_string(),
                &format!("n{i}@shop.com"),
                "N",
                Consent::Subscribed,
                0,
            )
        })
        .collect();
    let target = [member("a@shop.com", "A", MemberStatus::Subscribed)];
    let p = plan(&source, &target, Mode::Upsert, Default::default());
    let err = p.check_capacity(Some(4)).unwrap_err();
    assert_eq!((err.would_hold, err.over), (6, 2));
    assert!(p.check_capacity(Some(6)).is_ok());
}

#[test]
fn segment_modes_keep_their_promises() {
    let e = |s: &str| Email::parse(s).unwrap();
    let source = [e("a@x.com"), e("b@x.com")];
    let target = [e("b@x.com"), e("c@x.com")];
    let exact = plan_segment(SegmentMode::Exact, &source, &target);
    assert_eq!(
        (exact.add, exact.remove),
        (vec![e("a@x.com")], vec![e("c@x.com")])
    );
    let union = plan_segment(SegmentMode::Union, &source, &target);
    assert_eq!((union.add, union.remove), (vec![e("a@x.com")], vec![]));
    let subtract = plan_segment(SegmentMode::Subtract, &source, &target);
    assert_eq!(
        (subtract.add, subtract.remove),
        (vec![], vec![e("b@x.com")])
    );
}

#[test]
fn a_segment_plan_removing_too_many_waits_for_approval_of_exactly_that_plan() {
    let e = |i: usize| Email::parse(&format!("m{i}@x.com")).unwrap();
    let target: Vec<Email> = (0..50).map(e).collect();
    let plan = plan_segment(SegmentMode::Exact, &target[..10], &target);
    let limit = SafetyLimit {
        max_removal_share: 0.1,
        always_allowed: 10,
    };
    let stop = plan.check_safety(&limit, None).unwrap_err();
    assert_eq!((stop.removals, stop.audience), (40, 50));
    assert!(plan.check_safety(&limit, Some("0000000000000000")).is_err());
    assert!(plan.check_safety(&limit, Some(&stop.plan_id)).is_ok());
    let small = plan_segment(SegmentMode::Exact, &target[..45], &target);
    assert!(small.check_safety(&limit, None).is_ok());
}

#[test]
fn a_subscribing_write_carries_the_sources_consent_time_else_its_last_edit() {
    let consented = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
    let mut with_time = contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0);
    with_time.consented_at = Some(consented);
    let without_time = contact("2", "bo@shop.com", "Bo", Consent::Subscribed, 5);
    let never = contact("3", "cy@shop.com", "Cy", Consent::NotSubscribed, 7);
    let p = plan(
        &[with_time, without_time.clone(), never],
        &[member("bo@shop.com", "Bo", MemberStatus::Transactional)],
        Mode::Upsert,
        Default::default(),
    );
    let create = |email: &str| {
        p.creates
            .iter()
            .find(|w| w.email.as_str() == email)
            .unwrap()
    };
    assert_eq!(create("ana@shop.com").consented_at, Some(consented));
    assert_eq!(
        create("cy@shop.com").consented_at,
        None,
        "no consent, no consent time"
    );
    assert_eq!(p.updates.len(), 1);
    assert_eq!(p.updates[0].status, Some(MemberStatus::Subscribed));
    assert_eq!(p.updates[0].consented_at, Some(without_time.updated_at));
    assert!(
        !p.history_import,
        "the planner never decides a history import"
    );
}

const OWNER: &str = "audience-operator:shop/customers";

fn owned(options: PlanOptions) -> PlanOptions {
    PlanOptions {
        owner_tag: Some(OWNER.into()),
        ..options
    }
}

fn tagged(mut member: TargetMember, tag: &str) -> TargetMember {
    member.tags.insert(tag.into());
    member
}

#[test]
fn a_member_who_joined_through_a_signup_form_is_never_archived_by_mirror() {
    // The sync created Ana and Bo (they carry its tag); Cy joined through a signup form.
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [
        tagged(
            member("ana@shop.com", "Ana", MemberStatus::Subscribed),
            OWNER,
        ),
        tagged(member("bo@shop.com", "Bo", MemberStatus::Subscribed), OWNER),
        member("cy@signup.net", "Cy", MemberStatus::Subscribed),
    ];
    let options = owned(PlanOptions {
        mode: Mode::Mirror,
        ..Default::default()
    });
    let p = plan_audience(&source, &target, options);
    assert_eq!(p.archives, vec![Email::parse("bo@shop.com").unwrap()]);
    assert!(
        p.updates.is_empty(),
        "the signup-form member is not touched"
    );
    assert_eq!((p.counts.not_managed, p.counts.unchanged), (1, 1));
    // Without an owner tag (no identity) mirror archives whatever the source lacks, as before.
    let unowned = plan(&source, &target, Mode::Mirror, Default::default());
    assert_eq!(unowned.archives.len(), 2);
}

#[test]
fn a_source_matched_member_without_the_tag_is_adopted_with_a_tag_only_write() {
    // Dee was in the audience before the sync existed; the source has her, unchanged.
    let source = [
        contact("1", "dee@shop.com", "Dee", Consent::Subscribed, 0),
        contact("2", "new@shop.com", "Neo", Consent::Subscribed, 0),
    ];
    let target = [member("dee@shop.com", "Dee", MemberStatus::Subscribed)];
    let p = plan_audience(
        &source,
        &target,
        owned(PlanOptions {
            mode: Mode::Mirror,
            ..Default::default()
        }),
    );
    assert_eq!(p.updates.len(), 1);
    let adoption = &p.updates[0];
    assert_eq!(adoption.email.as_str(), "dee@shop.com");
    assert!(adoption.status.is_none() && adoption.fields.is_empty());
    assert_eq!(adoption.tags.iter().collect::<Vec<_>>(), vec![OWNER]);
    assert!(p.is_adoption(adoption));
    // Counted apart: the status must not claim a field update that did not happen.
    assert_eq!((p.counts.update, p.counts.adopted), (0, 1));
    assert!(p.creates[0].tags.contains(OWNER), "creates carry the tag");
    // A member whose name changed gets the tag in the same write, as an ordinary update.
    let renamed = [member("dee@shop.com", "Dora", MemberStatus::Subscribed)];
    let p = plan_audience(&source[..1], &renamed, owned(PlanOptions::default()));
    assert_eq!((p.counts.update, p.counts.adopted), (1, 0));
    assert!(p.updates[0].tags.contains(OWNER) && p.updates[0].fields.contains_key("FNAME"));
}

#[test]
fn adopt_all_makes_every_existing_member_the_syncs_own() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 0)];
    let target = [
        member("ana@shop.com", "Ana", MemberStatus::Subscribed),
        member("old@import.net", "Ole", MemberStatus::Subscribed),
        member("gone@shop.com", "Gus", MemberStatus::Archived),
    ];
    // Mirror, adopting all: the member the source lacks is archived, not left alone.
    let mirror = plan_audience(
        &source,
        &target,
        owned(PlanOptions {
            mode: Mode::Mirror,
            adopt_all: true,
            ..Default::default()
        }),
    );
    assert_eq!(
        mirror.archives,
        vec![Email::parse("old@import.net").unwrap()]
    );
    assert_eq!((mirror.counts.adopted, mirror.counts.not_managed), (1, 0));
    // Upsert, adopting all: every live member gets the tag (archived ones are left alone), so a
    // later switch to mirror knows them as the sync's.
    let upsert = plan_audience(
        &source,
        &target,
        owned(PlanOptions {
            adopt_all: true,
            ..Default::default()
        }),
    );
    let adopted: Vec<&str> = upsert.updates.iter().map(|u| u.email.as_str()).collect();
    assert_eq!(adopted, vec!["ana@shop.com", "old@import.net"]);
    assert!(upsert.updates.iter().all(|u| upsert.is_adoption(u)));
    assert!(upsert.archives.is_empty());
    // Without adopt all, the import is not the sync's.
    let default = plan_audience(
        &source,
        &target,
        owned(PlanOptions {
            mode: Mode::Mirror,
            ..Default::default()
        }),
    );
    assert!(default.archives.is_empty());
    assert_eq!(default.counts.not_managed, 1);
}

#[test]
fn the_safety_share_counts_only_members_the_sync_manages() {
    // 30 managed members of whom the source lost 5, and 70 signup-form members: 5 of 30 is
    // 16.7%, above a 10% limit, though it is only 5% of the whole audience.
    let mut target: Vec<TargetMember> = (0..30)
        .map(|i| {
            tagged(
                member(&format!("m{i}@shop.com"), "X", MemberStatus::Subscribed),
                OWNER,
            )
        })
        .collect();
    target
        .extend((0..70).map(|i| member(&format!("f{i}@form.net"), "F", MemberStatus::Subscribed)));
    let source: Vec<SourceContact> = (5..30)
        .map(|i| {
            contact(
                &i.to_string(),
                &format!("m{i}@shop.com"),
                "X",
                Consent::Subscribed,
                0,
            )
        })
        .collect();
    let p = plan_audience(
        &source,
        &target,
        owned(PlanOptions {
            mode: Mode::Mirror,
            ..Default::default()
        }),
    );
    assert_eq!((p.counts.archive, p.counts.not_managed), (5, 70));
    let limit = SafetyLimit {
        max_removal_share: 0.1,
        always_allowed: 2,
    };
    let stop = p.check_safety(&limit, None).unwrap_err();
    assert_eq!((stop.removals, stop.audience), (5, 30));
}

#[test]
fn the_default_owner_tag_fits_mailchimps_limit_and_stays_distinct() {
    use audience_core::{OWNER_TAG_MAX, default_owner_tag};
    assert_eq!(
        default_owner_tag("shop", "customers"),
        "audience-operator:shop/customers"
    );
    let long_a = default_owner_tag("n".repeat(63).as_str(), &"a".repeat(200));
    let long_b = default_owner_tag("n".repeat(63).as_str(), &format!("{}b", "a".repeat(199)));
    assert_eq!(long_a.chars().count(), OWNER_TAG_MAX);
    assert_eq!(long_b.chars().count(), OWNER_TAG_MAX);
    assert_ne!(long_a, long_b);
    assert!(long_a.starts_with("audience-operator:nnn"));
}

#[test]
fn a_target_edit_of_a_record_unchanged_since_the_last_run_is_drift_and_a_source_edit_is_not() {
    // Both members were renamed in Mailchimp by hand; only Bo's source record changed since the
    // last successful run (10:30).
    let source = [
        contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 10),
        contact("2", "bo@shop.com", "Bo", Consent::Subscribed, 45),
    ];
    let target = [
        member(
            "ana@shop.com",
            "Anna (typed in Mailchimp)",
            MemberStatus::Subscribed,
        ),
        member("bo@shop.com", "Bob", MemberStatus::Subscribed),
    ];
    let options = |drift_since| PlanOptions {
        drift_since,
        ..Default::default()
    };
    let baseline = Utc.with_ymd_and_hms(2026, 3, 1, 10, 30, 0).unwrap();
    let p = plan_audience(&source, &target, options(Some(baseline)));
    assert_eq!(p.counts.update, 2, "the source wins both");
    assert_eq!(p.counts.drift, 1);
    assert_eq!(p.drift, vec![Email::parse("ana@shop.com").unwrap()]);
    // Without a baseline (a first run, or a changed spec) nothing is called drift.
    let first = plan_audience(&source, &target, options(None));
    assert_eq!((first.counts.update, first.counts.drift), (2, 0));
}

#[test]
fn taking_over_a_member_is_not_drift() {
    let source = [contact("1", "ana@shop.com", "Ana", Consent::Subscribed, 10)];
    let target = [member("ana@shop.com", "Ana", MemberStatus::Subscribed)];
    let p = plan_audience(
        &source,
        &target,
        PlanOptions {
            owner_tag: Some("audience-operator:shop/sync".into()),
            drift_since: Some(Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()),
            ..Default::default()
        },
    );
    assert_eq!((p.counts.adopted, p.counts.drift), (1, 0));
}
