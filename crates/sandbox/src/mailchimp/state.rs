//! The simulated account: audiences (lists), members, merge fields and static segments (tags),
//! and the rules every write goes through.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::{Map, Value, json};

use super::email::{self, Rejection, subscriber_hash};
use super::error::{ApiError, FieldError};

/// A member's status. The spec's write enum is `subscribed, unsubscribed, cleaned, pending,
/// transactional`; reads add `archived` (the `status` filter of `GET /lists/{list_id}/members`
/// lists it, and an archived contact reads back with that status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    Subscribed,
    Unsubscribed,
    Cleaned,
    Pending,
    Transactional,
    Archived,
}

impl MemberStatus {
    /// Statuses a write may set.
    pub const WRITABLE: &'static [&'static str] = &[
        "subscribed",
        "unsubscribed",
        "cleaned",
        "pending",
        "transactional",
    ];

    /// Statuses `PATCH /lists/{list_id}/members/{subscriber_hash}` may set (its body,
    /// `Add_List_Members_3`, has no `transactional`).
    pub const PATCHABLE: &'static [&'static str] =
        &["subscribed", "unsubscribed", "cleaned", "pending"];

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Subscribed => "subscribed",
            MemberStatus::Unsubscribed => "unsubscribed",
            MemberStatus::Cleaned => "cleaned",
            MemberStatus::Pending => "pending",
            MemberStatus::Transactional => "transactional",
            MemberStatus::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<MemberStatus> {
        Some(match text {
            "subscribed" => MemberStatus::Subscribed,
            "unsubscribed" => MemberStatus::Unsubscribed,
            "cleaned" => MemberStatus::Cleaned,
            "pending" => MemberStatus::Pending,
            "transactional" => MemberStatus::Transactional,
            "archived" => MemberStatus::Archived,
            _ => return None,
        })
    }

    /// Whether a contact in this status counts toward the plan's contact limit. Mailchimp bills
    /// subscribed, unsubscribed and non-subscribed (transactional, pending) contacts; cleaned and
    /// archived contacts do not count.
    pub fn counts_toward_limit(self) -> bool {
        !matches!(self, MemberStatus::Cleaned | MemberStatus::Archived)
    }
}

/// The default merge fields of a new audience: `FNAME`, `LNAME`, `ADDRESS`, `PHONE`, `BIRTHDAY`
/// (merge ids 1–5, display order 2–6 after the implicit `EMAIL`).
const DEFAULT_MERGE_FIELDS: &[(&str, &str, &str)] = &[
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("ADDRESS", "Address", "address"),
    ("PHONE", "Phone Number", "phone"),
    ("BIRTHDAY", "Birthday", "birthday"),
];

/// Merge-field types (spec `Merge_Field.type` enum).
pub const MERGE_FIELD_TYPES: &[&str] = &[
    "text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown",
    "birthday", "zip",
];

const ADDRESS_PARTS: &[&str] = &["addr1", "addr2", "city", "state", "zip", "country"];

#[derive(Debug, Clone)]
pub struct MergeField {
    pub merge_id: u64,
    pub tag: String,
    pub name: String,
    pub kind: String,
    pub required: bool,
    pub default_value: String,
    pub public: bool,
    pub display_order: u64,
    pub options: Map<String, Value>,
    pub help_text: String,
}

impl MergeField {
    pub fn default_options(kind: &str) -> Map<String, Value> {
        let value = match kind {
            "text" => json!({"size": 25}),
            "address" => json!({"default_country": 164}),
            "phone" => json!({"phone_format": "none"}),
            "birthday" => json!({"date_format": "MM/DD"}),
            "date" => json!({"date_format": "MM/DD/YYYY"}),
            "radio" | "dropdown" => json!({"choices": []}),
            _ => json!({}),
        };
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// A static segment. "Static segments are now known as tags": a tag is a static segment, and a
/// member's `tags[].id` is the segment id.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Member subscriber hash → when it was added.
    pub members: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub seq: u64,
    pub email_address: String,
    /// The status; for an archived member, the status it had before it was archived (its
    /// compliance state survives archiving).
    pub status: MemberStatus,
    pub archived: bool,
    /// The member's consent history: `Some(Unsubscribed)` once they unsubscribed,
    /// `Some(Cleaned)` once their address bounced (the stronger of the two is kept). It outlives
    /// every later status (transactional, pending, archived) and only the person's own
    /// confirmation clears it (see [`State::confirm`]).
    pub compliance: Option<MemberStatus>,
    pub email_type: String,
    pub merge_fields: BTreeMap<String, Value>,
    pub interests: Map<String, Value>,
    pub language: String,
    pub vip: bool,
    pub latitude: f64,
    pub longitude: f64,
    pub ip_signup: String,
    pub timestamp_signup: Option<DateTime<Utc>>,
    pub ip_opt: String,
    pub timestamp_opt: Option<DateTime<Utc>>,
    pub member_rating: u8,
    pub last_changed: DateTime<Utc>,
    /// `sms_phone_number` (`""` when none), see [`super::sms`].
    pub sms_phone_number: String,
    /// `sms_subscription_status`; `None` renders as `""` [U].
    pub sms_subscription_status: Option<String>,
    pub sms_subscription_last_updated: Option<DateTime<Utc>>,
}

impl Member {
    pub fn new(seq: u64, email: String, status: MemberStatus, now: DateTime<Utc>) -> Member {
        let mut member = Member {
            seq,
            email_address: email,
            status,
            archived: false,
            compliance: None,
            email_type: "html".to_string(),
            merge_fields: BTreeMap::new(),
            interests: Map::new(),
            language: String::new(),
            vip: false,
            latitude: 0.0,
            longitude: 0.0,
            ip_signup: String::new(),
            timestamp_signup: None,
            ip_opt: String::new(),
            timestamp_opt: (status == MemberStatus::Subscribed).then_some(now),
            member_rating: 2,
            last_changed: now,
            sms_phone_number: String::new(),
            sms_subscription_status: None,
            sms_subscription_last_updated: None,
        };
        member.record_status(status);
        member
    }

