//! Property tests of many sources feeding one audience (`audience_core::merge`): whatever the
//! sources say and whatever history of consent changes they go through, nobody ends subscribed
//! whom any source or the target knows unsubscribed or bounced, and two runs in a row over
//! unchanged sources plan nothing, for any field precedence.

use std::collections::{BTreeMap, BTreeSet};

use audience_core::diff::{AudiencePlanner, PlanOptions, TargetIndex};
use audience_core::plan::apply_to_members;
use audience_core::prepare::contact_wins;
use audience_core::{
    Attribute, Consent, ConsentPolicy, Email, FieldMapping, FieldPrecedence, MemberStatus, Mode,
    NoOptInPolicy, Plan, SourceContact, SourceMerger, TargetMember,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

mod strategies;
use strategies::{consent, status};

const NAMES: &[&str] = &["", "Ava", "Liam", "Zoë"];
const PHONES: &[&str] = &["", "+4930111", "+4930222"];
const SOURCES: [&str; 3] = ["store", "web", "crm"];

fn pool_email(i: usize) -> String {
    format!("user{}@shop.com", i % 8)
}

/// One source's customers (emails may repeat inside a source: the last edited wins there).
fn source(index: usize) -> impl Strategy<Value = Vec<SourceContact>> {
    prop::collection::vec(
        (
            0usize..8,
            0..NAMES.len(),
            0..PHONES.len(),
            consent(),
            0u32..5,
        ),
        0..10,
    )
    .prop_map(move |rows| {
        rows.into_iter()
            .enumerate()
            .map(|(n, (e, name, phone, consent, minute))| SourceContact {
                source_id: format!("{index}-{n}"),
                email: pool_email(e),
                first_name: NAMES[name].to_string(),
                phone: PHONES[phone].to_string(),
                consent,
                updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap(),
                ..Default::default()
            })
            .collect()
    })
}

fn sources() -> impl Strategy<Value = Vec<Vec<SourceContact>>> {
    (2usize..=3).prop_flat_map(|n| (0..n).map(source).collect::<Vec<_>>())
}

fn target() -> impl Strategy<Value = Vec<TargetMember>> {
    prop::collection::btree_map(0usize..8, (status(), 0..NAMES.len()), 0..8).prop_map(|rows| {
        rows.into_iter()
            .map(|(e, (status, name))| TargetMember {
                email: Email::parse(&pool_email(e)).unwrap(),
                status,
                fields: BTreeMap::from([(
                    "FNAME".to_string(),
                    audience_core::FieldValue::Text(NAMES[name].to_string()),
                )]),
                tags: BTreeSet::new(),
            })
            .collect()
    })
}

/// A random precedence: for each attribute either none (most recent wins) or a permutation of
/// some sources.
fn precedence() -> impl Strategy<Value = BTreeMap<Attribute, Vec<usize>>> {
    let order = prop::sample::subsequence(vec![0usize, 1, 2], 0..=3).prop_shuffle();
    (order.clone(), order).prop_map(|(first, phone)| {
        BTreeMap::from([(Attribute::FirstName, first), (Attribute::Phone, phone)])
    })
}

/// A consent change of one source's customer between rounds.
fn history() -> impl Strategy<Value = Vec<(usize, usize, Consent)>> {
    prop::collection::vec((0usize..3, 0usize..10, consent()), 0..6)
}

fn mapping() -> FieldMapping {
    FieldMapping {
        phone: Some("PHONE".into()),
        ..FieldMapping::default()
    }
}

fn options(mode: Mode, cannot_opt_in: NoOptInPolicy) -> PlanOptions {
    PlanOptions {
        mode,
        mapping: mapping(),
        consent: ConsentPolicy {
            when_source_cannot_opt_in: cannot_opt_in,
            ..ConsentPolicy::default()
        },
        owner_tag: Some("audience-operator:shop/merged".into()),
        adopt_all: true,
        ..PlanOptions::default()
    }
}

fn plan(
    sources: &[Vec<SourceContact>],
    target: &[TargetMember],
    precedence: &BTreeMap<Attribute, Vec<usize>>,
    options: PlanOptions,
) -> Plan {
    let names = SOURCES[..sources.len()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut merger = SourceMerger::new(names, FieldPrecedence::by_attribute(precedence.clone()));
    for (i, records) in sources.iter().enumerate() {
        for record in records {
            merger.observe(i, record.clone());
        }
    }
    let index = TargetIndex::from_members(&options.mapping, target);
    let mut planner = AudiencePlanner::new(index, options);
    merger.finish().observe_into(&mut planner);
    planner.finish()
}

/// What each source says about each email: its last edited record's consent.
fn says(sources: &[Vec<SourceContact>]) -> BTreeMap<Email, Vec<Consent>> {
    let mut says: BTreeMap<Email, Vec<Consent>> = BTreeMap::new();
    for records in sources {
        let mut winners: BTreeMap<Email, &SourceContact> = BTreeMap::new();
        for r in records {
            let email = Email::parse(&r.email).unwrap();
            match winners.get(&email) {
                Some(current) if !contact_wins(current, r) => {}
                _ => {
                    winners.insert(email, r);
                }
            }
        }
        for (email, r) in winners {
            says.entry(email).or_default().push(r.consent);
        }
    }
    says
}

fn is_mailable(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Subscribed | MemberStatus::Pending)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn nobody_ends_subscribed_whom_any_source_or_the_target_knows_unsubscribed_or_bounced(
        mut sources in sources(),
        mut members in target(),
        precedence in precedence(),
        history in history(),
        mirror in any::<bool>(),
        subscribe_by_rule in any::<bool>(),
    ) {
        let mode = if mirror { Mode::Mirror } else { Mode::Upsert };
        let rule = if subscribe_by_rule { NoOptInPolicy::Subscribed } else { NoOptInPolicy::Transactional };
        // Emails the target has ever held unsubscribed or bounced.
        let mut opted_out: BTreeSet<Email> = BTreeSet::new();
        let mut rounds = vec![None];
        rounds.extend(history.into_iter().map(Some));
        for change in rounds {
            if let Some((s, r, consent)) = change
                && let Some(record) = sources.get_mut(s).and_then(|records| records.get_mut(r))
            {
                record.consent = consent;
                record.updated_at += chrono::Duration::minutes(10);
            }
            opted_out.extend(
                members
                    .iter()
                    .filter(|m| matches!(m.status, MemberStatus::Unsubscribed | MemberStatus::Cleaned))
                    .map(|m| m.email.clone()),
            );
            let plan = plan(&sources, &members, &precedence, options(mode, rule));
            members = apply_to_members(&members, &plan);
            let says = says(&sources);
            for member in &members {
                let refused_by_a_source = says.get(&member.email).is_some_and(|c| {
                    c.iter().any(|c| matches!(c, Consent::Unsubscribed | Consent::Cleaned))
                });
                prop_assert!(
                    !(is_mailable(member.status) && refused_by_a_source),
                    "{} is {:?} though a source says {:?}",
                    member.email, member.status, says.get(&member.email)
                );
                prop_assert!(
                    !(member.status == MemberStatus::Subscribed && opted_out.contains(&member.email)),
                    "{} was unsubscribed or bounced in the target and is subscribed again",
                    member.email
                );
            }
        }
    }

    #[test]
    fn two_runs_over_unchanged_sources_plan_nothing_for_any_precedence(
        sources in sources(),
        members in target(),
        precedence in precedence(),
        mirror in any::<bool>(),
    ) {
        let mode = if mirror { Mode::Mirror } else { Mode::Upsert };
        let first = plan(&sources, &members, &precedence, options(mode, NoOptInPolicy::Transactional));
        let members = apply_to_members(&members, &first);
        let mut second_options = options(mode, NoOptInPolicy::Transactional);
        second_options.adopt_all = false;
        let second = plan(&sources, &members, &precedence, second_options);
        prop_assert!(
            second.creates.is_empty() && second.updates.is_empty() && second.archives.is_empty(),
            "second run plans {:?} creates, {:?} updates, {:?} archives",
            second.creates, second.updates, second.archives
        );
    }

    #[test]
    fn every_email_is_planned_once_whatever_the_read_order(
        sources in sources(),
        members in target(),
        precedence in precedence(),
    ) {
        let forward = plan(&sources, &members, &precedence, options(Mode::Upsert, NoOptInPolicy::Transactional));
        let reversed: Vec<Vec<SourceContact>> =
            sources.iter().map(|records| records.iter().rev().cloned().collect()).collect();
        let backward = plan(&reversed, &members, &precedence, options(Mode::Upsert, NoOptInPolicy::Transactional));
        prop_assert_eq!(&forward.creates, &backward.creates);
        prop_assert_eq!(&forward.updates, &backward.updates);
        let emails: Vec<&Email> = forward.creates.iter().chain(&forward.updates).map(|w| &w.email).collect();
        let unique: BTreeSet<&Email> = emails.iter().copied().collect();
        prop_assert_eq!(emails.len(), unique.len(), "one write per email");
    }
}
