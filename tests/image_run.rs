//! The image `make image` builds (`hack/image.sh`, buildah, no Docker engine) is the one the
//! chart installs, and it works when run the way the chart runs it (podman + runc, read-only root
//! filesystem, no capabilities, its own non-root user):
//!
//! - its configuration: uid/gid 65532, the binary as entrypoint, `run` as command, OCI labels
//!   with the crate's version and source; its files: the binary, its libraries, CA bundle,
//!   passwd/group, nothing else (no shell);
//! - `--version` prints the crate version, `sandbox` answers on a port;
//! - `run`, configured in-cluster (the ServiceAccount token, CA and namespace mounted where the
//!   kubelet mounts them, `KUBERNETES_SERVICE_HOST`/`PORT`), as the chart's ServiceAccount with a
//!   TokenRequest token, against the real control plane: takes the Lease, answers its probes and
//!   brings the example sync to `Ready=True` (shared with `helm_operator.rs`).
//!
//! Which image: `$AUDIENCE_OPERATOR_IMAGE` when set — `make test` sets it to the image `make
//! image` built from the release binary, i.e. the shipped image, and then its size is checked too.
//! Otherwise (a plain `cargo test`) the same recipe (`hack/image.sh build --binary`) wraps the
//! binary cargo built for this test run, tagged `localhost/audience-operator-test:dev`: every
//! check but the size holds for it, and a developer gets the test without a release build.
//!
//! Podman is installed by `hack/image.sh` when missing. Only if podman cannot start at all are
//! these tests skipped, loudly; with `$AUDIENCE_OPERATOR_IMAGE` set (`make test`) that is a
//! failure instead.

mod helm_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use audience_testenv::TestEnv;
use helm_support::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const RELEASE: &str = "audience-operator";
/// The chart's podSecurityContext runs the pod as this uid/gid.
const USER: &str = "65532:65532";
/// The shipped image stays under this (the issue's aim).
const MAX_SIZE: u64 = 40 * 1024 * 1024;
const TEST_TAG: &str = "localhost/audience-operator-test:dev";

fn image_sh() -> Command {
    let mut cmd = Command::new(repo_root().join("hack/image.sh"));
    // `ref` must print the default name, the one the chart installs.
    cmd.stdin(Stdio::null()).env_remove("IMAGE_REPOSITORY");
    cmd
}

