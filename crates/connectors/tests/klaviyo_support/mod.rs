//! Shared set-up of the Klaviyo contract tests: a served sandbox, a fresh list, a target with its
//! own API key (so the process-wide key budgets and pacing windows never couple two tests), fast
//! retries and polls, and call counters.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::klaviyo::{KlaviyoConfig, KlaviyoTarget, ListRef, PollPolicy};
use audience_core::{
    ConnectorError, Email, FieldValue, MemberStatus, MemberWrite, Plan, Target, TargetMember,
};
use audience_sandbox::klaviyo::{Klaviyo, OptIn};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

pub const LIST_NAME: &str = "Contract Customers";
/// The simulator's rate-limit windows, scaled down (a burst window of 10 ms); the connector's
/// pacing takes the same scale.
pub const SCALE: f64 = 0.01;

/// A well-formed private key no other test uses.
pub fn unique_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pk_{:08x}{:08x}",
        std::process::id(),
        1_000u32 + N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Env {
    pub sandbox: RunningSandbox,
    pub key: String,
    pub list_id: String,
}

impl Env {
    pub async fn start() -> Env {
        let sandbox = Sandbox::new(SandboxOptions::default())
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sim = &sandbox.sandbox.klaviyo;
        sim.set_rate_limit_scale(SCALE);
        let list_id = sim.create_list(LIST_NAME, OptIn::Single);
        Env {
            sandbox,
            key: unique_key(),
            list_id,
        }
    }

    pub fn sim(&self) -> &Klaviyo {
        &self.sandbox.sandbox.klaviyo
    }

    pub fn base_url(&self) -> String {
        self.sandbox.vendor_url(Vendor::Klaviyo)
    }

    pub fn config(&self) -> KlaviyoConfig {
        let mut config = KlaviyoConfig::new(&self.key, ListRef::Id(self.list_id.clone()))
            .with_base_url(self.base_url());
        config.retry = fast_retry();
        config.poll = PollPolicy {
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(60),
        };
        config.pacing = Some(SCALE);
        config
    }

    pub fn target(&self) -> KlaviyoTarget {
        KlaviyoTarget::new(self.config()).unwrap()
    }

    /// Requests with exactly this method and route template (`/api/lists/{id}/profiles` …).
    pub fn calls(&self, method: &str, route: &str) -> u64 {
        self.sandbox
            .sandbox
            .stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.vendor == Vendor::Klaviyo && k.method == method && k.route == route)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn calls_with_status(&self, status: u16) -> u64 {
        self.sandbox
            .sandbox
            .stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.vendor == Vendor::Klaviyo && k.status == status)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.sandbox.sandbox.stats.total(Vendor::Klaviyo)
    }

    pub fn writes(&self) -> u64 {
        self.sandbox.sandbox.stats.writes(Vendor::Klaviyo)
    }

    pub fn clear_stats(&self) {
        self.sandbox.sandbox.stats.clear();
    }
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 8,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
    }
}

pub const IMPORT_JOBS: &str = "/api/profile-bulk-import-jobs";
pub const IMPORT_JOB: &str = "/api/profile-bulk-import-jobs/{job_id}";
pub const IMPORT_ERRORS: &str = "/api/profile-bulk-import-jobs/{id}/import-errors";
pub const SUBSCRIBE: &str = "/api/profile-subscription-bulk-create-jobs";
pub const UNSUBSCRIBE: &str = "/api/profile-subscription-bulk-delete-jobs";
pub const LIST_RELATIONSHIPS: &str = "/api/lists/{id}/relationships/profiles";
pub const LIST_PROFILES: &str = "/api/lists/{id}/profiles";
pub const PROFILES: &str = "/api/profiles";
pub const LISTS: &str = "/api/lists";

pub fn email(i: usize) -> Email {
    Email::parse(&format!("customer{i}@shop-mail.io")).unwrap()
}

pub fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

/// A new profile with first and last name and the given status.
pub fn create_with(i: usize, status: MemberStatus) -> MemberWrite {
    MemberWrite {
        email: email(i),
        source_id: format!("c{i}"),
        status: Some(status),
        fields: BTreeMap::from([
            ("first_name".to_string(), text(&format!("First{i}"))),
            ("last_name".to_string(), text(&format!("Last{i}"))),
        ]),
        tags: BTreeSet::new(),
        unarchive: false,
        consent_by_rule: false,
        consented_at: None,
    }
}

pub fn create(i: usize) -> MemberWrite {
    create_with(i, MemberStatus::Subscribed)
}

/// An update of member `i` that changes nothing but what the caller sets.
pub fn update(i: usize) -> MemberWrite {
    MemberWrite {
        email: email(i),
        source_id: format!("c{i}"),
        status: None,
        fields: BTreeMap::new(),
        tags: BTreeSet::new(),
        unarchive: false,
        consent_by_rule: false,
        consented_at: None,
    }
}

pub fn plan(creates: Vec<MemberWrite>, updates: Vec<MemberWrite>, archives: Vec<Email>) -> Plan {
    let mut plan = Plan {
        creates,
        updates,
        archives,
        ..Plan::default()
    };
    plan.counts.create = plan.creates.len() as u64;
    plan.counts.update = plan.updates.len() as u64;
    plan.counts.archive = plan.archives.len() as u64;
    plan
}

pub async fn read_all(target: &KlaviyoTarget) -> Result<Vec<TargetMember>, ConnectorError> {
    let pages: Vec<Vec<TargetMember>> = target.members().try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}

pub fn by_email(members: Vec<TargetMember>) -> BTreeMap<String, TargetMember> {
    members
        .into_iter()
        .map(|m| (m.email.as_str().to_string(), m))
        .collect()
}
