//! SMS subscribers and Mailchimp → shop new customers: seed 004's rules as properties over
//! every starting point. An SMS subscribe needs the shop's SMS consent after `since`; once a
//! pass's writes are applied the next pass writes nothing; write-back never creates a customer
//! the shop has (any letter case) or a member the sync created, and a second pass creates
//! nothing.

use std::collections::HashSet;

use audience_core::{
    AudienceMember, Email, MemberSms, MemberSmsStatus, MemberStatus, ShopCustomer, SmsChange,
    SmsConsent, SmsDecision, SmsSkip, SmsState, decide_sms, plan_customer_creates,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

const OWNER: &str = "audience-operator:shop/sync";

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn sms_state() -> impl Strategy<Value = SmsState> {
    prop_oneof![
        Just(SmsState::NotSubscribed),
        Just(SmsState::Pending),
        Just(SmsState::Subscribed),
        Just(SmsState::Unsubscribed),
        Just(SmsState::Redacted),
    ]
}

fn member_sms_status() -> impl Strategy<Value = Option<MemberSmsStatus>> {
    prop_oneof![
        Just(None),
        Just(Some(MemberSmsStatus::Subscribed)),
        Just(Some(MemberSmsStatus::Unsubscribed)),
        Just(Some(MemberSmsStatus::NonSubscribed)),
        Just(Some(MemberSmsStatus::Pending)),
    ]
}

fn phone() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("+49 170 1234567".to_string())),
        Just(Some("+491701234567".to_string())),
        Just(Some("0170 1234567".to_string())),
        Just(Some("+1 (555) 010-0199".to_string())),
        "[0-9 +()-]{0,18}".prop_map(Some),
    ]
}

fn customer() -> impl Strategy<Value = ShopCustomer> {
    (
        phone(),
        proptest::option::of((sms_state(), proptest::option::of(-100i64..100))),
    )
        .prop_map(|(phone, sms)| ShopCustomer {
            source_id: "gid://shopify/Customer/1".into(),
            email: Some("ava@example.com".into()),
            phone,
            sms: sms.map(|(state, at)| SmsConsent {
                state,
                updated_at: at.map(t),
            }),
        })
}

fn member() -> impl Strategy<Value = Option<MemberSms>> {
    proptest::option::of(
        (phone(), member_sms_status()).prop_map(|(phone, status)| MemberSms { phone, status }),
    )
}

/// Mailchimp after taking a write.
fn apply(member: &mut MemberSms, change: &SmsChange) {
    match change {
        SmsChange::Subscribe { phone } => {
            member.phone = Some(phone.clone());
            member.status = Some(MemberSmsStatus::Subscribed);
        }
        SmsChange::Unsubscribe => member.status = Some(MemberSmsStatus::Unsubscribed),
    }
}

