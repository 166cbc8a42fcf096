//! The account's profiles by id, with indexes by identifier (email, phone number, external id)
//! that every change keeps in step, so a look-up by identifier costs the same in an account of
//! 20 profiles as in one of 100,000 (a bulk import of N profiles used to scan the account once per
//! profile, N² in all).
//!
//! Every way to change a profile goes through here: [`Profiles::insert`], [`Profiles::get_mut`]
//! (whose guard re-indexes the identifiers it changed when it is dropped) and
//! [`Profiles::remove`]. An index entry holds every id with that identifier, in id order, so a
//! look-up answers what a scan in id order would even if two profiles ever shared one.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};
use std::ops::{Deref, DerefMut, Index};

use super::state::Profile;

/// The identifiers of one profile, as stored (email already lowercased by writes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identifiers {
    email: Option<String>,
    phone_number: Option<String>,
    external_id: Option<String>,
}

impl Identifiers {
    fn of(profile: &Profile) -> Identifiers {
        Identifiers {
            email: profile.email.clone(),
            phone_number: profile.phone_number.clone(),
            external_id: profile.external_id.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Indexes {
    email: HashMap<String, BTreeSet<String>>,
    phone_number: HashMap<String, BTreeSet<String>>,
    external_id: HashMap<String, BTreeSet<String>>,
}

fn add(index: &mut HashMap<String, BTreeSet<String>>, key: &Option<String>, id: &str) {
    if let Some(key) = key {
        index.entry(key.clone()).or_default().insert(id.to_string());
    }
}

fn drop_from(index: &mut HashMap<String, BTreeSet<String>>, key: &Option<String>, id: &str) {
    if let Some(key) = key
        && let Some(ids) = index.get_mut(key)
    {
        ids.remove(id);
        if ids.is_empty() {
            index.remove(key);
        }
    }
}

impl Indexes {
    fn add(&mut self, keys: &Identifiers, id: &str) {
        add(&mut self.email, &keys.email, id);
        add(&mut self.phone_number, &keys.phone_number, id);
        add(&mut self.external_id, &keys.external_id, id);
    }

    fn remove(&mut self, keys: &Identifiers, id: &str) {
        drop_from(&mut self.email, &keys.email, id);
        drop_from(&mut self.phone_number, &keys.phone_number, id);
        drop_from(&mut self.external_id, &keys.external_id, id);
    }
}

/// Which identifier a look-up is by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier {
    /// Compared with the stored (lowercased) email exactly: callers lowercase what they look up.
    Email,
    PhoneNumber,
    ExternalId,
}

/// The profiles of an account.
#[derive(Debug, Default)]
pub struct Profiles {
    by_id: BTreeMap<String, Profile>,
    index: Indexes,
}

impl Profiles {
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.by_id.get(id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// In id order (= creation order).
    pub fn values(&self) -> btree_map::Values<'_, String, Profile> {
        self.by_id.values()
    }

    /// Adds a profile, or replaces the one with its id.
    pub fn insert(&mut self, profile: Profile) {
        let id = profile.id.clone();
        if let Some(old) = self.by_id.get(&id) {
            let keys = Identifiers::of(old);
            self.index.remove(&keys, &id);
        }
        self.index.add(&Identifiers::of(&profile), &id);
        self.by_id.insert(id, profile);
    }

    /// A profile to change; the identifiers it changes are re-indexed when the guard is dropped.
    pub fn get_mut(&mut self, id: &str) -> Option<ProfileMut<'_>> {
        let profile = self.by_id.get_mut(id)?;
        let before = Identifiers::of(profile);
        Some(ProfileMut {
            profile,
            before,
            index: &mut self.index,
        })
    }

    /// Deletes a profile and its index entries.
    pub fn remove(&mut self, id: &str) -> Option<Profile> {
        let profile = self.by_id.remove(id)?;
        self.index.remove(&Identifiers::of(&profile), id);
        Some(profile)
    }

    /// The ids holding `value` as that identifier, in id order.
    pub fn ids_by(&self, identifier: Identifier, value: &str) -> impl Iterator<Item = &String> {
        let index = match identifier {
            Identifier::Email => &self.index.email,
            Identifier::PhoneNumber => &self.index.phone_number,
            Identifier::ExternalId => &self.index.external_id,
        };
        index.get(value).into_iter().flatten()
    }

    /// The first profile (in id order) holding `value` as that identifier.
    pub fn find_by(&self, identifier: Identifier, value: &str) -> Option<&Profile> {
        self.ids_by(identifier, value)
            .next()
            .and_then(|id| self.by_id.get(id))
    }
}

impl Index<&String> for Profiles {
    type Output = Profile;

