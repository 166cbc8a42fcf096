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
            "segmentsyncs.sync.audience-operator.io",
            "ordersyncs.sync.audience-operator.io"
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

/// `kubectl explain` prints descriptions as they are: a doc comment's wrapping must not survive
/// into them (a line break stays only before a blank line, after one, or before a list item).
#[test]
fn descriptions_read_as_prose() {
    fn walk(v: &serde_yaml::Value, path: &str, broken: &mut Vec<String>) {
        match v {
            serde_yaml::Value::Mapping(map) => {
                for (k, child) in map {
                    let key = k.as_str().unwrap_or("");
                    if key == "description" {
                        if let Some(text) = child.as_str() {
                            let lines: Vec<&str> = text.split('\n').collect();
                            for pair in lines.windows(2) {
                                let (a, b) = (pair[0].trim(), pair[1].trim());
                                let list = b.starts_with("- ")
                                    || b.starts_with("* ")
                                    || b.split_once(". ").is_some_and(|(n, _)| {
                                        !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
                                    });
                                if !a.is_empty() && !b.is_empty() && !list {
                                    broken.push(format!("{path}: {a:?} / {b:?}"));
                                }
                            }
                        }
                    } else {
                        walk(child, &format!("{path}.{key}"), broken);
                    }
                }
            }
            serde_yaml::Value::Sequence(items) => {
                for item in items {
                    walk(item, path, broken);
                }
            }
            _ => {}
        }
    }
    let mut broken = Vec::new();
    for (name, text) in crd_files() {
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        walk(&v, name, &mut broken);
    }
    assert!(
        !crd_files().is_empty() && broken.is_empty(),
        "descriptions broken mid-sentence:\n{}",
        broken.join("\n")
    );
    // The generated files are what the chart ships, too.
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/audience-operator/files/crds");
    for (name, expected) in crd_files() {
        assert_eq!(
            std::fs::read_to_string(chart.join(name)).unwrap_or_default(),
            expected,
            "charts/audience-operator/files/crds/{name} is stale; run `make crds`"
        );
    }
}
