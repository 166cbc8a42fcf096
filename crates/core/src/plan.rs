//! The plan: exactly what a sync will write, why it skips what it skips, and its counts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::contact::Consent;
use crate::email::Email;
use crate::mapping::FieldValue;
use crate::member::MemberStatus;

/// How an audience sync treats members the source does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Create and update; never remove.
    #[default]
    Upsert,
    /// Also archive members the source no longer has.
    Mirror,
}

/// What to do when the source says "subscribed" for someone the target knows unsubscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResubscribePolicy {
    /// Leave them unsubscribed and report the skip.
    #[default]
    Skip,
    /// Set them `pending`, so the vendor asks the person to confirm (double opt-in).
    Pending,
}

/// How a customer is added when the source can record an opt-out but not an opt-in
/// ([`Consent::NoOptOut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NoOptInPolicy {
    /// A transactional (non-marketing) contact: receipts yes, campaigns only once they opt in.
    /// Under GDPR and CAN-SPAM practice the absence of an opt-out is not an opt-in.
    #[default]
    Transactional,
    /// A subscriber, as the vendors' own apps do (Lightspeed's Mailchimp app, seed 001).
    Subscribed,
}

/// The consent rules a plan follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicy {
    pub resubscribe: ResubscribePolicy,
    /// An unsubscribe in the source unsubscribes the member (the law: opt-outs must be honoured).
    pub propagate_unsubscribes: bool,
    /// What a source's "no opt-out recorded" means.
    #[serde(default)]
    pub when_source_cannot_opt_in: NoOptInPolicy,
}

impl ConsentPolicy {
    /// The consent a plan acts on: the source's own, with "no opt-out recorded" decided by
    /// [`ConsentPolicy::when_source_cannot_opt_in`].
    pub fn resolve(&self, consent: Consent) -> Consent {
        match (consent, self.when_source_cannot_opt_in) {
            (Consent::NoOptOut, NoOptInPolicy::Transactional) => Consent::NotSubscribed,
            (Consent::NoOptOut, NoOptInPolicy::Subscribed) => Consent::Subscribed,
            (other, _) => other,
        }
    }
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        ConsentPolicy {
            resubscribe: ResubscribePolicy::Skip,
            propagate_unsubscribes: true,
            when_source_cannot_opt_in: NoOptInPolicy::Transactional,
        }
    }
}

/// One member to create or update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberWrite {
    pub email: Email,
    pub source_id: String,
    /// New members: the status to create them with. Existing members: the status to set, if it changes.
    pub status: Option<MemberStatus>,
    /// The fields to write: every mapped field for a new member, only the changed ones otherwise.
    pub fields: BTreeMap<String, FieldValue>,
    /// Tags to add.
    pub tags: BTreeSet<String>,
    /// The member existed, archived: writing it brings it back.
    pub unarchive: bool,
    /// The status was decided by `when_source_cannot_opt_in` (the source records no opt-in).
    #[serde(default)]
    pub consent_by_rule: bool,
    /// When the person consented, for a write that subscribes them: the source's consent time,
    /// else the source record's last edit (the consent stood then). Vendors that import history
    /// (Klaviyo's `historical_import`) need a consent time in the past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<DateTime<Utc>>,
}

/// Why a source record leads to no write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SkipReason {
    /// The email is not a valid address (a rejected record: never sent).
    InvalidEmail { detail: String },
    /// Another source customer with the same email was edited more recently.
    DuplicateEmail { winner_source_id: String },
    /// The member unsubscribed (or bounced) in the target and the source says subscribed.
    ResubscribeRefused { target_status: MemberStatus },
    /// The source marks the address undeliverable (bounced, invalid or redacted): not created.
    Undeliverable,
    /// The target refused this very write before (see [`crate::rejections`]): held back until
    /// the source changes it or the wait is over.
    RejectedBefore { reason: String },
}

impl SkipReason {
    /// A short CamelCase code for status and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::InvalidEmail { .. } => "InvalidEmail",
            SkipReason::DuplicateEmail { .. } => "DuplicateEmail",
            SkipReason::ResubscribeRefused { .. } => "ResubscribeRefused",
            SkipReason::Undeliverable => "Undeliverable",
            SkipReason::RejectedBefore { .. } => "RejectedBefore",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SkipReason::InvalidEmail { detail } => format!("invalid email: {detail}"),
            SkipReason::DuplicateEmail { winner_source_id } => {
                format!("same email as the more recently edited customer {winner_source_id}")
            }
            SkipReason::ResubscribeRefused { target_status } => format!(
                "member is {} in the target; a sync never resubscribes them",
                target_status.as_str()
            ),
            SkipReason::Undeliverable => "the source marks the address undeliverable".to_string(),
            SkipReason::RejectedBefore { reason } => format!(
                "the target refused this record before ({reason}); sent again when it changes at the source"
            ),
        }
    }
}