proptest! {
    #[test]
    fn never_sms_subscribes_without_consent_after_since(
        customer in customer(), member in member(), since in -50i64..50,
    ) {
        let email = Email::parse("ava@example.com").unwrap();
        let decision = decide_sms(&customer, &email, member.as_ref(), t(since));
        if let SmsDecision::Write(w) = &decision {
            let consent = customer.sms.expect("a write needs a consent record");
            prop_assert!(consent.updated_at.is_some_and(|at| at > t(since)));
            match &w.change {
                SmsChange::Subscribe { phone } => {
                    prop_assert_eq!(consent.state, SmsState::Subscribed);
                    prop_assert!(phone.starts_with('+'));
                    prop_assert!(phone[1..].chars().all(|c| c.is_ascii_digit()));
                }
                SmsChange::Unsubscribe => prop_assert_eq!(consent.state, SmsState::Unsubscribed),
            }
            prop_assert!(member.is_some(), "no member, no SMS write");
        }
        if member.is_none() {
            prop_assert!(!matches!(decision, SmsDecision::Write(_)));
        }
    }

    #[test]
    fn a_pass_after_the_writes_writes_nothing(
        customer in customer(), member in member(), since in -50i64..50,
    ) {
        let email = Email::parse("ava@example.com").unwrap();
        let Some(mut member) = member else { return Ok(()) };
        if let SmsDecision::Write(w) = decide_sms(&customer, &email, Some(&member), t(since)) {
            apply(&mut member, &w.change);
        }
        for _ in 0..10 {
            let again = decide_sms(&customer, &email, Some(&member), t(since));
            prop_assert!(!matches!(again, SmsDecision::Write(_)), "{:?}", again);
        }
    }

    #[test]
    fn write_back_never_duplicates_and_is_idempotent(
        members in proptest::collection::vec(
            (0usize..6, any::<bool>(), any::<bool>(), 0usize..6, proptest::option::of(0i64..100)),
            0..12,
        ),
        shop in proptest::collection::vec((0usize..6, any::<bool>()), 0..6),
    ) {
        let names = ["ann", "bob", "cy", "dee", "eve", "fay"];
        let statuses = [
            MemberStatus::Subscribed, MemberStatus::Unsubscribed, MemberStatus::Transactional,
            MemberStatus::Pending, MemberStatus::Cleaned, MemberStatus::Archived,
        ];
        let members: Vec<AudienceMember> = members
            .into_iter()
            .map(|(who, upper, owned, status, opt)| AudienceMember {
                email: Email::parse(&if upper {
                    format!("{}@X.com", names[who].to_uppercase())
                } else {
                    format!("{}@x.com", names[who])
                })
                .unwrap(),
                status: statuses[status],
                tags: if owned { vec![OWNER.to_uppercase()] } else { vec!["vip".into()] },
                first_name: names[who].into(),
                last_name: String::new(),
                opted_in_at: opt.map(t),
                sms: MemberSms::default(),
            })
            .collect();
        let mut shop_emails: HashSet<Email> = shop
            .iter()
            .map(|(who, upper)| {
                let raw = format!("{}@x.com", names[*who]);
                Email::parse(&if *upper { raw.to_uppercase() } else { raw }).unwrap()
            })
            .collect();
        let creates = plan_customer_creates(&members, Some(OWNER), &shop_emails);
        let mut seen = HashSet::new();
        for c in &creates {
            prop_assert!(seen.insert(c.email.clone()), "created twice: {}", c.email.as_str());
            prop_assert!(!shop_emails.contains(&c.email));
            let sources: Vec<&AudienceMember> =
                members.iter().filter(|m| m.email == c.email).collect();
            prop_assert!(sources.iter().any(|m| m.tags.iter().all(|t| t != &OWNER.to_uppercase())
                && !matches!(m.status, MemberStatus::Archived | MemberStatus::Cleaned)));
            if c.subscribed {
                prop_assert!(sources.iter().any(|m| m.status == MemberStatus::Subscribed));
            }
        }
        shop_emails.extend(creates.iter().map(|c| c.email.clone()));
        prop_assert!(plan_customer_creates(&members, Some(OWNER), &shop_emails).is_empty());
        prop_assert!(plan_customer_creates(&members, None, &HashSet::new()).is_empty());
    }
}

#[test]
fn sms_from_the_date_only() {
    let email = Email::parse("ava@example.com").unwrap();
    let member = MemberSms::default();
    let at = |minutes| ShopCustomer {
        source_id: "gid://shopify/Customer/1".into(),
        email: Some("ava@example.com".into()),
        phone: Some("+49 170 1234567".into()),
        sms: Some(SmsConsent {
            state: SmsState::Subscribed,
            updated_at: Some(t(minutes)),
        }),
    };
    assert_eq!(
        decide_sms(&at(-1), &email, Some(&member), t(0)),
        SmsDecision::Skip(SmsSkip::BeforeSince)
    );
    assert_eq!(
        decide_sms(&at(0), &email, Some(&member), t(0)),
        SmsDecision::Skip(SmsSkip::BeforeSince)
    );
    match decide_sms(&at(1), &email, Some(&member), t(0)) {
        SmsDecision::Write(w) => assert_eq!(
            w.change,
            SmsChange::Subscribe {
                phone: "+491701234567".into()
            }
        ),
        other => panic!("{other:?}"),
    }
    let mut bad = at(1);
    bad.phone = Some("0170 1234567".into());
    assert!(matches!(
        decide_sms(&bad, &email, Some(&member), t(0)),
        SmsDecision::Reject(r) if r.contains("country code")
    ));
    let mut unsubscribed = at(1);
    unsubscribed.sms.as_mut().unwrap().state = SmsState::Unsubscribed;
    let subscribed = MemberSms {
        phone: Some("+491701234567".into()),
        status: Some(MemberSmsStatus::Subscribed),
    };
    assert!(matches!(
        decide_sms(&unsubscribed, &email, Some(&subscribed), t(0)),
        SmsDecision::Write(w) if w.change == SmsChange::Unsubscribe
    ));
}
