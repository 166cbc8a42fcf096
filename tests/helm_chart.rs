//! The Helm chart without a cluster: `helm lint` and `helm template` are clean in both RBAC modes,
//! the rendered RBAC is exactly what the operator needs, the Deployment is locked down, the CRD
//! templates are exactly `crds/`, and the schema refuses bad values with a clear message.

mod helm_support;

use std::collections::BTreeSet;

use helm_support::*;
use serde_yaml::Value;

const RELEASE: &str = "audience-operator";
const NS: &str = "audience-system";

#[test]
fn chart_crd_files_are_an_exact_copy_of_crds_dir() {
    let names = |dir: &std::path::Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let crds = repo_root().join("crds");
    let copy = chart_dir().join("files/crds");
    assert_eq!(
        names(&crds),
        names(&copy),
        "charts/audience-operator/files/crds/ must hold the same files as crds/ \
         (refresh with: cp crds/*.yaml charts/audience-operator/files/crds/)"
    );
    for name in names(&crds) {
        let a = std::fs::read(crds.join(&name)).unwrap();
        let b = std::fs::read(copy.join(&name)).unwrap();
        assert!(
            a == b,
            "charts/audience-operator/files/crds/{name} differs from crds/{name} \
             (refresh with: cp crds/*.yaml charts/audience-operator/files/crds/)"
        );
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    assert_eq!(chart["name"].as_str(), Some("audience-operator"));
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must equal the audience-operator crate version"
    );
}

#[tokio::test]
async fn lint_is_clean_with_default_and_namespaced_values() {
    for extra in [
        &[][..],
        &["--set", "watchNamespaces={team-a,team-b}"][..],
        &[
            "--set",
            "serviceMonitor.enabled=true,installCRDs=false,logFormat=json",
        ][..],
    ] {
        let mut cmd = offline_helm();
        cmd.args(["lint", "--strict"]).arg(chart_dir()).args(extra);
        let out = run_ok(cmd).await;
        assert!(
            out.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm lint {extra:?}:\n{out}"
        );
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "helm lint {extra:?}:\n{out}"
        );
    }
}

#[tokio::test]
async fn default_values_render_cluster_wide_rbac_and_a_locked_down_deployment() {
    let docs = render(RELEASE, NS, &[]).await;
    let lease_role = format!("{RELEASE}-leader-election");
    let metrics_svc = format!("{RELEASE}-metrics");
    let mut expected = vec![
        ("ClusterRole", "", RELEASE),
        ("ClusterRoleBinding", "", RELEASE),
        ("CustomResourceDefinition", "", CRD_NAMES[0]),
        ("CustomResourceDefinition", "", CRD_NAMES[1]),
        ("CustomResourceDefinition", "", CRD_NAMES[2]),
        ("Deployment", NS, RELEASE),
        ("Role", NS, lease_role.as_str()),
        ("RoleBinding", NS, lease_role.as_str()),
        ("Service", NS, metrics_svc.as_str()),
        ("ServiceAccount", NS, RELEASE),
    ]
    .into_iter()
    .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
    .collect::<Vec<_>>();
    expected.sort();
    assert_eq!(inventory(&docs), expected);

    // RBAC: exactly the operator's needs, cluster-wide; the Lease only in the release namespace.
    assert_eq!(
        rules(find(&docs, "ClusterRole", RELEASE)),
        expected_watch_rules()
    );
    let crb = find(&docs, "ClusterRoleBinding", RELEASE);
    assert_eq!(crb["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(crb["roleRef"]["name"].as_str(), Some(RELEASE));
    assert_eq!(crb["subjects"][0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(crb["subjects"][0]["name"].as_str(), Some(RELEASE));
    assert_eq!(crb["subjects"][0]["namespace"].as_str(), Some(NS));
    assert_eq!(
        rules(find(&docs, "Role", &lease_role)),
        expected_lease_rules(RELEASE)
    );
    let rb = find(&docs, "RoleBinding", &lease_role);
    assert_eq!(rb["roleRef"]["name"].as_str(), Some(lease_role.as_str()));
    assert_eq!(rb["subjects"][0]["name"].as_str(), Some(RELEASE));

    // Deployment: defaults, flags, probes, resources and security context.
    let deploy = find(&docs, "Deployment", RELEASE);
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(2));
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some(RELEASE));
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"].as_str(),
        Some(
            format!(
                "ghcr.io/audience-operator/audience-operator:{}",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        )
    );
    assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert_eq!(
        container_args(deploy),
        [
            "run",
            "--metrics-addr=0.0.0.0:8080",
            "--concurrency=128",
            &format!("--lease-name={RELEASE}"),
            &format!("--lease-namespace={NS}"),
        ]
    );
    let env: Vec<(&str, &Value)> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    let rust_log = env
        .iter()
        .find(|(n, _)| *n == "RUST_LOG")
        .expect("RUST_LOG");
    assert_eq!(rust_log.1["value"].as_str(), Some("info"));
    for (var, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env.iter().find(|(n, _)| *n == var).expect(var);
        assert_eq!(
            e.1["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            Some(field)
        );
    }
    assert_eq!(c["ports"][0]["name"].as_str(), Some("metrics"));
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8080));
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["port"].as_str(),
        Some("metrics")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["port"].as_str(),
        Some("metrics")
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !c["resources"][kind][res].is_null(),
                "resources.{kind}.{res} missing"
            );
        }
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert!(psc["runAsUser"].as_u64().is_some_and(|u| u > 0));
    assert_eq!(
        psc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );

    // The metrics Service selects the operator pods on the metrics port.
    let svc = find(&docs, "Service", &metrics_svc);
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"].as_str(),
        Some("metrics")
    );
}

