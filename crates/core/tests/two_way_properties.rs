//! Two-way consent: seed 004's rules as named cases, and properties over every starting point:
//! the sides end up agreeing, ten runs after that write nothing (no loops), and no run
//! resubscribes an unsubscribed or cleaned member directly.

use audience_core::diff::{AudiencePlanner, PlanOptions, TargetIndex};
use audience_core::plan::apply_to_members;
use audience_core::{
    Consent, ConsentPolicy, Email, FieldMapping, MemberConsent, MemberStatus, Plan,
    ResubscribePolicy, SourceContact, TargetMember, TwoWayOutcome, reconcile,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

mod strategies;
use strategies::{consent, status};

const EMAIL: &str = "ava@example.com";

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// One customer in the shop and (maybe) their member in Mailchimp, as the two vendors keep them.
#[derive(Debug, Clone)]
struct World {
    shop: Consent,
    shop_time: Option<DateTime<Utc>>,
    member: Option<(MemberStatus, MemberConsent)>,
}

/// The writes one run made.
#[derive(Debug, Default, PartialEq)]
struct Writes {
    shop: Option<Consent>,
    mailchimp: Option<MemberStatus>,
    outcome: Option<TwoWayOutcome>,
}

fn contact(world: &World) -> SourceContact {
    SourceContact {
        source_id: "gid://shopify/Customer/1".into(),
        email: EMAIL.into(),
        first_name: "Ava".into(),
        consent: world.shop,
        consented_at: world.shop_time,
        updated_at: t(0),
        ..Default::default()
    }
}

fn options() -> PlanOptions {
    PlanOptions {
        mapping: FieldMapping::default(),
        consent: ConsentPolicy {
            resubscribe: ResubscribePolicy::Pending,
            ..ConsentPolicy::default()
        },
        ..PlanOptions::default()
    }
}

/// One two-way run at `now`, applied as the vendors would apply it: the shop ignores a consent
/// time older than its own (Shopify keeps the most recent consent record); Mailchimp moves
/// `last_changed` on every write and `timestamp_opt` on a subscribe.
fn run(world: &mut World, first_sync: bool, now: DateTime<Utc>) -> Writes {
    let email = Email::parse(EMAIL).unwrap();
    let member = world.member.map(|(_, c)| c);
    let decided = reconcile(contact(world), &email, member.as_ref(), first_sync);
    let members: Vec<TargetMember> = world
        .member
        .iter()
        .map(|(status, _)| TargetMember {
            email: email.clone(),
            status: *status,
            fields: FieldMapping::default()
                .project(&contact(world))
                .into_iter()
                .collect(),
            tags: Default::default(),
        })
        .collect();
    let opts = options();
    let mut planner = AudiencePlanner::new(
        TargetIndex::from_members(&opts.mapping, &members),
        opts.clone(),
    );
    match &decided.contact {
        Some(c) => planner.observe(c),
        None => planner.leave_alone(&contact(world)),
    }
    let plan: Plan = planner.finish();
    let mut writes = Writes {
        outcome: Some(decided.outcome),
        ..Writes::default()
    };
    if let Some(write) = decided.source_write {
        let at = write.consented_at.unwrap_or(now);
        assert!(at <= now, "a consent time in the future");
        if world.shop_time.is_none_or(|current| at >= current) {
            world.shop = write.consent;
            world.shop_time = Some(at);
        }
        writes.shop = Some(write.consent);
    }
    let written = plan.creates.iter().chain(&plan.updates).next().cloned();
    if let Some(write) = written {
        let after = apply_to_members(&members, &plan);
        let status = after[0].status;
        let before = world.member.map(|(s, _)| s);
        let mut times = member.unwrap_or(MemberConsent {
            status,
            last_changed: None,
            opted_in_at: None,
        });
        times.status = status;
        times.last_changed = Some(now);
        if status == MemberStatus::Subscribed && before != Some(MemberStatus::Subscribed) {
            times.opted_in_at = Some(now);
        }
        world.member = Some((status, times));
        writes.mailchimp = Some(write.status.unwrap_or(status));
    }
    writes
}

fn member(status: MemberStatus, last_changed: i64, opted_in: Option<i64>) -> World {
    World {
        shop: Consent::NotSubscribed,
        shop_time: None,
        member: Some((
            status,
            MemberConsent {
                status,
                last_changed: Some(t(last_changed)),
                opted_in_at: opted_in.map(t),
            },
        )),
    }
}

fn shop(mut world: World, consent: Consent, at: Option<i64>) -> World {
    world.shop = consent;
    world.shop_time = at.map(t);
    world
}

fn mc_status(world: &World) -> Option<MemberStatus> {
    world.member.map(|(s, _)| s)
}

/// Ten runs after `world` settled: none writes anything.
fn assert_quiet(world: &mut World, from: i64) {
    for i in 0..10 {
        let w = run(world, false, t(from + i));
        assert_eq!(
            (w.shop, w.mailchimp),
            (None, None),
            "run {i} wrote: {w:?} in {world:?}"
        );
    }
}

// ------------------------------------------------------------ first sync (seed 004)

#[test]
fn first_sync_keeps_mailchimp_subscribers_and_subscribes_them_in_the_shop() {
    for was in [Consent::Unsubscribed, Consent::NotSubscribed] {
        // Even when the shop's "unsubscribed" is the later record.
        let mut world = shop(
            member(MemberStatus::Subscribed, 10, Some(10)),
            was,
            Some(50),
        );
        let w = run(&mut world, true, t(100));
        assert_eq!(w.outcome, Some(TwoWayOutcome::AlreadySubscribed));
        assert_eq!(w.shop, Some(Consent::Subscribed), "shop set subscribed");
        assert_eq!(w.mailchimp, None, "not sent again, not unsubscribed");
        assert_eq!(world.shop, Consent::Subscribed);
        assert_eq!(mc_status(&world), Some(MemberStatus::Subscribed));
        assert_quiet(&mut world, 101);
    }
}

#[test]
fn first_sync_gives_the_shop_mailchimps_consent_time_when_it_is_later() {
    let email = Email::parse(EMAIL).unwrap();
    let world = shop(
        member(MemberStatus::Subscribed, 30, Some(20)),
        Consent::NotSubscribed,
        Some(5),
    );
    let (_, mc) = world.member.unwrap();
    let decided = reconcile(contact(&world), &email, Some(&mc), true);
    let write = decided.source_write.expect("a write to the shop");
    assert_eq!(
        write.consented_at,
        Some(t(20)),
        "timestamp_opt, not last_changed"
    );
    // Older than the shop's own record: the shop would ignore it, so the write carries none.
    let world = shop(world, Consent::Unsubscribed, Some(40));
    let decided = reconcile(contact(&world), &email, Some(&mc), true);
    assert_eq!(decided.source_write.unwrap().consented_at, None);
}

#[test]
fn first_sync_does_not_send_subscribed_members_again() {
    let mut world = shop(
        member(MemberStatus::Subscribed, 10, Some(10)),
        Consent::Subscribed,
        Some(5),
    );
    let w = run(&mut world, true, t(100));
    assert_eq!(
        w,
        Writes {
            outcome: Some(TwoWayOutcome::AlreadySubscribed),
            ..Writes::default()
        }
    );
}

// ------------------------------------------------------------ ongoing (seed 004, Besonderheiten)

#[test]
fn new_customer_who_opted_in_at_checkout_arrives_subscribed() {
    let mut world = World {
        shop: Consent::Subscribed,
        shop_time: Some(t(1)),
        member: None,
    };
    let w = run(&mut world, false, t(2));
    assert_eq!(w.mailchimp, Some(MemberStatus::Subscribed));
    assert_eq!(w.shop, None);
    assert_quiet(&mut world, 3);
}

#[test]
fn new_customer_who_did_not_opt_in_arrives_transactional() {
    let mut world = World {
        shop: Consent::NotSubscribed,
        shop_time: None,
        member: None,
    };
    let w = run(&mut world, false, t(2));
    assert_eq!(w.mailchimp, Some(MemberStatus::Transactional));
    assert_eq!(w.shop, None);
    assert_quiet(&mut world, 3);
}

#[test]
fn mailchimp_subscriber_who_did_not_opt_in_again_at_checkout_stays_subscribed() {
    let mut world = shop(
        member(MemberStatus::Subscribed, 10, Some(10)),
        Consent::NotSubscribed,
        Some(50),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.mailchimp, None, "stays subscribed");
    assert_eq!(w.shop, Some(Consent::Subscribed), "the shop learns it");
    assert_quiet(&mut world, 61);
}

#[test]
fn unsubscribed_in_mailchimp_then_opted_in_at_checkout_is_set_pending() {
    let mut world = shop(
        member(MemberStatus::Unsubscribed, 10, None),
        Consent::Subscribed,
        Some(50),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.outcome, Some(TwoWayOutcome::PendingReconfirm));
    assert_eq!(
        w.mailchimp,
        Some(MemberStatus::Pending),
        "never subscribed directly"
    );
    assert_eq!(w.shop, None);
    assert_quiet(&mut world, 61);
}

#[test]
fn cleaned_address_is_never_resubscribed() {
    let mut world = shop(
        member(MemberStatus::Cleaned, 10, None),
        Consent::Subscribed,
        Some(50),
    );
    for i in 0..10 {
        let w = run(&mut world, i == 0, t(60 + i));
        assert_eq!(w.outcome, Some(TwoWayOutcome::CleanedKept));
        assert_eq!((w.shop, w.mailchimp), (None, None));
    }
    assert_eq!(mc_status(&world), Some(MemberStatus::Cleaned));
}

#[test]
fn unsubscribe_in_the_shop_reaches_mailchimp() {
    let mut world = shop(
        member(MemberStatus::Subscribed, 10, Some(10)),
        Consent::Unsubscribed,
        Some(50),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.mailchimp, Some(MemberStatus::Unsubscribed));
    assert_eq!(w.shop, None);
    assert_quiet(&mut world, 61);
}

#[test]
fn unsubscribe_in_mailchimp_reaches_the_shop() {
    let mut world = shop(
        member(MemberStatus::Unsubscribed, 50, Some(5)),
        Consent::Subscribed,
        Some(10),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.shop, Some(Consent::Unsubscribed));
    assert_eq!(w.mailchimp, None);
    assert_eq!(
        world.shop_time,
        Some(t(50)),
        "Mailchimp's time, not the run's"
    );
    assert_quiet(&mut world, 61);
}

#[test]
fn subscribe_in_mailchimp_reaches_the_shop() {
    let mut world = shop(
        member(MemberStatus::Subscribed, 50, Some(50)),
        Consent::Unsubscribed,
        Some(10),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.shop, Some(Consent::Subscribed));
    assert_eq!(w.mailchimp, None);
    assert_quiet(&mut world, 61);
}

#[test]
fn subscribe_in_the_shop_reaches_a_transactional_member() {
    let mut world = shop(
        member(MemberStatus::Transactional, 10, None),
        Consent::Subscribed,
        Some(50),
    );
    let w = run(&mut world, false, t(60));
    assert_eq!(w.mailchimp, Some(MemberStatus::Subscribed));
    assert_quiet(&mut world, 61);
}

#[test]
fn the_later_change_wins_and_ties_go_to_the_unsubscribe() {
    // Shop unsubscribed at 30; Mailchimp subscribed at 20 / 30 / 40.
    for (opted, expect_shop, expect_mc) in [
        (20, None, Some(MemberStatus::Unsubscribed)),
        (30, None, Some(MemberStatus::Unsubscribed)),
        (40, Some(Consent::Subscribed), None),
    ] {
        let mut world = shop(
            member(MemberStatus::Subscribed, opted, Some(opted)),
            Consent::Unsubscribed,
            Some(30),
        );
        let w = run(&mut world, false, t(60));
        assert_eq!(
            (w.shop, w.mailchimp),
            (expect_shop, expect_mc),
            "opted in at {opted}"
        );
    }
}

#[test]
fn a_name_edited_in_mailchimp_does_not_outvote_an_unsubscribe_in_the_shop() {
    // last_changed (a merge field edit at 90) is later than the shop's unsubscribe (50), the
    // opt-in (10) is not: the unsubscribe stands.
    let mut world = shop(
        member(MemberStatus::Subscribed, 90, Some(10)),
        Consent::Unsubscribed,
        Some(50),
    );
    let w = run(&mut world, false, t(100));
    assert_eq!(w.mailchimp, Some(MemberStatus::Unsubscribed));
    assert_eq!(w.shop, None);
}

// ------------------------------------------------------------ properties

fn time() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![Just(None), (0i64..50).prop_map(Some)]
}

