//! RBAC is enforced: an identity without rights is refused until a Role grants them.

use std::time::{Duration, Instant};

use audience_testenv::TestEnv;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

async fn list_configmaps(client: Client, ns: &str) -> Result<usize, kube::Error> {
    Api::<ConfigMap>::namespaced(client, ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items.len())
}

fn forbidden(r: &Result<usize, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

#[tokio::test]
async fn rbac_is_enforced_for_a_client_certificate_user() {
    let env = TestEnv::shared().await;
    let ns = env.namespace("rbac").await;
    let alice = env.client_for_user("alice", &[]);

    let before = list_configmaps(alice.clone(), &ns).await;
    assert!(forbidden(&before), "expected 403, got {before:?}");
    if let Err(kube::Error::Api(s)) = &before {
        assert!(s.message.contains("\"alice\""), "{}", s.message);
    }

    let admin = env.client();
    let role = Role {
        metadata: ObjectMeta {
            name: Some("configmap-reader".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-reads-configmaps".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "configmap-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            name: "alice".into(),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");

    // The RBAC authorizer reads from an informer cache: allow it a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = list_configmaps(alice.clone(), &ns).await;
        match r {
            Ok(_) => break,
            Err(_) if forbidden(&r) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("alice still cannot list configmaps: {e}"),
        }
    }

    // Still nothing in another namespace, and no writes.
    let other = env.namespace("rbac-other").await;
    assert!(forbidden(&list_configmaps(alice.clone(), &other).await));
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("nope".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let create = Api::<ConfigMap>::namespaced(alice, &ns)
        .create(&PostParams::default(), &cm)
        .await;
    assert!(matches!(create, Err(kube::Error::Api(s)) if s.code == 403));
}

#[tokio::test]
async fn groups_in_client_certificates_are_honoured() {
    let env = TestEnv::shared().await;
    let ns = env.namespace("groups").await;
    // system:masters as the second group: the certificate carries two O= attributes.
    let bob = env.client_for_user("bob", &["audience:testers", "system:masters"]);
    list_configmaps(bob, &ns)
        .await
        .expect("bob is in system:masters");
    let carol = env.client_for_user("carol", &["audience:testers"]);
    assert!(forbidden(&list_configmaps(carol, &ns).await));
}

#[tokio::test]
async fn service_account_tokens_authenticate() {
    let env = TestEnv::shared().await;
    let ns = env.namespace("sa").await;
    let sa = env.client_for_service_account(&ns, "operator").await;
    let r = list_configmaps(sa, &ns).await;
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{ns}:operator")),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403 for the service account, got {other:?}"),
    }
}
