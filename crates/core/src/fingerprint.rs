//! Compact, stable fingerprints: the diff compares 8-byte hashes instead of whole records, which is
//! what lets a million-member audience be indexed in bounded memory.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::contact::Address;
use crate::mapping::FieldValue;

/// Fingerprint of an email (already normalised).
pub fn of_email(email: &str) -> u64 {
    xxh3_64(email.as_bytes())
}

/// Fingerprint of a field value in canonical form; blank values all share one fingerprint.
pub fn of_field(value: &FieldValue) -> u64 {
    match value {
        FieldValue::Text(text) => of_text(text),
        FieldValue::Address(address) => of_address(address),
    }
}

/// Fingerprint of a text value (trimmed), without allocating.
pub fn of_text(text: &str) -> u64 {
    xxh3_64(text.trim().as_bytes())
}

/// Fingerprint of an address; an empty address is blank text.
pub fn of_address(address: &Address) -> u64 {
    if address.is_empty() {
        return of_text("");
    }
    let mut hasher = Xxh3::new();
    let parts = [
        &address.line1,
        &address.line2,
        &address.city,
        &address.region,
        &address.postal_code,
        &address.country,
    ];
    for part in parts {
        hasher.update(part.trim().as_bytes());
        hasher.update(&[0x1f]);
    }
    hasher.digest() ^ 0x5151_5151
}

/// Fingerprint of a tag (tags compare case-insensitively, as Mailchimp's do).
pub fn of_tag(tag: &str) -> u64 {
    xxh3_64(tag.trim().to_lowercase().as_bytes())
}
