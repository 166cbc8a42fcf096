//! The audience diff: a compact index of the target and a streaming planner over the source.
//!
//! The target is indexed by 8-byte fingerprints (email, each mapped field, each tag) with the
//! emails kept in one string arena, so a million-member audience costs tens of megabytes rather
//! than a copy of every record. Source contacts stream through [`AudiencePlanner::observe`]; only
//! the writes the plan needs are kept.
//!
//! # Ownership
//! An audience holds more than one sync's members: people join through the merchant's signup
//! forms, other tools and imports. Mirror mode must archive only what the sync itself manages,
//! or a run under the safety threshold silently removes subscribers it never added (other member
//! sync tools made exactly that mistake until they started tagging their own).
//!
//! A sync marks the members it manages with an **owner tag** ([`PlanOptions::owner_tag`]), a
//! tag stored on the member in the target itself (Mailchimp: a tag; Klaviyo: a profile property
//! of that name set to `true`, read back as a tag). Why a tag in the target and not a ledger of
//! what the sync created, kept in the operator's state:
//! - it survives the loss of the operator's state (a deleted and re-applied resource, a restored
//!   cluster): the audience itself says who is managed;
//! - a ledger of 100,000 emails does not fit in a Kubernetes object (etcd's 1.5 MiB);
//! - the merchant sees it in the vendor's UI, can segment on it, and can take a member out of the
//!   sync's hands by removing the tag.
//!
//! The planner then:
//! - treats a target member as managed when its tags contain the owner tag (compared as tags
//!   are, case-insensitively), or every member when [`PlanOptions::adopt_all`] is set;
//! - gives every create the owner tag (it travels with the create: no extra call);
//! - adds the owner tag to every source-matched member that lacks it (the sync manages what it
//!   updates); when that is the only change the write is an **adoption**
//!   ([`Plan::is_adoption`]), counted in [`PlanCounts::adopted`] and not as an update, so a
//!   status never claims field updates that did not happen;
//! - in mirror mode archives only managed members the source lacks; unmanaged ones are left
//!   alone and counted in [`PlanCounts::not_managed`] (in either mode);
//! - with `adopt_all` in upsert mode, tags every untagged member the source lacks too (in mirror
//!   mode those are archived instead, so tagging them first would be wasted calls).
//!
//! So the first run of a new mirror sync on an existing audience manages exactly the members the
//! source has, and the others stay the merchant's unless `adopt: all` says otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use nohash_hasher::BuildNoHashHasher;

use crate::contact::{Consent, SourceContact};
use crate::email::Email;
use crate::fingerprint;
use crate::mapping::{FieldMapping, FieldValue};
use crate::member::{MemberStatus, TargetMember};
use crate::plan::{
    ConsentPolicy, MemberWrite, Mode, Plan, PlanCounts, ResubscribePolicy, Skip, SkipReason,
};
use crate::prepare::newer_wins;

type FpMap<V> = HashMap<u64, V, BuildNoHashHasher<u64>>;

/// A fingerprint index of a target audience for one field mapping.
pub struct TargetIndex {
    fields: Vec<String>,
    blank_fp: u64,
    by_email: FpMap<u32>,
    /// Emails whose fingerprint collided with another's (astronomically rare, but exact anyway).
    collisions: HashMap<Box<str>, u32>,
    email_arena: String,
    email_ends: Vec<u32>,
    status: Vec<MemberStatus>,
    field_fps: Vec<u64>,
    tag_ends: Vec<u32>,
    tag_fps: Vec<u64>,
}

impl TargetIndex {
    /// An empty index comparing the fields `mapping` writes.
    pub fn new(mapping: &FieldMapping) -> TargetIndex {
        TargetIndex {
            fields: mapping
                .target_fields()
                .into_iter()
                .map(|(f, _)| f.to_string())
                .collect(),
            blank_fp: fingerprint::of_field(&FieldValue::Text(String::new())),
            by_email: FpMap::default(),
            collisions: HashMap::new(),
            email_arena: String::new(),
            email_ends: Vec::new(),
            status: Vec::new(),
            field_fps: Vec::new(),
            tag_ends: Vec::new(),
            tag_fps: Vec::new(),
        }
    }

