//! With kube-controller-manager: namespaces are finalized and owner references are collected.

use std::time::{Duration, Instant};

use audience_testenv::TestEnv;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Resource as _};

async fn eventually_gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(name).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "{name} still exists after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn namespace_deletion_and_garbage_collection() {
    let env = TestEnv::shared_with_controllers().await;
    let client = env.client();
    let ns = env.namespace("controllers").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create owner");
    let owner_ref = OwnerReference {
        api_version: ConfigMap::api_version(&()).into(),
        kind: ConfigMap::kind(&()).into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("uid"),
        ..Default::default()
    };
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("dependent".into()),
                owner_references: Some(vec![owner_ref]),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("create dependent");

    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    eventually_gone(&cms, "dependent").await;

    let namespaces: Api<Namespace> = Api::all(client);
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually_gone(&namespaces, &ns).await;
}
