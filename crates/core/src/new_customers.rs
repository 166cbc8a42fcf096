//! Mailchimp → shop new customers (`spec.writeBack.createCustomers`, seed 004, "Die optionale
//! Datensynchronisierung von Mailchimp zu Shopify"). Pure: it decides which audience members
//! become shop customers, and with what; the runner reads both sides and creates them.
//!
//! # The rules
//! - Only members **not created by this operator**: a member carrying the sync's owner tag was
//!   written (or adopted) by the sync, so it came from the shop (see `diff`, *Ownership*). With
//!   no owner tag to tell them apart, nothing is created.
//! - Only members with **no shop customer of that email**, compared as every vendor compares
//!   addresses (trimmed, lowercased: `Ann@X.com` and `ann@x.com` are one customer).
//! - Archived members (gone from the audience) and cleaned ones (the address bounced) are not
//!   created.
//! - **Consent**: subscribed in the shop only when the member is `subscribed` in Mailchimp, with
//!   Mailchimp's `timestamp_opt` as the consent time (opt-in level single opt-in [U]: the member
//!   API does not say whether the list confirmed it); any other status creates a customer
//!   without email-marketing consent.
//! - **Idempotent**: a created customer is a shop customer of that email on the next run, so it
//!   is not planned again; the email sync then adopts its member (owner tag).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::member::MemberStatus;

/// An audience member as the write-back pass reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudienceMember {
    pub email: Email,
    pub status: MemberStatus,
    pub tags: Vec<String>,
    pub first_name: String,
    pub last_name: String,
    /// `timestamp_opt`.
    pub opted_in_at: Option<DateTime<Utc>>,
    pub sms: crate::sms::MemberSms,
}

/// A customer to create in the shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerCreate {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    /// Email-marketing consent: subscribed (single opt-in) at `consented_at`.
    pub subscribed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consented_at: Option<DateTime<Utc>>,
}

/// `member` carries `owner_tag` (trimmed, case-insensitive, as Mailchimp compares tags).
pub fn has_owner_tag(member: &AudienceMember, owner_tag: &str) -> bool {
    let owner = owner_tag.trim().to_lowercase();
    member.tags.iter().any(|t| t.trim().to_lowercase() == owner)
}

/// The customers to create (see the module docs). `shop_emails` holds every shop customer's
/// address, normalised.
pub fn plan_customer_creates(
    members: &[AudienceMember],
    owner_tag: Option<&str>,
    shop_emails: &HashSet<Email>,
) -> Vec<CustomerCreate> {
    let Some(owner_tag) = owner_tag else {
        return Vec::new();
    };
    let mut planned: HashSet<&Email> = HashSet::new();
    let mut out = Vec::new();
    for member in members {
        if matches!(
            member.status,
            MemberStatus::Archived | MemberStatus::Cleaned
        ) || has_owner_tag(member, owner_tag)
            || shop_emails.contains(&member.email)
            || !planned.insert(&member.email)
        {
            continue;
        }
        let subscribed = member.status == MemberStatus::Subscribed;
        out.push(CustomerCreate {
            email: member.email.clone(),
            first_name: member.first_name.trim().to_string(),
            last_name: member.last_name.trim().to_string(),
            subscribed,
            consented_at: if subscribed { member.opted_in_at } else { None },
        });
    }
    out
}
