//! A member's SMS fields. They are newer than the stored 3.0.55 spec; what is simulated comes from
//! Mailchimp's current member schema as the official client libraries carry it:
//! - `sms_phone_number` (string, "A US phone number for SMS contact"), `sms_subscription_status`
//!   (enum `subscribed`, `unsubscribed`, `nonsubscribed`, `pending`), and the read-only
//!   `sms_subscription_last_updated` and `consents_to_one_to_one_messaging`;
//! - they are written with the other member fields (`POST`/`PUT`/`PATCH …/members`); a write
//!   with SMS fields only leaves the email `status` as it is (the channels are separate).
//!
//! Rules that are [U] (the docs are silent or vague), chosen strict:
//! - the number must be E.164 (`+` and 8 to 15 digits, the first not 0); anything else is a 400
//!   validation error on `sms_phone_number`. Mailchimp's docs speak of US numbers; its SMS
//!   programme covers a few more countries, so any E.164 number is taken here;
//! - `subscribed` needs a number, in the same write or already stored: 400 "Invalid Resource";
//! - clearing the number (`""`) of an SMS subscriber is refused the same way;
//! - `sms_subscription_last_updated` moves when the status or number changes.

use chrono::{DateTime, Utc};

use super::error::{ApiError, FieldError};
use super::params::Fields;
use super::state::{Member, MemberInput};

const STATUSES: &[&str] = &["subscribed", "unsubscribed", "nonsubscribed", "pending"];

fn e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Reads and checks the SMS fields of a write body.
pub fn read_input(fields: &mut Fields<'_>, input: &mut MemberInput) {
    input.sms_phone_number = fields.string("sms_phone_number");
    if let Some(phone) = &input.sms_phone_number
        && !phone.is_empty()
        && !e164(phone)
    {
        fields.errors.push(FieldError::new(
            "sms_phone_number",
            "Please enter a valid phone number in E.164 format (for example +15555550100).",
        ));
    }
    input.sms_subscription_status = fields.one_of("sms_subscription_status", STATUSES);
}

/// Refuses an SMS subscribe without a number.
pub fn check_write(existing: Option<&Member>, input: &MemberInput) -> Result<(), ApiError> {
    let phone = input
        .sms_phone_number
        .clone()
        .or_else(|| existing.map(|m| m.sms_phone_number.clone()))
        .unwrap_or_default();
    let status = input
        .sms_subscription_status
        .clone()
        .or_else(|| existing.and_then(|m| m.sms_subscription_status.clone()));
    if status.as_deref() == Some("subscribed") && phone.is_empty() {
        return Err(ApiError::InvalidResource(
            "An SMS phone number is required to subscribe a contact to SMS.".into(),
        ));
    }
    Ok(())
}

/// Stores the SMS fields of a checked write.
pub fn apply(member: &mut Member, input: &MemberInput, now: DateTime<Utc>) {
    let mut changed = false;
    if let Some(phone) = &input.sms_phone_number
        && *phone != member.sms_phone_number
    {
        member.sms_phone_number = phone.clone();
        changed = true;
    }
    if let Some(status) = &input.sms_subscription_status
        && member.sms_subscription_status.as_ref() != Some(status)
    {
        member.sms_subscription_status = Some(status.clone());
        changed = true;
    }
    if changed {
        member.sms_subscription_last_updated = Some(now);
    }
}