fn world() -> impl Strategy<Value = World> {
    (
        consent(),
        time(),
        prop::option::of((status(), time(), time())),
    )
        .prop_map(|(shop, shop_time, member)| World {
            shop,
            shop_time: shop_time.map(t),
            member: member.map(|(status, changed, opted)| {
                (
                    status,
                    MemberConsent {
                        status,
                        last_changed: changed.map(t),
                        opted_in_at: opted.map(t),
                    },
                )
            }),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the start, one run settles it: the next ten write nothing.
    #[test]
    fn after_one_run_ten_more_write_nothing(mut w in world(), first in any::<bool>()) {
        run(&mut w, first, t(100));
        for i in 0..10 {
            let writes = run(&mut w, false, t(101 + i));
            prop_assert_eq!((writes.shop, writes.mailchimp), (None, None), "run {} in {:?}", i, w);
        }
    }

    /// No run resubscribes an unsubscribed or cleaned member directly, nor touches a cleaned one.
    #[test]
    fn never_resubscribes_directly(mut w in world(), first in any::<bool>()) {
        let before = mc_status(&w);
        run(&mut w, first, t(100));
        let after = mc_status(&w);
        if matches!(before, Some(MemberStatus::Unsubscribed | MemberStatus::Cleaned)) {
            prop_assert_ne!(after, Some(MemberStatus::Subscribed));
        }
        if before == Some(MemberStatus::Cleaned) {
            prop_assert_eq!(after, before);
        }
    }

    /// Outside the first sync, the shop is set subscribed only by a Mailchimp subscriber whose
    /// opt-in is later than the shop's own record (or the shop never decided).
    #[test]
    fn the_shop_is_subscribed_only_by_a_later_opt_in(w in world()) {
        let email = Email::parse(EMAIL).unwrap();
        let mc = w.member.map(|(_, c)| c);
        let decided = reconcile(contact(&w), &email, mc.as_ref(), false);
        if let Some(write) = decided.source_write
            && write.consent == Consent::Subscribed
        {
            let mc = mc.unwrap();
            prop_assert_eq!(mc.status, MemberStatus::Subscribed);
            let decided_before = matches!(w.shop, Consent::Unsubscribed);
            if decided_before {
                prop_assert!(mc.consent_time() > w.shop_time);
            }
        }
    }
}

#[test]
fn outcomes_are_counted() {
    let mut counts = audience_core::TwoWayCounts::default();
    for o in [
        TwoWayOutcome::ToSource,
        TwoWayOutcome::ToSource,
        TwoWayOutcome::PendingReconfirm,
        TwoWayOutcome::CleanedKept,
        TwoWayOutcome::InStep,
    ] {
        counts.add(o);
    }
    assert_eq!(
        (
            counts.to_source,
            counts.pending_reconfirm,
            counts.cleaned_kept
        ),
        (2, 1, 1)
    );
}
