//! Many sources, one audience: the records several sources hold for one email become one
//! contact before the planner sees them, so a multi-source audience has one plan (one safety
//! check, one capacity check, one set of writes) and nothing flips between the sources.
//!
//! # Consent: the most restrictive wins
//! Per email, the consents the sources *know* are ranked, strictest first:
//! bounced ([`Consent::Cleaned`]) > unsubscribed > never opted in > pending > subscribed.
//! An opt-out in any source therefore wins over an opt-in in another, as the law reads an
//! opt-out: it must be honoured wherever it was given.
//!
//! A source that cannot record an opt-in (Lightspeed's `do_not_email` / `noEmail`:
//! [`Consent::NoOptOut`]) says nothing about opt-ins: "no opt-out recorded" is not a statement
//! that the person never opted in. So it counts only when no source knows better; then the sync's
//! [`crate::NoOptInPolicy`] decides as it does for a single source. Its opt-out (`do_not_email`
//! set: [`Consent::Unsubscribed`]) counts in full. Without this a customer who opted in at the
//! web shop would stay transactional for ever because the POS cannot store an opt-in.
//!
//! # Fields: one owner per field
//! Each attribute takes its value from one record, chosen in a fixed order, so two runs over
//! unchanged sources pick the same value and no field flaps:
//! - the sources named in the attribute's precedence list ([`FieldPrecedence`]), in that order;
//! - then the others, most recently edited record first (ties: the larger source id, as for two
//!   customers of one source).
//!
//! The first record in that order with a non-blank value gives it: a blank is "this source does
//! not know", not "delete", so a POS without phone numbers never blanks the web shop's.
//! Tags are the union of all records' tags (tags are only ever added).
//!
//! # Within one source
//! Two customers of one source with one email: the one edited last wins, as in a single-source
//! sync; the loser is reported as [`SkipReason::DuplicateEmail`].
//!
//! Memory: every source record is held until the last source is read (a merge cannot stream),
//! about the size of the records themselves; a single-source sync does not use this module and
//! streams as before.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::contact::{Consent, SourceContact};
use crate::diff::AudiencePlanner;
use crate::email::Email;
use crate::mapping::FieldMapping;
use crate::plan::{Skip, SkipReason};
use crate::prepare::contact_wins;

/// A source attribute a mapping can write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attribute {
    FirstName,
    LastName,
    Phone,
    Address,
    /// A custom attribute by its source key (`company`).
    Custom(String),
}

/// Which sources own which attributes: per attribute, source indices in order of precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPrecedence {
    by_attribute: BTreeMap<Attribute, Vec<usize>>,
}

impl FieldPrecedence {
    /// Builds the precedence from lists keyed by **target field** (`FNAME: [web, store]`), as a
    /// merchant names fields in the spec, translated through the mapping to the attribute each
    /// target field is written from. Unknown target fields and source names are errors.
    pub fn for_target_fields(
        mapping: &FieldMapping,
        lists: &BTreeMap<String, Vec<String>>,
        source_names: &[String],
    ) -> Result<FieldPrecedence, String> {
        let mut by_attribute = BTreeMap::new();
        for (field, names) in lists {
            let attribute = attribute_of(mapping, field).ok_or_else(|| {
                format!("precedence names {field}, which the field mapping does not write")
            })?;
            let mut order = Vec::new();
            for name in names {
                let index = source_names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| format!("precedence of {field} names unknown source {name}"))?;
                if order.contains(&index) {
                    return Err(format!("precedence of {field} names source {name} twice"));
                }
                order.push(index);
            }
            by_attribute.insert(attribute, order);
        }
        Ok(FieldPrecedence { by_attribute })
    }

    /// Precedence given directly by attribute (tests, callers that already resolved names).
    pub fn by_attribute(by_attribute: BTreeMap<Attribute, Vec<usize>>) -> FieldPrecedence {
        FieldPrecedence { by_attribute }
    }

    fn order_for(&self, attribute: &Attribute) -> &[usize] {
        self.by_attribute
            .get(attribute)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// The attribute a target field is written from (target field names compare case-insensitively,
/// as Mailchimp merge tags do).
fn attribute_of(mapping: &FieldMapping, field: &str) -> Option<Attribute> {
    let is = |f: &Option<String>| f.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(field));
    if is(&mapping.first_name) {
        return Some(Attribute::FirstName);
    }
    if is(&mapping.last_name) {
        return Some(Attribute::LastName);
    }
    if is(&mapping.phone) {
        return Some(Attribute::Phone);
    }
    if is(&mapping.address) {
        return Some(Attribute::Address);
    }
    mapping
        .custom
        .iter()
        .find(|(_, target)| target.eq_ignore_ascii_case(field))
        .map(|(key, _)| Attribute::Custom(key.clone()))
}

