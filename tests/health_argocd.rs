//! The Argo CD health check (`docs/health/sync.lua`) on status fixtures, run by gopher-lua (the
//! interpreter Argo CD embeds, through `hack/tools/health`). The fixtures' conditions are built
//! by the operator's own status code, so the check reads what the operator writes.

mod health_support;

use audience_operator::status::{
    Health, PROGRESSING, READY, Reason, set_condition, set_health_conditions,
};
use health_support::{argo, argo_script, kstatus, root};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::json;

const KINDS: [&str; 3] = ["AudienceSync", "SegmentSync", "OrderSync"];

fn object(
    kind: &str,
    generation: i64,
    observed: Option<i64>,
    conditions: &[Condition],
    suspend: bool,
) -> serde_json::Value {
    let mut status = json!({ "conditions": conditions });
    if let Some(g) = observed {
        status["observedGeneration"] = json!(g);
    }
    json!({
        "apiVersion": "sync.audience-operator.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "s", "namespace": "shop", "generation": generation},
        "spec": {"suspend": suspend},
        "status": status,
    })
}

/// The conditions a settled reconcile leaves.
fn settled(reason: Reason, message: &str, reconciling: bool) -> Vec<Condition> {
    let now = Timestamp::UNIX_EPOCH;
    let mut c = Vec::new();
    set_condition(
        &mut c,
        READY,
        reason.is_ready(),
        reason.as_str(),
        message,
        Some(3),
        now,
    );
    set_condition(&mut c, PROGRESSING, false, "Idle", "", Some(3), now);
    if reconciling {
        set_health_conditions(&mut c, Health::Running, Some(3), true, now);
    }
    set_health_conditions(
        &mut c,
        Health::Settled(reason, message),
        Some(3),
        reconciling,
        now,
    );
    c
}

#[test]
fn synced_and_dry_run_are_healthy() {
    for kind in KINDS {
        for reason in [Reason::Synced, Reason::DryRun] {
            let o = object(
                kind,
                3,
                Some(3),
                &settled(reason, "synced 3 customers", false),
                false,
            );
            assert_eq!(
                argo(&o),
                (
                    "Healthy".into(),
                    format!("{}: synced 3 customers", reason.as_str())
                )
            );
        }
    }
}

#[test]
fn every_person_needed_reason_is_degraded_with_its_message() {
    for kind in KINDS {
        for reason in [
            Reason::CredentialsMissing,
            Reason::CredentialsNotAllowed,
            Reason::AuthFailed,
            Reason::InvalidSpec,
            Reason::CapacityExceeded,
            Reason::SafetyStop,
        ] {
            // Also on a new generation: a stall ends reconciling.
            for reconciling in [false, true] {
                let o = object(
                    kind,
                    3,
                    Some(3),
                    &settled(reason, "Secret shop/x not found", reconciling),
                    false,
                );
                assert_eq!(
                    argo(&o),
                    (
                        "Degraded".into(),
                        format!("{}: Secret shop/x not found", reason.as_str())
                    ),
                    "{kind} {reason:?}"
                );
                assert_eq!(kstatus(&o).0, "Failed", "{kind} {reason:?}");
            }
        }
    }
}

