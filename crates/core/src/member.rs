//! What a target audience holds for one contact.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::mapping::FieldValue;

/// A member's status in the target audience (Mailchimp's vocabulary; Klaviyo maps onto it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberStatus {
    Subscribed,
    Unsubscribed,
    /// Non-marketing contact.
    Transactional,
    Pending,
    /// Bounced: never resubscribable.
    Cleaned,
    /// Archived: hidden, comes back only when the source really has the contact.
    Archived,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Subscribed => "subscribed",
            MemberStatus::Unsubscribed => "unsubscribed",
            MemberStatus::Transactional => "transactional",
            MemberStatus::Pending => "pending",
            MemberStatus::Cleaned => "cleaned",
            MemberStatus::Archived => "archived",
        }
    }

    /// Counts towards the audience size (and a plan's contact limit).
    pub fn counts_towards_size(self) -> bool {
        self != MemberStatus::Archived
    }
}

/// One member of a target audience, with its fields keyed by the target's own field names
/// (Mailchimp merge tags such as `FNAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetMember {
    pub email: Email,
    pub status: MemberStatus,
    pub fields: BTreeMap<String, FieldValue>,
    pub tags: BTreeSet<String>,
}
