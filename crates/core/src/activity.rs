//! The activity log: one entry per record a run changed, kept as a bounded list of JSON lines.
//!
//! A run's plan (and what its apply refused) becomes [`ActivityEntry`]s ([`entries_of_plan`],
//! [`entries_of_segment`], [`entries_of_consent_writes`]); [`merge_lines`] appends them to the
//! log already stored, dropping the oldest lines until both caps hold ([`ActivityLimits`]). The
//! log is JSON lines so `kubectl get configmap … -o jsonpath` shows it as it is, and lines this
//! version cannot read (a newer operator's) are kept as they are, never rewritten.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connector::ApplyReport;
use crate::email::Email;
use crate::member::MemberStatus;
use crate::plan::{MemberWrite, Plan};
use crate::two_way::ConsentWrite;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Created,
    Updated,
    /// Only the sync's owner tag was added: the sync manages the member from now on.
    Adopted,
    Archived,
    SegmentAdded,
    SegmentRemoved,
    /// A consent written back to the source (two-way consent).
    ConsentWritten,
    /// An order's events (its metrics in [`ActivityEntry::fields`]) or the order itself (a
    /// Mailchimp store) recorded at the target (OrderSync).
    OrderSent,
    /// The side refused the write (its reason in [`ActivityEntry::reason`]).
    Rejected,
}

/// One change to one record in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityEntry {
    pub time: DateTime<Utc>,
    /// The run that made the change (the sync's run number, as its status counts them).
    #[serde(default)]
    pub run: String,
    /// The address, or its SHA-256 hex ([`hash_email`]) when the log is hashed.
    pub email: String,
    /// The side written: `mailchimp`, `klaviyo`, `shopify` (a two-way write-back).
    pub side: String,
    pub action: Action,
    /// Fields written (updates: only the changed ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The status set: `subscribed` for a create, `subscribed→unsubscribed` for a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Tags added (the owner tag included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// OrderSync: the source's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Why the side refused the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Two-way consent: when the shop's consent was last changed, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_consent_at: Option<DateTime<Utc>>,
    /// Two-way consent: when the target's consent was last changed, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_consent_at: Option<DateTime<Utc>>,
    /// The apply stopped early: the write may not have been made (the next run makes it if not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unconfirmed: bool,
}

impl ActivityEntry {
    fn new(time: DateTime<Utc>, email: &str, side: &str, action: Action) -> Self {
        ActivityEntry {
            time,
            run: String::new(),
            email: email.to_string(),
            side: side.to_string(),
            action,
            fields: Vec::new(),
            status: None,
            tags: Vec::new(),
            segment: None,
            order: None,
            reason: None,
            shop_consent_at: None,
            target_consent_at: None,
            unconfirmed: false,
        }
    }

    /// One line of the log: what the record's change was, for people.
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.action).to_lowercase();
        if let Some(status) = &self.status {
            out.push_str(&format!(" status {status}"));
        }
        if !self.fields.is_empty() {
            out.push_str(&format!(" fields {}", self.fields.join(",")));
        }
        if !self.tags.is_empty() {
            out.push_str(&format!(" tags {}", self.tags.join(",")));
        }
        if let Some(segment) = &self.segment {
            out.push_str(&format!(" segment {segment}"));
        }
        if let Some(order) = &self.order {
            out.push_str(&format!(" order {order}"));
        }
        if let Some(reason) = &self.reason {
            out.push_str(&format!(" ({reason})"));
        }
        if self.shop_consent_at.is_some() || self.target_consent_at.is_some() {
            let show =
                |t: &Option<DateTime<Utc>>| t.map_or("unknown".to_string(), |t| t.to_rfc3339());
            out.push_str(&format!(
                " [shop consent {}, target consent {}]",
                show(&self.shop_consent_at),
                show(&self.target_consent_at)
            ));
        }
        if self.unconfirmed {
            out.push_str(" (unconfirmed: the run stopped early)");
        }
        out
    }
}

