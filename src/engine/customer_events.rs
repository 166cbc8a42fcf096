//! Customer events both ways, after an AudienceSync's push (`spec.customerEvents`, a Shopify
//! source and a Mailchimp target):
//!
//! - **Shopify → Mailchimp**: the shopper events the web pixel posted since the last run (queued
//!   per sync by the receiver, see [`queue_shopper_event`]) are sent as Mailchimp member events,
//!   one call each through the target's client (so within the API key's shared budget), only for
//!   contacts the audience has: Mailchimp's 404 counts the event as unknown and drops it. Events
//!   naming only a Shopify customer id are matched to an email from the source's customers.
//! - **Mailchimp → Shopify**: the contacts with email activity since the sync's cursor
//!   (`status.emailActivityCursor`) are found in Mailchimp's campaign reports (a few calls per
//!   recent campaign, nothing per quiet contact), their Shopify customers are looked up by
//!   address (50 per search), and each one's whole activity feed is read so its totals can be
//!   written as customer metafields in [`NAMESPACE`] (`metafieldsSet`, 25 per call). The cursor
//!   is the newest activity time the reports showed, moved only when every write succeeded,
//!   and kept in the status so a restarted operator goes on from it.
//!
//! Neither half reads the whole shop when the source can look customers up (Shopify); one that
//! cannot is read in full once per run for the id ↔ address map. Neither half fails the run:
//! the push is done by then; their errors are reported in the outcome (and logged) and the
//! next run tries again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use audience_core::customer_events::{
    ActiveContacts, ActivityKind, CustomerEventsTarget, EmailActivity, EventOutcome, MemberEvent,
    MetafieldWrite, MetafieldWriter,
};
use audience_core::{Email, ReadScope};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::run::{AudienceJob, RunOutcome};

/// The metafield namespace the email activity is written in.
pub const NAMESPACE: &str = "audience_operator";
/// Shopper events kept per sync between runs; past it the oldest are dropped (and counted).
pub const MAX_QUEUED_PER_SYNC: usize = 5_000;

/// What an AudienceSync run does with customer events (from `spec.customerEvents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerEventsJob {
    /// `namespace/name`: the key of the sync's shopper-event queue.
    pub sync_key: String,
    pub shopper_events: bool,
    pub email_activity: bool,
    /// The newest email activity already written back (from the status).
    pub activity_cursor: Option<DateTime<Utc>>,
}

/// What the customer-events half of a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerEventsReport {
    /// Shopper events recorded on Mailchimp contacts.
    pub shopper_events: u64,
    /// Shopper events for contacts the audience does not have (dropped).
    pub shopper_events_unknown: u64,
    /// Shopper events dropped because the queue was full or the call failed.
    pub shopper_events_dropped: u64,
    /// Contacts whose new email activity was written to the shop.
    pub email_activity_contacts: u64,
    /// Metafields written to the shop.
    pub email_activity_written: u64,
    /// The cursor to save: the newest activity written back (`None`: keep the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_cursor: Option<DateTime<Utc>>,
    /// Contacts the shop refused a metafield write for.
    pub email_activity_rejected: u64,
    /// Why a half stopped early, if it did (no secrets in it: connector errors are redacted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One shopper event waiting for its sync's next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedShopperEvent {
    pub event: String,
    pub email: Option<String>,
    pub customer_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<QueuedShopperEvent>,
    dropped: u64,
}

static QUEUES: LazyLock<Mutex<HashMap<String, Queue>>> = LazyLock::new(Default::default);

/// Queues a checked shopper event for the sync `namespace/name` (the receiver calls this).
pub fn queue_shopper_event(sync_key: &str, event: QueuedShopperEvent) {
    let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
    let queue = queues.entry(sync_key.to_string()).or_default();
    if queue.events.len() >= MAX_QUEUED_PER_SYNC {
        queue.events.pop_front();
        queue.dropped += 1;
    }
    queue.events.push_back(event);
}

/// Shopper events waiting for this sync.
pub fn queued_shopper_events(sync_key: &str) -> usize {
    QUEUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(sync_key)
        .map_or(0, |q| q.events.len())
}

/// Drops the queues of the syncs `gone` names (`namespace/name`): deleted syncs are never run
/// again to drain them.
pub fn forget_queues(gone: impl Fn(&str) -> bool) {
    QUEUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|key, _| !gone(key));
}

fn take_queue(sync_key: &str) -> Queue {
    QUEUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(sync_key)
        .unwrap_or_default()
}

