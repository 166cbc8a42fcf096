//! A target's reported size (Mailchimp's `total_items`) is a vendor number: it may size what is
//! reserved up front, but never beyond a bound, so a bogus count cannot exhaust memory.

use audience_core::{Email, FieldMapping, MemberStatus, TargetIndex, TargetMember};

#[test]
fn a_bogus_member_count_reserves_a_bounded_index_that_still_grows() {
    let mapping = FieldMapping::default();
    // 10^15 members: before the bound this asked the allocator for petabytes (abort or panic).
    let mut index = TargetIndex::with_capacity(&mapping, 1_000_000_000_000_000);
    assert!(index.is_empty());
    // The largest count a 64-bit vendor number can carry does not overflow the arithmetic either.
    let _ = TargetIndex::with_capacity(&mapping, usize::MAX);

    // The index still takes members beyond what was reserved.
    for n in 0..1000 {
        let email = Email::parse(&format!("member{n}@example.com")).unwrap();
        index.insert(&TargetMember {
            email,
            status: MemberStatus::Subscribed,
            fields: Default::default(),
            tags: Default::default(),
        });
    }
    assert_eq!(index.len(), 1000);
}