#[tokio::test]
async fn watch_namespaces_render_a_role_per_namespace_and_namespace_flags() {
    let docs = render(RELEASE, NS, &["--set", "watchNamespaces={team-a,team-b}"]).await;
    let inv = inventory(&docs);
    assert!(
        !inv.iter()
            .any(|(k, _, _)| k == "ClusterRole" || k == "ClusterRoleBinding"),
        "namespaced mode must not grant anything cluster-wide: {inv:?}"
    );
    let roles: Vec<(String, String)> = inv
        .iter()
        .filter(|(k, _, _)| k == "Role")
        .map(|(_, ns, n)| (ns.clone(), n.clone()))
        .collect();
    let lease_role = format!("{RELEASE}-leader-election");
    assert_eq!(
        roles,
        [
            (NS.to_string(), lease_role.clone()),
            ("team-a".to_string(), RELEASE.to_string()),
            ("team-b".to_string(), RELEASE.to_string()),
        ]
    );
    for ns in ["team-a", "team-b"] {
        let role = docs
            .iter()
            .find(|d| kind(d) == "Role" && namespace(d) == Some(ns))
            .unwrap();
        assert_eq!(rules(role), expected_watch_rules(), "Role in {ns}");
        let rb = docs
            .iter()
            .find(|d| kind(d) == "RoleBinding" && namespace(d) == Some(ns))
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(rb["roleRef"]["kind"].as_str(), Some("Role"));
        assert_eq!(rb["roleRef"]["name"].as_str(), Some(RELEASE));
        assert_eq!(rb["subjects"][0]["name"].as_str(), Some(RELEASE));
        assert_eq!(rb["subjects"][0]["namespace"].as_str(), Some(NS));
    }
    let args = container_args(find(&docs, "Deployment", RELEASE));
    let ns_flags: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("--namespace"))
        .collect();
    assert_eq!(ns_flags, ["--namespace=team-a", "--namespace=team-b"]);
}