/// A source record that leads to no write, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    /// The email as the source gave it (possibly invalid).
    pub email: String,
    pub source_id: String,
    pub reason: SkipReason,
}

/// The numbers of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanCounts {
    /// Source records read.
    pub source: u64,
    /// Target members counting towards the audience size (archived excluded).
    pub target: u64,
    pub create: u64,
    pub update: u64,
    pub archive: u64,
    /// Updates that unsubscribe (also counted in `update`).
    pub unsubscribe: u64,
    pub unchanged: u64,
    /// Duplicates and consent refusals.
    pub skipped: u64,
    /// Invalid emails.
    pub rejected: u64,
    /// Creates and status changes whose consent the sync's `when_source_cannot_opt_in` rule
    /// decided, because the source records no opt-in (also counted in `create` / `update`).
    #[serde(default)]
    pub consent_by_rule: u64,
    /// Existing members the sync starts managing with no other change: the owner tag added
    /// ([`Plan::is_adoption`]; in `updates`, not counted in `update`).
    #[serde(default)]
    pub adopted: u64,
    /// Members the source lacks that the sync does not manage (no owner tag): left alone, never
    /// archived.
    #[serde(default)]
    pub not_managed: u64,
    /// Updates that correct a change made in the target behind the sync's back (also counted in
    /// `update`): the source record had not changed since the last successful run.
    #[serde(default)]
    pub drift: u64,
}

/// What an audience sync will do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub creates: Vec<MemberWrite>,
    pub updates: Vec<MemberWrite>,
    pub archives: Vec<Email>,
    pub skipped: Vec<Skip>,
    pub counts: PlanCounts,
    /// The sync's first full push: a history import. Vendors that can mark consent as historical
    /// do so, so the import fires no "added to list" welcome flows (seed 003) and sends no
    /// confirmation mail. Set by the runner, not the planner.
    #[serde(default)]
    pub history_import: bool,
    /// The tag marking the members the sync manages (see `diff`'s module docs); `None` when the
    /// sync manages every member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_tag: Option<String>,
    /// Updated members whose difference was made in the target behind the sync's back (see
    /// `PlanOptions::drift_since`); a subset of `updates`, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Email>,
    /// The status each updated member had before, for the updates that change it (the activity
    /// log shows `subscribed→unsubscribed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub previous_status: BTreeMap<Email, MemberStatus>,
}

/// The longest owner tag: Mailchimp's limit on tag names (100 characters), the strictest target.
pub const OWNER_TAG_MAX: usize = 100;

/// The default owner tag of the sync `namespace/name`: `audience-operator:{namespace}/{name}`.
/// Kubernetes names can make that longer than [`OWNER_TAG_MAX`]; then the name is cut and an
/// 8-byte hash of the whole identity appended, so two long names never share a tag. The tag is
/// derived from the identity alone (not the uid), so a deleted and re-applied sync keeps its members.
pub fn default_owner_tag(namespace: &str, name: &str) -> String {
    let full = format!("audience-operator:{namespace}/{name}");
    if full.chars().count() <= OWNER_TAG_MAX {
        return full;
    }
    let hash = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(full.as_bytes()));
    let keep = OWNER_TAG_MAX - hash.len() - 1;
    let prefix: String = full.chars().take(keep).collect();
    format!("{prefix}~{hash}")
}

/// The most of an audience one run may archive or unsubscribe before it stops and asks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SafetyLimit {
    /// Share of the audience, 0.0 to 1.0.
    pub max_removal_share: f64,
    /// Removals up to this many are always allowed (small audiences would trip any share).
    pub always_allowed: u64,
}

impl SafetyLimit {
    /// The one safety rule for every kind of plan: `removals` out of `population` pass when few
    /// enough; above the limit only an approval naming `plan_id` lets them through.
    pub fn check(
        &self,
        removals: u64,
        population: u64,
        plan_id: impl FnOnce() -> String,
        approved: Option<&str>,
    ) -> Result<(), SafetyStop> {
        if removals <= self.always_allowed {
            return Ok(());
        }
        let share = if population == 0 {
            1.0
        } else {
            removals as f64 / population as f64
        };
        if share <= self.max_removal_share {
            return Ok(());
        }
        let plan_id = plan_id();
        if approved == Some(plan_id.as_str()) {
            return Ok(());
        }
        Err(SafetyStop {
            removals,
            audience: population,
            share: share * 100.0,
            limit: self.max_removal_share * 100.0,
            plan_id,
        })
    }
}

