//! RBAC minimality of the chart on a real control plane: installed (namespaced and cluster-wide),
//! its ServiceAccount, authenticated with its own token, CAN do what the operator needs (read and
//! watch its CRDs, write their status, create Events, read Secrets where it serves, hold its
//! Lease) and is REFUSED on a list of things it must not do (other namespaces' Secrets, writing
//! Secrets, deleting CRDs, pods and pods/exec, deleting namespaces, nodes, granting itself more
//! through roles and bindings, tokens, impersonation, other Leases). Every answer is asked of the
//! API server twice where it can be: a SelfSubjectAccessReview, and for the most telling cases a
//! real request that must succeed or come back 403.

mod helm_support;

use std::path::Path;

use audience_testenv::TestEnv;
use helm_support::*;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// One access question: `verb group/resource[/subresource] [name] in namespace`.
#[derive(Clone, Copy, Debug)]
struct Access {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    name: &'static str,
}

const fn access(verb: &'static str, group: &'static str, resource: &'static str) -> Access {
    Access {
        verb,
        group,
        resource,
        subresource: "",
        name: "",
    }
}

const fn sub(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
) -> Access {
    Access {
        verb,
        group,
        resource,
        subresource,
        name: "",
    }
}

const SYNC: &str = "sync.audience-operator.io";
const RBAC: &str = "rbac.authorization.k8s.io";
const COORD: &str = "coordination.k8s.io";

/// What the operator needs in every namespace it serves.
const NEEDED: &[Access] = &[
    access("get", SYNC, "audiencesyncs"),
    access("list", SYNC, "audiencesyncs"),
    access("watch", SYNC, "audiencesyncs"),
    access("list", SYNC, "segmentsyncs"),
    access("watch", SYNC, "segmentsyncs"),
    sub("patch", SYNC, "audiencesyncs", "status"),
    sub("patch", SYNC, "segmentsyncs", "status"),
    access("list", SYNC, "ordersyncs"),
    access("watch", SYNC, "ordersyncs"),
    sub("patch", SYNC, "ordersyncs", "status"),
    access("create", "events.k8s.io", "events"),
    access("create", "", "events"),
    access("get", "", "secrets"),
    access("list", "", "secrets"),
    access("watch", "", "secrets"),
    // The activity log ConfigMaps (`src/activity.rs`): read, server-side apply, delete.
    access("get", "", "configmaps"),
    access("list", "", "configmaps"),
    access("create", "", "configmaps"),
    access("patch", "", "configmaps"),
    access("delete", "", "configmaps"),
];

/// What it must never do in a namespace it serves.
const FORBIDDEN_SERVED: &[Access] = &[
    access("create", "", "secrets"),
    access("update", "", "secrets"),
    access("patch", "", "secrets"),
    access("delete", "", "secrets"),
    access("create", "", "pods"),
    access("get", "", "pods"),
    sub("create", "", "pods", "exec"),
    sub("create", "", "pods", "attach"),
    sub("create", "", "serviceaccounts", "token"),
    access("update", "", "configmaps"),
    access("watch", "", "configmaps"),
    access("deletecollection", "", "configmaps"),
    access("create", "apps", "deployments"),
    access("create", SYNC, "audiencesyncs"),
    access("update", SYNC, "audiencesyncs"),
    access("patch", SYNC, "audiencesyncs"),
    access("delete", SYNC, "audiencesyncs"),
    access("delete", SYNC, "segmentsyncs"),
    access("create", RBAC, "roles"),
    access("create", RBAC, "rolebindings"),
    access("escalate", RBAC, "roles"),
    access("bind", RBAC, "roles"),
    access("delete", "events.k8s.io", "events"),
    access("*", "*", "*"),
];

/// What it must never do anywhere in the cluster (cluster-scoped, or every namespace).
const FORBIDDEN_CLUSTER: &[Access] = &[
    access(
        "delete",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ),
    access(
        "create",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ),
    access("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    access("delete", "", "namespaces"),
    access("create", "", "namespaces"),
    access("list", "", "nodes"),
    access("create", RBAC, "clusterroles"),
    access("create", RBAC, "clusterrolebindings"),
    access("escalate", RBAC, "clusterroles"),
    access("bind", RBAC, "clusterroles"),
    access("impersonate", "", "users"),
    access("impersonate", "", "serviceaccounts"),
    access(
        "create",
        "certificates.k8s.io",
        "certificatesigningrequests",
    ),
    access(
        "create",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
    ),
];

/// Asks the API server, as the client's identity, whether `a` is allowed in `ns`.
async fn can(client: &Client, ns: Option<&str>, a: Access) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: ns.map(str::to_string),
                verb: Some(a.verb.into()),
                group: Some(a.group.into()),
                resource: Some(a.resource.into()),
                subresource: (!a.subresource.is_empty()).then(|| a.subresource.into()),
                name: (!a.name.is_empty()).then(|| a.name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("a SelfSubjectAccessReview");
    answer.status.expect("a review status").allowed
}

/// Every answer that differs from what is wanted, as one line each.
async fn check(client: &Client, ns: Option<&str>, list: &[Access], want: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for a in list {
        if can(client, ns, *a).await != want {
            wrong.push(format!(
                "{} {a:?} in {ns:?}",
                if want { "REFUSED" } else { "ALLOWED" }
            ));
        }
    }
    wrong
}

fn lease(name: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("rbac-test".into()),
            ..Default::default()
        }),
    }
}

