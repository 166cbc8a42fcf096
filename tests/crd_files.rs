//! `crds/` must hold exactly what `audience-operator crd` generates.

use std::path::Path;

use audience_operator::crd::{crd_files, crds_yaml};

#[test]
fn crds_dir_matches_generator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut stale = Vec::new();
    for (name, expected) in crd_files() {
        let path = dir.join(name);
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "crds/{stale:?} differ from the CRD types; regenerate with `cargo run -- crd --out-dir crds`"
    );
}

#[test]
fn crd_subcommand_prints_both_crds() {
    let yaml = crds_yaml();
    let joined: String = crd_files().into_iter().map(|(_, text)| text).collect();
    assert_eq!(yaml, joined);
    let names: Vec<String> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| {
            let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
            v["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "audiencesyncs.sync.audience-operator.io",
            "segmentsyncs.sync.audience-operator.io"
        ]
    );
}

#[test]
fn crd_binary_output_matches() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_audience-operator"))
        .arg("crd")
        .output()
        .expect("running audience-operator crd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), crds_yaml());
}