    fn index(&self, id: &String) -> &Profile {
        &self.by_id[id]
    }
}

/// A profile being changed (see [`Profiles::get_mut`]).
pub struct ProfileMut<'a> {
    profile: &'a mut Profile,
    before: Identifiers,
    index: &'a mut Indexes,
}

impl Deref for ProfileMut<'_> {
    type Target = Profile;

    fn deref(&self) -> &Profile {
        self.profile
    }
}

impl DerefMut for ProfileMut<'_> {
    fn deref_mut(&mut self) -> &mut Profile {
        self.profile
    }
}

impl Drop for ProfileMut<'_> {
    fn drop(&mut self) {
        let after = Identifiers::of(self.profile);
        if after != self.before {
            let id = self.profile.id.clone();
            self.index.remove(&self.before, &id);
            self.index.add(&after, &id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn profile(id: &str, email: &str) -> Profile {
        let mut state = super::super::state::State::default();
        let input = super::super::state::ProfileInput {
            email: super::super::state::Patch::Set(email.to_string()),
            ..Default::default()
        };
        let made = state.create_profile(&input).expect("created");
        let mut p = state.profiles.remove(&made).expect("there");
        p.id = id.to_string();
        p
    }

    #[test]
    fn every_change_keeps_the_email_index_in_step() {
        let mut profiles = Profiles::default();
        profiles.insert(profile("A", "a@x.io"));
        profiles.insert(profile("B", "b@x.io"));
        assert_eq!(
            profiles
                .find_by(Identifier::Email, "a@x.io")
                .map(|p| &p.id[..]),
            Some("A")
        );

        // An update through the guard moves the entry.
        {
            let mut a = profiles.get_mut("A").expect("A");
            a.email = Some("new@x.io".into());
            a.phone_number = Some("+15005550006".into());
            a.updated = Utc::now();
        }
        assert!(profiles.find_by(Identifier::Email, "a@x.io").is_none());
        assert_eq!(
            profiles
                .find_by(Identifier::Email, "new@x.io")
                .map(|p| &p.id[..]),
            Some("A")
        );
        assert_eq!(
            profiles
                .find_by(Identifier::PhoneNumber, "+15005550006")
                .map(|p| &p.id[..]),
            Some("A")
        );

        // Replacing a profile by id drops its old identifiers.
        profiles.insert(profile("B", "b2@x.io"));
        assert!(profiles.find_by(Identifier::Email, "b@x.io").is_none());
        assert_eq!(profiles.len(), 2);

        // A deletion drops every entry.
        profiles.remove("A");
        assert!(profiles.find_by(Identifier::Email, "new@x.io").is_none());
        assert!(
            profiles
                .find_by(Identifier::PhoneNumber, "+15005550006")
                .is_none()
        );
        assert_eq!(profiles.ids_by(Identifier::Email, "b2@x.io").count(), 1);
    }

    #[test]
    fn a_shared_identifier_answers_in_id_order_as_a_scan_would() {
        let mut profiles = Profiles::default();
        profiles.insert(profile("B", "same@x.io"));
        profiles.insert(profile("A", "same@x.io"));
        assert_eq!(
            profiles
                .find_by(Identifier::Email, "same@x.io")
                .map(|p| &p.id[..]),
            Some("A")
        );
        profiles.remove("A");
        assert_eq!(
            profiles
                .find_by(Identifier::Email, "same@x.io")
                .map(|p| &p.id[..]),
            Some("B")
        );
    }
}
