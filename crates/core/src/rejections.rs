//! Records the target refused, remembered across runs so they are not sent again on every run.
//!
//! A vendor that refuses a record (Mailchimp's "looks fake or invalid", a Klaviyo phone number
//! that is not E.164) refuses it again when the same record comes back unchanged, and every run
//! would spend calls, and a rejection line, on it. So a sync keeps what was refused: the email, a
//! fingerprint of the write that was sent, the vendor's reason, and when. The next plan holds
//! back a write whose fingerprint is the remembered one (the source did not change it), until
//! [`RejectionPolicy::retry_after`] has passed since it was last tried; a changed record (another
//! fingerprint) is sent at once. Held records are skips with their remembered reason, so status
//! still shows them.
//!
//! The memory is bounded ([`RejectionPolicy::max_remembered`]): beyond it, the oldest are
//! forgotten and simply tried again, which costs calls, never data.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::connector::RecordRejection;
use crate::mapping::FieldValue;
use crate::plan::{MemberWrite, Plan, Skip, SkipReason};

/// One refused write, as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedRejection {
    pub email: String,
    /// Fingerprint of the write that was refused (hex), see [`write_fingerprint`].
    pub fingerprint: String,
    /// The vendor's words.
    pub reason: String,
    /// When this write was first refused.
    pub since: DateTime<Utc>,
    /// When it was last sent.
    pub last_tried: DateTime<Utc>,
}

/// How long a refused write is held back, and how many are remembered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RejectionPolicy {
    pub retry_after: Duration,
    pub max_remembered: usize,
}

impl Default for RejectionPolicy {
    fn default() -> Self {
        RejectionPolicy {
            retry_after: Duration::days(7),
            max_remembered: 500,
        }
    }
}

/// A stable fingerprint of what a write sends: its status, fields and tags (not the consent
/// time, which moves with the clock for some sources).
pub fn write_fingerprint(write: &MemberWrite) -> String {
    let mut h = Xxh3::new();
    h.update(write.email.as_str().as_bytes());
    h.update(&[0]);
    h.update(write.status.map_or("", |s| s.as_str()).as_bytes());
    for (field, value) in &write.fields {
        h.update(&[1]);
        h.update(field.as_bytes());
        h.update(&[2]);
        match value {
            FieldValue::Text(text) => h.update(text.as_bytes()),
            FieldValue::Address(a) => {
                for part in [
                    &a.line1,
                    &a.line2,
                    &a.city,
                    &a.region,
                    &a.postal_code,
                    &a.country,
                ] {
                    h.update(part.as_bytes());
                    h.update(&[3]);
                }
            }
        }
    }
    for tag in &write.tags {
        h.update(&[4]);
        h.update(tag.as_bytes());
    }
    format!("{:016x}", h.digest())
}

/// Takes out of `plan` the creates and updates the target refused before in exactly this form,
/// less than `policy.retry_after` ago; each becomes a skip with the remembered reason. Returns
/// the entries that held a write back (to be remembered again as they are).
pub fn hold_back(
    plan: &mut Plan,
    remembered: &[RememberedRejection],
    now: DateTime<Utc>,
    policy: &RejectionPolicy,
) -> Vec<RememberedRejection> {
    if remembered.is_empty() {
        return Vec::new();
    }
    let by_email: HashMap<&str, &RememberedRejection> =
        remembered.iter().map(|r| (r.email.as_str(), r)).collect();
    let mut held = Vec::new();
    let mut skips = Vec::new();
    let mut keep = |w: &MemberWrite| -> bool {
        let Some(r) = by_email.get(w.email.as_str()) else {
            return true;
        };
        if now - r.last_tried >= policy.retry_after || write_fingerprint(w) != r.fingerprint {
            return true;
        }
        held.push((*r).clone());
        skips.push(Skip {
            email: w.email.as_str().to_string(),
            source_id: w.source_id.clone(),
            reason: SkipReason::RejectedBefore {
                reason: r.reason.clone(),
            },
        });
        false
    };
    let creates_before = plan.creates.len();
    plan.creates.retain(&mut keep);
    let held_creates = creates_before - plan.creates.len();
    let unsubscribes_before = plan.updates.iter().filter(|w| is_unsubscribe(w)).count();
    let updates_before = plan.updates.len();
    plan.updates.retain(&mut keep);
    let held_updates = updates_before - plan.updates.len();
    let unsubscribes_after = plan.updates.iter().filter(|w| is_unsubscribe(w)).count();
    plan.counts.create -= held_creates as u64;
    plan.counts.update -= held_updates as u64;
    plan.counts.unsubscribe -= (unsubscribes_before - unsubscribes_after) as u64;
    plan.counts.skipped += skips.len() as u64;
    plan.skipped.extend(skips);
    held
}

fn is_unsubscribe(w: &MemberWrite) -> bool {
    w.status == Some(crate::member::MemberStatus::Unsubscribed)
}

