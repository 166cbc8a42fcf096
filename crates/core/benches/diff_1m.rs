//! Diff of 1,000,000 source × 1,000,000 target contacts with 10% changed: time and peak memory.
//!
//! `cargo bench -p audience-core --bench diff_1m [-- N]`. Records are generated in chunks outside
//! the timed sections, so the figure is the index + plan work alone; peak memory is the process's
//! high-water RSS (VmHWM), which includes the generator's chunk buffers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use audience_core::diff::{AudiencePlanner, PlanOptions, TargetIndex};
use audience_core::{
    Consent, Email, FieldMapping, FieldValue, MemberStatus, SourceContact, TargetMember,
};
use chrono::{TimeZone, Utc};

const CHUNK: usize = 10_000;

fn email(i: usize) -> String {
    format!("customer.{i:07}@shop{}.example-mail.com", i % 17)
}

fn target_member(i: usize) -> TargetMember {
    let mut fields = BTreeMap::new();
    fields.insert(
        "FNAME".to_string(),
        FieldValue::Text(format!("First{}", i % 1000)),
    );
    fields.insert(
        "LNAME".to_string(),
        FieldValue::Text(format!("Last{}", i % 777)),
    );
    TargetMember {
        email: Email::parse(&email(i)).expect("generated emails are valid"),
        status: if i % 10 == 3 {
            MemberStatus::Transactional
        } else {
            MemberStatus::Subscribed
        },
        fields,
        tags: BTreeSet::new(),
    }
}

/// The source copy of member `i`; every tenth differs (a changed last name).
fn source_contact(i: usize) -> SourceContact {
    let changed = i.is_multiple_of(10);
    SourceContact {
        source_id: i.to_string(),
        email: email(i),
        first_name: format!("First{}", i % 1000),
        last_name: if changed {
            format!("Renamed{}", i % 777)
        } else {
            format!("Last{}", i % 777)
        },
        consent: if i % 10 == 3 {
            Consent::NotSubscribed
        } else {
            Consent::Subscribed
        },
        updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ..Default::default()
    }
}

fn peak_rss_mb() -> f64 {
    rss_mb("VmHWM:")
}

fn rss_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mapping = FieldMapping::default();
    let mut timed = Duration::ZERO;

    let mut index = TargetIndex::with_capacity(&mapping, n);
    for start in (0..n).step_by(CHUNK) {
        let chunk: Vec<TargetMember> = (start..(start + CHUNK).min(n)).map(target_member).collect();
        let t = Instant::now();
        for member in &chunk {
            index.insert(member);
        }
        timed += t.elapsed();
    }
    let index_time = timed;
    let index_rss = rss_mb("VmRSS:");

    let mut planner = AudiencePlanner::new(
        index,
        PlanOptions {
            mapping,
            ..Default::default()
        },
    );
    for start in (0..n).step_by(CHUNK) {
        let chunk: Vec<SourceContact> = (start..(start + CHUNK).min(n))
            .map(source_contact)
            .collect();
        let t = Instant::now();
        for contact in &chunk {
            planner.observe(contact);
        }
        timed += t.elapsed();
    }
    let planned_rss = rss_mb("VmRSS:");
    let t = Instant::now();
    let plan = planner.finish();
    timed += t.elapsed();

    assert_eq!(
        plan.counts.update as usize,
        n.div_ceil(10),
        "every tenth contact changed"
    );
    assert_eq!(plan.counts.create, 0);
    println!(
        "diff {n} x {n}: {:.3} s (index {:.3} s, plan {:.3} s), peak RSS {:.0} MB \
         (after indexing the target {index_rss:.0} MB, after the source {planned_rss:.0} MB), updates {}, unchanged {}",
        timed.as_secs_f64(),
        index_time.as_secs_f64(),
        (timed - index_time).as_secs_f64(),
        peak_rss_mb(),
        plan.counts.update,
        plan.counts.unchanged
    );
}
