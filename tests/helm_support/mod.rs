//! Shared by the `helm_*` tests: running helm on the chart, reading what it renders, and running
//! the operator binary as the chart's ServiceAccount against an in-test sandbox.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use audience_sandbox::{RunningSandbox, Sandbox, SandboxOptions};
use audience_testenv::TestEnv;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_yaml::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const GROUP: &str = "sync.audience-operator.io";
pub const CRD_NAMES: [&str; 3] = [
    "audiencesyncs.sync.audience-operator.io",
    "segmentsyncs.sync.audience-operator.io",
    "ordersyncs.sync.audience-operator.io",
];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/audience-operator")
}

/// The helm binary built by `hack/testbins.sh`.
pub fn helm_bin() -> PathBuf {
    audience_testenv::bins::path(audience_testenv::bins::HELM).expect("helm binary")
}

/// `helm` for commands that need no cluster (lint, template), with its caches in the target
/// directory so tests never touch `$HOME`.
pub fn offline_helm() -> std::process::Command {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    let mut cmd = std::process::Command::new(helm_bin());
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    cmd
}

pub fn describe(cmd: &std::process::Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("helm {}", args.join(" "))
}

/// Runs `cmd`, returning its output (whatever the exit status).
pub async fn run(cmd: std::process::Command) -> (String, Output) {
    let what = describe(&cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 180s"))
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    (what, out)
}

/// Runs `cmd` and panics with its output unless it succeeds; returns stdout.
pub async fn run_ok(cmd: std::process::Command) -> String {
    let (what, out) = run(cmd).await;
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}

/// `helm template <release> chart -n <namespace> <extra...>`, offline.
pub fn template_cmd(release: &str, namespace: &str, extra: &[&str]) -> std::process::Command {
    let mut cmd = offline_helm();
    cmd.arg("template")
        .arg(release)
        .arg(chart_dir())
        .args(["--namespace", namespace])
        .args(extra);
    cmd
}

/// The YAML documents of a multi-document text (empty documents dropped).
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Renders the chart and parses the documents.
pub async fn render(release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    documents(&run_ok(template_cmd(release, namespace, extra)).await)
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(doc: &Value) -> Option<&str> {
    doc["metadata"]["namespace"].as_str()
}

/// `(kind, namespace, name)` of every document, sorted.
pub fn inventory(docs: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = docs
        .iter()
        .map(|d| {
            (
                kind(d).to_string(),
                namespace(d).unwrap_or("").to_string(),
                name(d).to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn find<'a>(docs: &'a [Value], kind_: &str, name_: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == kind_ && name(d) == name_)
        .unwrap_or_else(|| panic!("no {kind_} {name_} in {:?}", inventory(docs)))
}

/// The args of the Deployment's first container.
pub fn container_args(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// A rule of a Role/ClusterRole, normalised: (apiGroups, resources, resourceNames, verbs), each sorted.
pub type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    s.sort();
    s
}

pub fn rules(role: &Value) -> Vec<Rule> {
    let mut r: Vec<Rule> = role["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["resourceNames"]),
                strings(&r["verbs"]),
            )
        })
        .collect();
    r.sort();
    r
}

pub fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Rule {
    let v = |x: &[&str]| {
        let mut v: Vec<String> = x.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    (v(groups), v(resources), v(names), v(verbs))
}

/// Exactly what the operator may do wherever it watches (least privilege).
pub fn expected_watch_rules() -> Vec<Rule> {
    let mut r = vec![
        rule(
            &[GROUP],
            &["audiencesyncs", "segmentsyncs", "ordersyncs"],
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            &[GROUP],
            &[
                "audiencesyncs/status",
                "segmentsyncs/status",
                "ordersyncs/status",
            ],
            &[],
            &["get", "patch", "update"],
        ),
        rule(&[""], &["secrets"], &[], &["get", "list", "watch"]),
        // The activity log ConfigMaps.
        rule(
            &[""],
            &["configmaps"],
            &[],
            &["get", "list", "create", "patch", "delete"],
        ),
        rule(&["events.k8s.io"], &["events"], &[], &["create", "patch"]),
        rule(&[""], &["events"], &[], &["create", "patch"]),
    ];
    r.sort();
    r
}

/// Exactly what the operator may do with its Lease.
pub fn expected_lease_rules(lease: &str) -> Vec<Rule> {
    let mut r = vec![
        rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &[lease],
            &["get", "patch", "update"],
        ),
    ];
    r.sort();
    r
}

/// Polls `f` until it returns `Some`, at most `timeout`; panics with `what` and `diag()`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut f: F,
    diag: impl Fn() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        interval.tick().await;
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", diag());
        }
    }
}