    /// An empty index with room for `members` members (the target's reported size), so building it
    /// never holds two copies of a growing table. The size comes from the vendor, so the room
    /// reserved up front is capped at [`TargetIndex::MAX_RESERVED_MEMBERS`]: a bogus count (10^15)
    /// costs nothing, a real audience beyond the cap grows as it is read.
    pub fn with_capacity(mapping: &FieldMapping, members: usize) -> TargetIndex {
        let members = members.min(Self::MAX_RESERVED_MEMBERS);
        let mut index = TargetIndex::new(mapping);
        let n = index.fields.len();
        index.by_email.reserve(members);
        index.email_arena.reserve(members.saturating_mul(32));
        index.email_ends.reserve(members);
        index.status.reserve(members);
        index.field_fps.reserve(members.saturating_mul(n));
        index.tag_ends.reserve(members);
        index
    }

    /// The most members [`TargetIndex::with_capacity`] reserves room for (about 50 MiB of tables
    /// with a handful of mapped fields).
    pub const MAX_RESERVED_MEMBERS: usize = 500_000;

    /// Builds an index from members in one go.
    pub fn from_members<'m>(
        mapping: &FieldMapping,
        members: impl IntoIterator<Item = &'m TargetMember>,
    ) -> Self {
        let mut index = TargetIndex::new(mapping);
        for member in members {
            index.insert(member);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.status.len()
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
    }

    /// Members that count towards the audience size (archived excluded).
    pub fn active_len(&self) -> u64 {
        self.status
            .iter()
            .filter(|s| s.counts_towards_size())
            .count() as u64
    }

    /// Adds a member; a second member with the same email replaces the first's data.
    pub fn insert(&mut self, member: &TargetMember) {
        if let Some(slot) = self.lookup(&member.email) {
            self.replace(slot as usize, member);
            return;
        }
        let slot = self.status.len() as u32;
        self.email_arena.push_str(member.email.as_str());
        self.email_ends.push(self.email_arena.len() as u32);
        self.status.push(member.status);
        for field in &self.fields {
            let fp = member
                .fields
                .get(field)
                .map_or(self.blank_fp, fingerprint::of_field);
            self.field_fps.push(fp);
        }
        let tags_start = self.tag_fps.len();
        self.tag_fps
            .extend(member.tags.iter().map(|t| fingerprint::of_tag(t)));
        self.tag_fps[tags_start..].sort_unstable();
        self.tag_ends.push(self.tag_fps.len() as u32);
        let fp = fingerprint::of_email(member.email.as_str());
        match self.by_email.entry(fp) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(member.email.as_str().into(), slot);
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(slot);
            }
        }
    }

    /// A target that lists one email twice (real ones never do): the later listing wins.
    fn replace(&mut self, slot: usize, member: &TargetMember) {
        self.status[slot] = member.status;
        let n = self.fields.len();
        for (i, field) in self.fields.iter().enumerate() {
            self.field_fps[slot * n + i] = member
                .fields
                .get(field)
                .map_or(self.blank_fp, fingerprint::of_field);
        }
        let mut tags: Vec<u64> = member.tags.iter().map(|t| fingerprint::of_tag(t)).collect();
        tags.sort_unstable();
        self.replace_tags(slot, &tags);
    }

    fn replace_tags(&mut self, slot: usize, tags: &[u64]) {
        // Keep the arena's invariant (ends are non-decreasing) by rebuilding it; replacing a member
        // only happens when a target lists one email twice, which real targets never do.
        let mut rebuilt = Vec::with_capacity(self.tag_fps.len());
        let mut ends = Vec::with_capacity(self.tag_ends.len());
        for i in 0..self.tag_ends.len() {
            if i == slot {
                rebuilt.extend_from_slice(tags);
            } else {
                rebuilt.extend_from_slice(self.tags_of(i));
            }
            ends.push(rebuilt.len() as u32);
        }
        self.tag_fps = rebuilt;
        self.tag_ends = ends;
    }

    /// The slot of `email`, if the target has it.
    pub fn lookup(&self, email: &Email) -> Option<u32> {
        let fp = fingerprint::of_email(email.as_str());
        let slot = *self.by_email.get(&fp)?;
        if self.email_at(slot as usize) == email.as_str() {
            Some(slot)
        } else {
            self.collisions.get(email.as_str()).copied()
        }
    }

    fn email_at(&self, slot: usize) -> &str {
        let start = if slot == 0 {
            0
        } else {
            self.email_ends[slot - 1] as usize
        };
        &self.email_arena[start..self.email_ends[slot] as usize]
    }

    fn tags_of(&self, slot: usize) -> &[u64] {
        let start = if slot == 0 {
            0
        } else {
            self.tag_ends[slot - 1] as usize
        };
        &self.tag_fps[start..self.tag_ends[slot] as usize]
    }

    fn field_fp(&self, slot: usize, field: usize) -> u64 {
        self.field_fps[slot * self.fields.len() + field]
    }
}

