//! One set-up for the fault tests of every connector: a sandbox with `records` customers (or
//! members) for one vendor, a connector with its own credential (so process-wide key budgets never
//! couple two tests) and fast retries, a way to read everything, and fault injection.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_connectors::lightspeed_r::LightspeedRSource;
use audience_connectors::lightspeed_x::LightspeedXSource;
use audience_connectors::mailchimp::{MailchimpConfig, MailchimpTarget};
use audience_connectors::retailcrm::{RetailCrmConfig, RetailCrmSource};
use audience_connectors::shopify::{ShopifyConfig, ShopifySource};
use audience_core::{
    ApplyControl, ConnectorError, Email, FieldValue, MemberStatus, MemberWrite, Plan, ReadScope,
    Source, Target,
};
use audience_sandbox::lightspeed_r::DEMO_ACCOUNT_ID;
use audience_sandbox::{Fault, FaultKind, RunningSandbox, Sandbox, SandboxOptions, Vendor};
use futures::TryStreamExt;

pub const MAILCHIMP_LIST: &str = "faults-audience";

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
}

pub struct Rig {
    pub vendor: Vendor,
    pub sandbox: RunningSandbox,
    pub secret: String,
    pub records: usize,
    pub connector: Connector,
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
            // Klaviyo's storms, malformed bodies and auth errors are in klaviyo_contract.rs; this
            // rig does not drive it yet (see EVERY_VENDOR).
            Vendor::Klaviyo => panic!("the shared fault rig does not drive Klaviyo yet"),
        };
        let rig = Rig {
            vendor,
            sandbox,
            secret,
            records,
            connector,
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
        }
    }

    /// Reads everything and checks that nothing is lost or doubled.
    pub async fn read_whole(&self) -> Result<(), ConnectorError> {
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

/// The vendors read from (every connector but the targets) and Mailchimp. Klaviyo's fault cases
/// live in `klaviyo_contract.rs` until this rig drives its connector.
pub const EVERY_VENDOR: [Vendor; 5] = [
    Vendor::Mailchimp,
    Vendor::Shopify,
    Vendor::LightspeedX,
    Vendor::LightspeedR,
    Vendor::Retailcrm,
];
