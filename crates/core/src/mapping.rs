//! Which contact attributes a sync writes, and under which target field names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contact::{Address, SourceContact};

/// A target field's value: text, or a structured address (Mailchimp's `ADDRESS` merge field).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Text(String),
    Address(Address),
}

impl FieldValue {
    /// Empty text and an empty address mean "no value"; targets do not distinguish them.
    pub fn is_blank(&self) -> bool {
        match self {
            FieldValue::Text(t) => t.trim().is_empty(),
            FieldValue::Address(a) => a.is_empty(),
        }
    }

    /// The canonical form compared by the diff: blank becomes empty text, text is trimmed.
    pub fn canonical(&self) -> FieldValue {
        match self {
            FieldValue::Text(t) => FieldValue::Text(t.trim().to_string()),
            FieldValue::Address(a) if a.is_empty() => FieldValue::Text(String::new()),
            FieldValue::Address(a) => FieldValue::Address(a.clone()),
        }
    }
}

/// The attributes a sync maps onto target fields. Fields not named here are never written, so a
/// target field the merchant fills by hand is left alone; the ones named here follow the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// Target field for the first name (`FNAME` by default; `None` to leave it alone).
    pub first_name: Option<String>,
    /// Target field for the last name (`LNAME` by default).
    pub last_name: Option<String>,
    /// Target field for the phone number (off by default; Mailchimp's is `PHONE`).
    pub phone: Option<String>,
    /// Target field for the postal address (off by default; Mailchimp's is `ADDRESS`).
    pub address: Option<String>,
    /// Source custom attribute → target field (e.g. `company` → `COMPANY`).
    pub custom: BTreeMap<String, String>,
    /// Copy the source's tags onto the member (added, never removed: other tools tag members too).
    pub tags: bool,
}

impl Default for FieldMapping {
    fn default() -> Self {
        FieldMapping {
            first_name: Some("FNAME".into()),
            last_name: Some("LNAME".into()),
            phone: None,
            address: None,
            custom: BTreeMap::new(),
            tags: false,
        }
    }
}

/// What kind of value a mapped target field holds (so a target can create the field when missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Phone,
    Address,
}

impl FieldMapping {
    /// Every mapped target field with its kind, in a stable order.
    pub fn target_fields(&self) -> Vec<(&str, FieldKind)> {
        let mut fields = Vec::new();
        if let Some(f) = &self.first_name {
            fields.push((f.as_str(), FieldKind::Text));
        }
        if let Some(f) = &self.last_name {
            fields.push((f.as_str(), FieldKind::Text));
        }
        if let Some(f) = &self.phone {
            fields.push((f.as_str(), FieldKind::Phone));
        }
        if let Some(f) = &self.address {
            fields.push((f.as_str(), FieldKind::Address));
        }
        for target in self.custom.values() {
            fields.push((target.as_str(), FieldKind::Text));
        }
        fields
    }

    /// The contact's values for every mapped field, in [`Self::target_fields`] order, canonical.
    pub fn project(&self, contact: &SourceContact) -> Vec<(String, FieldValue)> {
        let text = |s: &str| FieldValue::Text(s.trim().to_string());
        let mut values = Vec::new();
        if let Some(f) = &self.first_name {
            values.push((f.clone(), text(&contact.first_name)));
        }
        if let Some(f) = &self.last_name {
            values.push((f.clone(), text(&contact.last_name)));
        }
        if let Some(f) = &self.phone {
            values.push((f.clone(), text(&contact.phone)));
        }
        if let Some(f) = &self.address {
            let value = match &contact.address {
                Some(a) => FieldValue::Address(a.clone()).canonical(),
                None => FieldValue::Text(String::new()),
            };
            values.push((f.clone(), value));
        }
        for (source_key, target) in &self.custom {
            let value = contact
                .custom_fields
                .get(source_key)
                .map(String::as_str)
                .unwrap_or("");
            values.push((target.clone(), text(value)));
        }
        values
    }

    /// Fingerprints of the contact's values, in [`Self::target_fields`] order, without allocating
    /// (the diff's hot path: most contacts are unchanged and never need their values copied).
    pub fn project_fingerprints(&self, contact: &SourceContact, out: &mut Vec<u64>) {
        use crate::fingerprint::{of_address, of_text};
        out.clear();
        if self.first_name.is_some() {
            out.push(of_text(&contact.first_name));
        }
        if self.last_name.is_some() {
            out.push(of_text(&contact.last_name));
        }
        if self.phone.is_some() {
            out.push(of_text(&contact.phone));
        }
        if self.address.is_some() {
            out.push(
                contact
                    .address
                    .as_ref()
                    .map_or_else(|| of_text(""), of_address),
            );
        }
        for source_key in self.custom.keys() {
            out.push(of_text(
                contact
                    .custom_fields
                    .get(source_key)
                    .map(String::as_str)
                    .unwrap_or(""),
            ));
        }
    }

    /// Checks the mapping names each target field once.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for (field, _) in self.target_fields() {
            if field.trim().is_empty() {
                return Err("a mapped target field name is empty".into());
            }
            if !seen.insert(field.to_ascii_uppercase()) {
                return Err(format!("target field {field} is mapped twice"));
            }
        }
        Ok(())
    }
}
