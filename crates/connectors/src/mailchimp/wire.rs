//! Mailchimp's JSON, as the Marketing API 3.0 spec describes it, and the conversions to and from
//! the core model. Response types name only the fields the connector reads (the rest is skipped by
//! serde without being kept), so a page of 1,000 members costs little more than the members.

use std::collections::{BTreeMap, BTreeSet};

use audience_core::{Address, FieldValue, MemberStatus, TargetMember};
use md5::{Digest, Md5};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `subscriber_hash`: hex MD5 of the lowercased email.
pub fn subscriber_hash(email: &str) -> String {
    format!("{:x}", Md5::digest(email.trim().to_lowercase().as_bytes()))
}

// ---------------------------------------------------------------- reads

/// `GET /lists/{list_id}/members` trimmed with `fields=`.
#[derive(Debug, Deserialize)]
pub struct MembersPage {
    pub members: Vec<WireMember>,
    pub total_items: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireMember {
    pub email_address: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub merge_fields: BTreeMap<String, Value>,
    #[serde(default)]
    pub tags: Vec<WireTag>,
    /// Read for two-way consent only (`fields=` asks for it then).
    #[serde(default)]
    pub last_changed: Option<String>,
    /// When the member opted in; `""` when never.
    #[serde(default)]
    pub timestamp_opt: Option<String>,
}

/// A Mailchimp timestamp (`2026-11-01T10:00:00+00:00`); `""`, `null` and anything unreadable are
/// "no time", which two-way consent treats as the older side (so a garbled time can only ever
/// let an unsubscribe win, never a subscribe).
pub fn timestamp(value: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value?.trim())
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[derive(Debug, Deserialize)]
pub struct WireTag {
    pub name: String,
}

/// `GET /lists/{list_id}/segments/{segment_id}/members` trimmed to the emails.
#[derive(Debug, Deserialize)]
pub struct SegmentMembersPage {
    pub members: Vec<EmailOnly>,
    pub total_items: u64,
}

#[derive(Debug, Deserialize)]
pub struct EmailOnly {
    pub email_address: String,
}

/// `GET /lists/{list_id}/segments`.
#[derive(Debug, Deserialize)]
pub struct SegmentsPage {
    pub segments: Vec<WireSegment>,
    pub total_items: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireSegment {
    pub id: u64,
    pub name: String,
}

/// `GET /lists/{list_id}` trimmed to the name.
#[derive(Debug, Deserialize)]
pub struct ListInfo {
    pub name: String,
}

/// `GET /lists/{list_id}/merge-fields`.
#[derive(Debug, Deserialize)]
pub struct MergeFieldsPage {
    pub merge_fields: Vec<WireMergeField>,
    pub total_items: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireMergeField {
    pub tag: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The status word as a [`MemberStatus`].
pub fn parse_status(status: &str) -> Option<MemberStatus> {
    Some(match status {
        "subscribed" => MemberStatus::Subscribed,
        "unsubscribed" => MemberStatus::Unsubscribed,
        "transactional" => MemberStatus::Transactional,
        "pending" => MemberStatus::Pending,
        "cleaned" => MemberStatus::Cleaned,
        "archived" => MemberStatus::Archived,
        _ => return None,
    })
}

/// A merge-field value as the core sees it: strings and numbers as text, address objects as
/// addresses, `null` as blank text.
pub fn field_value(value: Value) -> FieldValue {
    match value {
        Value::String(s) => FieldValue::Text(s),
        Value::Null => FieldValue::Text(String::new()),
        Value::Object(map) => {
            let get = |key: &str| match map.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            FieldValue::Address(Address {
                line1: get("addr1"),
                line2: get("addr2"),
                city: get("city"),
                region: get("state"),
                postal_code: get("zip"),
                country: get("country"),
            })
        }
        other => FieldValue::Text(other.to_string()),
    }
}

/// Why a wire member could not become a [`TargetMember`].
pub enum MemberProblem {
    /// An address the core's email check refuses (kept out of the index; counted, not fatal).
    InvalidEmail,
    /// A status word the spec does not define (the response is not what we can read).
    UnknownStatus(String),
}

impl WireMember {
    pub fn into_member(
        self,
        default_status: Option<MemberStatus>,
    ) -> Result<TargetMember, MemberProblem> {
        let email = audience_core::Email::parse(&self.email_address)
            .map_err(|_| MemberProblem::InvalidEmail)?;
        let status = match self.status.as_deref() {
            Some(word) => {
                parse_status(word).ok_or_else(|| MemberProblem::UnknownStatus(word.to_string()))?
            }
            None => default_status.ok_or_else(|| MemberProblem::UnknownStatus(String::new()))?,
        };
        let fields = self
            .merge_fields
            .into_iter()
            .map(|(tag, value)| (tag, field_value(value)))
            .collect();
        let tags: BTreeSet<String> = self.tags.into_iter().map(|t| t.name).collect();
        Ok(TargetMember {
            email,
            status,
            fields,
            tags,
        })
    }
}

// ---------------------------------------------------------------- writes

/// `POST /lists/{list_id}` (batch subscribe).
#[derive(Debug, Serialize)]
pub struct BatchSubscribe<'a> {
    pub members: Vec<BatchMember<'a>>,
    pub update_existing: bool,
}

#[derive(Debug, Serialize)]
pub struct BatchMember<'a> {
    pub email_address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub merge_fields: BTreeMap<&'a str, MergeValue<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<&'a str>,
}

/// A merge-field value on the wire: text, or Mailchimp's address object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MergeValue<'a> {
    Text(&'a str),
    Address {
        addr1: &'a str,
        addr2: &'a str,
        city: &'a str,
        state: &'a str,
        zip: &'a str,
        country: &'a str,
    },
}

impl<'a> MergeValue<'a> {
    pub fn of(value: &'a FieldValue) -> MergeValue<'a> {
        match value {
            FieldValue::Text(t) => MergeValue::Text(t.trim()),
            // Mailchimp clears an address with an empty string, not an empty object.
            FieldValue::Address(a) if a.is_empty() => MergeValue::Text(""),
            FieldValue::Address(a) => MergeValue::Address {
                addr1: &a.line1,
                addr2: &a.line2,
                city: &a.city,
                state: &a.region,
                zip: &a.postal_code,
                country: &a.country,
            },
        }
    }
}

/// The writable status words (archived is reached by `DELETE`, never written).
pub fn status_word(status: MemberStatus) -> Option<&'static str> {
    match status {
        MemberStatus::Archived => None,
        other => Some(other.as_str()),
    }
}

/// The answer to a batch subscribe. Only counts and errors are kept: the member objects are skipped.
#[derive(Debug, Deserialize)]
pub struct BatchResult {
    #[serde(default)]
    pub new_members: Vec<IgnoredAny>,
    #[serde(default)]
    pub updated_members: Vec<IgnoredAny>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
    #[serde(default)]
    pub total_created: Option<u64>,
    #[serde(default)]
    pub total_updated: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct BatchError {
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub field_message: Option<String>,
}

impl BatchError {
    /// The vendor's words, with the field message when the error is about a field.
    pub fn reason(&self) -> String {
        let mut reason = self
            .error
            .clone()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| match self.error_code.as_deref() {
                Some("ERROR_CONTACT_EXISTS") => "contact exists".to_string(),
                Some(code) => code.to_string(),
                None => "refused without a reason".to_string(),
            });
        if let Some(field) = self.field.as_deref().filter(|f| !f.is_empty()) {
            reason.push_str(&format!(" (field {field}"));
            if let Some(message) = self
                .field_message
                .as_deref()
                .filter(|m| !m.is_empty() && !says_the_same(m, &reason))
            {
                reason.push_str(&format!(": {message}"));
            }
            reason.push(')');
        }
        reason
    }
}

/// Whether most words of `message` are already in `text` (Mailchimp often repeats the error in
/// `field_message` with other punctuation).
fn says_the_same(message: &str, text: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let known = words(text);
    let said = words(message);
    let repeated = said.iter().filter(|w| known.contains(w)).count();
    !said.is_empty() && repeated * 5 >= said.len() * 4
}

/// `POST /lists/{list_id}/segments`.
#[derive(Debug, Serialize)]
pub struct NewStaticSegment<'a> {
    pub name: &'a str,
    pub static_segment: [&'a str; 0],
}

/// `POST /lists/{list_id}/segments/{segment_id}`.
#[derive(Debug, Serialize)]
pub struct SegmentBatch<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub members_to_add: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub members_to_remove: &'a [&'a str],
}

