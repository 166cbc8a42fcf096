//! The real binary: `audience-operator run` finds the cluster through KUBECONFIG, takes the lease,
//! serves `/healthz`, `/readyz` and `/metrics`, and exits cleanly on SIGTERM (releasing the lease).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use audience_testenv::TestEnv;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    Some((r.status().as_u16(), r.text().await.ok()?))
}

/// Kills the operator if the test fails before it exits, so no process outlives the test binary.
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

#[tokio::test]
async fn run_subcommand_serves_probes_and_stops_on_sigterm() {
    let env = TestEnv::shared().await;
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("crds");
    let ns = env.namespace("op-binary").await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_audience-operator"))
        .args([
            "run",
            "--namespace",
            &ns,
            "--lease-namespace",
            &ns,
            "--lease-name",
            "op-binary",
        ])
        .args([
            "--identity",
            "binary-test",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the binary");
    let _reaper = Reaper(child.id());

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, body)) = get(port, "/readyz").await
            && body.contains("leader")
            && !body.contains("standby")
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the operator exited early"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became a ready leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".into())));
    let (code, metrics) = get(port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("audience_operator_leader 1"), "{metrics}");

    let leases: Api<Lease> = Api::namespaced(env.client(), &ns);
    let lease = leases.get("op-binary").await.expect("the lease exists");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("binary-test")
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
    let holder = leases
        .get("op-binary")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity);
    assert_ne!(
        holder.as_deref(),
        Some("binary-test"),
        "the lease was released"
    );
}