/// Runs `hack/image.sh args`: stdout, or a message with its stderr.
fn image_sh_output(args: &[&str]) -> Result<String, String> {
    let out = image_sh()
        .args(args)
        .output()
        .map_err(|e| format!("running hack/image.sh {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "hack/image.sh {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `podman args` with the project's configuration; panics unless it succeeds; stdout.
fn podman_ok(args: &[&str]) -> String {
    let mut all = vec!["podman"];
    all.extend_from_slice(args);
    image_sh_output(&all).unwrap_or_else(|e| panic!("{e}"))
}

fn podman_bytes(args: &[&str]) -> Vec<u8> {
    let out = image_sh()
        .arg("podman")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("running podman");
    assert!(out.status.success(), "podman {args:?}: {}", out.status);
    out.stdout
}

struct Image {
    reference: String,
    /// Built from the release binary by `make image` (not the test's own debug build).
    shipped: bool,
}

static IMAGE: OnceLock<Option<Image>> = OnceLock::new();

/// The image under test, built once per test binary; `None`: podman cannot run here (skip).
fn image() -> Option<&'static Image> {
    IMAGE
        .get_or_init(|| {
            let given = std::env::var("AUDIENCE_OPERATOR_IMAGE")
                .ok()
                .filter(|s| !s.is_empty());
            if let Err(e) = image_sh_output(&["check"]) {
                assert!(
                    given.is_none(),
                    "AUDIENCE_OPERATOR_IMAGE is set but podman cannot run here:\n{e}"
                );
                eprintln!(
                    "\n{bar}\nSKIPPING the image tests: podman cannot run on this machine.\n{e}\n{bar}\n",
                    bar = "!".repeat(78)
                );
                return None;
            }
            if let Some(reference) = given {
                return Some(Image {
                    reference,
                    shipped: true,
                });
            }
            let binary = env!("CARGO_BIN_EXE_audience-operator");
            let out = image_sh_output(&["build", "--binary", binary, "--tag", TEST_TAG])
                .unwrap_or_else(|e| panic!("{e}"));
            let reference = out.lines().last().unwrap_or_default().trim().to_string();
            assert_eq!(reference, TEST_TAG, "hack/image.sh build printed {out:?}");
            Some(Image {
                reference,
                shipped: false,
            })
        })
        .as_ref()
}

async fn image_async() -> Option<&'static Image> {
    tokio::task::spawn_blocking(image).await.unwrap()
}

/// A container this test started, removed (`podman rm -f`) when dropped, however the test ends.
struct Container(String);

impl Container {
    fn new(what: &str) -> Container {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Container(format!(
            "audience-image-test-{what}-{}-{n}",
            std::process::id()
        ))
    }

    fn remover(&self) -> impl Fn() + Send + Sync + 'static {
        let name = self.0.clone();
        move || {
            let _ = image_sh()
                .args(["podman", "rm", "--force", "--time", "0", "--ignore", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        (self.remover())();
    }
}

/// `podman run` arguments that lock the container down like the chart's securityContext
/// (read-only root, no capabilities, no privilege escalation) and leave the user to the image.
fn locked_down_run(name: &str) -> Vec<String> {
    [
        "podman",
        "run",
        "--rm",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pull",
        "never",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The non-directory entries of a root filesystem tar: path -> "uid/gid" (read by `tar -tv`).
fn exported_files(tar: &[u8]) -> BTreeSet<String> {
    use std::io::Write as _;
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "-tvf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running tar");
    let mut stdin = child.stdin.take().unwrap();
    let tar = tar.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&tar));
    let out = child.wait_with_output().expect("tar -tv");
    writer.join().unwrap().expect("feeding tar");
    assert!(
        out.status.success(),
        "tar -tv of the export: {}",
        out.status
    );
    let mut files = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "-rw-r--r-- 0/0 43 2026-01-01 10:00 etc/group" (links: "... a -> b")
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 6, "unexpected tar listing line {line:?}");
        if fields[0].starts_with('d') {
            continue;
        }
        let path = format!("/{}", fields[5].trim_start_matches("./"));
        files.insert(path.clone());
        assert_eq!(
            fields[1], "0/0",
            "{path} must be owned by root (not writable by the operator): {line}"
        );
    }
    files
}

#[tokio::test]
async fn chart_default_image_is_the_one_make_image_builds() {
    let reference = image_sh_output(&["ref"]).unwrap_or_else(|e| panic!("{e}"));
    let reference = reference.trim();
    let docs = render(RELEASE, "audience-system", &[]).await;
    let deployment = find(&docs, "Deployment", RELEASE);
    let installed = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("the Deployment's image");
    assert_eq!(
        installed, reference,
        "the chart's default image (values.yaml image.repository : Chart.yaml appVersion) \
         must be the reference `make image` builds (hack/image.sh ref)"
    );
    assert!(
        reference.ends_with(&format!(":{VERSION}")),
        "the image is tagged with the crate version {VERSION}: {reference}"
    );
}

#[tokio::test]
async fn image_is_non_root_labelled_and_holds_only_the_binary_and_its_libraries() {
    let Some(image) = image_async().await else {
        return;
    };
    let inspect: serde_json::Value = serde_json::from_str(&podman_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .}}",
        &image.reference,
    ]))
    .expect("podman image inspect prints JSON");
    // Some podman versions print a one-element array even with `--format '{{json .}}'`.
    let inspect = match inspect {
        serde_json::Value::Array(mut images) if images.len() == 1 => images.remove(0),
        other => other,
    };
    let config = &inspect["Config"];
    assert_eq!(config["User"], USER, "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/audience-operator"]),
        "{config}"
    );
    assert_eq!(config["Cmd"], serde_json::json!(["run"]), "{config}");
    let labels = &inspect["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"], VERSION,
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY"),
        "{labels}"
    );
    assert!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .is_some_and(|r| r.len() >= 40),
        "a git revision label: {labels}"
    );

    let size = inspect["Size"].as_u64().expect("image size");
    eprintln!("{}: {size} bytes", image.reference);
    if image.shipped {
        assert!(
            size < MAX_SIZE,
            "the image is {size} bytes, over {MAX_SIZE}"
        );
    } else {
        eprintln!("(size not checked: this image wraps the test's debug binary)");
    }

    // Its files, from the exported root filesystem.
    let c = Container::new("files");
    podman_ok(&[
        "create",
        "--name",
        &c.0,
        "--pull",
        "never",
        &image.reference,
    ]);
    let mut files = exported_files(&podman_bytes(&["export", &c.0]));
    // podman adds these mount points to every container.
    for runtime in [
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/run/.containerenv",
    ] {
        files.remove(runtime);
    }
    for needed in [
        "/usr/local/bin/audience-operator",
        "/etc/passwd",
        "/etc/group",
        "/etc/ssl/certs/ca-certificates.crt",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ] {
        assert!(files.contains(needed), "{needed} missing from {files:#?}");
    }
    let unexpected: Vec<_> = files
        .iter()
        .filter(|f| {
            let f = f.as_str();
            !(f == "/usr/local/bin/audience-operator"
                || f.starts_with("/lib/")
                || f.starts_with("/lib64/")
                || f.starts_with("/usr/share/doc/")
                || matches!(
                    f,
                    "/etc/passwd"
                        | "/etc/group"
                        | "/etc/nsswitch.conf"
                        | "/etc/ssl/certs/ca-certificates.crt"
                ))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "the image holds more than the binary, its libraries, the CA bundle and the user: {unexpected:?}"
    );
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with("/sh") || f.ends_with("/bash")),
        "a shell in the image: {files:#?}"
    );
    for f in files.iter().filter(|f| f.starts_with("/lib")) {
        assert!(f.contains(".so"), "{f}: only shared libraries under /lib");
    }
    let passwd =
        String::from_utf8(podman_bytes(&["cp", &format!("{}:/etc/passwd", c.0), "-"])).unwrap();
    assert!(
        passwd.contains("nonroot:x:65532:65532:"),
        "/etc/passwd names uid 65532:\n{passwd}"
    );
}