#[tokio::test]
async fn values_switch_flags_and_optional_resources() {
    let docs = render(
        "prod",
        NS,
        &[
            "--set",
            "concurrency=9,runRecordsBudget=50000,logLevel=debug,logFormat=json,replicaCount=3,installCRDs=false",
            "--set",
            "serviceMonitor.enabled=true,serviceMonitor.labels.release=kube-prometheus",
            "--set",
            "image.tag=1.2.3,image.pullPolicy=Always,podAnnotations.team=growth",
            "--set",
            "nodeSelector.pool=ops,tolerations[0].key=dedicated,tolerations[0].operator=Exists",
        ],
    )
    .await;
    let full = "prod-audience-operator";
    let inv = inventory(&docs);
    assert!(
        !inv.iter().any(|(k, _, _)| k == "CustomResourceDefinition"),
        "installCRDs=false must render no CRD: {inv:?}"
    );
    let deploy = find(&docs, "Deployment", full);
    assert_eq!(deploy["spec"]["replicas"].as_u64(), Some(3));
    let args = container_args(deploy);
    for want in [
        "--concurrency=9",
        "--run-records-budget=50000",
        "--log-json",
        "--lease-name=prod-audience-operator",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["team"].as_str(),
        Some("growth")
    );
    assert_eq!(pod["spec"]["nodeSelector"]["pool"].as_str(), Some("ops"));
    assert_eq!(
        pod["spec"]["tolerations"][0]["key"].as_str(),
        Some("dedicated")
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["image"].as_str(),
        Some("ghcr.io/audience-operator/audience-operator:1.2.3")
    );
    assert_eq!(c["imagePullPolicy"].as_str(), Some("Always"));
    let log = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "RUST_LOG")
        .unwrap();
    assert_eq!(log["value"].as_str(), Some("debug"));

    let sm = find(&docs, "ServiceMonitor", full);
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus")
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("metrics"));
    assert_eq!(
        sm["spec"]["endpoints"][0]["path"].as_str(),
        Some("/metrics")
    );
    let svc = find(&docs, "Service", &format!("{full}-metrics"));
    let svc_labels = svc["metadata"]["labels"].as_mapping().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(
            svc_labels.get(k),
            Some(v),
            "ServiceMonitor selects {k:?}={v:?}"
        );
    }

    // Webhooks are off by default; on, the receiver gets its flag, port, Service and Ingress.
    assert!(
        !inventory(&render(RELEASE, NS, &[]).await)
            .iter()
            .any(|(_, _, name)| name.ends_with("-webhooks")),
        "no webhook Service unless asked for"
    );
    let docs = render(
        "hooks",
        NS,
        &[
            "--set",
            "webhooks.enabled=true,webhooks.ingress.enabled=true,webhooks.ingress.host=hooks.example.com,webhooks.ingress.tlsSecretName=hooks-tls",
        ],
    )
    .await;
    let deploy = find(&docs, "Deployment", "hooks-audience-operator");
    let args = container_args(deploy);
    assert!(
        args.iter().any(|a| a == "--webhook-addr=0.0.0.0:8443"),
        "{args:?}"
    );
    let svc = find(&docs, "Service", "hooks-audience-operator-webhooks");
    assert_eq!(
        svc["spec"]["ports"][0]["targetPort"].as_str(),
        Some("webhooks")
    );
    let ingress = find(&docs, "Ingress", "hooks-audience-operator-webhooks");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"].as_str(), Some("hooks.example.com"));
    assert_eq!(rule["http"]["paths"][0]["path"].as_str(), Some("/webhooks"));
    assert_eq!(
        ingress["spec"]["tls"][0]["secretName"].as_str(),
        Some("hooks-tls")
    );

    // Without leader election: a single replica and no Lease rights.
    let docs = render(
        "solo",
        NS,
        &["--set", "leaderElection.enabled=false,replicaCount=1"],
    )
    .await;
    let args = container_args(find(&docs, "Deployment", "solo-audience-operator"));
    assert!(args.iter().any(|a| a == "--no-leader-election"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--lease-")), "{args:?}");
    assert!(
        !inventory(&docs).iter().any(|(k, _, _)| k == "Role"),
        "no Lease Role without leader election"
    );
}

/// Sharding: `replicaCount: 3` with `sharding.enabled` renders a StatefulSet of three pods told
/// the shard count (each finds its home shard in its pod name), its headless Service, and Lease
/// rights for exactly the shard and member Leases; no Deployment. One replica is refused.
#[tokio::test]
async fn sharding_renders_a_statefulset_with_the_shard_count() {
    let docs = render(
        "big",
        NS,
        &["--set", "sharding.enabled=true,replicaCount=3"],
    )
    .await;
    let full = "big-audience-operator";
    let inv = inventory(&docs);
    assert!(
        !inv.iter().any(|(k, _, _)| k == "Deployment"),
        "sharding replaces the Deployment: {inv:?}"
    );
    let sts = find(&docs, "StatefulSet", full);
    assert_eq!(sts["spec"]["replicas"].as_u64(), Some(3));
    assert_eq!(
        sts["spec"]["podManagementPolicy"].as_str(),
        Some("Parallel")
    );
    let governing = format!("{full}-shards");
    assert_eq!(
        sts["spec"]["serviceName"].as_str(),
        Some(governing.as_str())
    );
    let headless = find(&docs, "Service", &governing);
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        headless["spec"]["selector"], sts["spec"]["selector"]["matchLabels"],
        "the headless Service selects the StatefulSet's pods"
    );
    let args = container_args(sts);
    for want in [
        "--shards=3",
        "--lease-name=big-audience-operator",
        &format!("--lease-namespace={NS}"),
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a == "--no-leader-election"),
        "{args:?}"
    );
    // The home shard comes from the pod name.
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "{env:?}"
    );
    // The pod is the Deployment's pod (same lock-down), only run as shards.
    let deploy_docs = render("big", NS, &["--set", "replicaCount=3"]).await;
    let deploy = find(&deploy_docs, "Deployment", full);
    assert_eq!(
        sts["spec"]["template"]["spec"]["securityContext"],
        deploy["spec"]["template"]["spec"]["securityContext"]
    );
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["securityContext"],
        deploy["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    );

    let lease_role = find(&docs, "Role", "big-audience-operator-leader-election");
    let names: Vec<String> = (0..3)
        .flat_map(|k| [format!("{full}-shard-{k}"), format!("{full}-member-{k}")])
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut want = vec![
        rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &names,
            &["get", "patch", "update"],
        ),
    ];
    want.sort();
    assert_eq!(rules(lease_role), want);

    let (what, out) = run(template_cmd(
        "one",
        NS,
        &["--set", "sharding.enabled=true,replicaCount=1"],
    ))
    .await;
    assert!(!out.status.success(), "{what} was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replicaCount of 2 or more"), "{stderr}");
}