/// How strict a known consent is: lower is stricter. `NoOptOut` is not ranked (it is unknown).
fn strictness(consent: Consent) -> Option<u8> {
    match consent {
        Consent::Cleaned => Some(0),
        Consent::Unsubscribed => Some(1),
        Consent::NotSubscribed => Some(2),
        Consent::Pending => Some(3),
        Consent::Subscribed => Some(4),
        Consent::NoOptOut => None,
    }
}

/// Collects the records of several sources and merges them per email.
pub struct SourceMerger {
    names: Vec<String>,
    precedence: FieldPrecedence,
    /// Per email, the winning record of each source (source index, record).
    by_email: HashMap<Email, Vec<(usize, SourceContact)>>,
    /// Records with an invalid email, passed on as they are so the planner rejects them.
    invalid: Vec<SourceContact>,
    duplicates: Vec<Skip>,
}

/// The merged contacts (sorted by email, then invalid ones) and the records that lost to
/// another customer of their own source.
pub struct Merged {
    pub contacts: Vec<SourceContact>,
    pub duplicates: Vec<Skip>,
}

impl Merged {
    /// Hands the merged contacts, and the records that lost within their source, to a planner.
    pub fn observe_into(self, planner: &mut AudiencePlanner) {
        for contact in &self.contacts {
            planner.observe(contact);
        }
        for duplicate in self.duplicates {
            planner.skip(duplicate);
        }
    }
}

impl SourceMerger {
    /// A merger over sources named `names` (index = position), with field precedence.
    pub fn new(names: Vec<String>, precedence: FieldPrecedence) -> SourceMerger {
        SourceMerger {
            names,
            precedence,
            by_email: HashMap::new(),
            invalid: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    /// The id a merged record is known by: `{source name}:{source id}`, so reports say where a
    /// record came from.
    fn qualified(&self, source: usize, id: &str) -> String {
        format!("{}:{id}", self.names[source])
    }

    /// Takes one record of source `source` (an index into the names).
    pub fn observe(&mut self, source: usize, mut contact: SourceContact) {
        contact.source_id = self.qualified(source, &contact.source_id);
        let Ok(email) = Email::parse(&contact.email) else {
            self.invalid.push(contact);
            return;
        };
        let records = self.by_email.entry(email.clone()).or_default();
        match records.iter_mut().find(|(s, _)| *s == source) {
            None => records.push((source, contact)),
            Some((_, current)) => {
                let (winner, loser) = if contact_wins(current, &contact) {
                    let loser = std::mem::replace(current, contact);
                    (current.source_id.clone(), loser)
                } else {
                    (current.source_id.clone(), contact)
                };
                self.duplicates.push(Skip {
                    email: email.to_string(),
                    source_id: loser.source_id,
                    reason: SkipReason::DuplicateEmail {
                        winner_source_id: winner,
                    },
                });
            }
        }
    }

    /// Merges every email's records into one contact.
    pub fn finish(self) -> Merged {
        let mut emails: Vec<(Email, Vec<(usize, SourceContact)>)> =
            self.by_email.into_iter().collect();
        emails.sort_by(|a, b| a.0.cmp(&b.0));
        let mut contacts: Vec<SourceContact> = emails
            .into_iter()
            .map(|(_, records)| merge_records(records, &self.precedence))
            .collect();
        contacts.extend(self.invalid);
        Merged {
            contacts,
            duplicates: self.duplicates,
        }
    }
}

/// One contact from the records of one email (one per source).
fn merge_records(
    mut records: Vec<(usize, SourceContact)>,
    precedence: &FieldPrecedence,
) -> SourceContact {
    // Most recently edited first; ties by the larger (qualified) source id.
    records.sort_by(|(_, a), (_, b)| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| b.source_id.cmp(&a.source_id))
    });
    if records.len() == 1 {
        return records.pop().map(|(_, c)| c).unwrap_or_default();
    }
    let newest = &records[0].1;
    let mut merged = SourceContact {
        source_id: newest.source_id.clone(),
        email: newest.email.clone(),
        updated_at: newest.updated_at,
        ..SourceContact::default()
    };