/// What one source contact needs.
enum Outcome {
    Unchanged,
    Create(MemberWrite),
    Update(MemberWrite),
    Skip(SkipReason),
}

#[derive(Clone, Copy)]
enum Recorded {
    Unchanged,
    Create(u32),
    Update(u32),
    Skip(u32),
}

/// The source record that currently holds an email (24 bytes: a million of them stay small).
struct Seen {
    updated_at_micros: i64,
    /// Offset and length of the record's source id in the planner's id arena.
    id_start: u32,
    id_len: u32,
    recorded: Recorded,
}

/// Options of an audience plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub mode: Mode,
    pub mapping: FieldMapping,
    pub consent: ConsentPolicy,
    /// Only create missing members; leave existing ones untouched (a segment sync adding its
    /// members to the audience must not fight the audience sync over their fields).
    pub create_only: bool,
    /// The tag marking the members this sync manages (see the module docs, *Ownership*).
    /// `None`: the sync manages every member, so mirror archives anyone the source lacks (plans
    /// without a sync identity, e.g. tests of the diff itself).
    pub owner_tag: Option<String>,
    /// Treat every existing member as managed (`adopt: all`, on the sync's first run only): those
    /// without the owner tag get it, and mirror may archive them.
    pub adopt_all: bool,
    /// Source records last edited before this time were already applied by an earlier
    /// successful run of the same spec, so a difference the plan corrects on them was made in
    /// the target behind the sync's back: **drift**, counted apart from ordinary updates
    /// ([`PlanCounts::drift`]). `None` (a first run, a changed spec): nothing counts as drift.
    pub drift_since: Option<DateTime<Utc>>,
}

/// Streams source contacts against a [`TargetIndex`] and produces the [`Plan`].
pub struct AudiencePlanner {
    index: TargetIndex,
    options: PlanOptions,
    seen_in_target: Vec<Option<Seen>>,
    seen_new: HashMap<Email, Seen>,
    creates: Vec<Option<MemberWrite>>,
    updates: Vec<Option<MemberWrite>>,
    /// Per entry of `updates`: the write corrects drift.
    update_is_drift: Vec<bool>,
    skipped: Vec<Option<Skip>>,
    source_ids: String,
    field_fps: Vec<u64>,
    source_count: u64,
    /// Fingerprint of the owner tag, if the sync has one.
    owner_fp: Option<u64>,
    /// Updated members' status before, for updates that change it ([`Plan::previous_status`]).
    previous_status: BTreeMap<Email, MemberStatus>,
}

impl AudiencePlanner {
    pub fn new(index: TargetIndex, options: PlanOptions) -> Self {
        let seen_in_target = (0..index.len()).map(|_| None).collect();
        let owner_fp = options.owner_tag.as_deref().map(fingerprint::of_tag);
        AudiencePlanner {
            index,
            options,
            seen_in_target,
            seen_new: HashMap::new(),
            creates: Vec::new(),
            updates: Vec::new(),
            update_is_drift: Vec::new(),
            previous_status: BTreeMap::new(),
            skipped: Vec::new(),
            source_ids: String::new(),
            field_fps: Vec::new(),
            source_count: 0,
            owner_fp,
        }
    }

    /// The member in `slot` carries the owner tag.
    fn has_owner_tag(&self, slot: usize) -> bool {
        self.owner_fp
            .is_some_and(|fp| self.index.tags_of(slot).binary_search(&fp).is_ok())
    }

