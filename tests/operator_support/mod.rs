//! Shared harness of the operator integration tests: a real kube-apiserver (audience-testenv), the
//! vendor simulators (audience-sandbox) and the operator running in-process, watching only the
//! test's own namespace so tests run in parallel without seeing each other.
//!
//! Connectors: the tests use the operator's own connector factory pointed at the sandbox (what
//! `--sandbox URL` does), with short retry delays so fault tests stay quick.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use audience_connectors::http::RetryPolicy;
use audience_operator::controller::Settings;
use audience_operator::crd::{CREDENTIALS_LABEL, SyncStatus};
use audience_operator::crd::{SourceRef, TargetRef};
use audience_operator::operator::{Operator, OperatorOptions};
use audience_operator::sync::{
    ConnectError, ConnectOptions, ConnectorFactory, Credentials, DefaultConnectors,
};
use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions, Vendor};
use audience_testenv::TestEnv;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use url::Url;

#[path = "../secret_scan_support/mod.rs"]
pub mod secret_scan;

pub const AUDIENCE: &str = "aud1";
pub const WAIT: Duration = Duration::from_secs(60);

/// Short retry delays, so fault tests stay quick.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(10),
    }
}

/// The real connectors (what `--sandbox URL` builds), with quick retries.
pub fn sandbox_connectors() -> DefaultConnectors {
    DefaultConnectors::new(ConnectOptions {
        retry: Some(quick_retries()),
        ..ConnectOptions::default()
    })
}

/// (process, audience) for every Mailchimp target built.
pub type BuildLog = Arc<std::sync::Mutex<Vec<(usize, String)>>>;

/// The real connectors, recording which process built a target for which audience: a process
/// builds a sync's connectors for its first run there and keeps them for its later runs, until
/// its connections or Secrets change.
pub struct RecordingConnectors {
    pub process: usize,
    pub inner: DefaultConnectors,
    pub log: BuildLog,
}

impl ConnectorFactory for RecordingConnectors {
    fn source(
        &self,
        spec: SourceRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn audience_core::Source>, ConnectError> {
        self.inner.source(spec, creds, sandbox)
    }

    fn target(
        &self,
        spec: TargetRef<'_>,
        creds: &Credentials,
        sandbox: Option<&Url>,
    ) -> Result<Box<dyn audience_core::Target>, ConnectError> {
        if let TargetRef::Mailchimp(m) = spec {
            self.log
                .lock()
                .unwrap()
                .push((self.process, m.audience_id.to_string()));
        }
        self.inner.target(spec, creds, sandbox)
    }
}

/// One test's world.
pub struct Harness {
    pub client: Client,
    pub ns: String,
    pub sandbox: RunningSandbox,
    pub operator: Option<Operator>,
}

pub fn test_settings(sandbox: &RunningSandbox) -> Settings {
    Settings {
        concurrency: 4,
        run_records_budget: audience_operator::controller::admission::DEFAULT_RECORDS_BUDGET,
        backoff_base: Duration::from_millis(500),
        backoff_max: Duration::from_secs(3),
        credentials_retry: Duration::from_secs(120),
        progress_interval: Duration::from_millis(500),
        sandbox: Some(Url::parse(&sandbox.url()).unwrap()),
        instance: "test".into(),
        webhook_public_url: None,
        segment_watch: Duration::from_secs(60),
    }
}

/// Logs (`RUST_LOG`, default warn) through the test writer, so they show only for failing tests,
/// and (debug and up) into the buffer the secret scan reads.
pub fn init_logging() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,audience_operator=info"));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(filter),
        )
        .with(secret_scan::capture_layer())
        .try_init();
}

