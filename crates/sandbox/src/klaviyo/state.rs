//! The simulated Klaviyo account: profiles with their email-marketing consent, lists, segments,
//! jobs, metrics and events, plus the clock and id generators. Handlers validate the wire format;
//! the rules about what a change does to a profile live here, so every endpoint that touches a
//! profile (create, import, bulk import, subscribe, events) applies them the same way.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::directory::{Identifier, Profiles};
use super::ratelimit::Limiter;

/// Email-marketing consent as Klaviyo reports it (`subscriptions.email.marketing.consent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    NeverSubscribed,
    Subscribed,
    Unsubscribed,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::NeverSubscribed => "NEVER_SUBSCRIBED",
            Consent::Subscribed => "SUBSCRIBED",
            Consent::Unsubscribed => "UNSUBSCRIBED",
        }
    }
}

/// Why a profile cannot receive email marketing (the spec's `suppression[].reason` enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suppression {
    HardBounce,
    InvalidEmail,
    SpamComplaint,
    Unsubscribe,
    UserSuppressed,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::HardBounce => "HARD_BOUNCE",
            Suppression::InvalidEmail => "INVALID_EMAIL",
            Suppression::SpamComplaint => "SPAM_COMPLAINT",
            Suppression::Unsubscribe => "UNSUBSCRIBE",
            Suppression::UserSuppressed => "USER_SUPPRESSED",
        }
    }

    /// The suppressions a subscribe call removes ("UNSUBSCRIBE, SPAM_REPORT or USER_SUPPRESSED";
    /// the enum names SPAM_REPORT `SPAM_COMPLAINT`). Bounces and invalid addresses stay.
    pub fn cleared_by_subscribe(self) -> bool {
        matches!(
            self,
            Suppression::Unsubscribe | Suppression::SpamComplaint | Suppression::UserSuppressed
        )
    }
}

/// A list's opt-in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptIn {
    Single,
    Double,
}

impl OptIn {
    pub fn as_str(self) -> &'static str {
        match self {
            OptIn::Single => "single_opt_in",
            OptIn::Double => "double_opt_in",
        }
    }

    pub fn parse(value: &str) -> Option<OptIn> {
        match value {
            "single_opt_in" => Some(OptIn::Single),
            "double_opt_in" => Some(OptIn::Double),
            _ => None,
        }
    }
}

/// `subscriptions.email.marketing` of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailMarketing {
    pub consent: Consent,
    pub consent_timestamp: Option<DateTime<Utc>>,
    pub last_updated: Option<DateTime<Utc>>,
    pub method: Option<String>,
    pub method_detail: Option<String>,
    pub double_optin: Option<bool>,
    pub suppressions: Vec<(Suppression, DateTime<Utc>)>,
    /// `(list_id, reason, timestamp)`.
    pub list_suppressions: Vec<(String, String, DateTime<Utc>)>,
}

impl Default for EmailMarketing {
    fn default() -> Self {
        EmailMarketing {
            consent: Consent::NeverSubscribed,
            consent_timestamp: None,
            last_updated: None,
            method: None,
            method_detail: None,
            double_optin: None,
            suppressions: Vec::new(),
            list_suppressions: Vec::new(),
        }
    }
}

impl EmailMarketing {
    pub fn can_receive(&self) -> bool {
        self.consent == Consent::Subscribed && self.suppressions.is_empty()
    }

    pub fn is_suppressed(&self, reason: Suppression) -> bool {
        self.suppressions.iter().any(|(r, _)| *r == reason)
    }

    pub fn suppress(&mut self, reason: Suppression, at: DateTime<Utc>) {
        if !self.is_suppressed(reason) {
            self.suppressions.push((reason, at));
        }
    }
}

/// One profile. Identifiers are stored as given, except email, which Klaviyo matches without
/// regard to case and which is kept lowercased [U].
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub organization: Option<String>,
    pub locale: Option<String>,
    pub title: Option<String>,
    pub image: Option<String>,
    pub location: Map<String, Value>,
    pub properties: Map<String, Value>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub last_event_date: Option<DateTime<Utc>>,
    pub email_marketing: EmailMarketing,
    /// Lists whose double opt-in confirmation this profile has been sent and not yet answered.
    pub pending_double_opt_in: BTreeSet<String>,
}