    /// Records a status the member reached in its consent history: unsubscribing or bouncing
    /// locks; subscribing unlocks. The API can only subscribe a member without a lock (see
    /// [`check_transition`]), so only the person (a signup form, a confirmation) unlocks.
    pub fn record_status(&mut self, status: MemberStatus) {
        self.compliance = match (status, self.compliance) {
            (MemberStatus::Cleaned, _) => Some(MemberStatus::Cleaned),
            (MemberStatus::Unsubscribed, Some(MemberStatus::Cleaned)) => {
                Some(MemberStatus::Cleaned)
            }
            (MemberStatus::Unsubscribed, _) => Some(MemberStatus::Unsubscribed),
            (MemberStatus::Subscribed, _) => None,
            (_, lock) => lock,
        };
    }

    pub fn visible_status(&self) -> MemberStatus {
        if self.archived {
            MemberStatus::Archived
        } else {
            self.status
        }
    }

    pub fn full_name(&self) -> String {
        let part = |tag: &str| match self.merge_fields.get(tag) {
            Some(Value::String(s)) => s.trim().to_string(),
            _ => String::new(),
        };
        format!("{} {}", part("FNAME"), part("LNAME"))
            .trim()
            .to_string()
    }
}

#[derive(Debug, Clone)]
pub struct List {
    pub seq: u64,
    pub id: String,
    pub web_id: u64,
    pub settings: Map<String, Value>,
    pub date_created: DateTime<Utc>,
    pub members: HashMap<String, Member>,
    /// Subscriber hashes of permanently deleted ("forgotten") addresses.
    pub forgotten: HashSet<String>,
    pub merge_fields: Vec<MergeField>,
    pub next_merge_id: u64,
    pub segments: BTreeMap<u64, Segment>,
    /// Interests (groups) members may be put in: interest id → name.
    pub interests: BTreeMap<String, String>,
    pub last_sub_date: Option<DateTime<Utc>>,
    pub last_unsub_date: Option<DateTime<Utc>>,
}

impl List {
    pub fn name(&self) -> String {
        self.settings
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn merge_field(&self, tag: &str) -> Option<&MergeField> {
        self.merge_fields.iter().find(|f| f.tag == tag)
    }

    /// Members in a stable order (the order they were added).
    pub fn ordered_members(&self) -> Vec<(&String, &Member)> {
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|(_, m)| m.seq);
        members
    }

    pub fn count_status(&self, status: MemberStatus) -> usize {
        self.members
            .values()
            .filter(|m| m.visible_status() == status)
            .count()
    }

    /// The static segments (tags) a member is in, in segment-id order.
    pub fn tags_of(&self, hash: &str) -> Vec<(&Segment, DateTime<Utc>)> {
        self.segments
            .values()
            .filter_map(|s| s.members.get(hash).map(|added| (s, *added)))
            .collect()
    }

    pub fn segment_by_name(&self, name: &str) -> Option<&Segment> {
        let wanted = name.trim().to_lowercase();
        self.segments
            .values()
            .find(|s| s.name.to_lowercase() == wanted)
    }
}

/// Which API keys the simulated account accepts.
#[derive(Debug, Clone, Default)]
pub struct KeyPolicy {
    /// `Some`: exactly these keys; `None`: any well-formed key (`<32 hex>-<dc>`).
    pub only: Option<HashSet<String>>,
    /// Keys refused whatever the rest of the policy says (revoked keys).
    pub revoked: HashSet<String>,
}

impl KeyPolicy {
    pub fn accepts(&self, key: &str) -> bool {
        if self.revoked.contains(key) {
            return false;
        }
        match &self.only {
            Some(keys) => keys.contains(key),
            None => well_formed_key(key),
        }
    }
}

/// `<32 lowercase hex>-<datacenter>`, the datacenter being letters then digits (`us6`).
pub fn well_formed_key(key: &str) -> bool {
    let Some((secret, dc)) = key.split_once('-') else {
        return false;
    };
    let letters = dc.chars().take_while(|c| c.is_ascii_lowercase()).count();
    secret.len() == 32
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && letters >= 1
        && dc.len() > letters
        && dc[letters..].bytes().all(|b| b.is_ascii_digit())
}

/// A member write, already type-checked.
#[derive(Debug, Default, Clone)]
pub struct MemberInput {
    pub email_address: Option<String>,
    pub status: Option<MemberStatus>,
    pub status_if_new: Option<MemberStatus>,
    pub email_type: Option<String>,
    pub merge_fields: Option<Map<String, Value>>,
    pub interests: Option<Map<String, Value>>,
    pub language: Option<String>,
    pub vip: Option<bool>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub ip_signup: Option<String>,
    pub timestamp_signup: Option<DateTime<Utc>>,
    pub ip_opt: Option<String>,
    pub timestamp_opt: Option<DateTime<Utc>>,
    pub tags: Option<Vec<String>>,
    pub sms_phone_number: Option<String>,
    pub sms_subscription_status: Option<String>,
}

/// The operation a member write comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /lists/{list_id}/members`.
    Create,
    /// `PUT /lists/{list_id}/members/{subscriber_hash}`.
    Upsert,
    /// `PATCH /lists/{list_id}/members/{subscriber_hash}`.
    Update,
    /// One entry of batch subscribe `POST /lists/{list_id}`.
    Batch {
        update_existing: bool,
        sync_tags: bool,
    },
}

