//! The status both kinds share.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Records kept in `status.rejectedSample` and `status.plan.sample`.
pub const SAMPLE_LIMIT: usize = 20;
/// Runs kept in `status.history`.
pub const HISTORY_LIMIT: usize = 5;

/// The numbers of a run (or of a dry-run plan: what it would do).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunCounts {
    /// Source customers read.
    #[serde(default)]
    pub source: u64,
    /// Audience members before the run (archived ones excluded).
    #[serde(default)]
    pub target: u64,
    /// Members created.
    #[serde(default)]
    pub created: u64,
    /// Members updated (unsubscribes included).
    #[serde(default)]
    pub updated: u64,
    /// Members archived (mirror mode).
    #[serde(default)]
    pub archived: u64,
    /// Members unsubscribed because the source says so.
    #[serde(default)]
    pub unsubscribed: u64,
    /// Members already up to date.
    #[serde(default)]
    pub unchanged: u64,
    /// Source records not written: duplicates, refused resubscribes.
    #[serde(default)]
    pub skipped: u64,
    /// Records refused: invalid emails, and records the target rejected.
    #[serde(default)]
    pub rejected: u64,
    /// Members added to the target segment (SegmentSync).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub segment_added: u64,
    /// Members removed from the target segment (SegmentSync).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub segment_removed: u64,
    /// Contacts created or changed whose consent `consentPolicy.whenSourceCannotOptIn` decided,
    /// because the source records no opt-in (e.g. added as transactional).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consent_by_rule: u64,
    /// Existing members the sync took over with no other change: given its owner tag.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub adopted: u64,
    /// Audience members the sync does not manage (no owner tag, not in the source: signup
    /// forms, other tools): left alone, never archived.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_managed: u64,
    /// Members changed in the target behind the sync's back (a field or status the source did not
    /// change since the last successful run), set back to the source's values; also counted in
    /// `updated`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift: u64,
    /// Two-way consent: customers whose Mailchimp consent was written to the source (Shopify
    /// `customerEmailMarketingConsentUpdate`), e.g. an unsubscribe made in Mailchimp.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consent_written_back: u64,
    /// Two-way consent: customers the source refused a consent write for (its user errors).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consent_write_rejected: u64,
    /// Two-way consent: members unsubscribed in Mailchimp who opted in again at the source,
    /// set `pending` so Mailchimp asks them to confirm (it refuses a direct resubscribe).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_reconfirm: u64,
    /// Two-way consent: cleaned (bounced) members the source lists as subscribed: never
    /// resubscribed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cleaned_not_resubscribed: u64,
    /// Two-way consent's first run: members already subscribed in Mailchimp, not sent again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub already_subscribed: u64,
    /// Customer events: shopper events from the web pixel recorded on Mailchimp contacts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shopper_events: u64,
    /// Customer events: shopper events for contacts the audience does not have (dropped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shopper_events_unknown: u64,
    /// Customer events: shopper events dropped (queue full, events turned off, a failed call).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shopper_events_dropped: u64,
    /// Customer events: Shopify customer metafields written from Mailchimp email activity.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub email_activity_written: u64,
    /// Customer events: contacts whose new email activity was written to the shop.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub email_activity_contacts: u64,
    /// SMS (`spec.sms`): members given their SMS fields (E.164 phone, SMS subscribed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sms_subscribed: u64,
    /// SMS: members whose SMS channel was unsubscribed (the shop's SMS unsubscribe; email
    /// consent untouched).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sms_unsubscribed: u64,
    /// SMS: customers subscribed after the date whose phone is not E.164-able, or whose SMS
    /// write Mailchimp refused.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sms_rejected: u64,
    /// SMS waits: the sync's first email sync has not completed yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sms_waiting: bool,
    /// Write-back (`spec.writeBack.createCustomers`): Shopify customers created from Mailchimp
    /// members.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub customers_created: u64,
    /// Write-back: customers the shop refused to create (its user errors), not retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub customers_create_rejected: u64,
    /// Order events sent, by kind (OrderSync; on a dry run: what would be sent).
    #[serde(default, skip_serializing_if = "OrderEventCounts::is_empty")]
    pub events: OrderEventCounts,
    /// Orders that gave no events, by reason (OrderSync).
    #[serde(default, skip_serializing_if = "OrdersSkipped::is_empty")]
    pub orders_skipped: OrdersSkipped,
}

/// Order events by kind (OrderSync).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderEventCounts {
    #[serde(default)]
    pub placed_order: u64,
    #[serde(default)]
    pub ordered_product: u64,
    #[serde(default)]
    pub refunded_order: u64,
    /// Fulfilled Order (Lightspeed R-Series: Shipped Order).
    #[serde(default)]
    pub fulfilled_order: u64,
}

impl OrderEventCounts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn total(&self) -> u64 {
        self.placed_order + self.ordered_product + self.refunded_order + self.fulfilled_order
    }
}

