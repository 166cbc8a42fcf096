//! One set-up for the fault tests of every connector: a sandbox with `records` customers (or
//! members) for one vendor, a connector with its own credential (so process-wide key budgets never
//! couple two tests) and fast retries, a way to read everything, and fault injection.
//!
//! Klaviyo is a target the rig drives by writing: each "read" is an apply of a plan of `records`
//! new subscribed profiles (a batch no earlier successful apply used; a failed one is tried again
//! by the next), and a whole read is the simulator holding every profile of every batch applied,
//! each once, in the list and subscribed. The simulator's rate-limit windows are scaled down
//! (and the connector's pacing with them) so a storm costs milliseconds, not minutes.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::klaviyo::{KlaviyoConfig, KlaviyoTarget, ListRef, PollPolicy};
use audience_connectors::lightspeed_r::LightspeedRSource;
use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_core::{
    ApplyControl, ConnectorError, Email, FieldValue, MemberStatus, MemberWrite, Plan, ReadScope,
    Source, Target,
};
use audience_sandbox::klaviyo::{Consent, OptIn};
use audience_sandbox::lightspeed_r::DEMO_ACCOUNT_ID;
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

pub const MAILCHIMP_LIST: &str = "faults-audience";
pub const KLAVIYO_LIST: &str = "Faults Customers";
/// The Klaviyo simulator's rate-limit windows, scaled down (a 10 ms burst window); the
/// connector's pacing takes the same scale.
pub const KLAVIYO_SCALE: f64 = 0.01;

/// Retries fast enough for a test, and a per-attempt timeout short enough for the timeout fault.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 6,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
    }
}

/// A credential no other test uses, shaped like the vendor's own.
fn unique_secret(vendor: Vendor) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match vendor {
        Vendor::Mailchimp => format!("{pid:016x}{:016x}-us6", 2_000_000u64 + u64::from(n)),
        Vendor::Shopify => format!("shpat_faults{pid}x{n}"),
        Vendor::LightspeedX => format!("lsx-faults-{pid}-{n}"),
        Vendor::LightspeedR => format!("lsr-faults-{pid}-{n}"),
        Vendor::Retailcrm => format!("rcrm-faults-{pid}-{n}"),
        Vendor::Klaviyo => format!("pk_faults{pid:08x}{n:024x}"),
    }
}

pub enum Connector {
    Shopify(ShopifySource),
    LightspeedX(LightspeedXSource),
    LightspeedR(LightspeedRSource),
    Retailcrm(RetailCrmSource),
    Mailchimp(MailchimpTarget),
    // Boxed: the Klaviyo target is much larger than the other connectors.
    Klaviyo(Box<KlaviyoTarget>),
}

/// What the Klaviyo rig has written: the list, and how many profiles (`0..applied`) are in it.
#[derive(Debug, Default)]
pub struct KlaviyoProgress {
    pub list_id: String,
    pub applied: AtomicUsize,
}

pub struct Rig {
    pub vendor: Vendor,
    pub sandbox: RunningSandbox,
    pub secret: String,
    pub records: usize,
    pub connector: Connector,
    pub klaviyo: KlaviyoProgress,
}