/// What a successful member write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created(String),
    Updated(String),
}

impl Outcome {
    pub fn hash(&self) -> &str {
        match self {
            Outcome::Created(h) | Outcome::Updated(h) => h,
        }
    }
}

pub struct State {
    pub lists: BTreeMap<String, List>,
    pub next_seq: u64,
    pub next_web_id: u64,
    pub next_segment_id: u64,
    pub contact_limit: Option<u64>,
    pub keys: KeyPolicy,
    /// The data centre the account lives in (`us6`); keys naming another get 403.
    pub data_center: String,
    pub clock_offset: Duration,
    pub created: DateTime<Utc>,
    /// The e-commerce stores (`/ecommerce/stores…`).
    pub ecommerce: super::ecommerce::Ecommerce,
    /// `(list id, subscriber hash)` of members the e-commerce API added.
    pub ecommerce_members: HashSet<(String, String)>,
}

impl Default for State {
    fn default() -> Self {
        State {
            lists: BTreeMap::new(),
            next_seq: 1,
            next_web_id: 100_001,
            next_segment_id: 10_001,
            contact_limit: None,
            keys: KeyPolicy::default(),
            data_center: super::DEFAULT_DATA_CENTER.to_string(),
            clock_offset: Duration::zero(),
            created: Utc::now().trunc_subsecs(0),
            ecommerce: Default::default(),
            ecommerce_members: HashSet::new(),
        }
    }
}

impl State {
    /// The simulator's clock, at Mailchimp's resolution (whole seconds).
    pub fn now(&self) -> DateTime<Utc> {
        (Utc::now() + self.clock_offset).trunc_subsecs(0)
    }

    fn seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Contacts that count toward the plan's limit, across every audience.
    pub fn contact_count(&self) -> u64 {
        self.lists
            .values()
            .flat_map(|l| l.members.values())
            .filter(|m| m.visible_status().counts_toward_limit())
            .count() as u64
    }

    pub fn total_subscribers(&self) -> usize {
        self.lists
            .values()
            .map(|l| l.count_status(MemberStatus::Subscribed))
            .sum()
    }

    pub fn list(&self, id: &str) -> Result<&List, ApiError> {
        self.lists.get(id).ok_or(ApiError::NotFound)
    }

    pub fn list_mut(&mut self, id: &str) -> Result<&mut List, ApiError> {
        self.lists.get_mut(id).ok_or(ApiError::NotFound)
    }