/// The SHA-256 hex of the normalised address (a lookup hashes the address asked for the same
/// way, so it finds the entries whatever case it is typed in).
pub fn hash_email(email: &str) -> String {
    let normalised = Email::parse(email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|_| email.trim().to_lowercase());
    Sha256::digest(normalised.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entries of an applied audience plan, written to `side`. Writes the apply refused are
/// logged as [`Action::Rejected`] with the vendor's reason; a stopped apply marks its entries
/// [`ActivityEntry::unconfirmed`]. `previous` is the status each updated member had
/// ([`Plan::previous_status`]).
pub fn entries_of_plan(
    plan: &Plan,
    applied: &ApplyReport,
    side: &str,
    time: DateTime<Utc>,
) -> Vec<ActivityEntry> {
    let refused: BTreeMap<String, &str> = applied
        .rejected
        .iter()
        .map(|r| (normalise(&r.email), r.reason.as_str()))
        .collect();
    let mut entries = Vec::new();
    let mut push = |mut entry: ActivityEntry| {
        if let Some(reason) = refused.get(&entry.email) {
            entry.action = Action::Rejected;
            entry.reason = Some(reason.to_string());
        }
        entry.unconfirmed = applied.stopped_early;
        entries.push(entry);
    };
    for write in &plan.creates {
        let mut entry = of_write(write, side, time, Action::Created);
        entry.status = write.status.map(|s| s.as_str().to_string());
        push(entry);
    }
    for write in &plan.updates {
        let action = if plan.is_adoption(write) {
            Action::Adopted
        } else {
            Action::Updated
        };
        let mut entry = of_write(write, side, time, action);
        entry.status = write
            .status
            .map(|to| match plan.previous_status.get(&write.email) {
                Some(from) => format!("{}→{}", from.as_str(), to.as_str()),
                None => to.as_str().to_string(),
            });
        if write.unarchive && entry.status.is_none() {
            entry.status = Some(format!("{}→unarchived", MemberStatus::Archived.as_str()));
        }
        push(entry);
    }
    for email in &plan.archives {
        push(ActivityEntry::new(
            time,
            email.as_str(),
            side,
            Action::Archived,
        ));
    }
    entries
}

fn of_write(write: &MemberWrite, side: &str, time: DateTime<Utc>, action: Action) -> ActivityEntry {
    let mut entry = ActivityEntry::new(time, write.email.as_str(), side, action);
    entry.fields = write.fields.keys().cloned().collect();
    entry.tags = write.tags.iter().cloned().collect();
    entry
}

fn normalise(email: &str) -> String {
    Email::parse(email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|_| email.to_string())
}

/// The entries of an applied segment plan: who joined and left `segment`.
pub fn entries_of_segment(
    add: &[Email],
    remove: &[Email],
    segment: &str,
    side: &str,
    time: DateTime<Utc>,
) -> Vec<ActivityEntry> {
    let with = |email: &Email, action| {
        let mut entry = ActivityEntry::new(time, email.as_str(), side, action);
        entry.segment = Some(segment.to_string());
        entry
    };
    add.iter()
        .map(|e| with(e, Action::SegmentAdded))
        .chain(remove.iter().map(|e| with(e, Action::SegmentRemoved)))
        .collect()
}

/// The entries of events a target took (OrderSync): one per order and address, its metrics in
/// `fields`; `refused` maps an event's unique id to the target's reason, and an order with a
/// refused event gets a `Rejected` entry for it.
pub fn entries_of_order_events(
    events: &[crate::event::OrderEvent],
    refused: &BTreeMap<&str, &str>,
    side: &str,
    time: DateTime<Utc>,
) -> Vec<ActivityEntry> {
    let mut sent: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for event in events {
        let key = (event.email.as_str(), event.order_id.as_str());
        match refused.get(event.unique_id.as_str()) {
            Some(reason) => {
                let mut entry = ActivityEntry::new(time, key.0, side, Action::Rejected);
                entry.order = Some(key.1.to_string());
                entry.fields = vec![event.metric.clone()];
                entry.reason = Some((*reason).to_string());
                out.push(entry);
            }
            None => {
                let metrics = sent.entry(key).or_default();
                if !metrics.contains(&event.metric) {
                    metrics.push(event.metric.clone());
                }
            }
        }
    }
    for ((email, order), metrics) in sent {
        let mut entry = ActivityEntry::new(time, email, side, Action::OrderSent);
        entry.order = Some(order.to_string());
        entry.fields = metrics;
        out.push(entry);
    }
    out
}

/// The entry of one order a store took (OrderSync into Mailchimp e-commerce).
pub fn entry_of_order(
    email: &str,
    order_id: &str,
    side: &str,
    time: DateTime<Utc>,
) -> ActivityEntry {
    let mut entry = ActivityEntry::new(time, email, side, Action::OrderSent);
    entry.order = Some(order_id.to_string());
    entry
}

/// Both sides' consent times of one customer in a two-way run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentTimes {
    pub shop: Option<DateTime<Utc>>,
    pub target: Option<DateTime<Utc>>,
}

/// The consents written back to the shop (`side`), with both sides' times; `refused` are the
/// customers the shop refused, with its reason.
pub fn entries_of_consent_writes(
    writes: &[ConsentWrite],
    refused: &[crate::connector::RecordRejection],
    times: &BTreeMap<Email, ConsentTimes>,
    side: &str,
    time: DateTime<Utc>,
) -> Vec<ActivityEntry> {
    let refused: BTreeMap<String, &str> = refused
        .iter()
        .map(|r| (normalise(&r.email), r.reason.as_str()))
        .collect();
    writes
        .iter()
        .map(|w| {
            let mut entry =
                ActivityEntry::new(time, w.email.as_str(), side, Action::ConsentWritten);
            entry.status = Some(format!("{:?}", w.consent).to_lowercase());
            if let Some(t) = times.get(&w.email) {
                entry.shop_consent_at = t.shop;
                entry.target_consent_at = t.target;
            }
            if let Some(reason) = refused.get(w.email.as_str()) {
                entry.action = Action::Rejected;
                entry.reason = Some(reason.to_string());
            }
            entry
        })
        .collect()
}

/// How much of the log is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityLimits {
    pub max_entries: usize,
    /// Bytes of the serialised log (lines and their newlines).
    pub max_bytes: usize,
}

