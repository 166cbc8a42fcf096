//! SMS subscribers from a shop into a Mailchimp audience (`spec.sms.since`, seed 004,
//! "Synchronisierung von SMS-Abonnent*innen"). Pure: it decides, per customer, what to write to
//! the member's SMS fields; the runner reads both sides and does the writes.
//!
//! # The rules
//! - **One way**: from the shop to Mailchimp only. Nothing here ever writes the shop.
//! - **From a date**: only customers whose SMS consent changed *after* `since` (Shopify's
//!   `smsMarketingConsent.consentUpdatedAt` > `since`) are looked at; a customer without a consent
//!   time is taken as older than any date (no time is no proof of a recent opt-in).
//! - **Never without consent**: an SMS subscribe is written only for a shop state of
//!   `SUBSCRIBED`. Pending, not subscribed and redacted customers are never subscribed.
//! - **E.164**: the phone is normalised ([`e164`]); one that cannot be is a rejection with its
//!   reason, and nothing is written for that customer.
//! - **Unsubscribe**: a shop SMS unsubscribe after `since` sets the member's SMS channel to
//!   `unsubscribed` when Mailchimp holds it subscribed (or pending). The email status is never
//!   touched: the write carries the SMS fields only.
//! - **No member, no SMS**: a customer who is not (yet) a member of the audience gets nothing;
//!   the email sync creates members, and SMS follows on the next pass. Archived members are left
//!   alone.
//! - **Zero writes when in step**: a member already SMS-subscribed with the same number, or
//!   already not subscribed when the shop unsubscribed, is not written.
//!
//! Whether the SMS pass runs at all (only after the sync's first email sync completed) is the
//! runner's decision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::email::Email;

/// A shop's SMS marketing state (Shopify's `CustomerSmsMarketingState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SmsState {
    NotSubscribed,
    Pending,
    Subscribed,
    Unsubscribed,
    /// The customer's data was erased.
    Redacted,
}

/// One shop customer as the SMS and write-back passes read them (every customer, with or
/// without an email or a phone).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShopCustomer {
    /// `gid://shopify/Customer/1`.
    pub source_id: String,
    /// Raw, as the shop holds it.
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `None`: the customer has no SMS consent record (no phone).
    pub sms: Option<SmsConsent>,
}

/// A shop customer's SMS consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsConsent {
    pub state: SmsState,
    /// `consentUpdatedAt`.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A Mailchimp member's SMS subscription status (`sms_subscription_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberSmsStatus {
    Subscribed,
    Unsubscribed,
    /// Mailchimp's `nonsubscribed`: never subscribed.
    NonSubscribed,
    Pending,
}

/// A member's SMS fields in Mailchimp.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberSms {
    pub phone: Option<String>,
    pub status: Option<MemberSmsStatus>,
}

/// What to write to one member's SMS fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "change")]
pub enum SmsChange {
    /// Set `sms_phone_number` (E.164) and `sms_subscription_status: subscribed`.
    Subscribe { phone: String },
    /// Set `sms_subscription_status: unsubscribed` (SMS channel only).
    Unsubscribe,
}

/// One SMS write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsWrite {
    pub email: Email,
    #[serde(flatten)]
    pub change: SmsChange,
}

/// Why a customer got no SMS write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SmsSkip {
    /// No SMS consent change after `since`.
    BeforeSince,
    /// The shop's state is not one that is synced (pending, not subscribed, redacted).
    NoConsent,
    /// Not a member of the audience (or archived).
    NotAMember,
    /// Mailchimp already holds it.
    InStep,
}

/// The decision for one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsDecision {
    Write(SmsWrite),
    /// Subscribed after `since`, but the phone is not E.164-able: the reason.
    Reject(String),
    Skip(SmsSkip),
}

/// Counts of an SMS pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsCounts {
    pub subscribe: u64,
    pub unsubscribe: u64,
    pub rejected: u64,
    pub before_since: u64,
    pub in_step: u64,
}