    /// The sync manages the member in `slot`: it has no owner tag (so it manages everyone), it
    /// adopts every member this run, or the member carries the tag.
    fn manages(&self, slot: usize) -> bool {
        self.owner_fp.is_none() || self.options.adopt_all || self.has_owner_tag(slot)
    }

    /// Takes one source contact into account.
    pub fn observe(&mut self, contact: &SourceContact) {
        self.source_count += 1;
        let email = match Email::parse(&contact.email) {
            Ok(email) => email,
            Err(invalid) => {
                self.skipped.push(Some(Skip {
                    email: contact.email.clone(),
                    source_id: contact.source_id.clone(),
                    reason: SkipReason::InvalidEmail {
                        detail: invalid.reason.to_string(),
                    },
                }));
                return;
            }
        };
        let slot = self.index.lookup(&email);
        // Two source customers with one email: the one edited last wins, whatever the read order.
        let previous = match slot {
            Some(slot) => self.seen_in_target[slot as usize].as_ref(),
            None => self.seen_new.get(&email),
        };
        if let Some(previous) = previous {
            let previous_id = &self.source_ids
                [previous.id_start as usize..(previous.id_start + previous.id_len) as usize];
            let previous_time = DateTime::<Utc>::from_timestamp_micros(previous.updated_at_micros)
                .unwrap_or_default();
            let (winner_id, loser) = if newer_wins(
                (&previous_time, previous_id),
                (&contact.updated_at, &contact.source_id),
            ) {
                let loser_id = previous_id.to_string();
                let recorded = previous.recorded;
                self.retract(recorded);
                (contact.source_id.clone(), loser_id)
            } else {
                let winner = previous_id.to_string();
                self.skipped.push(Some(Skip {
                    email: email.to_string(),
                    source_id: contact.source_id.clone(),
                    reason: SkipReason::DuplicateEmail {
                        winner_source_id: winner,
                    },
                }));
                return;
            };
            self.skipped.push(Some(Skip {
                email: email.to_string(),
                source_id: loser,
                reason: SkipReason::DuplicateEmail {
                    winner_source_id: winner_id,
                },
            }));
        }
        let outcome = self.evaluate(contact, &email, slot);
        let recorded = match outcome {
            Outcome::Unchanged => Recorded::Unchanged,
            Outcome::Create(write) => {
                self.creates.push(Some(write));
                Recorded::Create(self.creates.len() as u32 - 1)
            }
            Outcome::Update(write) => {
                let drift = self.is_drift(contact, &write);
                if let (Some(slot), Some(_)) = (slot, write.status) {
                    self.previous_status
                        .insert(email.clone(), self.index.status[slot as usize]);
                }
                self.updates.push(Some(write));
                self.update_is_drift.push(drift);
                Recorded::Update(self.updates.len() as u32 - 1)
            }
            Outcome::Skip(reason) => {
                self.skipped.push(Some(Skip {
                    email: email.to_string(),
                    source_id: contact.source_id.clone(),
                    reason,
                }));
                Recorded::Skip(self.skipped.len() as u32 - 1)
            }
        };
        let id_start = self.source_ids.len() as u32;
        self.source_ids.push_str(&contact.source_id);
        let seen = Seen {
            updated_at_micros: contact.updated_at.timestamp_micros(),
            id_start,
            id_len: contact.source_id.len() as u32,
            recorded,
        };
        match slot {
            Some(slot) => self.seen_in_target[slot as usize] = Some(seen),
            None => {
                self.seen_new.insert(email, seen);
            }
        }
    }