    /// Creates an audience with the default merge fields.
    pub fn create_list(&mut self, id: Option<&str>, settings: Map<String, Value>) -> String {
        let id = match id {
            Some(id) => id.to_string(),
            None => loop {
                let candidate = format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff);
                if !self.lists.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        let seq = self.seq();
        let web_id = self.next_web_id;
        self.next_web_id += 1;
        let merge_fields = DEFAULT_MERGE_FIELDS
            .iter()
            .enumerate()
            .map(|(i, (tag, name, kind))| MergeField {
                merge_id: i as u64 + 1,
                tag: tag.to_string(),
                name: name.to_string(),
                kind: kind.to_string(),
                required: false,
                default_value: String::new(),
                public: false,
                display_order: i as u64 + 2,
                options: MergeField::default_options(kind),
                help_text: String::new(),
            })
            .collect::<Vec<_>>();
        let list = List {
            seq,
            id: id.clone(),
            web_id,
            settings,
            date_created: self.now(),
            members: HashMap::new(),
            forgotten: HashSet::new(),
            next_merge_id: merge_fields.len() as u64 + 1,
            merge_fields,
            segments: BTreeMap::new(),
            interests: BTreeMap::new(),
            last_sub_date: None,
            last_unsub_date: None,
        };
        self.lists.insert(id.clone(), list);
        id
    }

    /// Resolves a `{subscriber_hash}` path segment: an MD5 hex string, or an email address (for
    /// which Mailchimp computes the hash itself). Anything else names no member.
    pub fn resolve_hash(segment: &str) -> Result<String, ApiError> {
        if email::is_md5_hex(segment) {
            Ok(segment.to_ascii_lowercase())
        } else if segment.contains('@') {
            Ok(subscriber_hash(segment))
        } else {
            Err(ApiError::NotFound)
        }
    }

    /// Every member write (POST, PUT, PATCH, one batch-subscribe entry) goes through here.
    pub fn write_member(
        &mut self,
        list_id: &str,
        path_hash: Option<&str>,
        input: MemberInput,
        mode: Mode,
        skip_merge_validation: bool,
    ) -> Result<Outcome, ApiError> {
        let now = self.now();
        let limit = self.contact_limit;
        // Counting walks every member, so only when a limit applies.
        let contacts = if limit.is_some() {
            self.contact_count()
        } else {
            0
        };
        let seq = self.next_seq;
        let State {
            lists,
            next_seq,
            next_segment_id,
            ..
        } = self;
        let list = lists.get_mut(list_id).ok_or(ApiError::NotFound)?;
        let email = input
            .email_address
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        let over_limit = |status: MemberStatus, email: &str| match limit {
            Some(limit) if status.counts_toward_limit() && contacts >= limit => {
                Err(ApiError::ContactLimit {
                    email: email.to_string(),
                    limit,
                })
            }
            _ => Ok(()),
        };

        // Which member the write addresses.
        let key = match mode {
            Mode::Create | Mode::Batch { .. } => {
                let email = email.as_deref().ok_or_else(blank_email)?;
                subscriber_hash(email)
            }
            Mode::Upsert => {
                let path = path_hash.ok_or(ApiError::NotFound)?;
                let email = email.as_deref().ok_or_else(blank_email)?;
                let own = subscriber_hash(email);
                if list.members.contains_key(path) {
                    path.to_string()
                } else if own != path && list.members.get(&own).is_some_and(|m| !m.archived) {
                    // Nothing lives at the path's hash (typically the MD5 of an address that was
                    // not lowercased), so this is an insert of an address that already exists.
                    return Err(ApiError::MemberExists(email.to_string()));
                } else {
                    own
                }
            }
            Mode::Update => {
                let path = path_hash.ok_or(ApiError::NotFound)?;
                if !list.members.contains_key(path) {
                    return Err(ApiError::NotFound);
                }
                path.to_string()
            }
        };

        // Interests are keyed by id; an id the audience does not define is refused whatever
        // its value (Mailchimp: 400 "Invalid interest ID: '…'.").
        if let Some(unknown) = input
            .interests
            .iter()
            .flat_map(|i| i.keys())
            .find(|id| !list.interests.contains_key(*id))
        {
            return Err(ApiError::InvalidResource(format!(
                "Invalid interest ID: '{unknown}'."
            )));
        }

        let Some(existing) = list.members.get(&key).cloned() else {
            // A new contact.
            let email = email.ok_or_else(blank_email)?;
            check_address(&email)?;
            if list.forgotten.contains(&key) {
                return Err(ApiError::ForgottenEmail(email));
            }
            let status = match mode {
                Mode::Upsert => input.status_if_new,
                _ => input.status,
            }
            .ok_or_else(|| {
                let field = if mode == Mode::Upsert {
                    "status_if_new"
                } else {
                    "status"
                };
                ApiError::Validation(vec![FieldError::new(
                    field,
                    "This value should not be blank.",
                )])
            })?;
            over_limit(status, &email)?;
            let merge = normalise_merge_fields(
                list,
                input.merge_fields.as_ref(),
                true,
                skip_merge_validation,
            )?;
            *next_seq += 1;
            let mut member = Member::new(seq, email, status, now);
            for field in &list.merge_fields {
                if !field.default_value.is_empty() {
                    member.merge_fields.insert(
                        field.tag.clone(),
                        Value::String(field.default_value.clone()),
                    );
                }
            }
            super::sms::check_write(None, &input)?;
            apply_input(&mut member, &input, merge, now);
            if status == MemberStatus::Subscribed {
                member.timestamp_opt = Some(input.timestamp_opt.unwrap_or(now));
                list.last_sub_date = Some(now);
            }
            list.members.insert(key.clone(), member);
            if let Some(tags) = &input.tags
                && !matches!(mode, Mode::Update | Mode::Upsert)
            {
                for tag in tags {
                    set_tag(list, next_segment_id, &key, tag, true, now);
                }
            }
            return Ok(Outcome::Created(key));
        };

        // An existing contact.
        let batch_update_existing = match mode {
            Mode::Batch {
                update_existing, ..
            } => Some(update_existing),
            _ => None,
        };
        if !existing.archived && (mode == Mode::Create || batch_update_existing == Some(false)) {
            return Err(ApiError::MemberExists(existing.email_address.clone()));
        }
        let requested = match mode {
            Mode::Upsert if existing.archived => input.status.or(input.status_if_new),
            _ => input.status,
        };
        // [U] An archived contact is not a member until re-added, and re-adding takes a status:
        // a batch entry without one (tags only, say) is refused as for a new contact, as
        // `POST …/tags` on an archived member is a 404.
        if existing.archived && matches!(mode, Mode::Batch { .. }) && requested.is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "status",
                "This value should not be blank.",
            )]));
        }
        let shown_email = email
            .clone()
            .unwrap_or_else(|| existing.email_address.clone());
        if let Some(requested) = requested {
            check_transition(
                existing.status,
                existing.compliance,
                requested,
                &shown_email,
            )?;
            if existing.archived {
                over_limit(requested, &shown_email)?;
            }
        }

        // A changed address (PUT/PATCH with another email_address) moves the member.
        let mut new_key = key.clone();
        if let Some(email) = &email
            && matches!(mode, Mode::Upsert | Mode::Update)
            && subscriber_hash(email) != key
        {
            check_address(email)?;
            // [U] Moving a locked member to a new address would leave the old address free to
            // be added again as `subscribed`; Mailchimp refuses address changes of cleaned
            // members ("You can only update email addresses for members with a status of
            // subscribed"), and the simulator refuses them for every member with a consent
            // history.
            if existing.compliance.is_some() {
                return Err(ApiError::ComplianceState(existing.email_address.clone()));
            }
            let moved = subscriber_hash(email);
            if list.members.contains_key(&moved) {
                return Err(ApiError::MemberExists(email.clone()));
            }
            if list.forgotten.contains(&moved) {
                return Err(ApiError::ForgottenEmail(email.clone()));
            }
            new_key = moved;
        }

        let merge = normalise_merge_fields(
            list,
            input.merge_fields.as_ref(),
            false,
            skip_merge_validation,
        )?;
        super::sms::check_write(Some(&existing), &input)?;
        let mut member = existing.clone();
        apply_input(&mut member, &input, merge, now);
        // The same address in another case keeps the stored spelling; a new address replaces it.
        if new_key != key
            && let Some(email) = &email
        {
            member.email_address = email.clone();
        }
        let readded = existing.archived && requested.is_some();
        if let Some(requested) = requested {
            if requested == MemberStatus::Subscribed
                && (existing.status != MemberStatus::Subscribed || existing.archived)
            {
                member.timestamp_opt = Some(input.timestamp_opt.unwrap_or(now));
                list.last_sub_date = Some(now);
            }
            if requested == MemberStatus::Unsubscribed
                && existing.visible_status() != MemberStatus::Unsubscribed
            {
                list.last_unsub_date = Some(now);
            }
            member.status = requested;
            member.archived = false;
            member.record_status(requested);
        }
        let mut changed = member != existing;
        list.members.remove(&key);
        if new_key != key {
            for segment in list.segments.values_mut() {
                if let Some(added) = segment.members.remove(&key) {
                    segment.members.insert(new_key.clone(), added);
                }
            }
        }
        list.members.insert(new_key.clone(), member);
        match mode {
            Mode::Batch {
                sync_tags: true, ..
            } => {
                if let Some(tags) = &input.tags {
                    changed |= replace_tags(list, next_segment_id, &new_key, tags, now);
                }
            }
            // Since January 2022 batch subscribe adds an entry's tags to an existing member
            // (release note "Added ability to sync tags to existing members" [D]); the member's
            // other tags stay. Only `sync_tags` replaces them.
            Mode::Batch { .. } | Mode::Create => {
                for tag in input.tags.iter().flatten() {
                    changed |= set_tag(list, next_segment_id, &new_key, tag, true, now);
                }
            }
            _ => {}
        }
        if changed && let Some(member) = list.members.get_mut(&new_key) {
            member.last_changed = now;
        }
        // Re-adding an archived contact through POST or batch subscribe is an addition.
        if readded && matches!(mode, Mode::Create | Mode::Batch { .. }) {
            Ok(Outcome::Created(new_key))
        } else {
            Ok(Outcome::Updated(new_key))
        }
    }

    /// Puts a member in place without any API rule (test set-up); an existing member gets the
    /// status and the merge-field values.
    pub fn insert_direct(
        &mut self,
        list_id: &str,
        email: &str,
        status: MemberStatus,
        merge_fields: Map<String, Value>,
    ) -> Result<String, ApiError> {
        let now = self.now();
        let seq = self.seq();
        let list = self.list_mut(list_id)?;
        let hash = subscriber_hash(email);
        list.forgotten.remove(&hash);
        let member = list.members.entry(hash.clone()).or_insert_with(|| {
            // A member created archived was subscribed before, as far as anyone knows.
            let before = match status {
                MemberStatus::Archived => MemberStatus::Subscribed,
                other => other,
            };
            Member::new(seq, email.trim().to_string(), before, now)
        });
        if status == MemberStatus::Archived {
            member.archived = true;
        } else {
            member.status = status;
            member.archived = false;
            member.record_status(status);
        }
        member.merge_fields.extend(merge_fields);
        member.last_changed = now;
        Ok(hash)
    }

    /// A status change made by the contact or by Mailchimp (unsubscribe link, bounce, complaint),
    /// not through the API: no compliance rule applies.
    pub fn set_status_directly(
        &mut self,
        list_id: &str,
        hash: &str,
        status: MemberStatus,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let list = self.list_mut(list_id)?;
        let member = list.members.get_mut(hash).ok_or(ApiError::NotFound)?;
        if member.visible_status() == status {
            return Ok(());
        }
        if status == MemberStatus::Archived {
            member.archived = true;
        } else {
            member.status = status;
            member.archived = false;
            member.record_status(status);
        }
        // A subscribe through a signup form is an opt-in: `timestamp_opt` is its time.
        if status == MemberStatus::Subscribed {
            member.timestamp_opt = Some(now);
        }
        member.last_changed = now;
        match status {
            MemberStatus::Unsubscribed => list.last_unsub_date = Some(now),
            MemberStatus::Subscribed => list.last_sub_date = Some(now),
            _ => {}
        }
        Ok(())
    }

    /// A merge field edited in Mailchimp's own UI (a merchant typing over a name): no API rule
    /// applies, `last_changed` moves as any edit moves it.
    pub fn set_merge_field_directly(
        &mut self,
        list_id: &str,
        hash: &str,
        tag: &str,
        value: Value,
    ) -> Result<(), ApiError> {
        let now = self.now();
        let list = self.list_mut(list_id)?;
        let member = list.members.get_mut(hash).ok_or(ApiError::NotFound)?;
        member.merge_fields.insert(tag.to_string(), value);
        member.last_changed = now;
        Ok(())
    }

    /// The person confirmed their subscription (double opt-in link or signup form): a `pending`
    /// member becomes `subscribed` and their consent history is cleared. Anyone else is refused:
    /// 404 for no such (or an archived) member, 400 for a member who is not pending.
    pub fn confirm(&mut self, list_id: &str, hash: &str) -> Result<(), ApiError> {
        let now = self.now();
        let list = self.list_mut(list_id)?;
        let member = list
            .members
            .get_mut(hash)
            .filter(|m| !m.archived)
            .ok_or(ApiError::NotFound)?;
        if member.status != MemberStatus::Pending {
            return Err(ApiError::InvalidResource(format!(
                "{} is {}, not pending: only a pending member can confirm a subscription.",
                member.email_address,
                member.status.as_str()
            )));
        }
        member.status = MemberStatus::Subscribed;
        member.compliance = None;
        member.timestamp_opt = Some(now);
        member.last_changed = now;
        list.last_sub_date = Some(now);
        Ok(())
    }

    /// Adds (`active`) or removes a tag on a member; true when something changed.
    pub fn tag_member(
        &mut self,
        list_id: &str,
        hash: &str,
        name: &str,
        active: bool,
    ) -> Result<bool, ApiError> {
        let now = self.now();
        let State {
            lists,
            next_segment_id,
            ..
        } = self;
        let list = lists.get_mut(list_id).ok_or(ApiError::NotFound)?;
        if !list.members.contains_key(hash) {
            return Err(ApiError::NotFound);
        }
        let changed = set_tag(list, next_segment_id, hash, name, active, now);
        if changed && let Some(member) = list.members.get_mut(hash) {
            member.last_changed = now;
        }
        Ok(changed)
    }

    /// Creates a static segment (a tag) holding the given addresses that are on the list.
    pub fn create_static_segment(
        &mut self,
        list_id: &str,
        name: &str,
        emails: &[String],
    ) -> Result<u64, ApiError> {
        let now = self.now();
        let State {
            lists,
            next_segment_id,
            ..
        } = self;
        let list = lists.get_mut(list_id).ok_or(ApiError::NotFound)?;
        if list.segment_by_name(name).is_some() {
            return Err(ApiError::InvalidResource(format!(
                "A tag or segment named \"{}\" already exists in this audience.",
                name.trim()
            )));
        }
        let id = new_segment(list, next_segment_id, name, now);
        for email in emails {
            let hash = subscriber_hash(email);
            if list.members.get(&hash).is_some_and(|m| !m.archived) {
                set_tag(list, next_segment_id, &hash, name, true, now);
                if let Some(member) = list.members.get_mut(&hash) {
                    member.last_changed = now;
                }
            }
        }
        Ok(id)
    }

    /// Removes a member's personal data for good and remembers the address as forgotten.
    pub fn forget(&mut self, list_id: &str, hash: &str) -> Result<(), ApiError> {
        let list = self.list_mut(list_id)?;
        if list.members.remove(hash).is_none() {
            return Err(ApiError::NotFound);
        }
        for segment in list.segments.values_mut() {
            segment.members.remove(hash);
        }
        list.forgotten.insert(hash.to_string());
        Ok(())
    }
}