#[test]
fn transient_trouble_and_new_generations_are_progressing() {
    for kind in KINDS {
        for reason in [
            Reason::RateLimited,
            Reason::SourceError,
            Reason::TargetError,
        ] {
            let o = object(kind, 3, Some(3), &settled(reason, "429", false), false);
            let (status, message) = argo(&o);
            assert_eq!(status, "Progressing", "{reason:?}");
            assert!(message.starts_with("Retrying: "), "{message}");
            // A new generation whose first run hit it: still being applied.
            let o = object(kind, 3, Some(3), &settled(reason, "429", true), false);
            let (status, message) = argo(&o);
            assert_eq!(status, "Progressing");
            assert!(message.contains("applying generation 3"), "{message}");
            assert_eq!(kstatus(&o).0, "InProgress");
        }
        // The generation ahead of the status: the operator has not seen the edit yet.
        let o = object(
            kind,
            4,
            Some(3),
            &settled(Reason::Synced, "ok", false),
            false,
        );
        assert_eq!(argo(&o).0, "Progressing");
        assert_eq!(kstatus(&o).0, "InProgress");
        // A run under way on a new generation.
        let mut c = settled(Reason::Synced, "ok", false);
        set_health_conditions(
            &mut c,
            Health::Running,
            Some(4),
            true,
            Timestamp::UNIX_EPOCH,
        );
        let o = object(kind, 4, Some(3), &c, false);
        assert_eq!(argo(&o).0, "Progressing");
        // No status at all yet.
        let mut o = object(kind, 1, None, &[], false);
        o.as_object_mut().unwrap().remove("status");
        assert_eq!(argo(&o).0, "Progressing");
    }
}

#[test]
fn suspend_true_is_suspended() {
    for kind in KINDS {
        let o = object(
            kind,
            3,
            Some(3),
            &settled(Reason::Suspended, "suspended: no runs are scheduled", false),
            true,
        );
        assert_eq!(argo(&o).0, "Suspended");
        // Suspended wins over an old stall: nothing runs, nothing to fix now.
        let o = object(
            kind,
            3,
            Some(3),
            &settled(Reason::AuthFailed, "401", false),
            true,
        );
        assert_eq!(argo(&o).0, "Suspended");
    }
}

/// docs/gitops.md carries the check verbatim under one key per kind the CRDs define.
#[test]
fn the_argo_cd_config_in_the_docs_covers_every_kind_with_the_tested_script() {
    let script = std::fs::read_to_string(argo_script()).unwrap();
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    let doc = std::fs::read_to_string(root().join("docs/gitops.md")).unwrap();
    let mut kinds = Vec::new();
    for (_, crd) in audience_operator::crd::crd_files() {
        let v: serde_yaml::Value = serde_yaml::from_str(&crd).unwrap();
        let group = v["spec"]["group"].as_str().unwrap().to_string();
        let kind = v["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let key = format!("  resource.customizations.health.{group}_{kind}: |\n{indented}");
        assert!(
            doc.contains(&key),
            "docs/gitops.md lacks the check for {kind} (or it differs from docs/health/sync.lua)"
        );
        kinds.push(kind);
    }
    assert_eq!(kinds, KINDS);
    let notes =
        std::fs::read_to_string(root().join("charts/audience-operator/templates/NOTES.txt"))
            .unwrap();
    assert!(
        notes.contains("docs/gitops.md"),
        "the chart's NOTES point at the health checks"
    );
}

/// The YAML blocks of a README section, parsed.
fn readme_manifests(section: &str) -> Vec<serde_yaml::Value> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("README has no section {section:?}"));
    let body = &readme[start + 1..];
    let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
    let mut docs = Vec::new();
    for block in body.split("```yaml\n").skip(1) {
        let yaml = &block[..block.find("```").unwrap()];
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            docs.push(<serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap());
        }
    }
    docs
}

fn kinds(docs: &[serde_yaml::Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn readme_has_copy_paste_manifests_for_flux_and_argo_cd() {
    let flux = readme_manifests("With Flux");
    assert_eq!(
        kinds(&flux),
        ["GitRepository", "HelmRelease", "Kustomization"]
    );
    let ks = &flux[2];
    assert_eq!(
        ks["spec"]["wait"].as_bool(),
        Some(true),
        "Flux waits on kstatus"
    );
    assert_eq!(
        flux[1]["spec"]["chart"]["spec"]["chart"].as_str(),
        Some("./charts/audience-operator")
    );
    let argo = readme_manifests("With Argo CD");
    assert_eq!(kinds(&argo), ["Application", "Application"]);
    assert_eq!(
        argo[0]["spec"]["source"]["path"].as_str(),
        Some("charts/audience-operator")
    );
    assert!(root().join("charts/audience-operator/Chart.yaml").exists());
}