#[tokio::test]
async fn crd_templates_render_exactly_crds_dir_with_keep_policy() {
    let docs = render(RELEASE, NS, &[]).await;
    let rendered: Vec<&Value> = docs
        .iter()
        .filter(|d| kind(d) == "CustomResourceDefinition")
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut expected = Vec::new();
    for f in &files {
        expected.extend(documents(&std::fs::read_to_string(f).unwrap()));
    }
    assert_eq!(
        rendered.len(),
        expected.len(),
        "one rendered CRD per crds/ document"
    );
    for want in &expected {
        let got = rendered
            .iter()
            .find(|d| name(d) == name(want))
            .unwrap_or_else(|| panic!("CRD {} not rendered", name(want)));
        let mut got = (*got).clone();
        let meta = got["metadata"].as_mapping_mut().unwrap();
        let annotations = meta.remove("annotations").expect("annotations");
        let labels = meta.remove("labels").expect("labels");
        assert_eq!(
            annotations,
            serde_yaml::from_str::<Value>("helm.sh/resource-policy: keep").unwrap(),
            "CRD {} must carry exactly the keep policy",
            name(want)
        );
        assert_eq!(
            labels["app.kubernetes.io/managed-by"].as_str(),
            Some("Helm")
        );
        assert!(
            &got == want,
            "CRD {} rendered by the chart differs from crds/ (beyond the keep annotation and labels)",
            name(want)
        );
    }
    let none = render(RELEASE, NS, &["--set", "installCRDs=false"]).await;
    assert!(
        !none.iter().any(|d| kind(d) == "CustomResourceDefinition"),
        "installCRDs=false still renders CRDs"
    );
}