/// A stable id of a set of removed emails (order-independent).
pub fn removal_id<'e>(emails: impl IntoIterator<Item = &'e str>) -> String {
    let mut removed: Vec<&str> = emails.into_iter().collect();
    removed.sort_unstable();
    let mut hasher = Xxh3::new();
    for email in removed {
        hasher.update(email.as_bytes());
        hasher.update(b"\n");
    }
    format!("{:016x}", hasher.digest())
}

impl Default for SafetyLimit {
    fn default() -> Self {
        SafetyLimit {
            max_removal_share: 0.1,
            always_allowed: 10,
        }
    }
}

/// A plan refused by the safety limit, with its numbers and the id that approves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error(
    "plan would remove {removals} of {audience} members ({share:.1}%), above the safety limit of {limit:.1}%; approve plan {plan_id} to proceed"
)]
pub struct SafetyStop {
    pub removals: u64,
    pub audience: u64,
    pub share: f64,
    pub limit: f64,
    pub plan_id: String,
}

/// The plan would push the audience past the target's contact limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("audience would hold {would_hold} contacts, {over} over the limit of {limit}")]
pub struct CapacityExceeded {
    pub limit: u64,
    pub would_hold: u64,
    pub over: u64,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty() && self.updates.is_empty() && self.archives.is_empty()
    }

    /// The write only adds the owner tag to an existing member: an adoption (see
    /// [`PlanCounts::adopted`]), not an update of the member's data.
    pub fn is_adoption(&self, write: &MemberWrite) -> bool {
        let Some(owner) = &self.owner_tag else {
            return false;
        };
        let owner = crate::fingerprint::of_tag(owner);
        write.status.is_none()
            && write.fields.is_empty()
            && !write.unarchive
            && !write.tags.is_empty()
            && write
                .tags
                .iter()
                .all(|t| crate::fingerprint::of_tag(t) == owner)
    }

    /// Members this plan removes from the mailable audience (archives plus unsubscribes).
    pub fn removals(&self) -> u64 {
        self.counts.archive + self.counts.unsubscribe
    }

    /// A stable id of what this plan removes: approving it lets exactly this removal go ahead.
    pub fn removal_id(&self) -> String {
        let mut removed: Vec<&str> = self.archives.iter().map(Email::as_str).collect();
        removed.extend(
            self.updates
                .iter()
                .filter(|u| u.status == Some(MemberStatus::Unsubscribed))
                .map(|u| u.email.as_str()),
        );
        removal_id(removed)
    }

    /// Refuses a plan that removes more than the limit allows, unless `approved` names this plan.
    pub fn check_safety(
        &self,
        limit: &SafetyLimit,
        approved: Option<&str>,
    ) -> Result<(), SafetyStop> {
        // The share is of the members the sync may remove: unmanaged ones are never touched, so
        // counting them would let a sync archive half of its own members unnoticed.
        limit.check(
            self.removals(),
            self.counts.target.saturating_sub(self.counts.not_managed),
            || self.removal_id(),
            approved,
        )
    }

    /// Refuses a plan that would take the audience past `limit` contacts.
    pub fn check_capacity(&self, limit: Option<u64>) -> Result<(), CapacityExceeded> {
        let Some(limit) = limit else { return Ok(()) };
        let unarchived = self.updates.iter().filter(|u| u.unarchive).count() as u64;
        let would_hold = (self.counts.target + self.counts.create + unarchived)
            .saturating_sub(self.counts.archive);
        if would_hold > limit {
            return Err(CapacityExceeded {
                limit,
                would_hold,
                over: would_hold - limit,
            });
        }
        Ok(())
    }
}

/// What a target that accepts every write would hold after `plan` (the reference semantics the
/// connectors implement; used by tests and to preview a dry run). Members are returned sorted by email.
pub fn apply_to_members(
    members: &[crate::member::TargetMember],
    plan: &Plan,
) -> Vec<crate::member::TargetMember> {
    use crate::member::TargetMember;
    let mut by_email: BTreeMap<Email, TargetMember> = members
        .iter()
        .map(|m| (m.email.clone(), m.clone()))
        .collect();
    for write in plan.creates.iter().chain(&plan.updates) {
        let member = by_email
            .entry(write.email.clone())
            .or_insert_with(|| TargetMember {
                email: write.email.clone(),
                status: MemberStatus::Transactional,
                fields: BTreeMap::new(),
                tags: BTreeSet::new(),
            });
        if let Some(status) = write.status {
            member.status = status;
        }
        for (field, value) in &write.fields {
            member.fields.insert(field.clone(), value.clone());
        }
        member.tags.extend(write.tags.iter().cloned());
    }
    for email in &plan.archives {
        if let Some(member) = by_email.get_mut(email) {
            member.status = MemberStatus::Archived;
        }
    }
    by_email.into_values().collect()
}
