//! The chart in namespaced mode (`watchNamespaces`) on a real control plane: a Role and
//! RoleBinding in each watched namespace and nothing cluster-wide, the ServiceAccount is refused
//! on Secrets elsewhere and on cluster-wide reads, the operator run as that ServiceAccount with
//! the chart's `--namespace` flags brings the example to `Ready=True`, and uninstalling removes
//! the Roles from every watched namespace.

mod helm_support;

use std::time::Duration;

use audience_testenv::TestEnv;
use helm_support::*;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Api;
use kube::api::{DynamicObject, ListParams, ObjectMeta, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_is_scoped_and_removed_on_uninstall() {
    const RELEASE: &str = "scoped";
    let full = "scoped-audience-operator";
    let env = TestEnv::shared().await;
    let admin = env.client();
    let rel_ns = env.namespace("helm-ns-release").await;
    let team_a = env.namespace("helm-ns-team-a").await;
    let team_b = env.namespace("helm-ns-team-b").await;
    let denied = env.namespace("helm-ns-denied").await;
    for ns in [&team_a, &denied] {
        let s = Secret {
            metadata: ObjectMeta {
                name: Some("vendor".into()),
                ..Default::default()
            },
            string_data: Some([("token".to_string(), "t".to_string())].into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &s)
            .await
            .unwrap();
    }

    // CRDs are left to the other test of this binary (installCRDs=false); RBAC does not need them.
    let set = format!("watchNamespaces={{{team_a},{team_b}}},installCRDs=false");
    helm_install(env, RELEASE, &rel_ns, &["--set", &set]).await;

    let args = deployment_args(&admin, &rel_ns, full).await;
    let ns_flags: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("--namespace"))
        .collect();
    assert_eq!(
        ns_flags,
        [
            &format!("--namespace={team_a}"),
            &format!("--namespace={team_b}")
        ]
    );
    assert!(
        Api::<ClusterRole>::all(admin.clone())
            .get_opt(full)
            .await
            .unwrap()
            .is_none(),
        "namespaced mode created a ClusterRole"
    );
    assert!(
        Api::<ClusterRoleBinding>::all(admin.clone())
            .get_opt(full)
            .await
            .unwrap()
            .is_none(),
        "namespaced mode created a ClusterRoleBinding"
    );
    for ns in [&team_a, &team_b] {
        Api::<Role>::namespaced(admin.clone(), ns)
            .get(full)
            .await
            .unwrap_or_else(|e| panic!("Role in {ns}: {e}"));
        Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .get(full)
            .await
            .unwrap_or_else(|e| panic!("RoleBinding in {ns}: {e}"));
    }
    assert!(
        Api::<Role>::namespaced(admin.clone(), &denied)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a Role in a namespace that is not watched"
    );

    let sa = env.client_for_service_account(&rel_ns, full).await;
    let secrets = |ns: &str| Api::<Secret>::namespaced(sa.clone(), ns);
    assert_allowed(
        "list Secrets in a watched namespace",
        secrets(&team_a).list(&ListParams::default()).await,
    );
    assert_allowed(
        "get a Secret in a watched namespace",
        secrets(&team_a).get("vendor").await,
    );
    assert_forbidden(
        "list Secrets in a namespace the chart does not grant",
        secrets(&denied).list(&ListParams::default()).await,
    );
    assert_forbidden(
        "get a Secret in a namespace the chart does not grant",
        secrets(&denied).get("vendor").await,
    );
    assert_forbidden(
        "list Secrets in all namespaces",
        Api::<Secret>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list AudienceSyncs in all namespaces",
        Api::<DynamicObject>::all_with(sa.clone(), &audience_resource())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "list AudienceSyncs in a namespace the chart does not grant",
        audience_api(&sa, &denied)
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

    let mut cmd = cluster_helm(env);
    cmd.args(["uninstall", RELEASE, "--namespace", &rel_ns]);
    run_ok(cmd).await;
    eventually(
        "the Roles and RoleBindings of every watched namespace to be deleted",
        Duration::from_secs(60),
        || async {
            for ns in [&team_a, &team_b] {
                if !absent(&Api::<Role>::namespaced(admin.clone(), ns), full).await
                    || !absent(&Api::<RoleBinding>::namespaced(admin.clone(), ns), full).await
                {
                    return None;
                }
            }
            absent(
                &Api::<Role>::namespaced(admin.clone(), &rel_ns),
                &format!("{full}-leader-election"),
            )
            .await
            .then_some(())
        },
        || "Roles/RoleBindings left behind".to_string(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_namespaced_rbac_brings_example_ready() {
    const RELEASE: &str = "audience-operator";
    let env = TestEnv::shared().await;
    let rel_ns = env.namespace("helm-nsop-release").await;
    let app_ns = env.namespace("helm-nsop-app").await;
    let other = env.namespace("helm-nsop-other").await;
    let set = format!("watchNamespaces={{{app_ns},{other}}}");
    helm_install(env, RELEASE, &rel_ns, &["--set", &set]).await;
    wait_crds_established(&env.client()).await;

    // Exactly the flags the chart gives the Deployment.
    let flags: Vec<String> = deployment_args(&env.client(), &rel_ns, RELEASE)
        .await
        .into_iter()
        .filter(|a| a.starts_with("--namespace="))
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");

    let (mut op, _sandbox) =
        operator_brings_example_ready(env, &rel_ns, RELEASE, RELEASE, &app_ns, &flags).await;
    op.kill().await;
}