#[tokio::test]
async fn schema_refuses_bad_values_with_a_clear_message() {
    let cases: &[(&str, &[&str])] = &[
        ("replicaCount=0", &["/replicaCount", "minimum"]),
        ("replicaCount=two", &["/replicaCount", "want integer"]),
        (
            "watchNamespaces={Team_A}",
            &["/watchNamespaces/0", "does not match pattern"],
        ),
        (
            "watchNamespaces=team-a",
            &["/watchNamespaces", "want array"],
        ),
        ("watchNamespaces={a,a}", &["/watchNamespaces", "equal"]),
        ("logLevel=verbose", &["/logLevel", "'info'"]),
        ("logFormat=xml", &["/logFormat", "'json'"]),
        ("concurrency=0", &["/concurrency", "minimum"]),
        ("runRecordsBudget=10", &["/runRecordsBudget", "minimum"]),
        (
            "image.pullPolicy=Sometimes",
            &["/image/pullPolicy", "IfNotPresent"],
        ),
        ("installCRDs=maybe", &["/installCRDs", "want boolean"]),
        (
            "sharding.enabled=yes",
            &["/sharding/enabled", "want boolean"],
        ),
        (
            "sharding.shards=3",
            &["additional properties 'shards' not allowed"],
        ),
        (
            "replicas=3",
            &["additional properties 'replicas' not allowed"],
        ),
        (
            "leaderElection.enabled=false",
            &["/replicaCount", "maximum"],
        ),
        ("sandboxURL=ftp://sim", &["/sandboxURL"]),
        ("metrics.port=70000", &["/metrics/port", "maximum"]),
    ];
    for (set, wants) in cases {
        let (what, out) = run(template_cmd(RELEASE, NS, &["--set", set])).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "{what}: not a schema refusal:\n{stderr}"
        );
        for want in *wants {
            assert!(stderr.contains(want), "{what}: {want:?} not in\n{stderr}");
        }
    }
}

/// The metric names the operator exports, read from its own `/metrics` text (HELP/TYPE lines are
/// written for every registered family, samples or not): counters as `_total`, histograms as
/// `_bucket`/`_sum`/`_count`.
fn exported_metrics() -> BTreeSet<String> {
    use audience_operator::metrics::{Metrics, SyncSample};
    let metrics = Metrics::global();
    // A family is exported once it has a sample: record what a running operator records (a run,
    // a vendor call, a key budget, a sync in a controller's cache), then read the exposition.
    metrics.run_started("AudienceSync");
    metrics.run_finished(
        "AudienceSync",
        "Synced",
        true,
        std::time::Duration::from_millis(5),
        Some(&audience_operator::crd::RunCounts {
            created: 1,
            updated: 1,
            archived: 1,
            unsubscribed: 1,
            ..Default::default()
        }),
    );
    metrics.run_started("AudienceSync");
    metrics.run_finished(
        "AudienceSync",
        "RateLimited",
        false,
        std::time::Duration::from_millis(5),
        None,
    );
    metrics.vendor_call("mailchimp", "GET /lists/{list_id}", 429);
    let _budget = audience_connectors::http::budget_for("mailchimp", "metrics-test-key", 10);
    let lister = metrics.watch_syncs(Box::new(|| {
        vec![SyncSample {
            kind: "AudienceSync".into(),
            namespace: "shop".into(),
            name: "sample".into(),
            interval: Some(std::time::Duration::from_secs(3600)),
            last_success: Some(1.0),
            stalled: Some("AuthFailed".into()),
        }]
    }));
    let text = metrics.render();
    metrics.unwatch_syncs(lister);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    assert!(names.len() > 5, "exported: {names:?}\n{text}");
    names
}