/// Runs the customer-events half after the push (see the module docs). A dry run, a run
/// stopped early or a job without customer events does nothing.
pub(super) async fn after_push(job: &AudienceJob<'_>, outcome: &mut RunOutcome) {
    let Some(settings) = &job.customer_events else {
        return;
    };
    if job.dry_run || outcome.applied.as_ref().is_some_and(|a| a.stopped_early) {
        return;
    }
    let [one] = job.sources.as_slice() else {
        return;
    };
    let mut report = CustomerEventsReport::default();
    let Some(target) = job.target.customer_events() else {
        report.errors.push(format!(
            "the {} target takes no customer events",
            job.target.vendor()
        ));
        outcome.customer_events = Some(report);
        return;
    };
    let queue = if settings.shopper_events {
        Some(take_queue(&settings.sync_key))
    } else {
        // Events off since they were queued: they are not sent later either.
        let dropped = take_queue(&settings.sync_key);
        report.shopper_events_dropped += dropped.events.len() as u64 + dropped.dropped;
        None
    };
    let active = if settings.email_activity {
        match target.active_contacts(settings.activity_cursor).await {
            Ok(active) => Some(active),
            Err(e) => {
                report.errors.push(format!("email activity: {e}"));
                None
            }
        }
    } else {
        None
    };
    // The source customers both halves need: those the queued events name only by id, and
    // those with new email activity.
    let wanted_ids: Vec<String> = queue
        .iter()
        .flat_map(|q| &q.events)
        .filter(|e| e.email.is_none())
        .filter_map(|e| e.customer_id.clone())
        .collect();
    let wanted_emails: Vec<String> = active
        .iter()
        .flat_map(|a| a.emails.iter().cloned())
        .collect();
    let contacts = if wanted_ids.is_empty() && wanted_emails.is_empty() {
        Vec::new()
    } else {
        match customers(one.source, &wanted_emails, &wanted_ids).await {
            Ok(contacts) => contacts,
            Err(e) => {
                report.errors.push(format!("source: {e}"));
                Vec::new()
            }
        }
    };
    if let Some(queue) = queue {
        send_shopper_events(queue, target, &contacts, &mut report).await;
    }
    if let Some(active) = active
        && report.errors.is_empty()
    {
        match one.source.metafield_writer() {
            Some(writer) => {
                let owners: Vec<(String, Email)> = contacts
                    .iter()
                    .filter(|(_, email)| active.emails.contains(email.as_str()))
                    .cloned()
                    .collect();
                write_email_activity(&active, target, writer, &owners, &mut report).await
            }
            None => report.errors.push(format!(
                "the {} source takes no metafields",
                one.source.vendor()
            )),
        }
    }
    for error in &report.errors {
        tracing::warn!(sync = %settings.sync_key, error = %error, "customer events");
    }
    outcome.customer_events = Some(report);
}

/// `(source id, address)` of the source customers with these addresses or ids: looked up when
/// the source can, else from a full read.
async fn customers(
    source: &dyn audience_core::Source,
    emails: &[String],
    ids: &[String],
) -> Result<Vec<(String, Email)>, audience_core::ConnectorError> {
    let parsed = |pairs: Vec<(String, String)>| {
        pairs
            .into_iter()
            .filter_map(|(id, email)| Some((id, Email::parse(&email).ok()?)))
            .collect()
    };
    if let Some(lookup) = source.customer_lookup() {
        return Ok(parsed(lookup.find_customers(emails, ids).await?));
    }
    let mut all = Vec::new();
    let mut pages = source.read(ReadScope::Full);
    while let Some(page) = pages.next().await {
        all.extend(page?.contacts.into_iter().map(|c| (c.source_id, c.email)));
    }
    Ok(parsed(all))
}

async fn send_shopper_events(
    queue: Queue,
    target: &dyn CustomerEventsTarget,
    contacts: &[(String, Email)],
    report: &mut CustomerEventsReport,
) {
    report.shopper_events_dropped += queue.dropped;
    let by_id: HashMap<&str, &Email> = contacts
        .iter()
        .flat_map(|(id, email)| {
            let numeric = id.rsplit('/').next().unwrap_or(id);
            [(id.as_str(), email), (numeric, email)]
        })
        .collect();
    let mut events = queue.events.into_iter();
    for queued in events.by_ref() {
        let email = queued
            .email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .or_else(|| {
                queued
                    .customer_id
                    .as_deref()
                    .and_then(|id| by_id.get(id).map(|e| (*e).clone()))
            });
        let Some(email) = email else {
            report.shopper_events_unknown += 1;
            continue;
        };
        let event = MemberEvent {
            name: queued.event,
            properties: queued.properties,
            occurred_at: queued.occurred_at,
            is_syncing: false,
        };
        match target.post_member_event(email.as_str(), &event).await {
            Ok(EventOutcome::Sent) => report.shopper_events += 1,
            Ok(EventOutcome::UnknownContact) => report.shopper_events_unknown += 1,
            Err(e) => {
                report.shopper_events_dropped += 1;
                report.errors.push(format!("member events: {e}"));
                break;
            }
        }
    }
    // What was not sent after an error is dropped too (a failing key is not hammered).
    report.shopper_events_dropped += events.count() as u64;
}