/// A field of a profile write: absent (unchanged), `null` (cleared) or a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Set(T),
}

impl<T: Clone> Patch<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Patch::Set(v) => Some(v),
            _ => None,
        }
    }

    fn apply(&self, field: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *field = None,
            Patch::Set(v) => *field = Some(v.clone()),
        }
    }
}

/// The profile attributes of a write, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileInput {
    pub email: Patch<String>,
    pub phone_number: Patch<String>,
    pub external_id: Patch<String>,
    pub first_name: Patch<String>,
    pub last_name: Patch<String>,
    pub organization: Patch<String>,
    pub locale: Patch<String>,
    pub title: Patch<String>,
    pub image: Patch<String>,
    pub location: Patch<Map<String, Value>>,
    pub properties: Patch<Map<String, Value>>,
}

impl ProfileInput {
    pub fn has_identifier(&self) -> bool {
        self.email.value().is_some()
            || self.phone_number.value().is_some()
            || self.external_id.value().is_some()
    }
}

impl Profile {
    fn new(id: String, now: DateTime<Utc>) -> Profile {
        Profile {
            id,
            email: None,
            phone_number: None,
            external_id: None,
            first_name: None,
            last_name: None,
            organization: None,
            locale: None,
            title: None,
            image: None,
            location: Map::new(),
            properties: Map::new(),
            created: now,
            updated: now,
            last_event_date: None,
            email_marketing: EmailMarketing::default(),
            pending_double_opt_in: BTreeSet::new(),
        }
    }

    /// Applies a write: `null` clears a field, an omitted field is unchanged; `location` and
    /// `properties` merge key by key (a `null` inside clears that key) [U].
    pub fn apply(&mut self, input: &ProfileInput, now: DateTime<Utc>) {
        let lowered = match &input.email {
            Patch::Set(e) => Patch::Set(e.to_lowercase()),
            other => other.clone(),
        };
        lowered.apply(&mut self.email);
        input.phone_number.apply(&mut self.phone_number);
        input.external_id.apply(&mut self.external_id);
        input.first_name.apply(&mut self.first_name);
        input.last_name.apply(&mut self.last_name);
        input.organization.apply(&mut self.organization);
        input.locale.apply(&mut self.locale);
        input.title.apply(&mut self.title);
        input.image.apply(&mut self.image);
        merge(&mut self.location, &input.location);
        merge(&mut self.properties, &input.properties);
        self.updated = now;
    }
}

fn merge(target: &mut Map<String, Value>, patch: &Patch<Map<String, Value>>) {
    match patch {
        Patch::Absent => {}
        Patch::Null => target.clear(),
        Patch::Set(values) => {
            for (key, value) in values {
                if value.is_null() {
                    target.remove(key);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct List {
    pub id: String,
    pub name: String,
    pub opt_in_process: OptIn,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// Members by profile id, with the time they joined.
    pub members: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub members: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub metric_id: String,
    pub profile_id: String,
    pub time: DateTime<Utc>,
    pub value: Option<f64>,
    pub value_currency: Option<String>,
    pub unique_id: Option<String>,
    pub properties: Map<String, Value>,
    pub backfill: bool,
}

/// A job's stage; it moves one stage forward each time the job is read ([`State::advance_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Processing,
    Complete,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Complete => "complete",
        }
    }
}

/// One per-profile failure of a bulk import job.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub id: String,
    pub code: String,
    pub title: String,
    pub detail: String,
    pub pointer: String,
    pub original_payload: Value,
}

#[derive(Debug, Clone)]
pub struct ImportJob {
    pub id: String,
    pub status: JobStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub total_count: usize,
    pub completed_count: usize,
    pub failed_count: usize,
    /// Profiles that passed validation, applied when the job completes.
    pub pending: Vec<ProfileInput>,
    pub lists: Vec<String>,
    pub errors: Vec<ImportError>,
    /// Ids of the profiles the job created or updated.
    pub profile_ids: Vec<String>,
}

/// The account `GET /api/accounts` describes.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub organization_name: String,
    pub timezone: String,
    pub preferred_currency: String,
    pub public_api_key: String,
    pub locale: String,
    /// The opt-in process of subscribe calls without a list.
    pub default_opt_in: OptIn,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            id: "AbC123".to_string(),
            organization_name: "Sandbox Store".to_string(),
            timezone: "UTC".to_string(),
            preferred_currency: "USD".to_string(),
            public_api_key: "AbC123".to_string(),
            locale: "en-US".to_string(),
            default_opt_in: OptIn::Single,
        }
    }
}

