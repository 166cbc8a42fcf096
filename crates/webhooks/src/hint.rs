//! What the receiver hands on: a hint that some account at some vendor changed.

use std::fmt;

/// The vendors whose webhooks are received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    Shopify,
    Mailchimp,
    LightspeedX,
}

impl Vendor {
    /// The name used in paths, logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Shopify => "shopify",
            Vendor::Mailchimp => "mailchimp",
            Vendor::LightspeedX => "lightspeed-x",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a hint is about, so the operator can pick the syncs it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A customer / audience member changed (created, updated, deleted, consent, email change).
    Customers,
    /// An order or sale changed (created, updated, paid, refunded, …).
    Orders,
    /// A Mailchimp campaign was sent: no member changed, but engagement data may have.
    Campaigns,
}

/// One verified delivery: `account` at `vendor` says `topic` happened, naming `emails` when the
/// payload carries them. A hint never says what the data now is: the run that follows reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub vendor: Vendor,
    /// The vendor's own key for the account: the shop's `*.myshopify.com` domain, the Mailchimp
    /// list id, the Lightspeed X domain prefix. Always lower case.
    pub account: String,
    /// The vendor's topic as sent (`customers/update`, `unsubscribe`, `customer.update`, …).
    pub topic: String,
    pub scope: Scope,
    /// Addresses the payload names (possibly none: a Shopify `customers/delete` carries no email).
    pub emails: Vec<String>,
}

/// The most addresses one hint keeps (a payload naming more is still a hint, just a vaguer one).
pub const MAX_EMAILS_PER_HINT: usize = 16;

/// Keeps `value` when it looks like an address, trimmed and lower-cased; the receiver does not
/// validate addresses beyond that (the run reads the real data).
pub(crate) fn push_email(emails: &mut Vec<String>, value: Option<&str>) {
    let Some(value) = value.map(str::trim) else {
        return;
    };
    if value.is_empty()
        || value.len() > 254
        || !value.contains('@')
        || value.contains(char::is_whitespace)
    {
        return;
    }
    let value = value.to_lowercase();
    if emails.len() < MAX_EMAILS_PER_HINT && !emails.contains(&value) {
        emails.push(value);
    }
}