/// Orders that gave no events, by reason (seed 003: no email, worth $0; not completed,
/// cancelled; an email that is not an address).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrdersSkipped {
    #[serde(default)]
    pub no_email: u64,
    #[serde(default)]
    pub invalid_email: u64,
    #[serde(default)]
    pub zero_value: u64,
    #[serde(default)]
    pub not_completed: u64,
    #[serde(default)]
    pub cancelled: u64,
}

impl OrdersSkipped {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunCounts {
    /// Two-way consent's part of a human summary (empty when nothing happened), e.g.
    /// `two-way consent: 2 written back to the source, 1 set pending to reconfirm`.
    pub fn two_way_note(&self) -> String {
        let mut parts = Vec::new();
        if self.consent_written_back > 0 {
            parts.push(format!(
                "{} written back to the source",
                self.consent_written_back
            ));
        }
        if self.consent_write_rejected > 0 {
            parts.push(format!(
                "{} refused by the source",
                self.consent_write_rejected
            ));
        }
        if self.pending_reconfirm > 0 {
            parts.push(format!(
                "{} set pending to reconfirm (unsubscribed in Mailchimp, opted in again)",
                self.pending_reconfirm
            ));
        }
        if self.cleaned_not_resubscribed > 0 {
            parts.push(format!(
                "{} cleaned (bounced) not resubscribed",
                self.cleaned_not_resubscribed
            ));
        }
        if self.already_subscribed > 0 {
            parts.push(format!(
                "{} already subscribed in Mailchimp, not sent again",
                self.already_subscribed
            ));
        }
        let mut notes = Vec::new();
        if !parts.is_empty() {
            notes.push(format!("two-way consent: {}", parts.join(", ")));
        }
        if self.sms_waiting {
            notes.push("SMS waits for the first email sync to complete".to_string());
        }
        let mut sms = Vec::new();
        for (n, what) in [
            (self.sms_subscribed, "subscribed"),
            (self.sms_unsubscribed, "unsubscribed (SMS only)"),
            (self.sms_rejected, "rejected"),
        ] {
            if n > 0 {
                sms.push(format!("{n} {what}"));
            }
        }
        if !sms.is_empty() {
            notes.push(format!("SMS: {}", sms.join(", ")));
        }
        let mut events = Vec::new();
        if self.shopper_events + self.shopper_events_unknown + self.shopper_events_dropped > 0 {
            events.push(format!(
                "{} shopper events sent ({} for unknown contacts, {} dropped)",
                self.shopper_events, self.shopper_events_unknown, self.shopper_events_dropped
            ));
        }
        if self.email_activity_contacts > 0 {
            events.push(format!(
                "email activity of {} customers written to the shop ({} metafields)",
                self.email_activity_contacts, self.email_activity_written
            ));
        }
        if !events.is_empty() {
            notes.push(format!("customer events: {}", events.join(", ")));
        }
        if self.customers_created + self.customers_create_rejected > 0 {
            notes.push(format!(
                "new customers from Mailchimp: {} created, {} refused by the shop",
                self.customers_created, self.customers_create_rejected
            ));
        }
        notes.join("; ")
    }

    /// A one-line summary, e.g. `+3 ~2 -1 =40 !0`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "+{} ~{} -{} ={} skipped {} rejected {}",
            self.created,
            self.updated,
            self.archived + self.unsubscribed,
            self.unchanged,
            self.skipped,
            self.rejected
        );
        if !self.events.is_empty() {
            let e = &self.events;
            s.push_str(&format!(
                " events placed {} products {} refunded {} fulfilled {}",
                e.placed_order, e.ordered_product, e.refunded_order, e.fulfilled_order
            ));
        }
        if self.segment_added + self.segment_removed > 0 {
            s.push_str(&format!(
                " segment +{} -{}",
                self.segment_added, self.segment_removed
            ));
        }
        s
    }
}

/// The last finished run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// Why it started: `first run`, `spec changed`, `schedule`, a `sync-now annotation`, a
    /// vendor webhook (`shopify webhook customers/update (1 delivery)`), ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trigger: String,
    /// How it ended: the `Ready` reason it left (`Synced`, `SafetyStop`, `RateLimited`, ...).
    #[serde(default)]
    pub outcome: String,
    /// How long it took, e.g. `2.31s`.
    #[serde(default)]
    pub duration: String,
    /// A plan only (nothing written).
    #[serde(default)]
    pub dry_run: bool,
    /// The run stopped at a safe point before finishing (operator shutdown).
    #[serde(default)]
    pub stopped_early: bool,
    /// What it did.
    #[serde(default)]
    pub counts: RunCounts,
    /// `full` (every source record and member read) or `incremental` (only the changes since
    /// the checkpoint, and the members they concern). AudienceSync only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A record that was not written, and why.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RejectedRecord {
    /// The email as the source gave it.
    pub email: String,
    /// Why it was refused.
    pub reason: String,
}

/// A write the target refused, remembered so it is not sent again while the source record stays
/// the same (tried again after 7 days, or at once when the record changes).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeldRejection {
    pub email: String,
    /// The vendor's reason.
    pub reason: String,
    /// Fingerprint of the refused write (changes when the source record does).
    pub fingerprint: String,
    /// When this write was first refused.
    pub since: Time,
    /// When it was last sent.
    pub last_tried: Time,
}