fn blank_email() -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        "email_address",
        "This value should not be blank.",
    )])
}

/// Refuses addresses Mailchimp would call fake or invalid.
pub fn check_address(email: &str) -> Result<(), ApiError> {
    match email::check(email) {
        Ok(()) => Ok(()),
        // Mailchimp answers both with the same "looks fake or invalid" detail.
        Err(Rejection::Syntax | Rejection::Fake) => Err(ApiError::FakeEmail(email.to_string())),
    }
}

/// The compliance rules on a status change requested through the API, from the member's
/// current status and consent history (`lock`, see [`Member::compliance`]).
///
/// - `subscribed` is refused ("Member In Compliance State") for a member who is or ever was
///   unsubscribed or cleaned, whatever happened since (transactional, pending, archived): only
///   the person's own confirmation clears that history;
/// - `pending` is allowed after an unsubscribe (Mailchimp then emails a re-confirmation, the
///   documented way back) but refused for a cleaned address;
/// - a cleaned (bounced) address may only be set `unsubscribed` (or stay `cleaned`): it is never
///   re-subscribable by API. [U] The spec does not say whether a cleaned member may become
///   `pending` or `transactional`; Mailchimp's detail names "unsubscribe, bounce, or compliance
///   review" and public reports say a cleaned address cannot be added back or updated outside a
///   double opt-in signup, so the simulator refuses both.
///
/// Other changes (to unsubscribed, transactional, cleaned) are allowed.
pub fn check_transition(
    current: MemberStatus,
    lock: Option<MemberStatus>,
    requested: MemberStatus,
    email: &str,
) -> Result<(), ApiError> {
    use MemberStatus as S;
    let cleaned = current == S::Cleaned || lock == Some(S::Cleaned);
    let locked = cleaned || current == S::Unsubscribed || lock.is_some();
    let refused = match requested {
        S::Subscribed => locked,
        S::Pending | S::Transactional => cleaned,
        S::Unsubscribed | S::Cleaned | S::Archived => false,
    };
    if refused {
        Err(ApiError::ComplianceState(email.to_string()))
    } else {
        Ok(())
    }
}