/// The memory after a run: what this apply had refused (with the fingerprint of the write that
/// was sent; `since` kept when the same write was refused before), plus the entries that held a
/// write back this run. Everything else is forgotten: accepted on retry, or changed at the
/// source. Newest first, at most `policy.max_remembered`.
pub fn remember(
    previous: &[RememberedRejection],
    held: Vec<RememberedRejection>,
    sent: &Plan,
    refused: &[RecordRejection],
    now: DateTime<Utc>,
    policy: &RejectionPolicy,
) -> Vec<RememberedRejection> {
    let writes: HashMap<&str, &MemberWrite> = sent
        .creates
        .iter()
        .chain(&sent.updates)
        .map(|w| (w.email.as_str(), w))
        .collect();
    let before: HashMap<&str, &RememberedRejection> =
        previous.iter().map(|r| (r.email.as_str(), r)).collect();
    let mut memory: Vec<RememberedRejection> = Vec::new();
    for rejection in refused {
        // A rejection of something the plan did not write (e.g. consent refused for a profile
        // that was imported) is reported, not held: there is no write to hold back.
        let Some(write) = writes.get(rejection.email.as_str()) else {
            continue;
        };
        let fingerprint = write_fingerprint(write);
        let since = before
            .get(rejection.email.as_str())
            .filter(|r| r.fingerprint == fingerprint)
            .map_or(now, |r| r.since);
        memory.push(RememberedRejection {
            email: rejection.email.clone(),
            fingerprint,
            reason: rejection.reason.clone(),
            since,
            last_tried: now,
        });
    }
    memory.extend(held);
    memory.sort_by(|a, b| {
        b.last_tried
            .cmp(&a.last_tried)
            .then_with(|| a.email.cmp(&b.email))
    });
    memory.dedup_by(|a, b| a.email == b.email);
    memory.truncate(policy.max_remembered);
    memory
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::Email;
    use crate::member::MemberStatus;

    fn write(email: &str, first: &str) -> MemberWrite {
        MemberWrite {
            email: Email::parse(email).unwrap(),
            source_id: email.into(),
            status: Some(MemberStatus::Subscribed),
            fields: [("FNAME".to_string(), FieldValue::Text(first.into()))].into(),
            tags: Default::default(),
            unarchive: false,
            consent_by_rule: false,
            consented_at: None,
        }
    }

    fn plan_of(creates: Vec<MemberWrite>) -> Plan {
        let mut plan = Plan {
            creates,
            ..Plan::default()
        };
        plan.counts.create = plan.creates.len() as u64;
        plan
    }

    fn refused(email: &str) -> RecordRejection {
        RecordRejection {
            email: email.into(),
            reason: "looks fake or invalid".into(),
        }
    }

    #[test]
    fn a_refused_write_is_held_back_until_the_source_changes_it_or_the_wait_is_over() {
        let policy = RejectionPolicy::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let first = plan_of(vec![write("a@x.io", "Ann"), write("b@x.io", "Bob")]);
        let memory = remember(&[], Vec::new(), &first, &[refused("a@x.io")], t0, &policy);
        assert_eq!(memory.len(), 1);
        assert_eq!(memory[0].since, t0);

        // The same record an hour later: held back, a skip with the vendor's reason.
        let t1 = t0 + Duration::hours(1);
        let mut again = plan_of(vec![write("a@x.io", "Ann"), write("c@x.io", "Cy")]);
        let held = hold_back(&mut again, &memory, t1, &policy);
        assert_eq!(held.len(), 1);
        assert_eq!(again.creates.len(), 1);
        assert_eq!(again.counts.create, 1);
        assert_eq!(again.counts.skipped, 1);
        assert_eq!(
            again.skipped[0].reason.describe(),
            "the target refused this record before (looks fake or invalid); sent again when it changes at the source"
        );
        let memory = remember(&memory, held, &again, &[], t1, &policy);
        assert_eq!(memory.len(), 1, "still remembered while held");

        // Changed at the source: sent at once; accepted, so forgotten.
        let mut changed = plan_of(vec![write("a@x.io", "Anna")]);
        assert!(hold_back(&mut changed, &memory, t1, &policy).is_empty());
        assert_eq!(changed.creates.len(), 1);
        assert!(remember(&memory, Vec::new(), &changed, &[], t1, &policy).is_empty());

        // Unchanged but the wait is over: tried again; refused again, `since` stays.
        let late = t0 + policy.retry_after + Duration::seconds(1);
        let mut retry = plan_of(vec![write("a@x.io", "Ann")]);
        assert!(hold_back(&mut retry, &memory, late, &policy).is_empty());
        let memory = remember(
            &memory,
            Vec::new(),
            &retry,
            &[refused("a@x.io")],
            late,
            &policy,
        );
        assert_eq!((memory[0].since, memory[0].last_tried), (t0, late));
    }

    #[test]
    fn the_memory_is_bounded_newest_first() {
        let policy = RejectionPolicy {
            max_remembered: 3,
            ..RejectionPolicy::default()
        };
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let emails: Vec<String> = (0..5).map(|i| format!("m{i}@x.io")).collect();
        let plan = plan_of(emails.iter().map(|e| write(e, "X")).collect());
        let rejections: Vec<RecordRejection> = emails.iter().map(|e| refused(e)).collect();
        let memory = remember(&[], Vec::new(), &plan, &rejections, now, &policy);
        assert_eq!(memory.len(), 3);
    }

    #[test]
    fn a_rejection_without_a_write_is_not_held() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let memory = remember(
            &[],
            Vec::new(),
            &Plan::default(),
            &[refused("z@x.io")],
            now,
            &RejectionPolicy::default(),
        );
        assert!(memory.is_empty());
    }
}
