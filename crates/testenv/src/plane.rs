//! Starting etcd + kube-apiserver (+ kube-controller-manager) on loopback, the way envtest does.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::AuthInfo;
use kube::{Api, Client, Config};

use crate::bins;
use crate::certs::{Ca, CertKey, new_key_pair_pem};
use crate::process::{self, Lifetime, Proc};

/// Prefix of the per-run data directories under [`std::env::temp_dir`].
pub const TEMP_PREFIX: &str = "audience-testenv-";
const OWNER_FILE: &str = "owner.pid";
const SERVICE_CIDR: &str = "10.0.0.0/24";
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How to start a [`ControlPlane`].
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    /// Data directory; `None`: a new unique directory under the system temp dir, removed when
    /// the plane stops (or at process exit).
    pub dir: Option<PathBuf>,
    /// Attached (dies with us) or detached (`make cluster`).
    pub lifetime: Lifetime,
    /// Also run kube-controller-manager (namespace deletion, garbage collection, ...).
    pub controller_manager: bool,
    /// How long to wait for each component to become ready.
    pub timeout: Duration,
    /// Directory with the binaries; `None`: [`bins::dir`].
    pub bins: Option<PathBuf>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            dir: None,
            lifetime: Lifetime::Attached,
            controller_manager: false,
            timeout: Duration::from_secs(180),
            bins: None,
        }
    }
}

/// A running etcd + kube-apiserver (and optionally kube-controller-manager).
///
/// Dropping it stops the processes and removes a temporary data directory.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    temporary: bool,
    bins: PathBuf,
    lifetime: Lifetime,
    timeout: Duration,
    server: String,
    ca: Arc<Ca>,
    admin: CertKey,
    kubeconfig: PathBuf,
    procs: Vec<Proc>,
    detached: bool,
}

