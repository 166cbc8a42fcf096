//! Validation and deduplication of source records before they are compared.

use chrono::{DateTime, Utc};

use crate::contact::SourceContact;

/// Of two source customers with one email, the one edited last wins (ties: the larger source id,
/// so the outcome never depends on read order).
pub fn newer_wins(current: (&DateTime<Utc>, &str), challenger: (&DateTime<Utc>, &str)) -> bool {
    challenger.0 > current.0 || (challenger.0 == current.0 && challenger.1 > current.1)
}

/// Convenience for callers holding the whole record.
pub fn contact_wins(current: &SourceContact, challenger: &SourceContact) -> bool {
    newer_wins(
        (&current.updated_at, &current.source_id),
        (&challenger.updated_at, &challenger.source_id),
    )
}
