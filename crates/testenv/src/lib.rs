//! Test ground: a private Kubernetes control plane (etcd + kube-apiserver, optionally
//! kube-controller-manager) for integration tests, started once per test binary.
//!
//! ```no_run
//! # async fn t() {
//! use audience_testenv::TestEnv;
//! let env = TestEnv::shared().await;          // starts etcd + kube-apiserver once
//! let ns = env.namespace("my-test").await;     // a fresh namespace for this test
//! let client = env.client();                  // admin (system:masters)
//! let alice = env.client_for_user("alice", &[]); // an identity without rights
//! # }
//! ```
//!
//! Binaries come from `$AUDIENCE_OPERATOR_TESTBINS` or from `hack/testbins.sh` (which builds
//! them from the Go modules in `hack/tools/` on first use). With
//! `$AUDIENCE_OPERATOR_TEST_KUBECONFIG` set, that cluster is used instead and nothing is
//! started. All child processes are killed when the test binary ends, failing tests and
//! panics included, and the temporary data directory is removed (kept when
//! `$AUDIENCE_OPERATOR_TESTENV_KEEP` is set).

pub mod bins;
pub mod certs;
pub mod crds;
pub mod plane;
pub mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub use crate::certs::{Ca, CertKey};
pub use crate::crds::{FIELD_MANAGER, apply_crds, apply_crds_from_dir, wait_crd_established};
pub use crate::plane::{ControlPlane, ControlPlaneOptions};
pub use crate::process::Lifetime;

/// Use this kubeconfig's cluster instead of starting one.
pub const TEST_KUBECONFIG_ENV: &str = "AUDIENCE_OPERATOR_TEST_KUBECONFIG";
pub use crate::bins::TESTBINS_ENV;

/// Label put on every namespace made by [`TestEnv::namespace`].
pub const NAMESPACE_LABEL: &str = "audience-testenv/test";

/// The control plane shared by all tests of one test binary.
pub struct TestEnv {
    config: Config,
    kubeconfig: PathBuf,
    server: String,
    ca_pem: Option<String>,
    ca: Option<Arc<Ca>>,
    plane: Option<Arc<Mutex<ControlPlane>>>,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .field("external", &self.is_external())
            .finish_non_exhaustive()
    }
}

static SHARED: OnceLock<std::result::Result<TestEnv, String>> = OnceLock::new();

type Job = Box<dyn FnOnce() + Send>;

