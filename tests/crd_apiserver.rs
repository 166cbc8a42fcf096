//! The CRDs on a real API server: they apply and become Established, a valid object is stored
//! with its defaults, status is written through the status subresource, and invalid specs are
//! refused by the server itself (schema and CEL) with its own message.

use std::path::Path;

use audience_operator::crd::{AudienceSync, SegmentSync, SyncStatus};
use audience_testenv::TestEnv;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

async fn setup(prefix: &str) -> (Client, String) {
    let env = TestEnv::shared().await;
    let client = env.client();
    env.apply_crds_from_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await
        .expect("applying crds/");
    let ns = env.namespace(prefix).await;
    (client, ns)
}

fn audience(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "AudienceSync",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn valid_spec() -> Value {
    json!({
        "source": {"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "shopify"}}},
        "target": {"mailchimp": {"audienceId": "abc123", "credentialsSecretRef": {"name": "mailchimp"}}},
        "schedule": {"interval": "15m"}
    })
}

/// Creates the object (untyped, so anything can be sent) and returns the server's refusal message.
async fn refused(client: &Client, ns: &str, object: Value) -> String {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<AudienceSync>(&()));
    let o: DynamicObject = serde_json::from_value(object).unwrap();
    match api.create(&PostParams::default(), &o).await {
        Ok(o) => panic!("the API server accepted {:?}", o.data),
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            s.message
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn crds_are_established_with_names_and_columns() {
    let (client, _ns) = setup("crd-established").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for (name, short) in [
        ("audiencesyncs.sync.audience-operator.io", ["as", "audsync"]),
        ("segmentsyncs.sync.audience-operator.io", ["ss", "segsync"]),
        ("ordersyncs.sync.audience-operator.io", ["os", "ordersync"]),
    ] {
        let crd = crds.get(name).await.expect("CRD exists");
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name} not established: {conditions:?}"
        );
        assert_eq!(crd.spec.names.short_names.unwrap_or_default(), short);
        let columns: Vec<String> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        // An OrderSync has no mode: its columns go Ready, Reason, Last Sync, Placed, Age.
        let leading: &[&str] = if name.starts_with("ordersyncs") {
            &["Ready", "Reason", "Last Sync", "Placed"]
        } else {
            &["Ready", "Reason", "Mode", "Last Sync"]
        };
        assert!(
            columns.starts_with(&leading.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            "{name}: {columns:?}"
        );
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .unwrap()
                .status
                .is_some()
        );
    }
}

#[tokio::test]
async fn valid_object_gets_defaults_and_status_subresource() {
    let (client, ns) = setup("crd-valid").await;
    let api: Api<AudienceSync> = Api::namespaced(client.clone(), &ns);
    let obj: AudienceSync = serde_json::from_value(audience("valid", valid_spec())).unwrap();
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("a valid object is accepted");
    let spec = &created.spec;
    assert_eq!(spec.mode.as_str(), "upsert");
    // Names left out take the target's defaults in the operator (FNAME/LNAME for Mailchimp,
    // first_name/last_name for Klaviyo), so the server stores none.
    assert_eq!(spec.field_mapping.first_name, None);
    assert_eq!(spec.field_mapping.last_name, None);
    assert!(spec.consent_policy.propagate_unsubscribes);
    assert!(spec.safety.enabled);
    assert_eq!(spec.safety.max_removal_percent, 10);
    assert_eq!(spec.safety.always_allowed, 10);
    assert_eq!(
        spec.source
            .as_ref()
            .unwrap()
            .shopify
            .as_ref()
            .unwrap()
            .api_version,
        "2025-01"
    );
    assert!(!spec.suspend && !spec.dry_run);

    // Status goes through the status subresource (server-side apply) and leaves the spec alone.
    let status = json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": "AudienceSync",
        "status": {
            "observedGeneration": created.metadata.generation,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Synced", "message": "ok",
                "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1
            }],
            "lastRun": {"outcome": "Synced", "duration": "1s", "counts": {"created": 3}}
        }
    });
    let patched = api
        .patch_status(
            "valid",
            &PatchParams::apply("crd-test").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status apply");
    let st: SyncStatus = patched.status.expect("status written");
    assert_eq!(st.conditions[0].reason, "Synced");
    assert_eq!(st.last_run.unwrap().counts.created, 3);
    assert_eq!(
        patched.metadata.generation, created.metadata.generation,
        "status must not bump generation"
    );

    // Segment syncs too.
    let seg: Api<SegmentSync> = Api::namespaced(client, &ns);
    let s: SegmentSync = serde_json::from_value(json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1", "kind": "SegmentSync",
        "metadata": {"name": "vip"},
        "spec": {
            "source": {"retailcrm": {"account": "demo", "credentialsSecretRef": {"name": "crm"}}},
            "sourceSegment": {"retailcrmSegment": "vip"},
            "target": {"mailchimp": {"audienceId": "abc123", "segment": "VIP", "credentialsSecretRef": {"name": "mc"}}},
            "schedule": {"cron": "0 * * * *", "timeZone": "Europe/Amsterdam"}
        }
    }))
    .unwrap();
    let s = seg
        .create(&PostParams::default(), &s)
        .await
        .expect("valid SegmentSync");
    assert_eq!(s.spec.mode.as_str(), "exact");
}