impl Rig {
    /// A sandbox holding `records` customers of `vendor` (members of an audience for Mailchimp).
    pub async fn start(vendor: Vendor, records: usize) -> Rig {
        let customers = if vendor == Vendor::Mailchimp {
            0
        } else {
            records
        };
        let sandbox = Sandbox::new(SandboxOptions { customers, seed: 7 })
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let secret = unique_secret(vendor);
        let sim = &sandbox.sandbox;
        let url = sandbox.vendor_url(vendor);
        let mut klaviyo_list = String::new();
        let connector = match vendor {
            Vendor::Shopify => {
                sim.shopify.set_access_token(&secret);
                sim.shopify.set_bucket(20_000.0, 1000.0);
                let mut config = ShopifyConfig::with_base_url(url, &secret);
                config.retry = fast_retry();
                Connector::Shopify(ShopifySource::new(config).unwrap())
            }
            Vendor::LightspeedX => {
                sim.lightspeed_x.set_token(&secret);
                Connector::LightspeedX(
                    LightspeedXSource::new("sandbox", &secret)
                        .unwrap()
                        .with_base_url(&format!("{url}/api/2.0"))
                        .unwrap()
                        .with_retry_policy(fast_retry()),
                )
            }
            Vendor::LightspeedR => {
                sim.lightspeed_r.set_token(&secret);
                Connector::LightspeedR(
                    LightspeedRSource::new(DEMO_ACCOUNT_ID, &secret)
                        .unwrap()
                        .with_base_url(&format!("{url}/API/V3/Account/{DEMO_ACCOUNT_ID}"))
                        .unwrap()
                        .with_retry_policy(fast_retry()),
                )
            }
            Vendor::Retailcrm => {
                sim.retailcrm.set_api_key(&secret);
                let mut config = RetailCrmConfig::with_base_url(url, &secret);
                config.retry = fast_retry();
                Connector::Retailcrm(RetailCrmSource::new(config).unwrap())
            }
            Vendor::Mailchimp => {
                sim.mailchimp.create_list(MAILCHIMP_LIST, "Faults Audience");
                Connector::Mailchimp(MailchimpTarget::new(mailchimp_config(&url, &secret)).unwrap())
            }
            Vendor::Klaviyo => {
                sim.klaviyo.set_rate_limit_scale(KLAVIYO_SCALE);
                sim.klaviyo.set_valid_keys([secret.as_str()]);
                klaviyo_list = sim.klaviyo.create_list(KLAVIYO_LIST, OptIn::Single);
                Connector::Klaviyo(Box::new(
                    KlaviyoTarget::new(klaviyo_config(&url, &secret, &klaviyo_list)).unwrap(),
                ))
            }
        };
        let rig = Rig {
            vendor,
            sandbox,
            secret,
            records,
            connector,
            klaviyo: KlaviyoProgress {
                list_id: klaviyo_list,
                applied: AtomicUsize::new(0),
            },
        };
        if vendor == Vendor::Mailchimp && records > 0 {
            let outcome = rig.push(records).await.unwrap();
            assert_eq!(outcome, records as u64);
        }
        rig
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox.sandbox
    }

    /// Queues `count` faults of `kind` for the vendor's next requests.
    pub fn fault(&self, kind: FaultKind, count: u32) {
        self.sandbox().faults.push(
            self.vendor,
            Fault {
                kind,
                count,
                path_contains: None,
            },
        );
    }

    /// Every record the connector reads (source ids, or member addresses for Mailchimp), with
    /// duplicates counted.
    pub async fn read(&self) -> Result<Vec<String>, ConnectorError> {
        match &self.connector {
            Connector::Shopify(s) => ids(s, ReadScope::Full).await,
            Connector::LightspeedX(s) => ids(s, ReadScope::Full).await,
            Connector::LightspeedR(s) => ids(s, ReadScope::Full).await,
            Connector::Retailcrm(s) => ids(s, ReadScope::Full).await,
            Connector::Mailchimp(t) => {
                let pages: Vec<_> = t.members().try_collect().await?;
                Ok(pages
                    .into_iter()
                    .flatten()
                    .map(|m| m.email.as_str().to_string())
                    .collect())
            }
            Connector::Klaviyo(t) => {
                let from = self.klaviyo.applied.load(Ordering::SeqCst);
                let batch = from..from + self.records;
                let report = t
                    .apply(&klaviyo_plan(batch.clone()), &ApplyControl::default())
                    .await?;
                assert!(
                    report.rejected.is_empty(),
                    "Klaviyo: nothing rejected: {:?}",
                    report.rejected.first()
                );
                self.klaviyo.applied.store(batch.end, Ordering::SeqCst);
                Ok(self.sandbox().klaviyo.list_members(&self.klaviyo.list_id))
            }
        }
    }

    /// A read only: the source's customers, or the target's members (Klaviyo's `read` pushes).
    pub async fn read_members(&self) -> Result<(), ConnectorError> {
        match &self.connector {
            Connector::Klaviyo(t) => {
                let _: Vec<_> = t.members().try_collect().await?;
                Ok(())
            }
            _ => self.read().await.map(|_| ()),
        }
    }

    /// Reads everything and checks that nothing is lost or doubled.
    pub async fn read_whole(&self) -> Result<(), ConnectorError> {
        if self.vendor == Vendor::Klaviyo {
            self.read().await?;
            self.assert_klaviyo_holds_every_profile();
            return Ok(());
        }
        let read = self.read().await?;
        let unique: BTreeSet<&String> = read.iter().collect();
        assert_eq!(
            unique.len(),
            read.len(),
            "{:?}: no record twice",
            self.vendor
        );
        assert_eq!(
            read.len(),
            self.records,
            "{:?}: no record lost",
            self.vendor
        );
        Ok(())
    }

    /// Mailchimp only: creates members `0..n` (of a range no other call of this rig uses).
    pub async fn push(&self, n: usize) -> Result<u64, ConnectorError> {
        let Connector::Mailchimp(target) = &self.connector else {
            panic!("push is for the Mailchimp target");
        };
        let outcome = target
            .apply(&create_plan(0..n), &ApplyControl::default())
            .await?;
        Ok(outcome.created)
    }

