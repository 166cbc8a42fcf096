//! Two-way email consent between a source that records consent with a time (Shopify's
//! `emailMarketingConsent{marketingState, consentUpdatedAt}`) and a Mailchimp audience (the
//! member's `status`, `timestamp_opt` and `last_changed`). Pure: it decides, per customer, which
//! side's consent stands and what to write where; the runner does the writes.
//!
//! # The rules (seed 004, "Kontaktsynchronisierung")
//! - **First sync**: a member already `subscribed` in Mailchimp is not unsubscribed even when
//!   the shop says unsubscribed or not subscribed; the shop is set to subscribed instead
//!   ([`ConsentWrite`]), and the member is not sent again (left alone by the audience plan).
//! - **Ongoing**: a subscribe or unsubscribe made on either side reaches the other; when the two
//!   sides disagree, the later change wins.
//! - A new customer (no member yet) is planned as the one-way sync plans them: opted in →
//!   subscribed, not opted in → transactional.
//! - A Mailchimp subscriber whom the shop merely records as "not subscribed" (no opt-in at this
//!   checkout) stays subscribed, and the shop is told so: "not subscribed" is no decision.
//! - An unsubscribed member whose shop consent became subscribed later (an opt-in at checkout, the
//!   merchant marking them subscribed) is set `pending` by the audience plan (the runner plans with
//!   `resubscribe: pending`), so Mailchimp asks the person to confirm: Mailchimp refuses a direct
//!   resubscribe ("Member In Compliance State").
//! - A `cleaned` (bounced) member is never resubscribed, whatever the shop says; the shop is not
//!   changed either (Shopify has no "bounced" to set) and the outcome is counted.
//!
//! # Which change is later
//! The shop's time is `consentUpdatedAt` ([`SourceContact::consented_at`]). Mailchimp's is, for a
//! subscribed member, `timestamp_opt` (when they opted in: it does not move when a merge field is
//! edited, so a name typed in Mailchimp never outvotes an unsubscribe in the shop), falling back
//! to `last_changed`; for any other status it is `last_changed` (the 3.0 API has no
//! "unsubscribed at": an unsubscribe moves `last_changed`, and any later edit only moves it
//! further, which favours the unsubscribe). A side without a time is the older one. **Ties, and
//! every doubt, go to the side that says no**: an unsubscribe is never lost to a clock.
//!
//! # No loops
//! The operator's writes make the sides agree, and agreeing sides produce no write: after a
//! write to the shop, the shop holds Mailchimp's consent (with Mailchimp's consent time, so it is
//! not "later" either); after a write to Mailchimp, Mailchimp holds the shop's consent (or
//! `pending` for a re-opt-in, which counts as agreeing with "subscribed"). So run N+1 after a
//! write finds nothing to do, whatever `last_changed` the write left behind; no memory of past
//! writes is needed (none that would fit a Kubernetes object for 100,000 customers anyway).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contact::{Consent, SourceContact};
use crate::email::Email;
use crate::member::MemberStatus;

/// A member's consent in the target, with the times the vendor records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberConsent {
    pub status: MemberStatus,
    /// Mailchimp `last_changed`: any change to the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed: Option<DateTime<Utc>>,
    /// Mailchimp `timestamp_opt`: when the member opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_in_at: Option<DateTime<Utc>>,
}

impl MemberConsent {
    /// When the member's current consent was given, as far as the vendor says (see the module
    /// docs, *Which change is later*).
    pub fn consent_time(&self) -> Option<DateTime<Utc>> {
        match self.status {
            MemberStatus::Subscribed => self.opted_in_at.or(self.last_changed),
            _ => self.last_changed,
        }
    }
}

/// The opt-in level a consent write records (Shopify's `CustomerMarketingOptInLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OptInLevel {
    /// Subscribed without a confirmation mail: what a Mailchimp subscriber's level is unless
    /// the list uses double opt-in, which the member API does not say [U].
    #[default]
    SingleOptIn,
    ConfirmedOptIn,
    Unknown,
}

/// A consent to write back to the source (the shop).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentWrite {
    /// The source's id of the customer (`gid://shopify/Customer/1`).
    pub source_id: String,
    pub email: Email,
    /// [`Consent::Subscribed`] or [`Consent::Unsubscribed`].
    pub consent: Consent,
    pub opt_in_level: OptInLevel,
    /// The consent time to record: Mailchimp's, when it is later than the shop's own; `None`
    /// lets the shop record the time of the write (a consent time older than the shop's is
    /// ignored by Shopify: "the consent state reflects the consent record with the most recent
    /// `consent_updated_at` date").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<DateTime<Utc>>,
}

/// What two-way consent decided for one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TwoWayOutcome {
    /// Not a member yet: planned one way (opted in → subscribed, else transactional).
    New,
    /// Both sides agree (or the difference is one the one-way plan settles, e.g. an opt-in for a
    /// transactional member).
    InStep,
    /// The shop's later change goes to Mailchimp.
    ToTarget,
    /// Mailchimp's later change (or the first sync's "already subscribed") goes to the shop.
    ToSource,
    /// First sync: subscribed in Mailchimp already, not sent again.
    AlreadySubscribed,
    /// Unsubscribed in Mailchimp, subscribed later in the shop: set `pending` to reconfirm.
    PendingReconfirm,
    /// Cleaned (bounced) in Mailchimp, subscribed in the shop: never resubscribed.
    CleanedKept,
}