impl Default for ActivityLimits {
    /// 1,000 entries and 512 KiB: well under Kubernetes' 1 MiB object limit.
    fn default() -> Self {
        ActivityLimits {
            max_entries: 1_000,
            max_bytes: 512 * 1024,
        }
    }
}

/// Appends `new` to the stored log `existing` (JSON lines, oldest first) and drops the oldest
/// lines until both limits hold. Lines of `existing` are kept byte for byte.
pub fn merge_lines(existing: &str, new: &[ActivityEntry], limits: ActivityLimits) -> String {
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines.extend(
        new.iter()
            .map(|e| serde_json::to_string(e).expect("entries serialise")),
    );
    let mut bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut drop = lines.len().saturating_sub(limits.max_entries);
    for line in &lines[..drop] {
        bytes -= line.len() + 1;
    }
    while bytes > limits.max_bytes && drop < lines.len() {
        bytes -= lines[drop].len() + 1;
        drop += 1;
    }
    let mut out = String::with_capacity(bytes);
    for line in &lines[drop..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The entries of a stored log, oldest first; lines this version cannot read are skipped.
pub fn parse_lines(log: &str) -> Vec<ActivityEntry> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Replaces every entry's address by its hash ([`hash_email`]) and stamps the run.
pub fn stamp(entries: &mut [ActivityEntry], run: &str, hash_emails: bool) {
    for entry in entries {
        entry.run = run.to_string();
        if hash_emails {
            entry.email = hash_email(&entry.email);
        }
    }
}

/// The entries about `email` (asked as typed: normalised, and hashed when the log is), newest
/// first, at most `limit`.
pub fn lookup<'e>(
    entries: &'e [ActivityEntry],
    email: Option<&str>,
    hashed: bool,
    limit: usize,
) -> Vec<&'e ActivityEntry> {
    let wanted: Option<HashSet<String>> = email.map(|e| {
        let plain = normalise(e.trim());
        // A log written before hashing was turned on (or after it was turned off) may hold either.
        let mut set = HashSet::from([plain.clone(), hash_email(&plain)]);
        if hashed {
            set.remove(&plain);
        }
        set
    });
    entries
        .iter()
        .rev()
        .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.email)))
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::RecordRejection;
    use crate::mapping::FieldValue;
    use std::collections::BTreeSet;

    fn t() -> DateTime<Utc> {
        "2024-05-01T10:00:00Z".parse().unwrap()
    }

    fn order_event(
        email: &str,
        order: &str,
        kind: crate::event::OrderEventKind,
        line: &str,
    ) -> crate::event::OrderEvent {
        crate::event::OrderEvent {
            unique_id: format!("shopify:{order}:{kind:?}:{line}"),
            kind,
            metric: kind.metric_name("shopify").to_string(),
            source: "shopify".into(),
            email: Email::parse(email).unwrap(),
            person: Default::default(),
            order_id: order.into(),
            value: Default::default(),
            currency: "USD".into(),
            occurred_at: t(),
            backfill: false,
            properties: serde_json::Value::Null,
        }
    }

    #[test]
    fn an_order_sent_is_one_entry_with_its_metrics_and_a_refused_event_is_its_own() {
        use crate::event::OrderEventKind::*;
        let events = vec![
            order_event("ann@example.org", "1001", PlacedOrder, ""),
            order_event("ann@example.org", "1001", OrderedProduct, "1"),
            order_event("ann@example.org", "1001", OrderedProduct, "2"),
            order_event("bob@example.org", "1002", PlacedOrder, ""),
            order_event("bob@example.org", "1002", OrderedProduct, "1"),
        ];
        let refused_id = events[4].unique_id.clone();
        let refused = BTreeMap::from([(refused_id.as_str(), "profile is suppressed")]);
        let entries = entries_of_order_events(&events, &refused, "klaviyo", t());
        let ann: Vec<&ActivityEntry> = entries
            .iter()
            .filter(|e| e.email == "ann@example.org")
            .collect();
        assert_eq!(ann.len(), 1);
        assert_eq!(ann[0].action, Action::OrderSent);
        assert_eq!(ann[0].order.as_deref(), Some("1001"));
        assert_eq!(ann[0].fields, ["Placed Order", "Ordered Product"]);
        let bob: Vec<&ActivityEntry> = entries
            .iter()
            .filter(|e| e.email == "bob@example.org")
            .collect();
        assert_eq!(bob.len(), 2);
        assert!(bob.iter().any(|e| e.action == Action::Rejected
            && e.reason.as_deref() == Some("profile is suppressed")
            && e.fields == ["Ordered Product"]));
        assert!(
            bob.iter()
                .any(|e| e.action == Action::OrderSent && e.fields == ["Placed Order"])
        );
        assert!(
            ann[0].describe().contains("order 1001"),
            "{}",
            ann[0].describe()
        );
    }

    fn write(email: &str, status: Option<MemberStatus>, fields: &[&str]) -> MemberWrite {
        MemberWrite {
            email: Email::parse(email).unwrap(),
            source_id: "1".into(),
            status,
            fields: fields
                .iter()
                .map(|f| (f.to_string(), FieldValue::Text("x".into())))
                .collect(),
            tags: BTreeSet::new(),
            unarchive: false,
            consent_by_rule: false,
            consented_at: None,
        }
    }

    #[test]
    fn a_plan_becomes_one_entry_per_record() {
        let mut plan = Plan {
            creates: vec![write(
                "new@x.com",
                Some(MemberStatus::Subscribed),
                &["FNAME"],
            )],
            updates: vec![
                write("ann@x.com", None, &["FNAME", "LNAME"]),
                write("bob@x.com", Some(MemberStatus::Unsubscribed), &[]),
            ],
            archives: vec![Email::parse("gone@x.com").unwrap()],
            ..Plan::default()
        };
        plan.previous_status
            .insert(Email::parse("bob@x.com").unwrap(), MemberStatus::Subscribed);
        let applied = ApplyReport {
            rejected: vec![RecordRejection {
                email: "NEW@x.com".into(),
                reason: "Forgotten Email Not Subscribed".into(),
            }],
            ..ApplyReport::default()
        };
        let entries = entries_of_plan(&plan, &applied, "mailchimp", t());
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].action, Action::Rejected);
        assert_eq!(
            entries[0].reason.as_deref(),
            Some("Forgotten Email Not Subscribed")
        );
        assert_eq!(entries[1].action, Action::Updated);
        assert_eq!(entries[1].fields, vec!["FNAME", "LNAME"]);
        assert_eq!(entries[1].status, None);
        assert_eq!(
            entries[2].status.as_deref(),
            Some("subscribed→unsubscribed")
        );
        assert_eq!(entries[3].action, Action::Archived);
        assert!(
            entries
                .iter()
                .all(|e| e.side == "mailchimp" && !e.unconfirmed)
        );
    }

    #[test]
    fn hashing_normalises_and_lookup_finds_either_form() {
        assert_eq!(hash_email(" Ann@X.com "), hash_email("ann@x.com"));
        assert_eq!(hash_email("ann@x.com").len(), 64);
        let mut entries = vec![
            ActivityEntry::new(t(), "ann@x.com", "mailchimp", Action::Created),
            ActivityEntry::new(t(), "bob@x.com", "mailchimp", Action::Created),
        ];
        stamp(&mut entries, "3", true);
        assert!(
            entries
                .iter()
                .all(|e| !e.email.contains('@') && e.run == "3")
        );
        let found = lookup(&entries, Some("ANN@x.com"), true, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].email, hash_email("ann@x.com"));
        assert!(lookup(&entries, Some("carl@x.com"), true, 10).is_empty());
        assert_eq!(lookup(&entries, None, true, 1).len(), 1);
    }

    #[test]
    fn unreadable_lines_are_kept_verbatim() {
        let new = [ActivityEntry::new(
            t(),
            "a@x.com",
            "klaviyo",
            Action::Created,
        )];
        let merged = merge_lines("{\"future\":1}\n\n", &new, ActivityLimits::default());
        assert!(merged.starts_with("{\"future\":1}\n"));
        assert_eq!(parse_lines(&merged).len(), 1);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn entry(i: usize, pad: usize) -> ActivityEntry {
            let mut e =
                ActivityEntry::new(t(), &format!("p{i}@x.com"), "mailchimp", Action::Updated);
            e.run = i.to_string();
            e.fields = vec!["F".repeat(pad)];
            e
        }

        proptest! {
            #[test]
            fn never_over_the_caps_newest_kept_in_order(
                batches in proptest::collection::vec((0usize..40, 0usize..200), 1..12),
                max_entries in 1usize..60,
                max_bytes in 100usize..6_000,
            ) {
                let limits = ActivityLimits { max_entries, max_bytes };
                let mut log = String::new();
                let mut all = Vec::new();
                for (n, pad) in batches {
                    let new: Vec<ActivityEntry> =
                        (0..n).map(|k| entry(all.len() + k, pad)).collect();
                    all.extend(new.iter().cloned());
                    log = merge_lines(&log, &new, limits);
                    prop_assert!(log.len() <= max_bytes);
                    let kept = parse_lines(&log);
                    prop_assert!(kept.len() <= max_entries);
                    // What is kept is a suffix of everything logged: the newest, in order.
                    prop_assert_eq!(&all[all.len() - kept.len()..], &kept[..]);
                    // Nothing was dropped that fit: one more old entry would break a cap.
                    if kept.len() < all.len() {
                        let next = &all[all.len() - kept.len() - 1];
                        let line = serde_json::to_string(next).unwrap().len() + 1;
                        prop_assert!(
                            kept.len() + 1 > max_entries || log.len() + line > max_bytes
                        );
                    }
                }
            }
        }
    }
}
