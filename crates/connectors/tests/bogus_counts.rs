//! A vendor's counts are only its word: Mailchimp's `total_items` of 10^15 neither sizes memory
//! nor makes the reader walk 10^12 empty pages.

mod vendor_faults_support;

use std::time::Duration;

use audience_core::{FieldMapping, Target, TargetIndex};
use audience_sandbox::{Fault, FaultKind, Vendor};
use vendor_faults_support::Rig;

const BOGUS: &str =
    r#"{"members": [], "total_items": 1000000000000000, "list_id": "faults-audience"}"#;

fn bogus_answer() -> FaultKind {
    FaultKind::Raw {
        status: 200,
        retry_after: None,
        content_type: Some("application/json".into()),
        body: BOGUS.into(),
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn a_bogus_total_items_sizes_a_bounded_index_and_a_finite_read() {
    let rig = Rig::start(Vendor::Mailchimp, 1500).await;
    let vendor_faults_support::Connector::Mailchimp(target) = &rig.connector else {
        unreachable!()
    };
    // The audience's size as the vendor (falsely) reports it.
    rig.fault(bogus_answer(), 1);
    let info = target.info().await.unwrap();
    assert_eq!(info.member_count, 1_000_000_000_000_000);
    // What the runner does with it: an index sized by the count, bounded.
    let index = TargetIndex::with_capacity(&FieldMapping::default(), info.member_count as usize);
    assert!(index.is_empty());

    // Every page of the live listing claims 10^15 members but the first is empty: the read ends.
    rig.sandbox().stats.clear();
    rig.sandbox().faults.push(
        Vendor::Mailchimp,
        Fault {
            kind: bogus_answer(),
            count: 1,
            path_contains: Some("/members".into()),
        },
    );
    let read = tokio::time::timeout(Duration::from_secs(30), rig.read())
        .await
        .expect("the read ends")
        .unwrap();
    // The live pass saw the bogus empty page; the archived pass reads the (empty) rest.
    assert!(read.len() <= 1500);
    let calls = rig.sandbox().stats.total(Vendor::Mailchimp);
    assert!(
        calls <= 20,
        "a bounded number of calls, not one per claimed page: {calls}"
    );

    // With honest answers again, every member is read.
    rig.read_whole().await.unwrap();
}