#[derive(Debug, Deserialize)]
pub struct SegmentBatchResult {
    #[serde(default)]
    pub members_added: Vec<IgnoredAny>,
    #[serde(default)]
    pub members_removed: Vec<IgnoredAny>,
    #[serde(default)]
    pub errors: Vec<SegmentBatchError>,
    #[serde(default)]
    pub total_added: Option<u64>,
    #[serde(default)]
    pub total_removed: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct SegmentBatchError {
    #[serde(default)]
    pub email_addresses: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /lists/{list_id}/merge-fields`.
#[derive(Debug, Serialize)]
pub struct NewMergeField<'a> {
    pub tag: &'a str,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub required: bool,
    pub public: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_hash_lowercases() {
        assert_eq!(
            subscriber_hash("Urist.McVankab@FreddieMacs.com"),
            subscriber_hash("urist.mcvankab@freddiemacs.com")
        );
        // md5("test@example.com")
        assert_eq!(
            subscriber_hash("test@example.com"),
            "55502f40dc8b7c769880b10874abc9d0"
        );
    }

    #[test]
    fn address_round_trip() {
        let address = FieldValue::Address(Address {
            line1: "1 Main St".into(),
            line2: String::new(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: "62701".into(),
            country: "US".into(),
        });
        let wire = serde_json::to_value(MergeValue::of(&address)).unwrap();
        assert_eq!(wire["addr1"], "1 Main St");
        assert_eq!(wire["state"], "IL");
        assert_eq!(field_value(wire), address);
        let blank = FieldValue::Address(Address::default());
        assert_eq!(serde_json::to_value(MergeValue::of(&blank)).unwrap(), "");
    }
}