fn apply_input(
    member: &mut Member,
    input: &MemberInput,
    merge: BTreeMap<String, Value>,
    now: DateTime<Utc>,
) {
    super::sms::apply(member, input, now);
    if let Some(v) = &input.email_type {
        member.email_type = v.clone();
    }
    for (tag, value) in merge {
        member.merge_fields.insert(tag, value);
    }
    if let Some(v) = &input.interests {
        for (k, val) in v {
            member.interests.insert(k.clone(), val.clone());
        }
    }
    if let Some(v) = &input.language {
        member.language = v.clone();
    }
    if let Some(v) = input.vip {
        member.vip = v;
    }
    if let Some(v) = input.latitude {
        member.latitude = v;
    }
    if let Some(v) = input.longitude {
        member.longitude = v;
    }
    if let Some(v) = &input.ip_signup {
        member.ip_signup = v.clone();
    }
    if let Some(v) = input.timestamp_signup {
        member.timestamp_signup = Some(v);
    }
    if let Some(v) = &input.ip_opt {
        member.ip_opt = v.clone();
    }
    if let Some(v) = input.timestamp_opt {
        member.timestamp_opt = Some(v);
    }
}

fn new_segment(list: &mut List, next_id: &mut u64, name: &str, now: DateTime<Utc>) -> u64 {
    let id = *next_id;
    *next_id += 1;
    list.segments.insert(
        id,
        Segment {
            id,
            name: name.trim().to_string(),
            created_at: now,
            updated_at: now,
            members: BTreeMap::new(),
        },
    );
    id
}