/// Starts the control plane (once per binary), a namespace, a sandbox with an empty audience
/// [`AUDIENCE`], and (when `start` is true) an operator watching only that namespace.
pub async fn harness(prefix: &str, start: bool) -> Harness {
    init_logging();
    let env = TestEnv::shared().await;
    let client = env.client();
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
    let ns = env.namespace(prefix).await;
    let sandbox = Sandbox::new(SandboxOptions {
        customers: 0,
        ..Default::default()
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("serving the sandbox");
    sandbox
        .sandbox
        .mailchimp
        .create_list(AUDIENCE, "Test audience");
    let mut h = Harness {
        client,
        ns,
        sandbox,
        operator: None,
    };
    if start {
        h.start_operator().await;
    }
    h
}

impl Harness {
    pub fn options(&self) -> OperatorOptions {
        let mut options = OperatorOptions::new(test_settings(&self.sandbox));
        options.namespaces = vec![self.ns.clone()];
        options.connectors = Arc::new(sandbox_connectors());
        options
    }

    pub async fn start_operator(&mut self) {
        let op = Operator::start(self.client.clone(), self.options())
            .await
            .expect("starting the operator");
        self.operator = Some(op);
    }

    pub async fn stop_operator(&mut self) {
        if let Some(op) = self.operator.take() {
            op.shutdown().await.expect("operator shutdown");
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A well-formed Mailchimp key of this test alone (keys share a process-wide budget).
    pub fn mailchimp_key(&self) -> String {
        format!(
            "{:032x}-us6",
            xxhash_rust::xxh3::xxh3_128(self.ns.as_bytes())
        )
    }

    /// A well-formed Klaviyo private key of this test alone.
    pub fn klaviyo_key(&self) -> String {
        format!(
            "pk_{:032x}",
            xxhash_rust::xxh3::xxh3_128(self.ns.as_bytes())
        )
    }

    pub fn klaviyo(&self) -> &audience_sandbox::klaviyo::Klaviyo {
        &self.sandbox.sandbox.klaviyo
    }

    pub fn shopify(&self) -> &audience_sandbox::shopify::Shopify {
        &self.sandbox.sandbox.shopify
    }

    pub fn retailcrm(&self) -> &audience_sandbox::retailcrm::RetailCrm {
        &self.sandbox.sandbox.retailcrm
    }

    pub fn mailchimp(&self) -> &audience_sandbox::mailchimp::Mailchimp {
        &self.sandbox.sandbox.mailchimp
    }

    /// Emails in the audience with their status, sorted.
    pub fn members(&self) -> Vec<(String, String)> {
        let mut m: Vec<(String, String)> = self
            .mailchimp()
            .members(AUDIENCE)
            .into_iter()
            .map(|m| {
                (
                    m.email_address.to_lowercase(),
                    m.status.as_str().to_string(),
                )
            })
            .collect();
        m.sort();
        m
    }

    /// A Secret that opts in to being read by the operator (the credentials label).
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        self.secret_opting_in(name, data, true).await
    }

    /// A Secret, with or without the credentials label.
    pub async fn secret_opting_in(&self, name: &str, data: &[(&str, &str)], opt_in: bool) {
        for (key, value) in data {
            secret_scan::register(&format!("{}/{name}.{key}", self.ns), value);
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: opt_in
                    .then(|| BTreeMap::from([(CREDENTIALS_LABEL.to_string(), "true".to_string())])),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        };
        let api: Api<Secret> = self.api();
        api.patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&serde_json::to_value(&secret).unwrap()),
        )
        .await
        .expect("applying a Secret");
    }

    /// The usual Secrets: shopify (sandbox token) and mailchimp (a well-formed key).
    pub async fn default_secrets(&self) {
        let token = self.shopify().access_token();
        self.secret("shopify", &[("accessToken", &token)]).await;
        self.secret("mailchimp", &[("apiKey", &self.mailchimp_key())])
            .await;
        let key = self.retailcrm().api_key();
        self.secret("retailcrm", &[("apiKey", &key)]).await;
    }

    /// Fails naming where a credential this binary's tests used appears: the status of a sync or
    /// an Event of this namespace, or the operator's logs (see [`secret_scan`]).
    pub async fn assert_no_secret_leaked(&self) {
        secret_scan::assert_no_secret_in_namespace(&self.client, &self.ns, &[]).await;
    }

    /// Adds a subscribed Shopify customer; returns its id.
    pub fn add_shopify(&self, email: &str, first: &str, last: &str) -> u64 {
        self.shopify()
            .add_customer(audience_sandbox::shopify::Customer {
                email: Some(email.into()),
                first_name: Some(first.into()),
                last_name: Some(last.into()),
                marketing_state: "SUBSCRIBED".into(),
                ..Default::default()
            })
    }

    pub async fn create<K>(&self, object: serde_json::Value) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned
            + serde::Serialize,
    {
        let obj: K = serde_json::from_value(object).expect("a typed object");
        self.api::<K>()
            .create(&PostParams::default(), &obj)
            .await
            .expect("creating the object")
    }

    pub async fn annotate<K>(&self, name: &str, key: &str, value: &str)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotating");
    }

    /// Sets the sync-now annotation to `value` and waits until a run handled it and synced.
    pub async fn sync_now<K>(&self, name: &str, value: &str) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + HasStatus
            + Clone
            + Debug
            + Send
            + Sync
            + DeserializeOwned
            + 'static,
    {
        self.annotate::<K>(name, "sync.audience-operator.io/sync-now", value)
            .await;
        let value = value.to_string();
        wait_for(&self.api::<K>(), name, "sync-now handled", move |o: &K| {
            o.sync_status()
                .is_some_and(|s| s.handled_sync_now.as_deref() == Some(value.as_str()))
                && reason(o).as_deref() == Some("Synced")
        })
        .await
    }

    pub async fn patch_spec<K>(&self, name: &str, spec: serde_json::Value)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + DeserializeOwned,
    {
        let patch = json!({ "spec": spec });
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patching the spec");
    }

    /// Events about an object, oldest first.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = self.api();
        let mut events: Vec<Event> = api
            .list(&Default::default())
            .await
            .expect("listing events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        events.sort_by_key(|e| e.metadata.creation_timestamp.clone());
        events
    }

    /// Waits (with a deadline) until an Event with this reason about `name` exists.
    pub async fn wait_event(&self, name: &str, reason: &str, type_: &str) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) =
                self.events(name).await.into_iter().find(|e| {
                    e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_)
                })
            {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {type_} event {reason} for {name}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The status and `Ready` condition of an object, if set.
pub trait HasStatus {
    fn sync_status(&self) -> Option<&SyncStatus>;
}

impl HasStatus for audience_operator::crd::AudienceSync {
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
}

impl HasStatus for audience_operator::crd::SegmentSync {
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
}

impl HasStatus for audience_operator::crd::OrderSync {
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
}

pub fn ready<K: HasStatus>(obj: &K) -> Option<&Condition> {
    obj.sync_status()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn reason<K: HasStatus>(obj: &K) -> Option<String> {
    ready(obj).map(|c| c.reason.clone())
}

/// Waits through a watch until `cond` holds for the object (panics after [`WAIT`] with the last
/// state seen).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    cond: impl Fn(&K) -> bool + Send + 'static,
) -> K
where
    K: Resource + Clone + Debug + Send + Sync + DeserializeOwned + 'static,
{
    let got = tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond)),
    )
    .await;
    match got {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("{name} was deleted while waiting for {what}"),
        Ok(Err(e)) => panic!("watching {name}: {e}"),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("timed out waiting for {what} on {name}; last seen: {last:#?}")
        }
    }
}