    /// A source record whose member the plan must not send again (two-way consent's first
    /// sync: a member already subscribed keeps its status and fields): no status or field write,
    /// only the owner tag when the member lacks it (an adoption, so later runs know the sync has
    /// handled it), else counted unchanged. Its member counts as one the source has (mirror never
    /// archives it).
    pub fn leave_alone(&mut self, contact: &SourceContact) {
        self.source_count += 1;
        let Ok(email) = Email::parse(&contact.email) else {
            return;
        };
        let slot = self.index.lookup(&email);
        let adopt = match (slot, &self.options.owner_tag) {
            (Some(slot), Some(owner)) if !self.has_owner_tag(slot as usize) => Some(owner.clone()),
            _ => None,
        };
        let recorded = match adopt {
            Some(owner) => {
                self.updates.push(Some(MemberWrite {
                    email: email.clone(),
                    source_id: contact.source_id.clone(),
                    status: None,
                    fields: BTreeMap::new(),
                    tags: BTreeSet::from([owner]),
                    unarchive: false,
                    consent_by_rule: false,
                    consented_at: None,
                }));
                self.update_is_drift.push(false);
                Recorded::Update(self.updates.len() as u32 - 1)
            }
            None => Recorded::Unchanged,
        };
        let id_start = self.source_ids.len() as u32;
        self.source_ids.push_str(&contact.source_id);
        let seen = Seen {
            updated_at_micros: contact.updated_at.timestamp_micros(),
            id_start,
            id_len: contact.source_id.len() as u32,
            recorded,
        };
        match slot {
            Some(slot) => self.seen_in_target[slot as usize] = Some(seen),
            None => {
                self.seen_new.insert(email, seen);
            }
        }
    }

    /// A record skipped before planning (e.g. the loser of a multi-source merge), reported with
    /// the plan's own skips.
    pub fn skip(&mut self, skip: Skip) {
        self.source_count += 1;
        self.skipped.push(Some(skip));
    }

    /// The update corrects a change made in the target: the source record is older than the
    /// drift baseline, and the write is more than an adoption.
    fn is_drift(&self, contact: &SourceContact, write: &MemberWrite) -> bool {
        let Some(since) = self.options.drift_since else {
            return false;
        };
        let adoption_only = write.status.is_none()
            && write.fields.is_empty()
            && !write.unarchive
            && write
                .tags
                .iter()
                .all(|t| self.options.owner_tag.as_deref() == Some(t.as_str()));
        contact.updated_at < since && !adoption_only
    }

    fn retract(&mut self, recorded: Recorded) {
        match recorded {
            Recorded::Unchanged => {}
            Recorded::Create(i) => self.creates[i as usize] = None,
            Recorded::Update(i) => self.updates[i as usize] = None,
            Recorded::Skip(i) => self.skipped[i as usize] = None,
        }
    }

