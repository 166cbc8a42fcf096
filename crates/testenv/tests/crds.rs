//! `apply_crds_from_dir` installs CRDs with server-side apply and waits until they are served.

use audience_testenv::TestEnv;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};

const CRD: &str = r#"
# two documents, one empty
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.testenv.audience.example
spec:
  group: testenv.audience.example
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }
  versions:
  - name: v1
    served: true
    storage: true
    subresources: { status: {} }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: { type: integer, minimum: 1 }
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

#[tokio::test]
async fn apply_crds_from_dir_waits_until_established() {
    let env = TestEnv::shared().await;
    let dir = std::env::temp_dir().join(format!("audience-testenv-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("widget.yaml"), CRD).unwrap();
    std::fs::write(dir.join("README.md"), "not yaml, ignored").unwrap();

    let applied = env.apply_crds_from_dir(&dir).await.expect("apply");
    // Applying again is a no-op with the same field manager.
    env.apply_crds_from_dir(&dir).await.expect("apply again");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        applied[0].metadata.name.as_deref(),
        Some("widgets.testenv.audience.example")
    );

    let ns = env.namespace("crds").await;
    let gvk = GroupVersionKind::gvk("testenv.audience.example", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(env.client(), &ns, &ApiResource::from_gvk(&gvk));
    let ok: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "testenv.audience.example/v1",
        "kind": "Widget",
        "metadata": { "name": "ok" },
        "spec": { "size": 3 },
    }))
    .unwrap();
    widgets
        .create(&PostParams::default(), &ok)
        .await
        .expect("valid widget");

    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "testenv.audience.example/v1",
        "kind": "Widget",
        "metadata": { "name": "bad" },
        "spec": { "size": 0 },
    }))
    .unwrap();
    match widgets.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("spec.size"), "{}", s.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn apply_crds_from_dir_rejects_other_kinds() {
    let env = TestEnv::shared().await;
    let dir =
        std::env::temp_dir().join(format!("audience-testenv-crds-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cm.yml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let err = env.apply_crds_from_dir(&dir).await.expect_err("not a CRD");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        format!("{err:#}").contains("\"ConfigMap\", not a CustomResourceDefinition"),
        "{err:#}"
    );
}