/// Metric names in a PromQL expression (after it parsed): every `audience_*` identifier.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("audience_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

fn check_promql(what: &str, expr: &str, exported: &BTreeSet<String>) {
    // Grafana's variables are not PromQL: give them a value as Grafana would.
    let query = expr
        .replace("$__rate_interval", "5m")
        .replace("$kind", ".*");
    if let Err(e) = promql_parser::parser::parse(&query) {
        panic!("{what}: {expr:?} does not parse: {e}");
    }
    let names = metric_names(expr);
    assert!(
        !names.is_empty(),
        "{what}: {expr:?} names no operator metric"
    );
    for name in names {
        assert!(
            exported.contains(&name),
            "{what}: {name} is not a metric the operator exports ({exported:?})"
        );
    }
}

#[tokio::test]
async fn dashboard_and_alerts_render_behind_values_and_use_only_exported_metrics() {
    let docs = render("mon", NS, &[]).await;
    let inv = inventory(&docs);
    assert!(
        !inv.iter().any(|(k, _, _)| k == "PrometheusRule")
            && !inv
                .iter()
                .any(|(k, n, _)| k == "ConfigMap" && n.ends_with("-dashboard")),
        "both are off by default: {inv:?}"
    );

    let docs = render(
        "mon",
        NS,
        &[
            "--set",
            "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring",
            "--set",
            "prometheusRule.enabled=true,prometheusRule.labels.release=kube-prometheus,prometheusRule.ruleLabels.team=growth",
        ],
    )
    .await;
    let exported = exported_metrics();

    let cm = find(&docs, "ConfigMap", "mon-audience-operator-dashboard");
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("monitoring"));
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1")
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(cm["data"]["audience-operator.json"].as_str().unwrap())
            .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Runs by outcome",
        "Failures by reason",
        "Contacts changed",
        "Vendor calls by vendor",
        "429s by vendor",
        "Run duration (p50, p95)",
        "Time since last success",
    ] {
        assert!(titles.contains(&want), "no panel {want:?} in {titles:?}");
    }
    let mut used = BTreeSet::new();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            check_promql(p["title"].as_str().unwrap(), expr, &exported);
            used.extend(metric_names(expr));
        }
    }

    let rule = find(&docs, "PrometheusRule", "mon-audience-operator");
    assert_eq!(
        rule["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus")
    );
    let rules = rule["spec"]["groups"][0]["rules"].as_sequence().unwrap();
    let alerts: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        alerts,
        [
            "AudienceSyncStalled",
            "AudienceSyncsFailing",
            "AudienceSyncStale",
            "AudienceVendorKeyBudgetSaturated"
        ]
    );
    for r in rules {
        let name = r["alert"].as_str().unwrap();
        check_promql(name, r["expr"].as_str().unwrap(), &exported);
        used.extend(metric_names(r["expr"].as_str().unwrap()));
        assert_eq!(r["labels"]["team"].as_str(), Some("growth"), "{name}");
        assert_eq!(r["labels"]["severity"].as_str(), Some("warning"), "{name}");
        assert!(r["for"].as_str().is_some() && r["annotations"]["summary"].as_str().is_some());
    }
    let stale = rules
        .iter()
        .find(|r| r["alert"] == "AudienceSyncStale")
        .unwrap();
    assert!(
        stale["expr"]
            .as_str()
            .unwrap()
            .contains("2 * audience_sync_interval_seconds"),
        "stale is measured against twice the interval"
    );
    // The check can fail: a name the operator does not export is refused.
    let refused = std::panic::catch_unwind(|| {
        check_promql(
            "probe",
            "rate(audience_no_such_metric_total[5m])",
            &exported,
        )
    });
    assert!(refused.is_err());
    assert!(used.len() >= 10, "{used:?}");
}