    fn evaluate(&mut self, contact: &SourceContact, email: &Email, slot: Option<u32>) -> Outcome {
        let mapping = &self.options.mapping;
        let mut tags: BTreeSet<String> = if mapping.tags {
            contact
                .tags
                .iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        } else {
            BTreeSet::new()
        };
        // "No opt-out recorded" is decided by the sync's rule before anything else looks at it.
        let by_rule = contact.consent == Consent::NoOptOut;
        let consent = self.options.consent.resolve(contact.consent);
        let Some(slot) = slot else {
            // A new member takes the source's consent; one who never opted in is transactional.
            let status = match consent {
                Consent::Subscribed => MemberStatus::Subscribed,
                Consent::Unsubscribed => MemberStatus::Unsubscribed,
                Consent::NotSubscribed => MemberStatus::Transactional,
                Consent::Pending => MemberStatus::Pending,
                Consent::Cleaned => {
                    return Outcome::Skip(SkipReason::Undeliverable);
                }
                Consent::NoOptOut => unreachable!("resolved by the consent policy"),
            };
            // What the sync creates, it manages.
            if let Some(owner) = &self.options.owner_tag {
                tags.insert(owner.clone());
            }
            return Outcome::Create(MemberWrite {
                email: email.clone(),
                source_id: contact.source_id.clone(),
                status: Some(status),
                fields: mapping
                    .project(contact)
                    .into_iter()
                    .filter(|(_, v)| !v.is_blank())
                    .collect(),
                tags,
                unarchive: false,
                consent_by_rule: by_rule,
                consented_at: (status == MemberStatus::Subscribed).then(|| consent_time(contact)),
            });
        };
        let slot = slot as usize;
        let current = self.index.status[slot];
        if self.options.create_only && current != MemberStatus::Archived {
            return Outcome::Unchanged;
        }
        let (status, refusal) = next_status(current, consent, &self.options.consent);
        let unarchive = current == MemberStatus::Archived;
        mapping.project_fingerprints(contact, &mut self.field_fps);
        let differs = |i: usize| self.field_fps[i] != self.index.field_fp(slot, i);
        let changed_fields: BTreeMap<String, FieldValue> = if (0..self.field_fps.len()).any(differs)
        {
            mapping
                .project(contact)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| differs(*i))
                .map(|(_, field)| field)
                .collect()
        } else {
            BTreeMap::new()
        };
        let present = self.index.tags_of(slot);
        let mut new_tags: BTreeSet<String> = tags
            .into_iter()
            .filter(|t| present.binary_search(&fingerprint::of_tag(t)).is_err())
            .collect();
        // What the sync updates, it manages: a source-matched member lacking the owner tag gets it.
        if let Some(owner) = &self.options.owner_tag
            && !self.has_owner_tag(slot)
        {
            new_tags.insert(owner.clone());
        }
        if status.is_none() && changed_fields.is_empty() && new_tags.is_empty() {
            return match refusal {
                Some(reason) => Outcome::Skip(reason),
                None => Outcome::Unchanged,
            };
        }
        Outcome::Update(MemberWrite {
            email: email.clone(),
            source_id: contact.source_id.clone(),
            consent_by_rule: by_rule && status.is_some(),
            status,
            fields: changed_fields,
            tags: new_tags,
            unarchive,
            consented_at: (status == Some(MemberStatus::Subscribed)).then(|| consent_time(contact)),
        })
    }

    /// Ends the stream and returns the plan (archives computed for mirror mode).
    pub fn finish(mut self) -> Plan {
        let drifted: Vec<Email> = self
            .updates
            .iter()
            .zip(&self.update_is_drift)
            .filter_map(|(w, drift)| w.as_ref().filter(|_| *drift).map(|w| w.email.clone()))
            .collect();
        let mut plan = Plan {
            creates: std::mem::take(&mut self.creates)
                .into_iter()
                .flatten()
                .collect(),
            updates: std::mem::take(&mut self.updates)
                .into_iter()
                .flatten()
                .collect(),
            archives: Vec::new(),
            skipped: std::mem::take(&mut self.skipped)
                .into_iter()
                .flatten()
                .collect(),
            counts: PlanCounts::default(),
            history_import: false,
            owner_tag: self.options.owner_tag.clone(),
            drift: drifted,
            previous_status: std::mem::take(&mut self.previous_status),
        };
        let mut unchanged = 0u64;
        for seen in self.seen_in_target.iter().flatten() {
            if matches!(seen.recorded, Recorded::Unchanged) {
                unchanged += 1;
            }
        }
        unchanged += self
            .seen_new
            .values()
            .filter(|s| matches!(s.recorded, Recorded::Unchanged))
            .count() as u64;
        // Members the source lacks: mirror archives the managed ones; the others are left alone.
        let mut not_managed = 0u64;
        for (slot, seen) in self.seen_in_target.iter().enumerate() {
            if seen.is_some() || self.index.status[slot] == MemberStatus::Archived {
                continue;
            }
            if !self.manages(slot) {
                not_managed += 1;
                continue;
            }
            let email =
                || Email::parse(self.index.email_at(slot)).expect("indexed emails are valid");
            match (self.options.mode, &self.options.owner_tag) {
                (Mode::Mirror, _) => plan.archives.push(email()),
                // Adopting the whole audience: the members the source lacks are the sync's too.
                (Mode::Upsert, Some(owner))
                    if !self.has_owner_tag(slot) && !self.options.create_only =>
                {
                    plan.updates.push(MemberWrite {
                        email: email(),
                        source_id: String::new(),
                        status: None,
                        fields: BTreeMap::new(),
                        tags: BTreeSet::from([owner.clone()]),
                        unarchive: false,
                        consent_by_rule: false,
                        consented_at: None,
                    });
                }
                (Mode::Upsert, _) => {}
            }
        }
        plan.archives.sort();
        plan.creates.sort_by(|a, b| a.email.cmp(&b.email));
        plan.updates.sort_by(|a, b| a.email.cmp(&b.email));
        let rejected = plan
            .skipped
            .iter()
            .filter(|s| matches!(s.reason, SkipReason::InvalidEmail { .. }))
            .count();
        let adopted = plan.updates.iter().filter(|u| plan.is_adoption(u)).count() as u64;
        plan.drift.sort();
        plan.counts = PlanCounts {
            drift: plan.drift.len() as u64,
            source: self.source_count,
            target: self.index.active_len(),
            create: plan.creates.len() as u64,
            update: plan.updates.len() as u64 - adopted,
            adopted,
            not_managed,
            archive: plan.archives.len() as u64,
            unsubscribe: plan
                .updates
                .iter()
                .filter(|u| u.status == Some(MemberStatus::Unsubscribed))
                .count() as u64,
            unchanged,
            skipped: (plan.skipped.len() - rejected) as u64,
            rejected: rejected as u64,
            consent_by_rule: plan
                .creates
                .iter()
                .chain(&plan.updates)
                .filter(|w| w.consent_by_rule)
                .count() as u64,
        };
        plan
    }
}