/// Tags compare case-insensitively; an `active` tag that does not exist is created ("If a tag
/// that does not exist is passed in and set as 'active', a new tag will be created").
fn set_tag(
    list: &mut List,
    next_id: &mut u64,
    hash: &str,
    name: &str,
    active: bool,
    now: DateTime<Utc>,
) -> bool {
    let existing = list.segment_by_name(name).map(|s| s.id);
    let id = match (existing, active) {
        (Some(id), _) => id,
        (None, true) => new_segment(list, next_id, name, now),
        (None, false) => return false,
    };
    let segment = list.segments.get_mut(&id).expect("segment just found");
    let changed = if active {
        if segment.members.contains_key(hash) {
            false
        } else {
            segment.members.insert(hash.to_string(), now);
            true
        }
    } else {
        segment.members.remove(hash).is_some()
    };
    if changed {
        segment.updated_at = now;
    }
    changed
}

/// `sync_tags`: the member ends with exactly `tags`.
fn replace_tags(
    list: &mut List,
    next_id: &mut u64,
    hash: &str,
    tags: &[String],
    now: DateTime<Utc>,
) -> bool {
    let wanted: HashSet<String> = tags.iter().map(|t| t.trim().to_lowercase()).collect();
    let current: Vec<String> = list
        .tags_of(hash)
        .into_iter()
        .map(|(s, _)| s.name.clone())
        .collect();
    let mut changed = false;
    for name in current {
        if !wanted.contains(&name.to_lowercase()) {
            changed |= set_tag(list, next_id, hash, &name, false, now);
        }
    }
    for tag in tags {
        changed |= set_tag(list, next_id, hash, tag, true, now);
    }
    changed
}