/// True for a 403 answer.
pub fn is_forbidden<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

#[track_caller]
pub fn assert_forbidden<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    assert!(
        is_forbidden(&r),
        "{what}: expected 403 Forbidden, got {r:?}"
    );
}

#[track_caller]
pub fn assert_allowed<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    assert!(r.is_ok(), "{what}: expected to be allowed, got {r:?}");
}

/// True when the object is gone (404).
pub async fn absent<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    matches!(api.get_opt(name).await, Ok(None))
}

/// Writes a kubeconfig that authenticates with `token` against the test apiserver (same server
/// and CA as the admin kubeconfig), with `namespace` as the default namespace.
pub fn write_token_kubeconfig(env: &TestEnv, dir: &Path, token: &str, namespace: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("kubeconfig dir");
    let ca = env
        .ca_pem()
        .expect("the CA of the test apiserver (not known for this external cluster)");
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca).expect("writing ca.crt");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {
            "server": env.server_url(),
            "certificate-authority": ca_path,
        }}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {
            "cluster": "testenv", "user": "operator", "namespace": namespace,
        }}],
        "current-context": "operator",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).expect("kubeconfig");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

/// A fresh per-test directory under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// An example from `examples/`.
pub struct Example {
    pub file: PathBuf,
    /// The AudienceSync.
    pub sync: serde_json::Value,
    /// The Secrets given in the same file.
    pub secrets: Vec<serde_json::Value>,
}

/// The AudienceSync from `examples/` with a Lightspeed X-Series source and a Mailchimp target.
pub fn lightspeed_x_example() -> Example {
    let dir = repo_root().join("examples");
    let mut files = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("reading an example");
        let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
            .filter_map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).ok())
            .collect();
        let sync = docs.iter().find(|v| {
            v["kind"] == "AudienceSync"
                && v["apiVersion"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(GROUP))
                && v["spec"]["source"]["lightspeedXSeries"].is_object()
                && v["spec"]["target"]["mailchimp"].is_object()
        });
        if let Some(sync) = sync {
            return Example {
                file: f.clone(),
                sync: sync.clone(),
                secrets: docs
                    .iter()
                    .filter(|v| v["kind"] == "Secret")
                    .cloned()
                    .collect(),
            };
        }
    }
    panic!(
        "no AudienceSync with a lightspeedXSeries source and a mailchimp target in {} ({} YAML files: {:?})",
        dir.display(),
        files.len(),
        files
    );
}

/// The sandbox the operator talks to, with demo customers in every source.
pub async fn start_sandbox() -> RunningSandbox {
    Sandbox::new(SandboxOptions {
        customers: 40,
        seed: 7,
    })
    .serve("127.0.0.1:0".parse().unwrap())
    .await
    .expect("serving the sandbox")
}