    // Consent: the strictest known; unknown ("no opt-out recorded") only when nobody knows.
    let decider = records
        .iter()
        .filter_map(|(_, c)| strictness(c.consent).map(|rank| (rank, c)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, c)| c);
    match decider {
        Some(c) => {
            merged.consent = c.consent;
            merged.consented_at = c.consented_at;
        }
        None => merged.consent = Consent::NoOptOut,
    }

    // Each attribute from its owner: listed sources first, then the most recent, first non-blank.
    let ordered = |attribute: &Attribute| -> Vec<&SourceContact> {
        let listed = precedence.order_for(attribute);
        let mut order: Vec<&SourceContact> = listed
            .iter()
            .filter_map(|s| records.iter().find(|(i, _)| i == s).map(|(_, c)| c))
            .collect();
        order.extend(
            records
                .iter()
                .filter(|(i, _)| !listed.contains(i))
                .map(|(_, c)| c),
        );
        order
    };
    let pick_text = |attribute: Attribute, get: fn(&SourceContact) -> &str| -> String {
        ordered(&attribute)
            .into_iter()
            .map(get)
            .find(|v| !v.trim().is_empty())
            .unwrap_or_default()
            .to_string()
    };
    merged.first_name = pick_text(Attribute::FirstName, |c| &c.first_name);
    merged.last_name = pick_text(Attribute::LastName, |c| &c.last_name);
    merged.phone = pick_text(Attribute::Phone, |c| &c.phone);
    merged.address = ordered(&Attribute::Address)
        .into_iter()
        .find_map(|c| c.address.as_ref().filter(|a| !a.is_empty()).cloned());
    let keys: BTreeSet<&String> = records
        .iter()
        .flat_map(|(_, c)| c.custom_fields.keys())
        .collect();
    for key in keys {
        let value = ordered(&Attribute::Custom(key.clone()))
            .into_iter()
            .filter_map(|c| c.custom_fields.get(key))
            .find(|v| !v.trim().is_empty());
        if let Some(value) = value {
            merged.custom_fields.insert(key.clone(), value.clone());
        }
    }
    merged.tags = records
        .iter()
        .flat_map(|(_, c)| c.tags.iter().cloned())
        .collect();
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn contact(id: &str, email: &str, consent: Consent, minute: u32) -> SourceContact {
        SourceContact {
            source_id: id.into(),
            email: email.into(),
            consent,
            updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap(),
            ..SourceContact::default()
        }
    }

    fn merge(records: Vec<(usize, SourceContact)>, precedence: FieldPrecedence) -> Merged {
        let mut merger = SourceMerger::new(vec!["store".into(), "web".into()], precedence);
        for (source, record) in records {
            merger.observe(source, record);
        }
        merger.finish()
    }

