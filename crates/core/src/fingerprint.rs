//! Compact, stable fingerprints: the diff compares 8-byte hashes instead of whole records, which is
//! what lets a million-member audience be indexed in bounded memory.

use xxhash_rust::xxh3::xxh3_64;

use crate::mapping::FieldValue;

/// Fingerprint of an email (already normalised).
pub fn of_email(email: &str) -> u64 {
    xxh3_64(email.as_bytes())
}

/// Fingerprint of a field value in canonical form; blank values all share one fingerprint.
pub fn of_field(value: &FieldValue) -> u64 {
    match value.canonical() {
        FieldValue::Text(t) => xxh3_64(t.as_bytes()),
        FieldValue::Address(a) => {
            let joined = [
                &a.line1,
                &a.line2,
                &a.city,
                &a.region,
                &a.postal_code,
                &a.country,
            ]
            .map(|s| s.trim())
            .join("\u{1f}");
            xxh3_64(joined.as_bytes()) ^ 0x5151_5151
        }
    }
}

/// Fingerprint of a tag (tags compare case-insensitively, as Mailchimp's do).
pub fn of_tag(tag: &str) -> u64 {
    xxh3_64(tag.trim().to_lowercase().as_bytes())
}