/// Creates the example in `ns` as the admin: its Secrets as given (any Secret it references but
/// does not give is created with the sandbox's demo credentials), the Mailchimp audience it
/// targets in the sandbox (unless the sandbox already has it), then its AudienceSync.
/// Returns `(name, audience id)`.
pub async fn create_example(
    admin: &Client,
    ns: &str,
    example: &Example,
    sandbox: &RunningSandbox,
) -> (String, String) {
    let spec = &example.sync["spec"];
    let audience_id = spec["target"]["mailchimp"]["audienceId"]
        .as_str()
        .expect("the example's audienceId")
        .to_string();
    let mailchimp = &sandbox.sandbox.mailchimp;
    if !mailchimp.list_ids().contains(&audience_id) {
        mailchimp.create_list(&audience_id, "Helm test audience");
    }

    let secret_api: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let mut given = std::collections::BTreeSet::new();
    for s in &example.secrets {
        let mut s: Secret = serde_json::from_value(s.clone()).expect("an example Secret");
        s.metadata.namespace = None;
        let name = s.metadata.name.clone().expect("Secret name");
        secret_api
            .create(&PostParams::default(), &s)
            .await
            .unwrap_or_else(|e| panic!("creating the example's Secret {ns}/{name}: {e}"));
        given.insert(name);
    }
    let src = &spec["source"]["lightspeedXSeries"]["credentialsSecretRef"];
    let dst = &spec["target"]["mailchimp"]["credentialsSecretRef"];
    let mut missing: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, String>,
    > = Default::default();
    for (r, default_key, value) in [
        (src, "token", audience_sandbox::lightspeed_x::DEMO_TOKEN),
        (dst, "apiKey", audience_sandbox::mailchimp::EXAMPLE_API_KEY),
    ] {
        let name = r["name"].as_str().expect("credentialsSecretRef.name");
        if !given.contains(name) {
            let key = r["key"].as_str().unwrap_or(default_key);
            missing
                .entry(name.to_string())
                .or_default()
                .insert(key.to_string(), value.to_string());
        }
    }
    for (name, data) in missing {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    [(
                        audience_operator::crd::CREDENTIALS_LABEL.to_string(),
                        "true".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            string_data: Some(data),
            ..Default::default()
        };
        secret_api
            .create(&PostParams::default(), &s)
            .await
            .unwrap_or_else(|e| panic!("creating Secret {ns}/{name}: {e}"));
    }

    let mut obj = example.sync.clone();
    let meta = obj["metadata"].as_object_mut().expect("example metadata");
    meta.remove("namespace");
    let name = meta["name"].as_str().expect("example name").to_string();
    let obj: DynamicObject = serde_json::from_value(obj).expect("example as an object");
    audience_api(admin, ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating the example AudienceSync {ns}/{name} from {}: {e}",
                example.file.display()
            )
        });
    (name, audience_id)
}

pub fn audience_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: "AudienceSync".into(),
        plural: "audiencesyncs".into(),
    }
}

pub fn audience_api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &audience_resource())
}

/// The `Ready` condition of an object: `(status, reason, message)`.
pub fn ready_condition(obj: &DynamicObject) -> Option<(String, String, String)> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// The operator binary running as a child process (killed when dropped).
pub struct OperatorProcess {
    pub child: tokio::process::Child,
    pub log: PathBuf,
    /// Run by `kill` and on drop, after the child is killed (e.g. removing a container that
    /// outlives its `podman run` client).
    pub on_stop: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(stop) = &self.on_stop {
            stop();
        }
    }
}

impl OperatorProcess {
    /// Starts `audience-operator run` with `KUBECONFIG=kubeconfig`, JSON logs to a file, the HTTP
    /// endpoints on a free loopback port, and `args`.
    pub fn start(kubeconfig: &Path, dir: &Path, args: &[String]) -> OperatorProcess {
        let log = dir.join("operator.log");
        let file = std::fs::File::create(&log).expect("operator log file");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_audience-operator"));
        cmd.arg("run")
            .args(["--metrics-addr", "127.0.0.1:0", "--log-json"])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("starting audience-operator run");
        OperatorProcess {
            child,
            log,
            on_stop: None,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Lines of the log that mention a refusal by the API server.
    pub fn forbidden_lines(&self) -> Vec<String> {
        forbidden_lines(&self.log)
    }

    /// Panics (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "audience-operator run exited early ({status})\n{}",
                self.log_tail()
            );
        }
    }

    /// The address of `/metrics`, `/healthz`, `/readyz`, from its startup log line.
    pub async fn http_addr(&mut self) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            self.assert_running();
            for line in self.log_text().lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(addr) = v["fields"]["addr"].as_str().and_then(|a| a.parse().ok()) {
                    return addr;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the operator logged no HTTP address within 60s\n{}",
                    self.log_tail()
                );
            }
        }
    }

    /// Stops the process (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        if let Some(stop) = &self.on_stop {
            stop();
        }
    }
}