/// Checks and normalises `merge_fields` of a write.
///
/// - A tag the audience does not define is refused (400 "Your merge fields were invalid.", the
///   tag in `errors[].field`) unless `skip_merge_validation`, which drops it instead. The live
///   service's handling of unknown tags is not documented; refusing catches misconfigured
///   mappings early.
/// - `ADDRESS` (type `address`) takes an object `{addr1, addr2, city, state, zip, country}`
///   (addr1, city, state and zip required: "Please enter a complete address"), or Mailchimp's
///   double-space-separated string form; `""` clears it (`null` is refused by the schema
///   before this, see `members::member_input`).
/// - `number` takes a number (or numeric string); `birthday` takes `MM/DD`; radio/dropdown take
///   one of their choices when choices are defined; other types take text.
/// - New contacts must fill `required` fields ("Please enter a value") unless
///   `skip_merge_validation` ("member data will be accepted without merge field values, even if
///   the merge field is usually required").
fn normalise_merge_fields(
    list: &List,
    given: Option<&Map<String, Value>>,
    new_member: bool,
    skip: bool,
) -> Result<BTreeMap<String, Value>, ApiError> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (tag, value) in given.into_iter().flatten() {
        let Some(field) = list.merge_field(tag) else {
            if !skip {
                errors.push(FieldError::new(
                    tag,
                    format!("The merge field \"{tag}\" does not exist in this audience."),
                ));
            }
            continue;
        };
        match normalise_value(field, value) {
            Ok(v) => {
                out.insert(tag.clone(), v);
            }
            Err(message) => errors.push(FieldError::new(tag, message)),
        }
    }
    if new_member && !skip {
        for field in list.merge_fields.iter().filter(|f| f.required) {
            let filled = match out.get(&field.tag) {
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
                None => !field.default_value.is_empty(),
            };
            if !filled {
                let message = if field.kind == "address" {
                    "Please enter a complete address"
                } else {
                    "Please enter a value"
                };
                errors.push(FieldError::new(field.tag.clone(), message));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::MergeFields(errors))
    }
}

fn normalise_value(field: &MergeField, value: &Value) -> Result<Value, String> {
    let empty = Value::String(String::new());
    match (field.kind.as_str(), value) {
        // `null` never gets here: the schema refuses it (see `members::member_input`).
        (_, Value::String(s)) if s.is_empty() => Ok(empty),
        ("address", Value::Object(parts)) => {
            if parts
                .values()
                .all(|v| v.is_null() || v.as_str().is_some_and(str::is_empty))
            {
                return Ok(empty);
            }
            let mut address = Map::new();
            for part in ADDRESS_PARTS {
                let text = match parts.get(*part) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.trim().to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(_) => return Err("Please enter a complete address".to_string()),
                };
                address.insert(part.to_string(), Value::String(text));
            }
            let missing = ["addr1", "city", "state", "zip"]
                .iter()
                .any(|p| address[*p].as_str().is_some_and(str::is_empty));
            if missing {
                return Err("Please enter a complete address".to_string());
            }
            if address["country"].as_str().is_some_and(str::is_empty) {
                address.insert("country".to_string(), Value::String("US".to_string()));
            }
            Ok(Value::Object(address))
        }
        ("address", Value::String(s)) => {
            let parts: Vec<&str> = s
                .split("  ")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            let (addr1, addr2, city, state, zip, country) = match parts.as_slice() {
                [a1, c, st, z] => (*a1, "", *c, *st, *z, "US"),
                [a1, c, st, z, co] => (*a1, "", *c, *st, *z, *co),
                [a1, a2, c, st, z, co] => (*a1, *a2, *c, *st, *z, *co),
                _ => return Err("Please enter a complete address".to_string()),
            };
            Ok(
                json!({"addr1": addr1, "addr2": addr2, "city": city, "state": state, "zip": zip, "country": country}),
            )
        }
        ("address", _) => Err("Please enter a complete address".to_string()),
        ("number", Value::Number(_)) => Ok(value.clone()),
        ("number", Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| {
                if n.fract() == 0.0 && n.abs() < 9e15 {
                    Some(json!(n as i64))
                } else {
                    serde_json::Number::from_f64(n).map(Value::Number)
                }
            })
            .ok_or_else(|| "Please enter a number".to_string()),
        ("number", _) => Err("Please enter a number".to_string()),
        ("birthday", Value::String(s)) => {
            let ok = s.split_once('/').is_some_and(|(m, d)| {
                let month = m.parse::<u32>().ok();
                let day = d.parse::<u32>().ok();
                m.len() == 2
                    && d.len() == 2
                    && month.is_some_and(|m| (1..=12).contains(&m))
                    && day.is_some_and(|d| (1..=31).contains(&d))
            });
            if ok {
                Ok(value.clone())
            } else {
                Err("Please enter a valid date (MM/DD)".to_string())
            }
        }
        ("radio" | "dropdown", Value::String(s)) => {
            let choices: Vec<&str> = field
                .options
                .get("choices")
                .and_then(Value::as_array)
                .map(|c| c.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if choices.is_empty() || choices.contains(&s.as_str()) {
                Ok(value.clone())
            } else {
                Err("Please choose one of the field's options".to_string())
            }
        }
        (_, Value::String(_)) => Ok(value.clone()),
        (_, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (_, _) => Err("Please enter a value".to_string()),
    }
}
