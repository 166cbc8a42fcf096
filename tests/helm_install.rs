//! The chart's lifecycle on a real control plane (cluster-wide mode): `helm install` creates the
//! operator's objects, its ServiceAccount gets no more than the operator needs, `helm upgrade`
//! changes the Deployment, and `helm uninstall` removes the release but keeps the CRDs (and the
//! syncs) by design.

mod helm_support;

use std::time::Duration;

use audience_testenv::TestEnv;
use helm_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};

const RELEASE: &str = "audience-operator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_least_privilege_upgrade_and_uninstall_keeping_crds() {
    let env = TestEnv::shared().await;
    let admin = env.client();
    let rel_ns = env.namespace("helm-release").await;
    let app_ns = env.namespace("helm-app").await;

    // --- install -------------------------------------------------------------------------------
    let out = helm_install(env, RELEASE, &rel_ns, &[]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert!(
        out.contains("kubectl get audiencesyncs"),
        "NOTES.txt should say how to watch the syncs:\n{out}"
    );
    wait_crds_established(&admin).await;
    let lease_role = format!("{RELEASE}-leader-election");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &rel_ns);
    let deployment = deployments.get(RELEASE).await.expect("the Deployment");
    assert_eq!(
        serde_json::to_value(&deployment).unwrap()["spec"]["replicas"],
        2,
        "default replicas"
    );
    assert!(
        deployment_args(&admin, &rel_ns, RELEASE)
            .await
            .contains(&"--concurrency=128".to_string())
    );
    Api::<ServiceAccount>::namespaced(admin.clone(), &rel_ns)
        .get(RELEASE)
        .await
        .expect("the ServiceAccount");
    Api::<Service>::namespaced(admin.clone(), &rel_ns)
        .get(&format!("{RELEASE}-metrics"))
        .await
        .expect("the metrics Service");
    Api::<ClusterRole>::all(admin.clone())
        .get(RELEASE)
        .await
        .expect("the ClusterRole");
    Api::<ClusterRoleBinding>::all(admin.clone())
        .get(RELEASE)
        .await
        .expect("the ClusterRoleBinding");
    Api::<Role>::namespaced(admin.clone(), &rel_ns)
        .get(&lease_role)
        .await
        .expect("the leader-election Role");
    Api::<RoleBinding>::namespaced(admin.clone(), &rel_ns)
        .get(&lease_role)
        .await
        .expect("the leader-election RoleBinding");

    // --- the ServiceAccount's rights: what the operator needs, nothing more -------------------
    let sa = env.client_for_service_account(&rel_ns, RELEASE).await;
    let syncs_everywhere = Api::<DynamicObject>::all_with(sa.clone(), &audience_resource());
    assert_allowed(
        "list AudienceSyncs in all namespaces",
        syncs_everywhere.list(&ListParams::default()).await,
    );
    assert_allowed(
        "list Secrets in a sync's namespace",
        Api::<Secret>::namespaced(sa.clone(), &app_ns)
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list namespaces",
        Api::<Namespace>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list nodes",
        Api::<Node>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("planted".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_forbidden(
        "create a Secret",
        Api::<Secret>::namespaced(sa.clone(), &app_ns)
            .create(&PostParams::default(), &secret)
            .await,
    );
    // The syncs themselves are read-only to the operator (only their status is written).
    let sync = serde_json::json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": "AudienceSync",
        "metadata": {"name": "rbac-probe"},
        "spec": {
            "source": {"lightspeedXSeries": {"domainPrefix": "demo", "credentialsSecretRef": {"name": "x"}}},
            "target": {"mailchimp": {"audienceId": "abc123", "credentialsSecretRef": {"name": "m"}}},
            "schedule": {"interval": "15m"}
        }
    });
    let sync: DynamicObject = serde_json::from_value(sync).unwrap();
    audience_api(&admin, &app_ns)
        .create(&PostParams::default(), &sync)
        .await
        .expect("creating an AudienceSync as admin");
    let as_sa = audience_api(&sa, &app_ns);
    assert_forbidden(
        "create an AudienceSync",
        as_sa.create(&PostParams::default(), &sync).await,
    );
    assert_forbidden(
        "patch an AudienceSync's spec",
        as_sa
            .patch(
                "rbac-probe",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"suspend": true}})),
            )
            .await,
    );
    assert_forbidden(
        "delete an AudienceSync",
        as_sa.delete("rbac-probe", &DeleteParams::default()).await,
    );
    assert_allowed(
        "patch an AudienceSync's status",
        as_sa
            .patch_status(
                "rbac-probe",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {}})),
            )
            .await,
    );
    // Leases: only the release's own, only in the release namespace.
    assert_forbidden(
        "get a Lease in another namespace",
        Api::<Lease>::namespaced(sa.clone(), &app_ns)
            .get(RELEASE)
            .await,
    );
    assert_forbidden(
        "get another Lease in the release namespace",
        Api::<Lease>::namespaced(sa.clone(), &rel_ns)
            .get("someone-else")
            .await,
    );
    assert!(
        matches!(
            Api::<Lease>::namespaced(sa.clone(), &rel_ns).get(RELEASE).await,
            Err(kube::Error::Api(ref s)) if s.code == 404
        ),
        "the release's own Lease must be readable (404 before the operator creates it)"
    );

    // --- upgrade -------------------------------------------------------------------------------
    let mut cmd = cluster_helm(env);
    cmd.args(["upgrade", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", &rel_ns, "--reuse-values"])
        .args(["--set", "concurrency=8,logLevel=debug"]);
    let out = run_ok(cmd).await;
    assert!(out.contains("REVISION: 2"), "{out}");
    let args = deployment_args(&admin, &rel_ns, RELEASE).await;
    assert!(args.contains(&"--concurrency=8".to_string()), "{args:?}");
    let mut cmd = cluster_helm(env);
    cmd.args([
        "get",
        "values",
        RELEASE,
        "--namespace",
        &rel_ns,
        "-o",
        "json",
    ]);
    let values: serde_json::Value = serde_json::from_str(&run_ok(cmd).await).unwrap();
    assert_eq!(values["concurrency"], 8);
    assert_eq!(values["logLevel"], "debug");
    // A bad value is refused by the schema on upgrade too, and the release stays at revision 2.
    let mut cmd = cluster_helm(env);
    cmd.args(["upgrade", RELEASE]).arg(chart_dir()).args([
        "--namespace",
        &rel_ns,
        "--reuse-values",
        "--set",
        "replicaCount=0",
    ]);
    let (what, out) = run(cmd).await;
    assert!(!out.status.success(), "{what} was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/replicaCount"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // --- uninstall -----------------------------------------------------------------------------
    let mut cmd = cluster_helm(env);
    cmd.args(["uninstall", RELEASE, "--namespace", &rel_ns]);
    run_ok(cmd).await;
    let gone = |what: &'static str| format!("{what} left behind by helm uninstall");
    eventually(
        "the release's objects to be deleted",
        Duration::from_secs(60),
        || async {
            let all = [
                absent(&deployments, RELEASE).await,
                absent(
                    &Api::<ServiceAccount>::namespaced(admin.clone(), &rel_ns),
                    RELEASE,
                )
                .await,
                absent(
                    &Api::<Service>::namespaced(admin.clone(), &rel_ns),
                    &format!("{RELEASE}-metrics"),
                )
                .await,
                absent(&Api::<ClusterRole>::all(admin.clone()), RELEASE).await,
                absent(&Api::<ClusterRoleBinding>::all(admin.clone()), RELEASE).await,
                absent(
                    &Api::<Role>::namespaced(admin.clone(), &rel_ns),
                    &lease_role,
                )
                .await,
                absent(
                    &Api::<RoleBinding>::namespaced(admin.clone(), &rel_ns),
                    &lease_role,
                )
                .await,
            ];
            all.iter().all(|a| *a).then_some(())
        },
        || gone("some of Deployment, ServiceAccount, Service, ClusterRole(Binding), Role(Binding)"),
    )
    .await;
    // Nothing labelled with the release remains in its namespace ...
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let lp = ListParams::default().labels(&selector);
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), &rel_ns)
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<Service>::namespaced(admin.clone(), &rel_ns)
            .list(&lp)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // ... nor helm's own record of it.
    let mut cmd = cluster_helm(env);
    cmd.args(["list", "--namespace", &rel_ns, "--all", "-q"]);
    assert_eq!(run_ok(cmd).await.trim(), "", "helm still lists the release");
    // By design the CRDs stay, and with them the syncs.
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in CRD_NAMES {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name} was removed by uninstall: {e}"));
        assert_eq!(
            crd.metadata
                .annotations
                .unwrap_or_default()
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep")
        );
    }
    audience_api(&admin, &app_ns)
        .get("rbac-probe")
        .await
        .expect("the AudienceSync survives the uninstall");
}
