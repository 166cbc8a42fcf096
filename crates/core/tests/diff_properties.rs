//! Property tests of the audience diff: whatever the source and target hold, applying the plan
//! keeps the mode's promise, a second plan is empty, and consent is never violated.

use std::collections::{BTreeMap, BTreeSet};

use audience_core::diff::{PlanOptions, plan_audience};
use audience_core::plan::apply_to_members;
use audience_core::{
    Consent, ConsentPolicy, Email, FieldMapping, FieldValue, MemberStatus, Mode, NoOptInPolicy,
    ResubscribePolicy, SourceContact, TargetMember,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

mod strategies;
use strategies::{consent, status};

const NAMES: &[&str] = &["", "Ava", "Liam", "Zoë", " Mia ", "O'Neil"];
const TAGS: &[&str] = &["vip", "VIP", "wholesale", "news"];

fn pool_email(i: usize) -> String {
    format!("user{}@shop{}.com", i % 24, i % 3)
}

fn source_contacts() -> impl Strategy<Value = Vec<SourceContact>> {
    prop::collection::vec(
        (
            0usize..40,
            0usize..3,
            0usize..NAMES.len(),
            0usize..NAMES.len(),
            consent(),
            0i64..5,
            prop::collection::btree_set(0usize..TAGS.len(), 0..3),
        ),
        0..40,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(n, (e, variant, first, last, consent, minute, tags))| {
                // Variants of the same address: case, whitespace, and a few invalid ones.
                let email = match variant {
                    0 => pool_email(e),
                    1 => format!("  {} ", pool_email(e).to_uppercase()),
                    _ if e % 7 == 0 => format!("broken-{e}-at-nowhere"),
                    _ => pool_email(e),
                };
                SourceContact {
                    source_id: format!("src-{n}"),
                    email,
                    first_name: NAMES[first].to_string(),
                    last_name: NAMES[last].to_string(),
                    consent,
                    tags: tags.into_iter().map(|t| TAGS[t].to_string()).collect(),
                    updated_at: Utc
                        .with_ymd_and_hms(2026, 1, 1, 12, minute as u32, 0)
                        .unwrap(),
                    ..Default::default()
                }
            })
            .collect()
    })
}

fn target_members() -> impl Strategy<Value = Vec<TargetMember>> {
    // Keys below 24 map to distinct pool addresses: a real audience never lists one email twice.
    prop::collection::btree_map(
        0usize..24,
        (
            status(),
            0usize..NAMES.len(),
            prop::option::of(0usize..NAMES.len()),
            prop::collection::btree_set(0usize..TAGS.len(), 0..3),
        ),
        0..30,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(e, (status, first, last, tags))| {
                let mut fields = BTreeMap::new();
                fields.insert(
                    "FNAME".to_string(),
                    FieldValue::Text(NAMES[first].to_string()),
                );
                if let Some(last) = last {
                    fields.insert(
                        "LNAME".to_string(),
                        FieldValue::Text(NAMES[last].to_string()),
                    );
                }
                fields.insert(
                    "MMERGE9".to_string(),
                    FieldValue::Text("kept by hand".into()),
                );
                TargetMember {
                    email: Email::parse(&pool_email(e)).unwrap(),
                    status,
                    fields,
                    tags: tags.into_iter().map(|t| TAGS[t].to_string()).collect(),
                }
            })
            .collect()
    })
}

fn options() -> impl Strategy<Value = PlanOptions> {
    (
        prop_oneof![Just(Mode::Upsert), Just(Mode::Mirror)],
        any::<bool>(),
        prop_oneof![
            Just(ResubscribePolicy::Skip),
            Just(ResubscribePolicy::Pending)
        ],
        any::<bool>(),
        prop_oneof![
            Just(NoOptInPolicy::Transactional),
            Just(NoOptInPolicy::Subscribed)
        ],
    )
        .prop_map(
            |(mode, tags, resubscribe, propagate_unsubscribes, when_source_cannot_opt_in)| {
                PlanOptions {
                    mode,
                    mapping: FieldMapping {
                        tags,
                        ..FieldMapping::default()
                    },
                    consent: ConsentPolicy {
                        resubscribe,
                        propagate_unsubscribes,
                        when_source_cannot_opt_in,
                    },
                    create_only: false,
                    ..PlanOptions::default()
                }
            },
        )
}

const OWNER: &str = "audience-operator:shop/customers";

/// An audience split into members the sync manages (the owner tag, in any case) and members it
/// does not (signup forms, other tools).
fn owned_target() -> impl Strategy<Value = Vec<TargetMember>> {
    (target_members(), prop::collection::vec(0u8..3, 30)).prop_map(|(mut members, owned)| {
        for (member, owned) in members.iter_mut().zip(owned) {
            match owned {
                1 => {
                    member.tags.insert(OWNER.to_string());
                }
                2 => {
                    member.tags.insert(OWNER.to_uppercase());
                }
                _ => {}
            }
        }
        members
    })
}