impl HeldRejection {
    pub fn from_core(r: &audience_core::RememberedRejection) -> Option<Self> {
        Some(HeldRejection {
            email: r.email.clone(),
            reason: r.reason.clone(),
            fingerprint: r.fingerprint.clone(),
            since: Time(jiff::Timestamp::from_second(r.since.timestamp()).ok()?),
            last_tried: Time(jiff::Timestamp::from_second(r.last_tried.timestamp()).ok()?),
        })
    }

    pub fn to_core(&self) -> Option<audience_core::RememberedRejection> {
        Some(audience_core::RememberedRejection {
            email: self.email.clone(),
            reason: self.reason.clone(),
            fingerprint: self.fingerprint.clone(),
            since: chrono::DateTime::from_timestamp(self.since.0.as_second(), 0)?,
            last_tried: chrono::DateTime::from_timestamp(self.last_tried.0.as_second(), 0)?,
        })
    }
}

/// One past run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When the run started.
    pub time: Time,
    /// The `Ready` reason it left.
    pub outcome: String,
    /// Counts summary (`+created ~updated -removed =unchanged ...`) or the error.
    pub summary: String,
    /// How long it took.
    pub duration: String,
}

/// One change a plan would make.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// `create`, `update`, `unsubscribe`, `archive`, `segmentAdd` or `segmentRemove`.
    pub action: String,
    /// The member's email.
    pub email: String,
    /// Merge fields written (names only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// The plan of the last dry run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    /// When it was planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// The id of what the plan removes (what `approve-plan` would name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// What the plan would do.
    pub counts: RunCounts,
    /// Up to 20 of the changes.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub sample: Vec<PlannedChange>,
}

/// A plan refused by the safety stop, waiting for a person.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    /// Approve with the annotation `sync.audience-operator.io/approve-plan: <planId>`.
    pub plan_id: String,
    /// Members the plan would archive or unsubscribe (or remove from the segment).
    pub removals: u64,
    /// Members the audience (or segment) holds.
    pub audience: u64,
    /// `removals` as a share of `audience`, in percent.
    #[serde(default)]
    pub percent: f64,
    /// The configured limit, in percent.
    #[serde(default)]
    pub limit_percent: f64,
}

/// Observed state of a sync.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// `Ready` (did the last run succeed, and if not why: Synced, CredentialsMissing, AuthFailed,
    /// RateLimited, CapacityExceeded, SafetyStop, InvalidSpec, SourceError, TargetError, Suspended,
    /// DryRun) and `Progressing` (a run is under way, with its phase).
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the last run (or validation) looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the last run finished successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the next scheduled run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    /// The last finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Up to 20 records of the last run that were refused (invalid emails, vendor rejections).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub rejected_sample: Vec<RejectedRecord>,
    /// Writes the target refused, held back while the source record is unchanged (at most 500,
    /// most recently tried first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub held_rejections: Vec<HeldRejection>,
    /// The last 5 runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub history: Vec<HistoryEntry>,
    /// The plan of the last dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanReport>,
    /// Set while a safety stop waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// The source position reached by the last applied run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// When the run that reached `checkpoint` started: the next incremental run reads the
    /// changes since about then (the checkpoint's age is now minus this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_time: Option<Time>,
    /// The spec generation `checkpoint` was saved under; a changed spec makes the next run full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_generation: Option<i64>,
    /// `customerEvents.emailActivity`: the newest Mailchimp email activity (send, open, click)
    /// already written to the shop; the next run asks Mailchimp's campaign reports for what
    /// came after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_activity_cursor: Option<Time>,
    /// OrderSync into Mailchimp: when the shop's discount codes were last synced into the
    /// store's promo codes (`target.mailchimp.promoCodes`); the next sync is due `every` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo_codes_synced_at: Option<Time>,
    /// When the last full run (every record and member read) that was applied started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync_time: Option<Time>,
    /// When the next full reconcile is due (`lastFullSyncTime` + `spec.fullResync`): the first
    /// run at or after it reads everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_full_sync_time: Option<Time>,
    /// The last value of the `sync.audience-operator.io/sync-now` annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_sync_now: Option<String>,
    /// The last value of the `sync.audience-operator.io/webhook-hint` annotation that was acted
    /// on (a webhook handed over by another replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_webhook_hint: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_says_what_customer_events_did_and_nothing_when_they_did_nothing() {
        assert_eq!(RunCounts::default().two_way_note(), "");
        let counts = RunCounts {
            shopper_events: 3,
            shopper_events_unknown: 1,
            email_activity_contacts: 2,
            email_activity_written: 12,
            ..RunCounts::default()
        };
        assert_eq!(
            counts.two_way_note(),
            "customer events: 3 shopper events sent (1 for unknown contacts, 0 dropped), \
             email activity of 2 customers written to the shop (12 metafields)"
        );
    }
}
