//! Proptest strategies the property tests of the core share.

use audience_core::{Consent, MemberStatus};
use proptest::prelude::*;

/// Any consent a source can report.
pub fn consent() -> impl Strategy<Value = Consent> {
    prop_oneof![
        Just(Consent::Subscribed),
        Just(Consent::Unsubscribed),
        Just(Consent::NotSubscribed),
        Just(Consent::Pending),
        Just(Consent::Cleaned),
        Just(Consent::NoOptOut),
    ]
}

/// Any status a target member can have.
pub fn status() -> impl Strategy<Value = MemberStatus> {
    prop_oneof![
        Just(MemberStatus::Subscribed),
        Just(MemberStatus::Unsubscribed),
        Just(MemberStatus::Transactional),
        Just(MemberStatus::Pending),
        Just(MemberStatus::Cleaned),
        Just(MemberStatus::Archived),
    ]
}