/// Run `f` on the supervisor thread: one thread per process that never exits, so children it
/// spawns (with `PR_SET_PDEATHSIG`) live exactly as long as the test binary.
fn on_supervisor<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static TX: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("audience-testenv-supervisor".into())
            .spawn(move || {
                for job in rx {
                    // A panicking job must not end this thread: that would kill the children.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("spawning the supervisor thread");
        tx
    });
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    tx.send(Box::new(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = done_tx.send(r);
    }))
    .expect("the supervisor thread is gone");
    match done_rx.recv().expect("the supervisor thread dropped a job") {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

impl TestEnv {
    /// The shared control plane, started on first use (blocking this test until `/readyz`).
    /// Panics with the reason (and the component's log tail) when it cannot be started.
    pub async fn shared() -> &'static TestEnv {
        if let Some(Ok(env)) = SHARED.get() {
            return env;
        }
        match tokio::task::spawn_blocking(Self::shared_blocking).await {
            Ok(env) => env,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// [`TestEnv::shared`] plus a running kube-controller-manager (namespace deletion,
    /// owner-reference garbage collection, ServiceAccount tokens, ...).
    pub async fn shared_with_controllers() -> &'static TestEnv {
        let env = Self::shared().await;
        if let Err(e) = env.ensure_controller_manager().await {
            panic!("audience-testenv: cannot start kube-controller-manager: {e:#}");
        }
        env
    }

    /// [`TestEnv::shared`] for synchronous code.
    pub fn shared_blocking() -> &'static TestEnv {
        match SHARED.get_or_init(|| Self::init().map_err(|e| format!("{e:#}"))) {
            Ok(env) => env,
            Err(e) => panic!("audience-testenv: the test control plane is unavailable: {e}"),
        }
    }

    fn init() -> Result<TestEnv> {
        if let Some(path) = std::env::var_os(TEST_KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
            return Self::external(PathBuf::from(path));
        }
        let plane = on_supervisor(|| ControlPlane::start(ControlPlaneOptions::default()))?;
        Ok(TestEnv {
            config: plane.admin_config()?,
            kubeconfig: plane.kubeconfig().to_path_buf(),
            server: plane.server().to_string(),
            ca_pem: Some(plane.ca().cert_pem()),
            ca: Some(plane.ca().clone()),
            plane: Some(Arc::new(Mutex::new(plane))),
        })
    }

    fn external(path: PathBuf) -> Result<TestEnv> {
        let kc = Kubeconfig::read_from(&path)
            .with_context(|| format!("${TEST_KUBECONFIG_ENV}={}", path.display()))?;
        let ca_pem = current_cluster_ca(&kc);
        let config = plane::run_async(Config::from_custom_kubeconfig(
            kc,
            &KubeConfigOptions::default(),
        ))
        .with_context(|| format!("loading {}", path.display()))?;
        eprintln!(
            "audience-testenv: using the cluster of ${TEST_KUBECONFIG_ENV} at {}",
            config.cluster_url
        );
        Ok(TestEnv {
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string(),
            config,
            kubeconfig: path,
            ca_pem,
            ca: None,
            plane: None,
        })
    }

    /// Start kube-controller-manager on the shared plane if it is not running yet (a no-op
    /// on an external cluster, which is assumed to run its controllers).
    pub async fn ensure_controller_manager(&self) -> Result<()> {
        let Some(plane) = self.plane.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || {
            on_supervisor(move || {
                plane
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .start_controller_manager()
            })
        })
        .await
        .context("joining the controller-manager start")?
    }

    /// True when running against `$AUDIENCE_OPERATOR_TEST_KUBECONFIG`.
    pub fn is_external(&self) -> bool {
        self.plane.is_none()
    }

    /// The admin kubeconfig file (give it to kubectl, helm, or the operator binary).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL, e.g. `https://127.0.0.1:40123`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The CA certificate (PEM) the apiserver's serving certificate chains to, when known.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The data directory of the started plane (logs: `kube-apiserver.log`, `etcd.log`, ...).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.plane.as_ref().map(|p| {
            p.lock()
                .unwrap_or_else(|e| e.into_inner())
                .dir()
                .to_path_buf()
        })
    }

    /// The admin client configuration (`system:masters`).
    pub fn admin_config(&self) -> Config {
        self.config.clone()
    }

    /// An admin client. Call inside a tokio runtime (each test has its own).
    pub fn client(&self) -> Client {
        Client::try_from(self.admin_config()).expect("building the admin client")
    }

    /// A client configuration that authenticates as `user` in `groups`: a client certificate
    /// signed by the plane's CA (up to two groups), otherwise (more groups, or an external
    /// cluster) the admin impersonating that user.
    pub fn config_for_user(&self, user: &str, groups: &[&str]) -> Config {
        if let Some(ca) = &self.ca
            && groups.len() <= 2
        {
            let ck = ca
                .client_cert(user, groups)
                .expect("signing a client certificate");
            return plane::client_config(&self.server, ca, &plane::Credentials::Cert(&ck))
                .expect("client config");
        }
        let mut config = self.admin_config();
        config.auth_info.impersonate = Some(user.to_string());
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
        config
    }

    /// A client for `user` in `groups` (see [`TestEnv::config_for_user`]).
    pub fn client_for_user(&self, user: &str, groups: &[&str]) -> Client {
        Client::try_from(self.config_for_user(user, groups)).expect("building a user client")
    }

    /// A client configuration that sends `token` as a bearer token.
    pub fn config_with_token(&self, token: &str) -> Config {
        let mut config = self.admin_config();
        config.auth_info = plane::auth_info(&plane::Credentials::Token(token)).expect("token");
        config
    }

    /// A client that sends `token` as a bearer token.
    pub fn client_with_token(&self, token: &str) -> Client {
        Client::try_from(self.config_with_token(token)).expect("building a token client")
    }

    /// A token for ServiceAccount `namespace/name` (created if missing) from the TokenRequest
    /// API, valid for one hour.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        if api.get_opt(name).await?.is_none() {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e).context("creating the ServiceAccount"),
            }
        }
        let req = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": { "expirationSeconds": 3600 },
        });
        let resp: serde_json::Value = api
            .create_subresource("token", name, &PostParams::default(), &req)
            .await
            .with_context(|| format!("requesting a token for {namespace}/{name}"))?;
        resp.pointer("/status/token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .context("TokenRequest answer without status.token")
    }

    /// A client authenticated as ServiceAccount `namespace/name` (created if missing).
    pub async fn client_for_service_account(&self, namespace: &str, name: &str) -> Client {
        let token = self
            .service_account_token(namespace, name)
            .await
            .expect("service account token");
        self.client_with_token(&token)
    }

    /// Write a kubeconfig for `user` in `groups` (client certificate) to `path`, e.g. to run
    /// kubectl or the operator binary as that identity. Needs the started plane (not
    /// available on an external cluster).
    pub fn write_kubeconfig_for_user(
        &self,
        path: &Path,
        user: &str,
        groups: &[&str],
    ) -> Result<()> {
        let Some(ca) = &self.ca else {
            bail!(
                "write_kubeconfig_for_user needs the started control plane (no CA key for an external cluster)"
            );
        };
        let ck = ca.client_cert(user, groups)?;
        let yaml = plane::kubeconfig_yaml(
            &self.server,
            &ca.cert_pem(),
            user,
            &plane::Credentials::Cert(&ck),
        );
        plane::write_private(path, &yaml)
    }

    /// A fresh namespace named `<prefix>-<random>`, for one test. Panics on failure.
    pub async fn namespace(&self, prefix: &str) -> String {
        let mut clean: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        clean.truncate(40);
        let clean = clean.trim_matches('-');
        let clean = if clean.is_empty() { "test" } else { clean };
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{clean}-")),
                labels: Some([(NAMESPACE_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<Namespace> = Api::all(self.client());
        let created = api
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating a namespace {clean}-*: {e}"));
        created.metadata.name.expect("namespace name")
    }

    /// Server-side-apply every CRD in the YAML files of `dir` and wait until Established.
    pub async fn apply_crds_from_dir(
        &self,
        dir: impl AsRef<Path>,
    ) -> Result<Vec<CustomResourceDefinition>> {
        crds::apply_crds_from_dir(&self.client(), dir).await
    }

    /// Server-side-apply the CRDs and wait until Established.
    pub async fn apply_crds(
        &self,
        crds: &[CustomResourceDefinition],
    ) -> Result<Vec<CustomResourceDefinition>> {
        crds::apply_crds(&self.client(), crds).await
    }

    /// Path of kubectl v1.36 (built by `hack/testbins.sh`).
    pub fn kubectl(&self) -> PathBuf {
        bins::path(bins::KUBECTL).expect("kubectl binary")
    }

    /// Path of helm (built by `hack/testbins.sh`).
    pub fn helm(&self) -> PathBuf {
        bins::path(bins::HELM).expect("helm binary")
    }

    /// `kubectl` with `KUBECONFIG` set to the admin kubeconfig.
    pub fn kubectl_command(&self) -> Command {
        let mut cmd = Command::new(self.kubectl());
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// `helm` with `KUBECONFIG` set to the admin kubeconfig (and helm's own caches in the
    /// plane's data directory when there is one, so tests do not touch `$HOME`).
    pub fn helm_command(&self) -> Command {
        let mut cmd = Command::new(self.helm());
        cmd.env("KUBECONFIG", &self.kubeconfig);
        if let Some(dir) = self.data_dir() {
            cmd.env("HELM_CACHE_HOME", dir.join("helm/cache"))
                .env("HELM_CONFIG_HOME", dir.join("helm/config"))
                .env("HELM_DATA_HOME", dir.join("helm/data"));
        }
        cmd
    }
}

/// The CA (PEM) of the kubeconfig's current cluster, when it is given inline or as a file.
fn current_cluster_ca(kc: &Kubeconfig) -> Option<String> {
    let ctx_name = kc.current_context.as_deref()?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)?
        .context
        .as_ref()?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        return B64
            .decode(data.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
    }
    cluster
        .certificate_authority
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
}