    #[test]
    fn an_unsubscribe_in_one_source_wins_over_an_opt_in_in_the_other() {
        let merged = merge(
            vec![
                (0, contact("1", "a@example.com", Consent::Unsubscribed, 1)),
                (1, contact("9", "A@example.com", Consent::Subscribed, 5)),
            ],
            FieldPrecedence::default(),
        );
        assert_eq!(merged.contacts.len(), 1);
        assert_eq!(merged.contacts[0].consent, Consent::Unsubscribed);
        assert_eq!(
            merged.contacts[0].source_id, "web:9",
            "known by the newest record"
        );
    }

    #[test]
    fn no_opt_out_recorded_defers_to_a_source_that_knows_an_opt_in() {
        let merged = merge(
            vec![
                (0, contact("1", "a@example.com", Consent::NoOptOut, 9)),
                (1, contact("9", "a@example.com", Consent::Subscribed, 1)),
            ],
            FieldPrecedence::default(),
        );
        assert_eq!(merged.contacts[0].consent, Consent::Subscribed);
        let alone = merge(
            vec![(0, contact("1", "b@example.com", Consent::NoOptOut, 9))],
            FieldPrecedence::default(),
        );
        assert_eq!(alone.contacts[0].consent, Consent::NoOptOut);
    }

    #[test]
    fn never_opted_in_wins_over_subscribed() {
        let merged = merge(
            vec![
                (0, contact("1", "a@example.com", Consent::Subscribed, 9)),
                (1, contact("9", "a@example.com", Consent::NotSubscribed, 1)),
            ],
            FieldPrecedence::default(),
        );
        assert_eq!(merged.contacts[0].consent, Consent::NotSubscribed);
    }

    #[test]
    fn a_field_takes_its_listed_owner_and_blanks_do_not_erase() {
        let mut store = contact("1", "a@example.com", Consent::Subscribed, 9);
        store.first_name = "Ann (POS)".into();
        store.phone = String::new();
        let mut web = contact("9", "a@example.com", Consent::Subscribed, 1);
        web.first_name = "Ann".into();
        web.phone = "+4930123".into();
        let precedence =
            FieldPrecedence::by_attribute(BTreeMap::from([(Attribute::FirstName, vec![1])]));
        let merged = merge(vec![(0, store.clone()), (1, web.clone())], precedence);
        assert_eq!(
            merged.contacts[0].first_name, "Ann",
            "web owns the first name"
        );
        assert_eq!(merged.contacts[0].phone, "+4930123", "the POS has no phone");
        let by_recency = merge(vec![(0, store), (1, web)], FieldPrecedence::default());
        assert_eq!(
            by_recency.contacts[0].first_name, "Ann (POS)",
            "newest record"
        );
    }

    #[test]
    fn two_customers_of_one_source_keep_the_last_edited_and_report_the_other() {
        let merged = merge(
            vec![
                (0, contact("1", "a@example.com", Consent::Subscribed, 9)),
                (0, contact("2", "a@example.com", Consent::Unsubscribed, 1)),
            ],
            FieldPrecedence::default(),
        );
        assert_eq!(merged.contacts[0].consent, Consent::Subscribed);
        assert_eq!(merged.duplicates.len(), 1);
        assert_eq!(merged.duplicates[0].source_id, "store:2");
    }

    #[test]
    fn precedence_is_given_by_target_field_and_checked() {
        let mapping = FieldMapping::default();
        let names = vec!["store".to_string(), "web".to_string()];
        let lists = BTreeMap::from([("fname".to_string(), vec!["web".to_string()])]);
        let p = FieldPrecedence::for_target_fields(&mapping, &lists, &names).unwrap();
        assert_eq!(p.order_for(&Attribute::FirstName), &[1]);
        let unknown_field = BTreeMap::from([("PHONE".to_string(), vec!["web".to_string()])]);
        assert!(FieldPrecedence::for_target_fields(&mapping, &unknown_field, &names).is_err());
        let unknown_source = BTreeMap::from([("FNAME".to_string(), vec!["pos".to_string()])]);
        let err =
            FieldPrecedence::for_target_fields(&mapping, &unknown_source, &names).unwrap_err();
        assert!(err.contains("unknown source pos"), "{err}");
    }
}