impl SmsCounts {
    pub fn add(&mut self, decision: &SmsDecision) {
        match decision {
            SmsDecision::Write(w) => match w.change {
                SmsChange::Subscribe { .. } => self.subscribe += 1,
                SmsChange::Unsubscribe => self.unsubscribe += 1,
            },
            SmsDecision::Reject(_) => self.rejected += 1,
            SmsDecision::Skip(SmsSkip::BeforeSince) => self.before_since += 1,
            SmsDecision::Skip(SmsSkip::InStep) => self.in_step += 1,
            SmsDecision::Skip(_) => {}
        }
    }
}

/// The phone in E.164 (`+` and 8 to 15 digits, the first not 0), or why it cannot be.
///
/// Accepted: `+49 170 1234567`, `+1 (555) 010-0199`, `0049 170…` (the international `00`
/// prefix). Spaces, dots, dashes and parentheses are dropped. A national number without a
/// country code (`0170 1234567`) is refused: guessing the country could text a stranger.
pub fn e164(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("no phone number".into());
    }
    let mut digits = String::new();
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(format!(
                    "phone number has a character that is not a digit: {c:?}"
                ));
            }
        }
    }
    if !plus {
        match digits.strip_prefix("00") {
            Some(rest) => digits = rest.to_string(),
            None => {
                return Err(
                    "phone number has no country code (E.164 needs +<country><number>)".into(),
                );
            }
        }
    }
    if digits.starts_with('0') {
        return Err("phone number's country code cannot start with 0".into());
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(format!(
            "phone number has {} digits; E.164 allows 8 to 15",
            digits.len()
        ));
    }
    Ok(format!("+{digits}"))
}

/// Decides one customer (see the module docs). `member` is `None` for a customer who is not a
/// live member of the audience.
pub fn decide_sms(
    customer: &ShopCustomer,
    email: &Email,
    member: Option<&MemberSms>,
    since: DateTime<Utc>,
) -> SmsDecision {
    let Some(consent) = customer.sms else {
        return SmsDecision::Skip(SmsSkip::NoConsent);
    };
    if consent.updated_at.is_none_or(|t| t <= since) {
        return SmsDecision::Skip(SmsSkip::BeforeSince);
    }
    let Some(member) = member else {
        return SmsDecision::Skip(SmsSkip::NotAMember);
    };
    let write = |change| {
        SmsDecision::Write(SmsWrite {
            email: email.clone(),
            change,
        })
    };
    match consent.state {
        SmsState::Subscribed => {
            let phone = match e164(customer.phone.as_deref().unwrap_or_default()) {
                Ok(p) => p,
                Err(reason) => return SmsDecision::Reject(reason),
            };
            let held = member.status == Some(MemberSmsStatus::Subscribed)
                && member.phone.as_deref() == Some(phone.as_str());
            if held {
                SmsDecision::Skip(SmsSkip::InStep)
            } else {
                write(SmsChange::Subscribe { phone })
            }
        }
        SmsState::Unsubscribed => match member.status {
            Some(MemberSmsStatus::Subscribed | MemberSmsStatus::Pending) => {
                write(SmsChange::Unsubscribe)
            }
            _ => SmsDecision::Skip(SmsSkip::InStep),
        },
        SmsState::NotSubscribed | SmsState::Pending | SmsState::Redacted => {
            SmsDecision::Skip(SmsSkip::NoConsent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_normalises_and_refuses() {
        assert_eq!(e164("+49 170 1234567").unwrap(), "+491701234567");
        assert_eq!(e164("+1 (555) 010-0199").unwrap(), "+15550100199");
        assert_eq!(e164("0044 20 7946 0958").unwrap(), "+442079460958");
        assert!(e164("0170 1234567").unwrap_err().contains("country code"));
        assert!(e164("+49 170 CALLME").is_err());
        assert!(e164("+1234").unwrap_err().contains("8 to 15"));
        assert!(e164("+0123456789").is_err());
        assert!(e164("+1234567890123456").is_err());
        assert!(e164("").is_err());
        assert!(e164("1+5550100199").is_err());
    }
}
