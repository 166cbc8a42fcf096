//! Shared set-up of the Mailchimp contract tests: a sandbox, a fresh audience, a target with its own
//! API key (so the process-wide key budgets never couple two tests), and call counters.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
use audience_core::{
    ConnectorError, Email, FieldValue, MemberStatus, MemberWrite, Plan, Target, TargetMember,
};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

pub const LIST: &str = "contract-audience";

/// A well-formed key (`<32 hex>-us6`) no other test uses.
pub fn unique_key() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{:016x}{:016x}-us6",
        std::process::id(),
        1_000_000u64 + u64::from(N.fetch_add(1, Ordering::Relaxed))
    )
}

pub struct Env {
    pub sandbox: RunningSandbox,
    pub key: String,
}

impl Env {
    pub async fn start() -> Env {
        let sandbox = Sandbox::new(SandboxOptions::default())
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        sandbox
            .sandbox
            .mailchimp
            .create_list(LIST, "Contract Audience");
        Env {
            sandbox,
            key: unique_key(),
        }
    }

    pub fn base_url(&self) -> String {
        format!("{}/3.0", self.sandbox.vendor_url(Vendor::Mailchimp))
    }

    pub fn config(&self) -> MailchimpConfig {
        let mut config = MailchimpConfig::new(&self.key, LIST).with_base_url(self.base_url());
        config.retry = fast_retry();
        config
    }

    pub fn target(&self) -> MailchimpTarget {
        MailchimpTarget::new(self.config()).unwrap()
    }

    pub fn sim(&self) -> &audience_sandbox::mailchimp::Mailchimp {
        &self.sandbox.sandbox.mailchimp
    }

    /// Requests with exactly this method and route template (`/3.0/lists/{list_id}` …).
    pub fn calls(&self, method: &str, route: &str) -> u64 {
        self.sandbox
            .sandbox
            .stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| {
                k.vendor == Vendor::Mailchimp && k.method == method && k.route == route
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests of any status with this status code.
    pub fn calls_with_status(&self, status: u16) -> u64 {
        self.sandbox
            .sandbox
            .stats
            .snapshot()
            .into_iter()
            .filter(|(k, _)| k.vendor == Vendor::Mailchimp && k.status == status)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn writes(&self) -> u64 {
        self.sandbox.sandbox.stats.writes(Vendor::Mailchimp)
    }

    pub fn reads(&self) -> u64 {
        self.sandbox.sandbox.stats.total(Vendor::Mailchimp) - self.writes()
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
        timeout: Duration::from_secs(20),
    }
}

pub const BATCH_ROUTE: &str = "/3.0/lists/{list_id}";
pub const MEMBERS_ROUTE: &str = "/3.0/lists/{list_id}/members";
pub const MEMBER_ROUTE: &str = "/3.0/lists/{list_id}/members/{subscriber_hash}";
pub const TAGS_ROUTE: &str = "/3.0/lists/{list_id}/members/{subscriber_hash}/tags";
pub const SEGMENTS_ROUTE: &str = "/3.0/lists/{list_id}/segments";
pub const SEGMENT_ROUTE: &str = "/3.0/lists/{list_id}/segments/{segment_id}";
pub const SEGMENT_MEMBERS_ROUTE: &str = "/3.0/lists/{list_id}/segments/{segment_id}/members";
pub const MERGE_FIELDS_ROUTE: &str = "/3.0/lists/{list_id}/merge-fields";

pub fn email(i: usize) -> Email {
    Email::parse(&format!("customer{i}@shop-mail.io")).unwrap()
}

pub fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_string())
}

/// A new subscribed member with first and last name.
pub fn create(i: usize) -> MemberWrite {
    MemberWrite {
        email: email(i),
        source_id: format!("c{i}"),
        status: Some(MemberStatus::Subscribed),
        fields: BTreeMap::from([
            ("FNAME".to_string(), text(&format!("First{i}"))),
            ("LNAME".to_string(), text(&format!("Last{i}"))),
        ]),
        tags: BTreeSet::new(),
        unarchive: false,
        consent_by_rule: false,
        consented_at: None,
    }
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

pub async fn read_all(target: &MailchimpTarget) -> Result<Vec<TargetMember>, ConnectorError> {
    let pages: Vec<Vec<TargetMember>> = target.members().try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}

pub fn by_email(members: Vec<TargetMember>) -> BTreeMap<String, TargetMember> {
    members
        .into_iter()
        .map(|m| (m.email.as_str().to_string(), m))
        .collect()
}
