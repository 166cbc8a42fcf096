//! What a source system says about one customer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A customer's email-marketing consent, as the law and the vendors distinguish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Consent {
    /// Opted in to marketing email.
    Subscribed,
    /// Opted out: must never be set back to subscribed by a sync.
    Unsubscribed,
    /// Never opted in: a transactional (non-marketing) contact.
    #[default]
    NotSubscribed,
    /// Opted in, waiting for a double opt-in confirmation.
    Pending,
    /// The address bounced or is invalid: never mailed again.
    Cleaned,
    /// The source records opt-outs only (Lightspeed's `do_not_email` / `noEmail`) and this
    /// customer has none: whether they ever opted in is unknown. Absence of an opt-out is not an
    /// opt-in, so the sync's [`crate::NoOptInPolicy`] decides (transactional by default).
    NoOptOut,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 where the source knows it.
    pub country: String,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self.line1.is_empty()
            && self.line2.is_empty()
            && self.city.is_empty()
            && self.region.is_empty()
            && self.postal_code.is_empty()
            && self.country.is_empty()
    }
}

/// One customer as a source connector read it. The email is raw: [`crate::prepare`] validates and
/// normalises it, so an invalid address is reported instead of sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceContact {
    /// The source system's own id (e.g. `gid://shopify/Customer/1`).
    pub source_id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: String,
    pub address: Option<Address>,
    pub tags: BTreeSet<String>,
    /// Extra attributes by the source's field name (e.g. `company`, `custom_field_1`).
    pub custom_fields: BTreeMap<String, String>,
    pub consent: Consent,
    /// When the customer gave (or last changed) their email consent, where the source records it
    /// (Shopify's `consentUpdatedAt`). A history import hands it to the vendor as the consent time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<DateTime<Utc>>,
    /// When the source last edited this customer; decides which of two same-email customers wins.
    pub updated_at: DateTime<Utc>,
}