/// Waits until `Ready` has this reason (and the observed generation is current).
pub async fn wait_reason<K>(api: &Api<K>, name: &str, want: &'static str) -> K
where
    K: Resource + HasStatus + Clone + Debug + Send + Sync + DeserializeOwned + 'static,
{
    wait_for(api, name, want, move |o: &K| {
        let generation = o.meta().generation;
        ready(o).is_some_and(|c| c.reason == want && c.observed_generation == generation)
            && o.sync_status().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Progressing" && c.status == "False")
            })
    })
    .await
}

/// The number of runs recorded in the history (bounded at 5).
pub fn runs<K: HasStatus>(obj: &K) -> usize {
    obj.sync_status().map(|s| s.history.len()).unwrap_or(0)
}

/// An AudienceSync manifest from Shopify into [`AUDIENCE`].
pub fn audience_sync(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({
        "source": {"shopify": {"shopDomain": "test.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
        "target": {"mailchimp": {"audienceId": AUDIENCE, "credentialsSecretRef": {"name": "mailchimp"}}},
        "schedule": {"interval": "1h"}
    });
    merge(&mut spec, extra);
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "AudienceSync",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// JSON merge (objects merge recursively, everything else replaces).
pub fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Write calls made to a vendor so far.
pub fn vendor_writes(h: &Harness, vendor: Vendor) -> u64 {
    h.sandbox.sandbox.stats.writes(vendor)
}

/// Resident set size of this process, in KiB (0 where `/proc` has no answer).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples this process's RSS every `every` until [`RssSampler::stop`]: what a bench started at
/// and its peak, in KiB.
pub struct RssSampler {
    pub start_kib: u64,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub fn start(every: Duration) -> RssSampler {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let start_kib = rss_kib();
        let peak = std::sync::Arc::new(AtomicU64::new(start_kib));
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(), Ordering::Relaxed);
                    tokio::time::sleep(every).await;
                }
            })
        };
        RssSampler {
            start_kib,
            peak,
            done,
            task,
        }
    }

    /// Stops sampling; the peak growth over the start, in KiB.
    pub async fn stop(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.done.store(true, Ordering::Relaxed);
        self.task.await.expect("the RSS sampler");
        self.peak
            .load(Ordering::Relaxed)
            .saturating_sub(self.start_kib)
    }
}