/// The last 40 lines of a log file, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    format!(
        "--- operator log ({}), last {} lines ---\n{}",
        log.display(),
        lines.len() - start,
        lines[start..].join("\n")
    )
}

/// Lines of a log file that mention a refusal by the API server (403 Forbidden).
pub fn forbidden_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("forbidden") || l.contains("\"code\":403")
        })
        .map(str::to_string)
        .collect()
}

/// `GET path` on `addr`: `(status code, body)`.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// `helm` against the test cluster (admin kubeconfig).
pub fn cluster_helm(env: &TestEnv) -> std::process::Command {
    let mut cmd = env.helm_command();
    cmd.stdin(Stdio::null());
    cmd
}

/// `helm install <release> chart -n <namespace> <extra...>` (without --wait: the test control
/// plane runs no kubelet, so the pods never start).
pub async fn helm_install(env: &TestEnv, release: &str, namespace: &str, extra: &[&str]) -> String {
    let mut cmd = cluster_helm(env);
    cmd.args(["install", release])
        .arg(chart_dir())
        .args(["--namespace", namespace])
        .args(extra);
    run_ok(cmd).await
}

/// Waits until both CRDs are Established.
pub async fn wait_crds_established(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in CRD_NAMES {
        eventually(
            &format!("CRD {name} Established"),
            Duration::from_secs(60),
            || async {
                let crd = api.get_opt(name).await.ok()??;
                crd.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
            String::new,
        )
        .await;
    }
}

/// The Deployment's container args as stored by the API server.
pub async fn deployment_args(client: &Client, ns: &str, name: &str) -> Vec<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Deployment {ns}/{name}: {e}"));
    let v = serde_json::to_value(&d).unwrap();
    v["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the operator as the chart's ServiceAccount `namespace/sa` against a fresh sandbox, with
/// the example Lightspeed X-Series -> Mailchimp sync created in `app_ns`, and waits until the
/// sync is `Ready=True`, an Event about it was recorded, the probes answer and the Lease is held.
/// Returns the operator (still running) and the sandbox.
pub async fn operator_brings_example_ready(
    env: &TestEnv,
    release_ns: &str,
    sa: &str,
    lease: &str,
    app_ns: &str,
    extra_args: &[String],
) -> (OperatorProcess, RunningSandbox) {
    operator_brings_example_ready_with(env, release_ns, sa, lease, app_ns, extra_args, |l| {
        OperatorProcess::start(l.kubeconfig, l.dir, l.args)
    })
    .await
}

/// What a launcher of `audience-operator run` gets from [`operator_brings_example_ready_with`].
pub struct Launch<'a> {
    /// The ServiceAccount's TokenRequest token.
    pub token: &'a str,
    /// A kubeconfig that authenticates with `token`.
    pub kubeconfig: &'a Path,
    /// A scratch directory for the run (its log goes there).
    pub dir: &'a Path,
    /// The release namespace (the ServiceAccount's and the Lease's).
    pub release_ns: &'a str,
    /// Arguments after `run` (lease, identity, sandbox URL, extra flags).
    pub args: &'a [String],
}

/// [`operator_brings_example_ready`] with the operator started by `start` (e.g. in its image).
/// `start` must log JSON (`--log-json`) to the returned log and serve the probes on a loopback
/// port it logs.
pub async fn operator_brings_example_ready_with(
    env: &TestEnv,
    release_ns: &str,
    sa: &str,
    lease: &str,
    app_ns: &str,
    extra_args: &[String],
    start: impl FnOnce(&Launch<'_>) -> OperatorProcess,
) -> (OperatorProcess, RunningSandbox) {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::ListParams;

    let admin = env.client();
    let token = env
        .service_account_token(release_ns, sa)
        .await
        .expect("TokenRequest for the chart's ServiceAccount");
    let dir = scratch_dir(&format!("operator-{app_ns}"));
    let kubeconfig = write_token_kubeconfig(env, &dir, &token, release_ns);

    let sandbox = start_sandbox().await;
    let example = lightspeed_x_example();
    eprintln!("using example {}", example.file.display());
    let (name, audience_id) = create_example(&admin, app_ns, &example, &sandbox).await;

    let identity = format!("helm-test-{}", std::process::id());
    let mut args: Vec<String> = vec![
        "--lease-name".into(),
        lease.into(),
        "--lease-namespace".into(),
        release_ns.into(),
        "--identity".into(),
        identity.clone(),
        "--sandbox".into(),
        sandbox.url(),
    ];
    args.extend(extra_args.iter().cloned());
    let mut op = start(&Launch {
        token: &token,
        kubeconfig: &kubeconfig,
        dir: &dir,
        release_ns,
        args: &args,
    });

    // The probes the chart points at answer.
    let addr = op.http_addr().await;
    for path in ["/healthz", "/readyz"] {
        let log = op.log.clone();
        eventually(
            &format!("{path} to answer 200"),
            Duration::from_secs(60),
            || async { matches!(http_get(addr, path).await, Ok((200, _))).then_some(()) },
            || log_tail(&log),
        )
        .await;
    }

    // The Lease (in the release namespace) is taken by this identity.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), release_ns);
    {
        let log = op.log.clone();
        eventually(
            &format!("Lease {release_ns}/{lease} held by {identity}"),
            Duration::from_secs(60),
            || async {
                let l = leases.get_opt(lease).await.ok()??;
                (l.spec?.holder_identity? == identity).then_some(())
            },
            || log_tail(&log),
        )
        .await;
    }

    // The example becomes Ready=True.
    let api = audience_api(&admin, app_ns);
    let last = std::sync::Mutex::new(None::<DynamicObject>);
    {
        let log = op.log.clone();
        let log_path = op.log.clone();
        let last = &last;
        eventually(
            &format!("AudienceSync {app_ns}/{name} Ready=True"),
            Duration::from_secs(120),
            || async {
                // RBAC does not change during the test: a refusal is final, report it at once.
                let refused = forbidden_lines(&log_path);
                assert!(
                    refused.is_empty(),
                    "the operator was refused something with the chart's RBAC:\n{}",
                    refused.join("\n")
                );
                let obj = api.get(&name).await.ok()?;
                let ready = ready_condition(&obj);
                *last.lock().unwrap() = Some(obj);
                ready.filter(|(s, _, _)| s == "True").map(|_| ())
            },
            || {
                let status = last
                    .lock()
                    .unwrap()
                    .as_ref()
                    .map(|o| serde_json::to_string_pretty(&o.data["status"]).unwrap())
                    .unwrap_or_else(|| "<never read>".into());
                format!("last status: {status}\n{}", log_tail(&log))
            },
        )
        .await;
    }
    op.assert_running();

    // The sync really wrote to the (simulated) Mailchimp audience.
    let members = sandbox.sandbox.mailchimp.member_count(&audience_id);
    assert!(
        members > 0,
        "Ready=True but the sandbox audience {audience_id} has no members"
    );

    // The operator could record Events about it.
    let events: Api<Event> = Api::namespaced(admin.clone(), app_ns);
    {
        let log = op.log.clone();
        eventually(
            &format!("an Event about AudienceSync {app_ns}/{name} from audience-operator"),
            Duration::from_secs(30),
            || async {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items
                    .iter()
                    .any(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str())
                            && e.reporting_controller.as_deref() == Some("audience-operator")
                    })
                    .then_some(())
            },
            || log_tail(&log),
        )
        .await;
    }

    let refused = op.forbidden_lines();
    assert!(
        refused.is_empty(),
        "the operator was refused something with the chart's RBAC:\n{}",
        refused.join("\n")
    );
    (op, sandbox)
}
