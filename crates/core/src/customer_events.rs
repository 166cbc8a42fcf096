//! Customer events both ways (Shopify source, Mailchimp target): the types the engine and the
//! connectors share, and the two capabilities a connector may offer
//! ([`crate::Target::customer_events`], [`crate::Source::metafield_writer`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ConnectorError;

/// One event to record on a target contact (a Mailchimp member event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEvent {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    pub occurred_at: DateTime<Utc>,
    /// True: record only, trigger no automation (e.g. a backfill).
    pub is_syncing: bool,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Sent,
    /// The target has no such contact: nothing was recorded.
    UnknownContact,
}

/// The email activity kinds written back to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityKind {
    /// A campaign was sent to the contact (`email_received`).
    Received,
    /// `email_opened`.
    Opened,
    /// `email_clicked`.
    Clicked,
}

/// One entry of a contact's email activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailActivity {
    pub kind: ActivityKind,
    pub at: DateTime<Utc>,
    pub campaign_id: String,
}

/// The contacts with email activity in some period, and the newest activity time seen (the
/// next run's cursor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveContacts {
    /// Lowercased addresses.
    pub emails: std::collections::BTreeSet<String>,
    pub newest: Option<DateTime<Utc>>,
}

impl ActiveContacts {
    /// Records activity of these addresses at `at`.
    pub fn note(&mut self, emails: impl IntoIterator<Item = String>, at: DateTime<Utc>) {
        let mut any = false;
        for email in emails {
            self.emails.insert(email.trim().to_lowercase());
            any = true;
        }
        if any {
            self.newest = self.newest.max(Some(at));
        }
    }
}

/// A target that takes contact events and reports email activity (Mailchimp).
#[async_trait]
pub trait CustomerEventsTarget: Send + Sync {
    /// Records `event` on the contact with this address.
    async fn post_member_event(
        &self,
        email: &str,
        event: &MemberEvent,
    ) -> Result<EventOutcome, ConnectorError>;

    /// The contact's activity after `since` (all when `None`), newest first; `None` when the
    /// target has no such contact.
    async fn email_activity(
        &self,
        email: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<Vec<EmailActivity>>, ConnectorError>;

    /// The contacts with activity after `since` (every contact with any when `None`), found
    /// without asking contact by contact.
    async fn active_contacts(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<ActiveContacts, ConnectorError>;
}

/// One metafield to set on a source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetafieldWrite {
    /// The owner's id at the source (`gid://shopify/Customer/…`).
    pub owner_id: String,
    pub namespace: String,
    pub key: String,
    /// The source's type name (`number_integer`, `date_time`, …).
    pub kind: String,
    pub value: String,
}

/// What a metafield write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetafieldReport {
    /// Metafields the source accepted.
    pub written: u64,
    /// Write calls made.
    pub calls: u64,
    /// Owners whose write was refused, with the source's reason.
    pub rejected: Vec<(String, String)>,
}

/// A source that takes metafields on its customers (Shopify).
#[async_trait]
pub trait MetafieldWriter: Send + Sync {
    async fn set_metafields(
        &self,
        writes: &[MetafieldWrite],
    ) -> Result<MetafieldReport, ConnectorError>;
}

/// A source that finds some of its customers by address or id without reading them all
/// (Shopify's customer search).
#[async_trait]
pub trait CustomerLookup: Send + Sync {
    /// `(source id, lowercased address)` of the customers with one of these addresses or one
    /// of these source ids (a customer without an address is left out).
    async fn find_customers(
        &self,
        emails: &[String],
        ids: &[String],
    ) -> Result<Vec<(String, String)>, ConnectorError>;
}