    /// Klaviyo: the account holds exactly the profiles of every batch applied, once each, all
    /// in the list and subscribed (with the subscribe time), none suppressed.
    pub fn assert_klaviyo_holds_every_profile(&self) {
        let sim = &self.sandbox().klaviyo;
        let applied = self.klaviyo.applied.load(Ordering::SeqCst);
        let mut expected: Vec<String> = (0..applied).map(klaviyo_email).collect();
        expected.sort();
        assert_eq!(
            sim.list_members(&self.klaviyo.list_id),
            expected,
            "Klaviyo: the list holds every profile applied, once"
        );
        assert_eq!(sim.profile_count(), applied, "Klaviyo: no profile twice");
        for profile in sim.profiles() {
            let marketing = &profile.email_marketing;
            assert_eq!(
                marketing.consent,
                Consent::Subscribed,
                "Klaviyo: {:?} keeps its consent",
                profile.email
            );
            assert!(marketing.consent_timestamp.is_some());
            assert!(marketing.suppressions.is_empty(), "{:?}", profile.email);
            let i: usize = profile
                .email
                .as_deref()
                .and_then(|e| e.strip_prefix("profile"))
                .and_then(|e| e.split('@').next())
                .and_then(|n| n.parse().ok())
                .expect("a rig address");
            assert_eq!(profile.first_name, Some(format!("First{i}")));
        }
    }
}

pub fn klaviyo_email(i: usize) -> String {
    format!("profile{i}@shop-mail.io")
}

/// New subscribed profiles `range` with a first name, as the planner makes them for Klaviyo.
pub fn klaviyo_plan(range: std::ops::Range<usize>) -> Plan {
    let creates: Vec<MemberWrite> = range
        .map(|i| MemberWrite {
            email: Email::parse(&klaviyo_email(i)).unwrap(),
            source_id: format!("c{i}"),
            status: Some(MemberStatus::Subscribed),
            fields: [(
                "first_name".to_string(),
                FieldValue::Text(format!("First{i}")),
            )]
            .into(),
            tags: BTreeSet::new(),
            unarchive: false,
            consent_by_rule: false,
            consented_at: None,
        })
        .collect();
    let mut plan = Plan {
        creates,
        ..Plan::default()
    };
    plan.counts.create = plan.creates.len() as u64;
    plan
}

pub fn klaviyo_config(url: &str, key: &str, list_id: &str) -> KlaviyoConfig {
    let mut config =
        KlaviyoConfig::new(key, ListRef::Id(list_id.to_string())).with_base_url(url.to_string());
    config.retry = fast_retry();
    config.poll = PollPolicy {
        min_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        max_wait: Duration::from_secs(30),
    };
    config.pacing = Some(KLAVIYO_SCALE);
    config
}

pub fn mailchimp_config(url: &str, key: &str) -> MailchimpConfig {
    let mut config = MailchimpConfig::new(key, MAILCHIMP_LIST).with_base_url(format!("{url}/3.0"));
    config.retry = fast_retry();
    config
}

async fn ids<S: Source>(source: &S, scope: ReadScope) -> Result<Vec<String>, ConnectorError> {
    let pages: Vec<_> = source.read(scope).try_collect().await?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.contacts)
        .map(|c| c.source_id)
        .collect())
}

pub fn create_plan(range: std::ops::Range<usize>) -> Plan {
    let creates: Vec<MemberWrite> = range
        .map(|i| MemberWrite {
            email: Email::parse(&format!("member{i}@shop-mail.io")).unwrap(),
            source_id: format!("c{i}"),
            status: Some(MemberStatus::Subscribed),
            fields: [("FNAME".to_string(), FieldValue::Text(format!("First{i}")))].into(),
            tags: BTreeSet::new(),
            unarchive: false,
            consent_by_rule: false,
            consented_at: None,
        })
        .collect();
    let mut plan = Plan {
        creates,
        ..Plan::default()
    };
    plan.counts.create = plan.creates.len() as u64;
    plan
}

/// The vendors read from (every connector but the targets) and Mailchimp, for the parser
/// properties (`parser_properties.rs`). The fault suite drives Klaviyo too (`vendor_faults.rs`).
pub const EVERY_VENDOR: [Vendor; 5] = [
    Vendor::Mailchimp,
    Vendor::Shopify,
    Vendor::LightspeedX,
    Vendor::LightspeedR,
    Vendor::Retailcrm,
];