async fn admin_secret(admin: &Client, ns: &str, name: &str) {
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                [(
                    audience_operator::crd::CREDENTIALS_LABEL.to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        string_data: Some([("apiKey".to_string(), "rbac-test-key-000".to_string())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// Real requests as the ServiceAccount in a served namespace: the needed ones succeed, the
/// forbidden ones are 403.
async fn real_requests_in_served_namespace(admin: &Client, sa: &Client, ns: &str) {
    // An AudienceSync (created by the admin) whose status the operator writes.
    let sync: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1", "kind": "AudienceSync",
        "metadata": {"name": "rbac"},
        "spec": {
            "source": {"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "vendor"}}},
            "target": {"mailchimp": {"audienceId": "abc123", "credentialsSecretRef": {"name": "vendor"}}}
        }
    }))
    .unwrap();
    audience_api(admin, ns)
        .create(&PostParams::default(), &sync)
        .await
        .expect("creating the AudienceSync as admin");
    admin_secret(admin, ns, "vendor").await;

    let syncs = audience_api(sa, ns);
    assert_allowed(
        "list AudienceSyncs",
        syncs.list(&ListParams::default()).await,
    );
    let status = json!({"status": {"observedGeneration": 1}});
    assert_allowed(
        "patch an AudienceSync's status",
        syncs
            .patch_status("rbac", &PatchParams::default(), &Patch::Merge(&status))
            .await,
    );
    assert_forbidden(
        "patch an AudienceSync's spec",
        syncs
            .patch(
                "rbac",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"suspend": true}})),
            )
            .await,
    );
    assert_forbidden(
        "delete an AudienceSync",
        syncs.delete("rbac", &DeleteParams::default()).await,
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some("rbac.test".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        reporting_controller: Some("audience-operator".into()),
        reporting_instance: Some("rbac-test".into()),
        action: Some("Sync".into()),
        reason: Some("Synced".into()),
        regarding: Some(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("sync.audience-operator.io/v1alpha1".into()),
            kind: Some("AudienceSync".into()),
            name: Some("rbac".into()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        }),
        type_: Some("Normal".into()),
        ..Default::default()
    };
    assert_allowed(
        "create an Event",
        Api::<Event>::namespaced(sa.clone(), ns)
            .create(&PostParams::default(), &event)
            .await,
    );

    let secrets = Api::<Secret>::namespaced(sa.clone(), ns);
    assert_allowed(
        "list the opted-in Secrets",
        secrets
            .list(&ListParams::default().labels(&format!(
                "{}=true",
                audience_operator::crd::CREDENTIALS_LABEL
            )))
            .await,
    );
    let mut forged = Secret {
        metadata: ObjectMeta {
            name: Some("forged".into()),
            ..Default::default()
        },
        string_data: Some([("k".to_string(), "v".to_string())].into()),
        ..Default::default()
    };
    assert_forbidden(
        "create a Secret",
        secrets.create(&PostParams::default(), &forged).await,
    );
    forged.metadata.name = Some("vendor".into());
    assert_forbidden(
        "patch a Secret",
        secrets
            .patch(
                "vendor",
                &PatchParams::default(),
                &Patch::Merge(&json!({"stringData": {"apiKey": "x"}})),
            )
            .await,
    );
    assert_forbidden(
        "delete a Secret",
        secrets.delete("vendor", &DeleteParams::default()).await,
    );
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "escape"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    assert_forbidden(
        "create a pod",
        Api::<Pod>::namespaced(sa.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await,
    );
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("self-grant".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some(RBAC.into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "audience-operator".into(),
            namespace: Some(ns.into()),
            ..Default::default()
        }]),
    };
    assert_forbidden(
        "grant itself cluster-admin with a RoleBinding",
        Api::<RoleBinding>::namespaced(sa.clone(), ns)
            .create(&PostParams::default(), &binding)
            .await,
    );
}