/// A contact's totals, as metafields.
fn activity_metafields(owner: &str, activity: &[EmailActivity]) -> Vec<MetafieldWrite> {
    let mut out = Vec::new();
    for (kind, count_key, last_key) in [
        (
            ActivityKind::Received,
            "email_received",
            "last_email_received_at",
        ),
        (ActivityKind::Opened, "email_opens", "last_email_opened_at"),
        (
            ActivityKind::Clicked,
            "email_clicks",
            "last_email_clicked_at",
        ),
    ] {
        let of_kind: Vec<&EmailActivity> = activity.iter().filter(|a| a.kind == kind).collect();
        let Some(last) = of_kind.iter().map(|a| a.at).max() else {
            continue;
        };
        let field = |key: &str, kind: &str, value: String| MetafieldWrite {
            owner_id: owner.to_string(),
            namespace: NAMESPACE.into(),
            key: key.into(),
            kind: kind.into(),
            value,
        };
        out.push(field(
            count_key,
            "number_integer",
            of_kind.len().to_string(),
        ));
        out.push(field(
            last_key,
            "date_time",
            last.to_rfc3339_opts(SecondsFormat::Secs, true),
        ));
    }
    out
}

async fn write_email_activity(
    active: &ActiveContacts,
    target: &dyn CustomerEventsTarget,
    writer: &dyn MetafieldWriter,
    owners: &[(String, Email)],
    report: &mut CustomerEventsReport,
) {
    let mut writes = Vec::new();
    for (owner, email) in owners {
        // Totals need the whole feed, read only for contacts with something new.
        let all = match target.email_activity(email.as_str(), None).await {
            Ok(Some(all)) if !all.is_empty() => all,
            Ok(_) => continue,
            Err(e) => {
                report.errors.push(format!("email activity: {e}"));
                return;
            }
        };
        report.email_activity_contacts += 1;
        writes.extend(activity_metafields(owner, &all));
    }
    if !writes.is_empty() {
        match writer.set_metafields(&writes).await {
            Ok(done) => {
                report.email_activity_written += done.written;
                report.email_activity_rejected += done.rejected.len() as u64;
                if !done.rejected.is_empty() {
                    return;
                }
            }
            Err(e) => {
                report.errors.push(format!("metafields: {e}"));
                return;
            }
        }
    }
    // Every contact with activity up to `newest` is written (or is no shop customer).
    report.activity_cursor = active.newest;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn totals_and_last_times_per_kind() {
        let activity = [
            EmailActivity {
                kind: ActivityKind::Opened,
                at: at("2026-12-01T10:05:00Z"),
                campaign_id: "c1".into(),
            },
            EmailActivity {
                kind: ActivityKind::Opened,
                at: at("2026-12-01T11:00:00Z"),
                campaign_id: "c1".into(),
            },
            EmailActivity {
                kind: ActivityKind::Received,
                at: at("2026-12-01T10:00:00Z"),
                campaign_id: "c1".into(),
            },
        ];
        let fields: BTreeMap<String, String> =
            activity_metafields("gid://shopify/Customer/1", &activity)
                .into_iter()
                .map(|m| (m.key, m.value))
                .collect();
        assert_eq!(fields["email_opens"], "2");
        assert_eq!(fields["last_email_opened_at"], "2026-12-01T11:00:00Z");
        assert_eq!(fields["email_received"], "1");
        assert!(
            !fields.contains_key("email_clicks"),
            "no clicks: nothing written"
        );
    }

    #[test]
    fn the_queue_is_bounded_per_sync() {
        let key = "test-ns/bounded";
        for i in 0..(MAX_QUEUED_PER_SYNC + 3) {
            queue_shopper_event(
                key,
                QueuedShopperEvent {
                    event: "page_viewed".into(),
                    email: Some(format!("p{i}@example.com")),
                    customer_id: None,
                    occurred_at: Utc::now(),
                    properties: BTreeMap::new(),
                },
            );
        }
        assert_eq!(queued_shopper_events(key), MAX_QUEUED_PER_SYNC);
        let queue = take_queue(key);
        assert_eq!(queue.dropped, 3);
        assert_eq!(
            queue.events.front().unwrap().email.as_deref(),
            Some("p3@example.com")
        );
    }
}