/// How the keys are checked.
#[derive(Debug, Clone, Default)]
pub enum Keys {
    /// Any private key of the documented shape (`pk_` and at least 8 more characters) [U].
    #[default]
    AnyWellFormed,
    Only(BTreeSet<String>),
}

impl Keys {
    pub fn accepts(&self, key: &str) -> bool {
        match self {
            Keys::AnyWellFormed => well_formed(key),
            Keys::Only(keys) => keys.contains(key),
        }
    }
}

pub fn well_formed(key: &str) -> bool {
    key.strip_prefix("pk_")
        .is_some_and(|rest| rest.len() >= 8 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Everything a simulated account holds.
pub struct State {
    pub keys: Keys,
    /// Keys restricted to some scopes; a key not here has every scope.
    pub key_scopes: std::collections::HashMap<String, BTreeSet<String>>,
    pub account: Account,
    /// By id, indexed by identifier (see [`super::directory`]).
    pub profiles: Profiles,
    pub lists: BTreeMap<String, List>,
    pub segments: BTreeMap<String, Segment>,
    pub metrics: BTreeMap<String, Metric>,
    pub events: Vec<Event>,
    /// `(profile id, metric id, unique_id)` of every stored event with a unique id (the dedupe
    /// key), so a large import is not quadratic.
    pub event_keys: std::collections::HashSet<(String, String, String)>,
    pub import_jobs: BTreeMap<String, ImportJob>,
    /// Event bulk jobs accepted, by id (they apply at once).
    pub event_jobs: BTreeSet<String>,
    /// Flows a real account would have started: `list:{id}` for joins through a subscribe call
    /// without `historical_import`, `metric:{name}` for events without `backfill`.
    pub flows_triggered: BTreeMap<String, u64>,
    /// Double opt-in confirmation emails sent, by list id.
    pub double_opt_in_sent: BTreeMap<String, u64>,
    pub limiter: Limiter,
    /// Polls of a bulk import job that move it one stage on (0: complete on creation).
    pub job_stage_polls: u32,
    frozen: Option<DateTime<Utc>>,
    offset: Duration,
    next_id: u64,
}

impl Default for State {
    fn default() -> Self {
        State {
            keys: Keys::default(),
            key_scopes: Default::default(),
            account: Account::default(),
            profiles: Profiles::default(),
            lists: BTreeMap::new(),
            segments: BTreeMap::new(),
            metrics: BTreeMap::new(),
            events: Vec::new(),
            event_keys: std::collections::HashSet::new(),
            import_jobs: BTreeMap::new(),
            event_jobs: BTreeSet::new(),
            flows_triggered: BTreeMap::new(),
            double_opt_in_sent: BTreeMap::new(),
            limiter: Limiter::default(),
            job_stage_polls: 1,
            frozen: None,
            offset: Duration::zero(),
            next_id: 1,
        }
    }
}

/// Base-62 digits in ASCII order, so ids of one kind sort in creation order.
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(n: u64, width: usize) -> String {
    in_base(n, width, DIGITS)
}

fn in_base(mut n: u64, width: usize, digits: &[u8]) -> String {
    let radix = digits.len() as u64;
    let mut out = vec![digits[0]; width];
    for slot in out.iter_mut().rev() {
        *slot = digits[(n % radix) as usize];
        n /= radix;
    }
    String::from_utf8(out).expect("ascii")
}

/// Why a profile write was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileConflict {
    /// Another profile already has one of the identifiers.
    Duplicate { existing_id: String },
}

impl State {
    pub fn now(&self) -> DateTime<Utc> {
        self.frozen.unwrap_or_else(Utc::now) + self.offset
    }

    pub fn freeze_clock(&mut self, at: DateTime<Utc>) {
        self.frozen = Some(at);
        self.offset = Duration::zero();
    }

    pub fn advance_clock(&mut self, by: Duration) {
        self.offset += by;
    }

    fn next(&mut self) -> u64 {
        let n = self.next_id;
        self.next_id += 1;
        n
    }

    /// A 26-character profile id in Klaviyo's ULID-like shape, increasing with creation.
    pub fn profile_id(&mut self) -> String {
        let n = self.next();
        // Upper-case digits only, as Klaviyo's ids are.
        format!("01K{}", in_base(n, 23, &DIGITS[..36]))
    }

    /// A 6-character id (lists, segments, metrics, accounts), increasing with creation.
    pub fn short_id(&mut self, first: char) -> String {
        let n = self.next();
        format!("{first}{}", base62(n, 5))
    }

    /// A job id, increasing with creation.
    pub fn job_id(&mut self) -> String {
        let n = self.next();
        format!("job_{}", base62(n, 10))
    }

    pub fn find_by_email(&self, email: &str) -> Option<&Profile> {
        self.profiles
            .find_by(Identifier::Email, &email.to_lowercase())
    }

    /// The profile an identifier set points at: `id` first, then email, external id, phone [U].
    pub fn find_matching(&self, id: Option<&str>, input: &ProfileInput) -> Option<String> {
        if let Some(id) = id {
            return self.profiles.contains_key(id).then(|| id.to_string());
        }
        if let Some(email) = input.email.value()
            && let Some(p) = self.find_by_email(email)
        {
            return Some(p.id.clone());
        }
        if let Some(external) = input.external_id.value()
            && let Some(p) = self.profiles.find_by(Identifier::ExternalId, external)
        {
            return Some(p.id.clone());
        }
        if let Some(phone) = input.phone_number.value()
            && let Some(p) = self.profiles.find_by(Identifier::PhoneNumber, phone)
        {
            return Some(p.id.clone());
        }
        None
    }

    /// Another profile than `own` holding one of the identifiers `input` sets (the first in id
    /// order, as a scan of the account would find it).
    pub fn conflicting(&self, own: Option<&str>, input: &ProfileInput) -> Option<String> {
        let email = input.email.value().map(|e| e.to_lowercase());
        let wanted = [
            (Identifier::Email, email.as_deref()),
            (
                Identifier::PhoneNumber,
                input.phone_number.value().map(String::as_str),
            ),
            (
                Identifier::ExternalId,
                input.external_id.value().map(String::as_str),
            ),
        ];
        wanted
            .into_iter()
            .filter_map(|(identifier, value)| {
                let value = value?;
                self.profiles
                    .ids_by(identifier, value)
                    .find(|id| Some(id.as_str()) != own)
            })
            .min()
            .cloned()
    }

    /// Creates a profile (refused when another one has one of its identifiers).
    pub fn create_profile(&mut self, input: &ProfileInput) -> Result<String, ProfileConflict> {
        if let Some(existing_id) = self.conflicting(None, input) {
            return Err(ProfileConflict::Duplicate { existing_id });
        }
        let now = self.now();
        let id = self.profile_id();
        let mut profile = Profile::new(id.clone(), now);
        profile.apply(input, now);
        self.profiles.insert(profile);
        Ok(id)
    }

    /// Updates profile `id` (refused when the write takes another profile's identifier).
    pub fn update_profile(
        &mut self,
        id: &str,
        input: &ProfileInput,
    ) -> Result<(), ProfileConflict> {
        if let Some(existing_id) = self.conflicting(Some(id), input) {
            return Err(ProfileConflict::Duplicate { existing_id });
        }
        let now = self.now();
        if let Some(mut profile) = self.profiles.get_mut(id) {
            profile.apply(input, now);
        }
        Ok(())
    }

    /// Creates or updates the profile the input identifies; returns its id and whether it is new.
    pub fn upsert_profile(
        &mut self,
        id: Option<&str>,
        input: &ProfileInput,
    ) -> Result<(String, bool), ProfileConflict> {
        match self.find_matching(id, input) {
            Some(existing) => {
                self.update_profile(&existing, input)?;
                Ok((existing, false))
            }
            None => self.create_profile(input).map(|id| (id, true)),
        }
    }

    /// Creates a list; returns its id.
    pub fn create_list(&mut self, name: &str, opt_in: OptIn) -> String {
        let id = self.short_id('L');
        let now = self.now();
        self.lists.insert(
            id.clone(),
            List {
                id: id.clone(),
                name: name.to_string(),
                opt_in_process: opt_in,
                created: now,
                updated: now,
                members: BTreeMap::new(),
            },
        );
        id
    }

    /// Adds `profile_id` to `list_id`; true when it was not a member.
    pub fn add_member(&mut self, list_id: &str, profile_id: &str) -> bool {
        let now = self.now();
        match self.lists.get_mut(list_id) {
            Some(list) if !list.members.contains_key(profile_id) => {
                list.members.insert(profile_id.to_string(), now);
                list.updated = now;
                true
            }
            _ => false,
        }
    }

    pub fn count_flow(&mut self, key: String) {
        *self.flows_triggered.entry(key).or_default() += 1;
    }

    /// The metric named `name`, created on first use.
    pub fn metric_id(&mut self, name: &str) -> String {
        if let Some(metric) = self.metrics.values().find(|m| m.name == name) {
            return metric.id.clone();
        }
        let id = self.short_id('M');
        let created = self.now();
        self.metrics.insert(
            id.clone(),
            Metric {
                id: id.clone(),
                name: name.to_string(),
                created,
            },
        );
        id
    }

    /// Moves a job one stage on per `job_stage_polls` reads; applies its profiles on completion.
    pub fn advance_job(&mut self, job_id: &str) {
        let now = self.now();
        let stage_polls = self.job_stage_polls;
        let Some(job) = self.import_jobs.get_mut(job_id) else {
            return;
        };
        match job.status {
            JobStatus::Queued => {
                job.status = JobStatus::Processing;
                job.started_at = Some(now);
                if stage_polls == 0 {
                    self.complete_job(job_id);
                }
            }
            JobStatus::Processing => self.complete_job(job_id),
            JobStatus::Complete => {}
        }
    }

    /// Applies a job's valid profiles and list memberships and marks it complete.
    pub fn complete_job(&mut self, job_id: &str) {
        let Some(mut job) = self.import_jobs.remove(job_id) else {
            return;
        };
        if job.status != JobStatus::Complete {
            let now = self.now();
            for (index, input) in std::mem::take(&mut job.pending).into_iter().enumerate() {
                match self.upsert_profile(None, &input) {
                    Ok((id, _)) => {
                        for list in &job.lists {
                            self.add_member(list, &id);
                        }
                        job.profile_ids.push(id);
                        job.completed_count += 1;
                    }
                    Err(ProfileConflict::Duplicate { existing_id }) => {
                        job.failed_count += 1;
                        let error_id = self.job_id();
                        job.errors.push(ImportError {
                            id: error_id,
                            code: "duplicate_profile".into(),
                            title: "Conflict.".into(),
                            detail: format!(
                                "A profile already exists with one of these identifiers ({existing_id})."
                            ),
                            pointer: format!("/data/attributes/profiles/data/{index}"),
                            original_payload: Value::Null,
                        });
                    }
                }
            }
            job.status = JobStatus::Complete;
            job.started_at.get_or_insert(now);
            job.completed_at = Some(now);
        }
        self.import_jobs.insert(job_id.to_string(), job);
    }
}