impl ControlPlane {
    /// Start the control plane and wait until `/readyz` says ok. Blocking; callable from any
    /// thread, async or not. Attached children die with the *thread* that calls this
    /// (`PR_SET_PDEATHSIG`), so call it from a thread that lives as long as the plane should.
    pub fn start(opts: ControlPlaneOptions) -> Result<Self> {
        let bins = match &opts.bins {
            Some(b) => b.clone(),
            None => bins::dir()?,
        };
        let (dir, temporary) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                (d.clone(), false)
            }
            None => (new_temp_dir()?, true),
        };
        if temporary && opts.lifetime == Lifetime::Attached {
            process::remove_at_exit(&dir);
        }
        let started = Instant::now();
        let files = write_pki(&dir)?;
        let mut plane = ControlPlane {
            dir,
            temporary,
            bins,
            lifetime: opts.lifetime,
            timeout: opts.timeout,
            server: String::new(),
            ca: Arc::new(files.ca),
            admin: files.admin,
            kubeconfig: PathBuf::new(),
            procs: Vec::new(),
            detached: false,
        };
        // A free port can be taken by someone else before etcd or the apiserver binds it:
        // try again with new ports when that happens.
        let mut attempt = 1;
        loop {
            match plane.start_core() {
                Ok(()) => break,
                Err(e) if attempt < 3 && is_port_conflict(&e) => {
                    eprintln!("audience-testenv: port conflict, retrying ({e:#})");
                    plane.stop_processes();
                    attempt += 1;
                }
                Err(e) => {
                    plane.stop_processes();
                    return Err(e.context(format!(
                        "starting the test control plane (data and logs in {})",
                        plane.dir.display()
                    )));
                }
            }
        }
        if opts.controller_manager {
            plane.start_controller_manager()?;
        }
        eprintln!(
            "audience-testenv: control plane ready at {} in {:.1} s (data {})",
            plane.server,
            started.elapsed().as_secs_f64(),
            plane.dir.display()
        );
        Ok(plane)
    }

    fn start_core(&mut self) -> Result<()> {
        let d = self.dir.clone();
        let etcd_data = d.join("etcd");
        let _ = std::fs::remove_dir_all(&etcd_data);
        let [etcd_port, peer_port, api_port] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");

        let mut etcd = Command::new(self.bins.join(bins::ETCD));
        etcd.args([
            "--name=default",
            &format!("--data-dir={}", etcd_data.display()),
            &format!("--listen-client-urls={etcd_url}"),
            &format!("--advertise-client-urls={etcd_url}"),
            &format!("--listen-peer-urls={peer_url}"),
            &format!("--initial-advertise-peer-urls={peer_url}"),
            &format!("--initial-cluster=default={peer_url}"),
            "--initial-cluster-state=new",
            // Test data is thrown away: skip fsync, keep the database small.
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ]);
        self.spawn("etcd", etcd)?;
        let deadline = Instant::now() + self.timeout;
        self.wait_until("etcd to accept connections", deadline, || {
            Ok(TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, etcd_port)),
                Duration::from_millis(200),
            )
            .is_ok())
        })?;

        let p = |name: &str| d.join(name).display().to_string();
        let mut api = Command::new(self.bins.join(bins::KUBE_APISERVER));
        api.args([
            &format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            &format!("--cert-dir={}", p("apiserver-certs")),
            &format!("--tls-cert-file={}", p("apiserver.crt")),
            &format!("--tls-private-key-file={}", p("apiserver.key")),
            &format!("--client-ca-file={}", p("ca.crt")),
            &format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
            &format!("--service-account-key-file={}", p("sa.pub")),
            &format!("--service-account-signing-key-file={}", p("sa.key")),
            &format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--authorization-mode=RBAC",
            // No controllers create the "default" ServiceAccount unless the controller manager
            // runs; without this pods could not be created (envtest does the same).
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
        ]);
        self.server = format!("https://127.0.0.1:{api_port}");
        self.kubeconfig = d.join("kubeconfig");
        let yaml = kubeconfig_yaml(
            &self.server,
            &self.ca.cert_pem(),
            "admin",
            &Credentials::Cert(&self.admin),
        );
        write_private(&self.kubeconfig, &yaml)?;
        self.spawn("kube-apiserver", api)?;

        let config = self.admin_config()?;
        let deadline = Instant::now() + self.timeout;
        let procs = &mut self.procs;
        run_async(wait_readyz(config, procs, deadline))
    }

    /// Start kube-controller-manager if it does not run yet, and wait until its controllers
    /// work (the ServiceAccount controller has created `default/default`).
    pub fn start_controller_manager(&mut self) -> Result<()> {
        if self
            .procs
            .iter()
            .any(|p| p.name == "kube-controller-manager")
        {
            return Ok(());
        }
        let d = self.dir.clone();
        let p = |name: &str| d.join(name).display().to_string();
        let mut kcm = Command::new(self.bins.join(bins::KUBE_CONTROLLER_MANAGER));
        kcm.args([
            &format!("--kubeconfig={}", p("kubeconfig")),
            &format!("--authentication-kubeconfig={}", p("kubeconfig")),
            &format!("--authorization-kubeconfig={}", p("kubeconfig")),
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            &format!("--cert-dir={}", p("kcm-certs")),
            &format!("--service-account-private-key-file={}", p("sa.key")),
            &format!("--root-ca-file={}", p("ca.crt")),
            &format!("--cluster-signing-cert-file={}", p("ca.crt")),
            &format!("--cluster-signing-key-file={}", p("ca.key")),
            &format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--use-service-account-credentials=false",
            "--concurrent-namespace-syncs=5",
            "--concurrent-gc-syncs=5",
            "--profiling=false",
        ]);
        self.spawn("kube-controller-manager", kcm)?;
        let config = self.admin_config()?;
        let deadline = Instant::now() + self.timeout;
        let procs = &mut self.procs;
        run_async(wait_controllers(config, procs, deadline)).context(format!(
            "starting kube-controller-manager (logs in {})",
            self.dir.display()
        ))
    }

    fn spawn(&mut self, name: &str, cmd: Command) -> Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let proc = process::spawn(name, cmd, &log, self.lifetime)?;
        std::fs::write(self.dir.join(format!("{name}.pid")), proc.pid().to_string())?;
        self.procs.push(proc);
        Ok(())
    }

    fn wait_until(
        &mut self,
        what: &str,
        deadline: Instant,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        loop {
            for p in &mut self.procs {
                p.check_running()?;
            }
            if ready()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The data directory (certificates, kubeconfig, etcd data, `*.log`, `*.pid`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The CA that signed the serving certificate and that the apiserver trusts for clients.
    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    /// A kube client config for the admin (`system:masters`).
    pub fn admin_config(&self) -> Result<Config> {
        client_config(&self.server, &self.ca, &Credentials::Cert(&self.admin))
    }

    /// Pids of the running components, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.pid()))
            .collect()
    }

    /// Leave the processes running (for a detached `make cluster`).
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn stop_processes(&mut self) {
        // Reverse start order: the controller manager and apiserver before etcd.
        while let Some(mut p) = self.procs.pop() {
            p.stop(Duration::from_secs(5));
        }
    }

    /// Stop all components and remove a temporary data directory.
    pub fn stop(&mut self) {
        self.stop_processes();
        if self.temporary {
            process::remove_dir(&self.dir);
            process::forget_dir(&self.dir);
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

/// Stop a control plane started elsewhere (`make cluster-down`): signal the processes named by
/// `<dir>/*.pid` that are still running from `dir`, then remove the pid files.
pub fn stop_dir(dir: &Path) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    let needle = dir.display().to_string();
    let mut pids = Vec::new();
    for name in ["kube-controller-manager", "kube-apiserver", "etcd"] {
        let file = dir.join(format!("{name}.pid"));
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Ok(pid) = text.trim().parse::<u32>()
            && process::pid_matches(pid, &needle)
        {
            process::signal(pid, libc::SIGTERM);
            pids.push(pid);
            stopped.push(format!("{name} ({pid})"));
        }
        let _ = std::fs::remove_file(file);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| process::pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids {
        if process::pid_matches(pid, &needle) {
            process::signal(pid, libc::SIGKILL);
        }
    }
    Ok(stopped)
}

struct Pki {
    ca: Ca,
    admin: CertKey,
}

fn write_pki(dir: &Path) -> Result<Pki> {
    let ca = Ca::new()?;
    let serving = ca.serving_cert(&[
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ])?;
    let admin = ca.client_cert("admin", &["system:masters"])?;
    write_private(&dir.join("ca.crt"), &ca.cert_pem())?;
    write_private(&dir.join("ca.key"), &ca.key_pem())?;
    write_private(&dir.join("apiserver.crt"), &serving.cert_pem)?;
    write_private(&dir.join("apiserver.key"), &serving.key_pem)?;
    let (sa_key, sa_pub) = new_key_pair_pem()?;
    write_private(&dir.join("sa.key"), &sa_key)?;
    write_private(&dir.join("sa.pub"), &sa_pub)?;
    write_private(&dir.join("admin.crt"), &admin.cert_pem)?;
    write_private(&dir.join("admin.key"), &admin.key_pem)?;
    Ok(Pki { ca, admin })
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// How a client authenticates.
pub(crate) enum Credentials<'a> {
    Cert(&'a CertKey),
    Token(&'a str),
}

pub(crate) fn auth_info(creds: &Credentials<'_>) -> Result<AuthInfo> {
    let json = match creds {
        Credentials::Cert(ck) => serde_json::json!({
            "client-certificate-data": B64.encode(&ck.cert_pem),
            "client-key-data": B64.encode(&ck.key_pem),
        }),
        Credentials::Token(t) => serde_json::json!({ "token": t }),
    };
    Ok(serde_json::from_value(json)?)
}

/// A kube client config for `server`, trusting `ca`.
pub(crate) fn client_config(server: &str, ca: &Ca, creds: &Credentials<'_>) -> Result<Config> {
    let mut config = Config::new(server.parse().context("apiserver URL")?);
    config.root_cert = Some(vec![ca.cert_der()]);
    config.auth_info = auth_info(creds)?;
    Ok(config)
}

/// A kubeconfig document with one cluster, user and context.
pub(crate) fn kubeconfig_yaml(
    server: &str,
    ca_pem: &str,
    user: &str,
    creds: &Credentials<'_>,
) -> String {
    let user_fields = match creds {
        Credentials::Cert(ck) => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            B64.encode(&ck.cert_pem),
            B64.encode(&ck.key_pem)
        ),
        Credentials::Token(t) => format!("    token: {}\n", serde_json::Value::from(*t)),
    };
    let user = serde_json::Value::from(user);
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: audience-testenv\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n{user_fields}\
         contexts:\n\
         - name: audience-testenv\n  \
           context:\n    \
             cluster: audience-testenv\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: audience-testenv\n",
        ca = B64.encode(ca_pem),
    )
}

/// Run a future to completion on a fresh single-threaded runtime in a scoped thread, so that
/// this works from inside and outside async contexts alike.
pub(crate) fn run_async<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

async fn wait_readyz(config: Config, procs: &mut [Proc], deadline: Instant) -> Result<()> {
    let client = Client::try_from(config)?;
    let mut last;
    loop {
        for p in procs.iter_mut() {
            p.check_running()?;
        }
        let req = http::Request::get("/readyz?verbose")
            .body(Vec::new())
            .expect("static request");
        match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = format!("{e}"),
            Err(_) => last = "timed out".into(),
        }
        if Instant::now() > deadline {
            bail!(
                "kube-apiserver not ready before the deadline; last /readyz answer: {last}\n\
                 end of the apiserver log:\n{}",
                procs
                    .iter()
                    .find(|p| p.name == "kube-apiserver")
                    .map(|p| process::log_tail(&p.log, 30))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_controllers(config: Config, procs: &mut [Proc], deadline: Instant) -> Result<()> {
    let client = Client::try_from(config)?;
    let sas: Api<ServiceAccount> = Api::namespaced(client, "default");
    loop {
        for p in procs.iter_mut() {
            p.check_running()?;
        }
        if let Ok(Some(_)) = sas.get_opt("default").await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("kube-controller-manager did not create ServiceAccount default/default in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_port_conflict(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("address already in use") || s.contains("bind: address")
}

fn free_ports() -> Result<[u16; 3]> {
    // Hold all three listeners at once so the ports differ.
    let ls = [
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
    ];
    Ok([
        ls[0].local_addr()?.port(),
        ls[1].local_addr()?.port(),
        ls[2].local_addr()?.port(),
    ])
}

/// A new unique directory under the temp dir, after removing the ones that dead runs left.
fn new_temp_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    remove_stale_dirs(&base);
    let pid = std::process::id();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = base.join(format!("{TEMP_PREFIX}{pid}-{nanos:x}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(OWNER_FILE), pid.to_string())?;
    Ok(dir)
}

/// Data directories of test binaries that were killed (no atexit ran): stop whatever still
/// runs from them and delete them.
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match owner {
            Some(pid) if process::pid_alive(pid) => {}
            Some(_) => {
                let _ = stop_dir(&dir);
                let _ = std::fs::remove_dir_all(&dir);
            }
            None => {} // not ours, or being created right now
        }
    }
}