#[tokio::test]
async fn image_prints_its_version_and_serves_the_sandbox() {
    let Some(image) = image_async().await else {
        return;
    };
    let c = Container::new("version");
    let mut args = locked_down_run(&c.0);
    args.extend([image.reference.clone(), "--version".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = image_sh_output(&args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.trim(), format!("audience-operator {VERSION}"));
    drop(c);

    let c = Container::new("sandbox");
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dir = scratch_dir("image-sandbox");
    let log = dir.join("sandbox.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut args = locked_down_run(&c.0);
    args.extend([
        image.reference.clone(),
        "sandbox".into(),
        "--listen".into(),
        addr.to_string(),
    ]);
    let started = Instant::now();
    let mut child = tokio::process::Command::new(repo_root().join("hack/image.sh"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("starting the sandbox container");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let body = eventually(
        "the sandbox in the image to answer GET /_sandbox/stats",
        Duration::from_secs(60),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the sandbox container exited ({status}):\n{}", read_log());
            }
            async move {
                match http_get(addr, "/_sandbox/stats").await {
                    Ok((200, body)) => Some(body),
                    _ => None,
                }
            }
        },
        read_log,
    )
    .await;
    eprintln!(
        "sandbox in the image answered {:?} after `podman run`",
        started.elapsed()
    );
    let stats: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("stats are JSON ({e}): {body}"));
    for vendor in [
        "mailchimp",
        "shopify",
        "lightspeed-x",
        "lightspeed-r",
        "retailcrm",
    ] {
        assert!(stats[vendor].is_object(), "{vendor} missing: {stats}");
    }
    assert!(
        read_log().contains(&format!("sandbox listening on http://{addr}")),
        "{}",
        read_log()
    );
}

/// Starts the operator's image as the chart's pod would: in-cluster configuration from the
/// ServiceAccount files and `KUBERNETES_SERVICE_*`, `POD_NAMESPACE`/`POD_NAME`, `run` + flags.
fn start_image_operator(env: &TestEnv, image: &Image, l: &Launch<'_>) -> OperatorProcess {
    let sa = l.dir.join("serviceaccount");
    std::fs::create_dir_all(&sa).unwrap();
    let ca = env.ca_pem().expect("the test apiserver's CA");
    for (file, text) in [
        ("token", l.token),
        ("ca.crt", ca),
        ("namespace", l.release_ns),
    ] {
        write_readable(&sa.join(file), text);
    }
    let server = url::Url::parse(env.server_url()).expect("apiserver URL");
    let host = server.host_str().expect("apiserver host").to_string();
    let port = server.port_or_known_default().expect("apiserver port");

    let container = Container::new("operator");
    let mut args = locked_down_run(&container.0);
    args.extend([
        "--volume".into(),
        format!(
            "{}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            sa.display()
        ),
        "--env".into(),
        format!("KUBERNETES_SERVICE_HOST={host}"),
        "--env".into(),
        format!("KUBERNETES_SERVICE_PORT={port}"),
        "--env".into(),
        format!("POD_NAMESPACE={}", l.release_ns),
        "--env".into(),
        format!("POD_NAME={}", container.0),
        "--env".into(),
        "RUST_LOG=info".into(),
        image.reference.clone(),
        "run".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--log-json".into(),
    ]);
    args.extend(l.args.iter().cloned());

    let log = l.dir.join("operator.log");
    let file = std::fs::File::create(&log).expect("operator log file");
    let child = tokio::process::Command::new(repo_root().join("hack/image.sh"))
        .args(&args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("starting the operator container");
    let remover = container.remover();
    // From here on the OperatorProcess removes the container (on kill or drop).
    std::mem::forget(container);
    OperatorProcess {
        child,
        log,
        on_stop: Some(Box::new(remover)),
    }
}

/// Writes `text` readable by the container's user (uid 65532 is not the file's owner).
fn write_readable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(
            path.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_runs_the_operator_in_cluster_as_the_chart_service_account() {
    let Some(image) = image_async().await else {
        return;
    };
    let env = TestEnv::shared().await;
    let rel_ns = env.namespace("image-release").await;
    let app_ns = env.namespace("image-app").await;
    helm_install(env, RELEASE, &rel_ns, &[]).await;
    wait_crds_established(&env.client()).await;

    let (mut op, _sandbox) =
        operator_brings_example_ready_with(env, &rel_ns, RELEASE, RELEASE, &app_ns, &[], |l| {
            start_image_operator(env, image, l)
        })
        .await;
    op.kill().await;
}