/// The status to set on an existing member (if it changes), and the refusal to report when the
/// source asks for something consent rules forbid.
fn next_status(
    current: MemberStatus,
    source: Consent,
    policy: &ConsentPolicy,
) -> (Option<MemberStatus>, Option<SkipReason>) {
    use MemberStatus as M;
    let refused = Some(SkipReason::ResubscribeRefused {
        target_status: current,
    });
    match (current, source) {
        // An archived member comes back, with the source's consent.
        (M::Archived, Consent::Subscribed) => (Some(M::Subscribed), None),
        (M::Archived, Consent::Unsubscribed) => (Some(M::Unsubscribed), None),
        (M::Archived, Consent::Pending) => (Some(M::Pending), None),
        (M::Archived, Consent::NotSubscribed | Consent::Cleaned) => (Some(M::Transactional), None),
        // Bounced addresses are never mailed again, whatever the source says.
        (M::Cleaned, Consent::Subscribed | Consent::Pending) => (None, refused),
        (M::Cleaned, _) => (None, None),
        // The source knows the address bounced: a subscriber is unsubscribed (targets take no
        // "cleaned" from an API), so nobody stays subscribed whom any side knows undeliverable.
        (M::Subscribed | M::Pending, Consent::Cleaned) if policy.propagate_unsubscribes => {
            (Some(M::Unsubscribed), None)
        }
        // An unsubscribe is final for a sync: resubscribing takes the person's own confirmation.
        (M::Unsubscribed, Consent::Subscribed | Consent::Pending) => match policy.resubscribe {
            ResubscribePolicy::Skip => (None, refused),
            ResubscribePolicy::Pending => (Some(M::Pending), None),
        },
        (M::Unsubscribed, _) => (None, None),
        // Opt-outs are honoured.
        (M::Subscribed | M::Pending, Consent::Unsubscribed) if policy.propagate_unsubscribes => {
            (Some(M::Unsubscribed), None)
        }
        (M::Transactional, Consent::Unsubscribed) if policy.propagate_unsubscribes => {
            (Some(M::Unsubscribed), None)
        }
        // Opt-ins reach contacts who had not opted in.
        (M::Transactional, Consent::Subscribed) => (Some(M::Subscribed), None),
        (M::Transactional, Consent::Pending) => (Some(M::Pending), None),
        // A pending member waits for their own confirmation; a subscribed one stays subscribed
        // even when the source merely never recorded an opt-in.
        _ => (None, None),
    }
}

/// Plans an audience sync over whole collections (convenience over [`AudiencePlanner`]).
pub fn plan_audience<'s, 't>(
    source: impl IntoIterator<Item = &'s SourceContact>,
    target: impl IntoIterator<Item = &'t TargetMember>,
    options: PlanOptions,
) -> Plan {
    let index = TargetIndex::from_members(&options.mapping, target);
    let mut planner = AudiencePlanner::new(index, options);
    for contact in source {
        planner.observe(contact);
    }
    planner.finish()
}

/// When a subscribing contact consented: the source's consent time, else its last edit.
fn consent_time(contact: &SourceContact) -> chrono::DateTime<chrono::Utc> {
    contact.consented_at.unwrap_or(contact.updated_at)
}