#[tokio::test]
async fn invalid_specs_are_refused_by_the_server() {
    let (client, ns) = setup("crd-invalid").await;
    let mut both = valid_spec();
    both["schedule"] = json!({"interval": "15m", "cron": "0 * * * *"});
    let msg = refused(&client, &ns, audience("both", both)).await;
    assert!(
        msg.contains("give exactly one of interval or cron"),
        "{msg}"
    );

    let mut bad = valid_spec();
    bad["schedule"] = json!({"interval": "15 minutes"});
    let msg = refused(&client, &ns, audience("bad-duration", bad)).await;
    assert!(msg.contains("spec.schedule.interval"), "{msg}");
    assert!(msg.contains("should match"), "{msg}");

    let mut short = valid_spec();
    short["schedule"] = json!({"interval": "30s"});
    let msg = refused(&client, &ns, audience("too-short", short)).await;
    assert!(msg.contains("interval must be at least 1m"), "{msg}");

    let mut tz = valid_spec();
    tz["schedule"] = json!({"cron": "0 * * * *", "timeZone": "not a zone!"});
    let msg = refused(&client, &ns, audience("bad-tz", tz)).await;
    assert!(msg.contains("spec.schedule.timeZone"), "{msg}");

    let mut tz_interval = valid_spec();
    tz_interval["schedule"] = json!({"interval": "1h", "timeZone": "UTC"});
    let msg = refused(&client, &ns, audience("tz-interval", tz_interval)).await;
    assert!(
        msg.contains("timeZone applies to cron schedules only"),
        "{msg}"
    );

    let mut two = valid_spec();
    two["source"]["retailcrm"] =
        json!({"account": "demo", "credentialsSecretRef": {"name": "crm"}});
    let msg = refused(&client, &ns, audience("two-sources", two)).await;
    assert!(msg.contains("give exactly one source"), "{msg}");

    let mut none = valid_spec();
    none["source"] = json!({});
    let msg = refused(&client, &ns, audience("no-source", none)).await;
    assert!(msg.contains("give exactly one source"), "{msg}");

    let mut pct = valid_spec();
    pct["safety"] = json!({"maxRemovalPercent": 150});
    let msg = refused(&client, &ns, audience("pct", pct)).await;
    assert!(msg.contains("spec.safety.maxRemovalPercent"), "{msg}");

    let mut mode = valid_spec();
    mode["mode"] = json!("replace");
    let msg = refused(&client, &ns, audience("mode", mode)).await;
    assert!(
        msg.contains("spec.mode") && msg.contains("supported values"),
        "{msg}"
    );

    let mut no_target = valid_spec();
    no_target.as_object_mut().unwrap().remove("target");
    let msg = refused(&client, &ns, audience("no-target", no_target)).await;
    assert!(
        msg.contains("spec.target") && msg.contains("Required"),
        "{msg}"
    );

    let mut crm = valid_spec();
    crm["source"] = json!({"retailcrm": {"account": "a", "url": "https://crm.example.com", "credentialsSecretRef": {"name": "crm"}}});
    let msg = refused(&client, &ns, audience("crm-both", crm)).await;
    assert!(msg.contains("give exactly one of account or url"), "{msg}");

    let mut tag = valid_spec();
    tag["fieldMapping"] = json!({"firstName": "first name"});
    let msg = refused(&client, &ns, audience("tag", tag)).await;
    assert!(msg.contains("fieldMapping: Mailchimp merge tags"), "{msg}");

    // Klaviyo: one target kind, one way to name the list, no Mailchimp-only options.
    let klaviyo =
        json!({"klaviyo": {"listName": "Customers", "credentialsSecretRef": {"name": "k"}}});
    let mut two_targets = valid_spec();
    two_targets["target"]["klaviyo"] = klaviyo["klaviyo"].clone();
    let msg = refused(&client, &ns, audience("two-targets", two_targets)).await;
    assert!(msg.contains("give exactly one target"), "{msg}");
    let mut both_names = valid_spec();
    both_names["target"] = json!({"klaviyo": {"listId": "Y6nRLr", "listName": "Customers", "credentialsSecretRef": {"name": "k"}}});
    let msg = refused(&client, &ns, audience("both-names", both_names)).await;
    assert!(
        msg.contains("give exactly one of listId or listName"),
        "{msg}"
    );
    let mut pending = valid_spec();
    pending["target"] = klaviyo.clone();
    pending["consentPolicy"] = json!({"resubscribe": "pending"});
    let msg = refused(&client, &ns, audience("k-pending", pending)).await;
    assert!(msg.contains("pending has no Klaviyo meaning"), "{msg}");
    let mut tags = valid_spec();
    tags["target"] = klaviyo.clone();
    tags["fieldMapping"] = json!({"tags": true});
    let msg = refused(&client, &ns, audience("k-tags", tags)).await;
    assert!(msg.contains("Klaviyo profiles have no tags"), "{msg}");
    let mut bad_id = valid_spec();
    bad_id["target"] = json!({"klaviyo": {"listId": "a/b", "credentialsSecretRef": {"name": "k"}}});
    let msg = refused(&client, &ns, audience("k-bad-id", bad_id)).await;
    assert!(msg.contains("spec.target.klaviyo.listId"), "{msg}");
    // Klaviyo's own names are not Mailchimp merge tags, and are accepted for a Klaviyo target.
    let mut names = valid_spec();
    names["target"] = klaviyo.clone();
    names["fieldMapping"] =
        json!({"firstName": "first_name", "customFields": {"company": "organization"}});
    let api: Api<AudienceSync> = Api::namespaced(client.clone(), &ns);
    let ok: AudienceSync = serde_json::from_value(audience("k-names", names)).unwrap();
    api.create(&PostParams::default(), &ok)
        .await
        .expect("Klaviyo attribute names are accepted for a Klaviyo target");

    // SegmentSync: exactly one source segment, and it must match the source kind.
    let seg: Api<DynamicObject> =
        Api::namespaced_with(client, &ns, &ApiResource::erase::<SegmentSync>(&()));
    let base = json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1", "kind": "SegmentSync",
        "metadata": {"name": "seg"},
        "spec": {
            "source": {"shopify": {"shopDomain": "demo.myshopify.com", "credentialsSecretRef": {"name": "s"}}},
            "sourceSegment": {"shopifySegment": "1", "allCustomers": true},
            "target": {"mailchimp": {"audienceId": "abc123", "segment": "VIP", "credentialsSecretRef": {"name": "mc"}}}
        }
    });
    let o: DynamicObject = serde_json::from_value(base.clone()).unwrap();
    let err = seg
        .create(&PostParams::default(), &o)
        .await
        .expect_err("two source segments");
    assert!(
        err.to_string()
            .contains("give exactly one of retailcrmSegment"),
        "{err}"
    );
    let mut wrong = base;
    wrong["spec"]["sourceSegment"] = json!({"retailcrmSegment": "vip"});
    let o: DynamicObject = serde_json::from_value(wrong).unwrap();
    let err = seg
        .create(&PostParams::default(), &o)
        .await
        .expect_err("segment of another source");
    assert!(
        err.to_string()
            .contains("retailcrmSegment needs a retailcrm source"),
        "{err}"
    );
}

/// Applying the CRDs and every example prints no warning (issue 14: schemars' `uint64`/`uint32`
/// formats made the API server warn on every apply).
#[tokio::test]
async fn applying_the_crds_and_the_examples_prints_no_warning() {
    let (_client, ns) = setup("crd-warnings").await;
    let env = TestEnv::shared().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (what, args) in [
        // Server-side, as GitOps tools apply (the test ground created the CRDs that way too).
        (
            "crds/",
            vec!["apply", "--server-side", "--force-conflicts", "-f", "crds/"],
        ),
        (
            "examples/",
            vec![
                "apply",
                "--server-side",
                "-n",
                ns.as_str(),
                "-f",
                "examples/",
            ],
        ),
    ] {
        let out = env
            .kubectl_command()
            .args(&args)
            .current_dir(root)
            .output()
            .expect("kubectl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl apply {what}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("warning"),
            "kubectl apply {what} warned: {stderr}"
        );
    }
}