/// The decision for one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    /// The contact to plan the audience with (its consent may now be Mailchimp's, so the plan
    /// does not write it back); `None`: leave the member alone (first sync, already subscribed).
    pub contact: Option<SourceContact>,
    /// The consent to write to the shop.
    pub source_write: Option<ConsentWrite>,
    pub outcome: TwoWayOutcome,
}

/// Counts of a two-way run, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoWayCounts {
    pub to_target: u64,
    pub to_source: u64,
    pub already_subscribed: u64,
    pub pending_reconfirm: u64,
    pub cleaned_kept: u64,
}

impl TwoWayCounts {
    pub fn add(&mut self, outcome: TwoWayOutcome) {
        match outcome {
            TwoWayOutcome::New | TwoWayOutcome::InStep => {}
            TwoWayOutcome::ToTarget => self.to_target += 1,
            TwoWayOutcome::ToSource => self.to_source += 1,
            TwoWayOutcome::AlreadySubscribed => self.already_subscribed += 1,
            TwoWayOutcome::PendingReconfirm => self.pending_reconfirm += 1,
            TwoWayOutcome::CleanedKept => self.cleaned_kept += 1,
        }
    }
}

/// `later` is strictly later than `earlier`; a missing time is the earliest.
fn strictly_later(later: Option<DateTime<Utc>>, earlier: Option<DateTime<Utc>>) -> bool {
    match (later, earlier) {
        (Some(l), Some(e)) => l > e,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Decides one customer (see the module docs). `email` is the contact's parsed address;
/// `member` its Mailchimp member, if any; `first_sync` the sync's first run.
pub fn reconcile(
    contact: SourceContact,
    email: &Email,
    member: Option<&MemberConsent>,
    first_sync: bool,
) -> Reconciled {
    let plan_as_read = |contact: SourceContact, outcome| Reconciled {
        contact: Some(contact),
        source_write: None,
        outcome,
    };
    let Some(member) = member else {
        return plan_as_read(contact, TwoWayOutcome::New);
    };
    let shop = contact.consent;
    let shop_time = contact.consented_at;
    let mc_time = member.consent_time();
    let write_source = |contact: &SourceContact, consent: Consent| ConsentWrite {
        source_id: contact.source_id.clone(),
        email: email.clone(),
        consent,
        opt_in_level: OptInLevel::SingleOptIn,
        consented_at: mc_time.filter(|t| strictly_later(Some(*t), shop_time)),
    };
    // Mailchimp's consent stands: the shop takes it, and the plan sees it so nothing goes back.
    let to_source = |mut contact: SourceContact, consent: Consent| {
        let write = write_source(&contact, consent);
        contact.consent = consent;
        Reconciled {
            contact: Some(contact),
            source_write: Some(write),
            outcome: TwoWayOutcome::ToSource,
        }
    };
    let says_yes = matches!(shop, Consent::Subscribed | Consent::Pending);
    match member.status {
        // An archived member comes back with the shop's consent (the one-way rules).
        MemberStatus::Archived => plan_as_read(contact, TwoWayOutcome::InStep),
        MemberStatus::Cleaned if says_yes => plan_as_read(contact, TwoWayOutcome::CleanedKept),
        MemberStatus::Cleaned => plan_as_read(contact, TwoWayOutcome::InStep),
        MemberStatus::Subscribed if first_sync => {
            let write =
                (shop != Consent::Subscribed).then(|| write_source(&contact, Consent::Subscribed));
            Reconciled {
                contact: None,
                source_write: write,
                outcome: TwoWayOutcome::AlreadySubscribed,
            }
        }
        MemberStatus::Subscribed => match shop {
            Consent::Subscribed | Consent::Pending => plan_as_read(contact, TwoWayOutcome::InStep),
            // "Not subscribed" is no decision: the subscriber stays, and the shop learns it.
            Consent::NotSubscribed | Consent::NoOptOut => to_source(contact, Consent::Subscribed),
            Consent::Unsubscribed if strictly_later(mc_time, shop_time) => {
                to_source(contact, Consent::Subscribed)
            }
            // The shop's unsubscribe (or its bounce) is as late or later: the plan unsubscribes.
            Consent::Unsubscribed | Consent::Cleaned => {
                plan_as_read(contact, TwoWayOutcome::ToTarget)
            }
        },
        MemberStatus::Pending => match shop {
            Consent::Unsubscribed if !strictly_later(mc_time, shop_time) => {
                plan_as_read(contact, TwoWayOutcome::ToTarget)
            }
            // A newer signup waiting for its confirmation: neither side is written.
            Consent::Unsubscribed => {
                let mut contact = contact;
                contact.consent = Consent::Pending;
                plan_as_read(contact, TwoWayOutcome::InStep)
            }
            _ => plan_as_read(contact, TwoWayOutcome::InStep),
        },
        MemberStatus::Unsubscribed if says_yes => {
            if strictly_later(shop_time, mc_time) {
                // The plan sets them pending (resubscribe: pending): Mailchimp asks them.
                plan_as_read(contact, TwoWayOutcome::PendingReconfirm)
            } else {
                to_source(contact, Consent::Unsubscribed)
            }
        }
        MemberStatus::Unsubscribed => plan_as_read(contact, TwoWayOutcome::InStep),
        MemberStatus::Transactional => match shop {
            Consent::Subscribed | Consent::Unsubscribed => {
                plan_as_read(contact, TwoWayOutcome::ToTarget)
            }
            _ => plan_as_read(contact, TwoWayOutcome::InStep),
        },
    }
}