fn owned_options() -> impl Strategy<Value = PlanOptions> {
    (options(), any::<bool>()).prop_map(|(options, adopt_all)| PlanOptions {
        owner_tag: Some(OWNER.to_string()),
        adopt_all,
        ..options
    })
}

fn is_managed(member: &TargetMember) -> bool {
    member.tags.iter().any(|t| t.eq_ignore_ascii_case(OWNER))
}

/// The source contact that should win for each valid email: edited last, ties to the larger id.
fn winners(source: &[SourceContact]) -> BTreeMap<Email, &SourceContact> {
    let mut winners: BTreeMap<Email, &SourceContact> = BTreeMap::new();
    for contact in source {
        let Ok(email) = Email::parse(&contact.email) else {
            continue;
        };
        let replace = match winners.get(&email) {
            None => true,
            Some(current) => {
                (contact.updated_at, &contact.source_id) > (current.updated_at, &current.source_id)
            }
        };
        if replace {
            winners.insert(email, contact);
        }
    }
    winners
}

fn field_text(member: &TargetMember, field: &str) -> String {
    match member.fields.get(field) {
        Some(FieldValue::Text(t)) => t.trim().to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn planning_again_after_applying_gives_an_empty_plan(
        source in source_contacts(), target in target_members(), options in options()
    ) {
        let plan = plan_audience(&source, &target, options.clone());
        let after = apply_to_members(&target, &plan);
        let again = plan_audience(&source, &after, options);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
    }

    #[test]
    fn applying_a_plan_keeps_the_modes_promise(
        source in source_contacts(), target in target_members(), options in options()
    ) {
        let plan = plan_audience(&source, &target, options.clone());
        let after = apply_to_members(&target, &plan);
        let by_email: BTreeMap<&Email, &TargetMember> = after.iter().map(|m| (&m.email, m)).collect();
        let before: BTreeMap<&Email, &TargetMember> = target.iter().map(|m| (&m.email, m)).collect();
        let winners = winners(&source);
        for (email, contact) in &winners {
            let known = before.contains_key(email);
            if !known && contact.consent == Consent::Cleaned {
                prop_assert!(!by_email.contains_key(email), "undeliverable {email} was created");
                continue;
            }
            let member = by_email.get(email);
            prop_assert!(member.is_some(), "{email} missing after apply");
            let member = member.unwrap();
            prop_assert_ne!(member.status, MemberStatus::Archived, "{} still archived", email);
            // The source wins on mapped fields.
            prop_assert_eq!(field_text(member, "FNAME"), contact.first_name.trim());
            prop_assert_eq!(field_text(member, "LNAME"), contact.last_name.trim());
            if options.mapping.tags {
                let have: BTreeSet<String> = member.tags.iter().map(|t| t.to_lowercase()).collect();
                for tag in &contact.tags {
                    prop_assert!(have.contains(&tag.to_lowercase()), "{email} lacks tag {tag}");
                }
            }
            // Fields the sync does not map are left alone.
            if let Some(old) = before.get(email) {
                prop_assert_eq!(old.fields.get("MMERGE9"), member.fields.get("MMERGE9"));
            }
        }
        match options.mode {
            Mode::Upsert => prop_assert!(plan.archives.is_empty()),
            Mode::Mirror => {
                for member in &after {
                    if member.status != MemberStatus::Archived {
                        prop_assert!(winners.contains_key(&member.email), "{} kept though source lacks it", member.email);
                    }
                }
            }
        }
    }

    #[test]
    fn no_plan_resubscribes_an_unsubscribed_or_cleaned_member(
        source in source_contacts(), target in target_members(), options in options()
    ) {
        let plan = plan_audience(&source, &target, options);
        let after = apply_to_members(&target, &plan);
        let after: BTreeMap<&Email, &TargetMember> = after.iter().map(|m| (&m.email, m)).collect();
        for member in &target {
            if matches!(member.status, MemberStatus::Unsubscribed | MemberStatus::Cleaned) {
                let now = after[&member.email].status;
                prop_assert_ne!(now, MemberStatus::Subscribed, "{} was resubscribed", member.email);
                if member.status == MemberStatus::Cleaned {
                    prop_assert!(matches!(now, MemberStatus::Cleaned | MemberStatus::Archived));
                }
            }
        }
        for write in plan.creates.iter().chain(&plan.updates) {
            if let Some(old) = target.iter().find(|m| m.email == write.email)
                && matches!(old.status, MemberStatus::Unsubscribed | MemberStatus::Cleaned)
            {
                prop_assert_ne!(write.status, Some(MemberStatus::Subscribed));
            }
        }
    }

    #[test]
    fn counts_match_the_plan_and_account_for_every_source_record(
        source in source_contacts(), target in target_members(), options in options()
    ) {
        let plan = plan_audience(&source, &target, options);
        let c = plan.counts;
        prop_assert_eq!(c.source, source.len() as u64);
        prop_assert_eq!(c.create, plan.creates.len() as u64);
        prop_assert_eq!(c.update + c.adopted, plan.updates.len() as u64);
        prop_assert_eq!(c.archive, plan.archives.len() as u64);
        prop_assert_eq!(c.create + c.update + c.adopted + c.unchanged + c.skipped + c.rejected, c.source);
        prop_assert_eq!(c.adopted, 0, "no owner tag, no adoption");
        prop_assert_eq!(c.not_managed, 0, "no owner tag: every member is managed");
        prop_assert_eq!(c.target, target.iter().filter(|m| m.status != MemberStatus::Archived).count() as u64);
        let by_rule = plan.creates.iter().chain(&plan.updates).filter(|w| w.consent_by_rule).count();
        prop_assert_eq!(c.consent_by_rule, by_rule as u64);
    }

    #[test]
    fn no_opt_out_recorded_never_makes_a_subscriber_unless_the_sync_says_so(
        source in source_contacts(), target in target_members(), options in options()
    ) {
        let plan = plan_audience(&source, &target, options.clone());
        let winners = winners(&source);
        for write in plan.creates.iter().chain(&plan.updates) {
            let contact = winners[&write.email];
            if contact.consent == Consent::NoOptOut
                && options.consent.when_source_cannot_opt_in == NoOptInPolicy::Transactional
            {
                prop_assert_ne!(write.status, Some(MemberStatus::Subscribed), "{} subscribed without an opt-in", write.email);
                prop_assert_ne!(write.status, Some(MemberStatus::Pending), "{} asked to confirm without an opt-in", write.email);
            }
            if write.consent_by_rule {
                prop_assert_eq!(contact.consent, Consent::NoOptOut);
            }
        }
    }

    #[test]
    fn mirror_archives_only_managed_members_the_source_lacks(
        source in source_contacts(), target in owned_target(), options in owned_options()
    ) {
        let options = PlanOptions { mode: Mode::Mirror, adopt_all: false, ..options };
        let plan = plan_audience(&source, &target, options.clone());
        let winners = winners(&source);
        let archived: BTreeSet<&Email> = plan.archives.iter().collect();
        let mut not_managed = 0u64;
        for member in &target {
            let gone = !winners.contains_key(&member.email) && member.status != MemberStatus::Archived;
            if !is_managed(member) {
                prop_assert!(!archived.contains(&member.email), "unmanaged {} archived", member.email);
                not_managed += u64::from(gone);
            } else if gone {
                prop_assert!(archived.contains(&member.email), "managed {} kept though the source lacks it", member.email);
            }
        }
        prop_assert_eq!(plan.counts.not_managed, not_managed);
        for email in &plan.archives {
            prop_assert!(!winners.contains_key(email), "{} archived though the source has it", email);
        }
        // Every create and every member the source has ends managed; nothing else gains the tag.
        let after = apply_to_members(&target, &plan);
        let before: BTreeMap<&Email, &TargetMember> = target.iter().map(|m| (&m.email, m)).collect();
        for member in &after {
            let expected = winners.contains_key(&member.email)
                || before.get(&member.email).is_some_and(|m| is_managed(m));
            prop_assert_eq!(is_managed(member), expected, "{} ownership", member.email);
        }
        let again = plan_audience(&source, &after, options);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
        prop_assert_eq!(again.counts.adopted, 0);
    }

    #[test]
    fn owned_plans_count_every_source_record_and_adoptions_only_add_the_tag(
        source in source_contacts(), target in owned_target(), options in owned_options()
    ) {
        let plan = plan_audience(&source, &target, options.clone());
        let c = plan.counts;
        let winners = winners(&source);
        let adoptions: Vec<_> = plan.updates.iter().filter(|u| plan.is_adoption(u)).collect();
        prop_assert_eq!(c.adopted, adoptions.len() as u64);
        prop_assert_eq!(c.update + c.adopted, plan.updates.len() as u64);
        let from_source = adoptions.iter().filter(|u| winners.contains_key(&u.email)).count() as u64;
        prop_assert_eq!(c.create + c.update + from_source + c.unchanged + c.skipped + c.rejected, c.source);
        for write in &adoptions {
            prop_assert!(write.status.is_none() && write.fields.is_empty() && !write.unarchive);
            prop_assert_eq!(write.tags.iter().collect::<Vec<_>>(), vec![OWNER]);
        }
        for write in &plan.creates {
            prop_assert!(write.tags.contains(OWNER), "{} created without the owner tag", write.email);
        }
        // Adopting all: nothing is left unmanaged; without it, mirror never archives an unmanaged member.
        if options.adopt_all {
            prop_assert_eq!(c.not_managed, 0);
        }
        let after = apply_to_members(&target, &plan);
        let again = plan_audience(&source, &after, PlanOptions { adopt_all: false, ..options });
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
    }
}