/// Real cluster-wide requests that must be 403 for the ServiceAccount.
async fn real_cluster_refusals(sa: &Client) {
    assert_forbidden(
        "delete a CRD",
        Api::<CustomResourceDefinition>::all(sa.clone())
            .delete(CRD_NAMES[0], &DeleteParams::default())
            .await,
    );
    assert_forbidden(
        "list nodes",
        Api::<Node>::all(sa.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "delete a namespace",
        Api::<Namespace>::all(sa.clone())
            .delete("default", &DeleteParams::default())
            .await,
    );
}

async fn apply_crds(env: &TestEnv) {
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_install_grants_what_the_operator_needs_and_nothing_more() {
    const RELEASE: &str = "minimal";
    let full = "minimal-audience-operator";
    let env = TestEnv::shared().await;
    apply_crds(env).await;
    let admin = env.client();
    let rel_ns = env.namespace("rbac-ns-release").await;
    let served = env.namespace("rbac-ns-served").await;
    let other = env.namespace("rbac-ns-other").await;
    admin_secret(&admin, &other, "vendor").await;
    let set = format!("watchNamespaces={{{served}}},installCRDs=false");
    helm_install(env, RELEASE, &rel_ns, &["--set", &set]).await;

    let sa = env.client_for_service_account(&rel_ns, full).await;
    let mut wrong = Vec::new();
    wrong.extend(check(&sa, Some(&served), NEEDED, true).await);
    wrong.extend(check(&sa, Some(&served), FORBIDDEN_SERVED, false).await);
    // Nothing at all in a namespace it does not serve, nor in its own release namespace (where
    // only its Lease lives).
    for ns in [&other, &rel_ns] {
        wrong.extend(check(&sa, Some(ns), NEEDED, false).await);
        wrong.extend(check(&sa, Some(ns), FORBIDDEN_SERVED, false).await);
    }
    // Nothing across all namespaces either.
    wrong.extend(check(&sa, None, NEEDED, false).await);
    wrong.extend(check(&sa, None, FORBIDDEN_CLUSTER, false).await);
    // Its Lease, by name, in the release namespace; no other Lease, no delete.
    let own = Access {
        name: full,
        ..access("get", COORD, "leases")
    };
    wrong.extend(
        check(
            &sa,
            Some(&rel_ns),
            &[
                own,
                Access {
                    verb: "update",
                    ..own
                },
                Access {
                    verb: "patch",
                    ..own
                },
                access("create", COORD, "leases"),
            ],
            true,
        )
        .await,
    );
    wrong.extend(
        check(
            &sa,
            Some(&rel_ns),
            &[
                Access {
                    name: "kube-controller-manager",
                    ..own
                },
                Access {
                    verb: "delete",
                    ..own
                },
                access("list", COORD, "leases"),
            ],
            false,
        )
        .await,
    );
    wrong.extend(
        check(
            &sa,
            Some(&served),
            &[access("create", COORD, "leases")],
            false,
        )
        .await,
    );
    assert!(
        wrong.is_empty(),
        "the chart's RBAC is off:\n{}",
        wrong.join("\n")
    );

    // The same, by real requests.
    real_requests_in_served_namespace(&admin, &sa, &served).await;
    assert_forbidden(
        "get a Secret of a namespace it does not serve",
        Api::<Secret>::namespaced(sa.clone(), &other)
            .get("vendor")
            .await,
    );
    assert_forbidden(
        "list Secrets of its release namespace",
        Api::<Secret>::namespaced(sa.clone(), &rel_ns)
            .list(&ListParams::default())
            .await,
    );
    let leases = Api::<Lease>::namespaced(sa.clone(), &rel_ns);
    assert_allowed(
        "create its Lease",
        leases.create(&PostParams::default(), &lease(full)).await,
    );
    assert_allowed(
        "renew its Lease",
        leases
            .patch(
                full,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"leaseDurationSeconds": 15}})),
            )
            .await,
    );
    let other_lease = lease("someone-else");
    Api::<Lease>::namespaced(admin.clone(), &rel_ns)
        .create(&PostParams::default(), &other_lease)
        .await
        .unwrap();
    assert_forbidden(
        "take over another Lease",
        leases
            .patch(
                "someone-else",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"holderIdentity": "me"}})),
            )
            .await,
    );
    real_cluster_refusals(&sa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_install_grants_what_the_operator_needs_and_nothing_more() {
    const RELEASE: &str = "wide";
    let full = "wide-audience-operator";
    let env = TestEnv::shared().await;
    apply_crds(env).await;
    let admin = env.client();
    let rel_ns = env.namespace("rbac-wide-release").await;
    let served = env.namespace("rbac-wide-served").await;
    helm_install(
        env,
        RELEASE,
        &rel_ns,
        &[
            "--set",
            "installCRDs=false,leaderElection.enabled=false,replicaCount=1",
        ],
    )
    .await;

    let sa = env.client_for_service_account(&rel_ns, full).await;
    let mut wrong = Vec::new();
    // Every namespace is served: what it needs is granted in any, and across all of them.
    wrong.extend(check(&sa, Some(&served), NEEDED, true).await);
    let watch_all: Vec<Access> = NEEDED
        .iter()
        .copied()
        .filter(|a| matches!(a.verb, "list" | "watch"))
        .collect();
    wrong.extend(check(&sa, None, &watch_all, true).await);
    wrong.extend(check(&sa, Some(&served), FORBIDDEN_SERVED, false).await);
    wrong.extend(check(&sa, None, FORBIDDEN_CLUSTER, false).await);
    // Leader election off: no Lease rights at all.
    wrong.extend(
        check(
            &sa,
            Some(&rel_ns),
            &[
                access("create", COORD, "leases"),
                access("get", COORD, "leases"),
                access("update", COORD, "leases"),
            ],
            false,
        )
        .await,
    );
    assert!(
        wrong.is_empty(),
        "the chart's RBAC is off:\n{}",
        wrong.join("\n")
    );

    real_requests_in_served_namespace(&admin, &sa, &served).await;
    real_cluster_refusals(&sa).await;
}
