//! The test control plane comes up, reports the pinned version and serves basic requests.

use audience_testenv::TestEnv;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

#[tokio::test]
async fn version_is_pinned_and_namespaces_work() {
    let env = TestEnv::shared().await;
    let client = env.client();

    let version = client.apiserver_version().await.expect("/version");
    if !env.is_external() {
        assert_eq!(version.git_version, "v1.36.3");
        assert_eq!(
            (version.major.as_str(), version.minor.as_str()),
            ("1", "36")
        );
    }

    let ns = env.namespace("Control_Plane").await;
    assert!(ns.starts_with("control-plane-"), "{ns}");
    let got = Api::<Namespace>::all(client.clone())
        .get(&ns)
        .await
        .expect("the namespace exists");
    assert_eq!(
        got.metadata
            .labels
            .unwrap_or_default()
            .get(audience_testenv::NAMESPACE_LABEL),
        Some(&"true".to_string())
    );

    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    // (kube-controller-manager, if it runs, adds kube-root-ca.crt to every namespace.)
    let names: Vec<String> = cms
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&"hello".to_string()), "{names:?}");
}

#[tokio::test]
async fn kubeconfig_works_for_kubectl() {
    let env = TestEnv::shared().await;
    let ns = env.namespace("kubectl").await;
    let out = env
        .kubectl_command()
        .args(["get", "namespace", &ns, "-o", "jsonpath={.metadata.name}"])
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), ns);
}

#[tokio::test]
async fn helm_defaults_to_the_pinned_kubernetes_version() {
    let env = TestEnv::shared().await;
    let out = env
        .helm_command()
        .arg("version")
        .arg("--short")
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("v3."));

    // `helm template` without --kube-version renders .Capabilities.KubeVersion from the
    // version stamped at build time (v1.20 when not stamped).
    let chart = tempdir("helm-chart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: probe\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    .unwrap();
    let out = env
        .helm_command()
        .arg("template")
        .arg(&chart)
        .output()
        .expect("running helm template");
    let _ = std::fs::remove_dir_all(&chart);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(rendered.contains("kube: \"v1.36.0\""), "{rendered}");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "audience-testenv-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
