//! Installing CustomResourceDefinitions with server-side apply and waiting until they are served.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Deserialize as _;

/// The field manager used for everything this crate applies.
pub const FIELD_MANAGER: &str = "audience-testenv";

/// How long [`apply_crds`] waits for `Established`.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Every `*.yaml` / `*.yml` file directly in `dir`, sorted by name.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parse the CRDs in a (multi-document) YAML text. Empty documents are skipped; a document
/// of another kind is an error.
pub fn parse_crds(yaml: &str) -> Result<Vec<CustomResourceDefinition>> {
    let mut crds = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("YAML document {}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "CustomResourceDefinition" {
            bail!(
                "YAML document {} is a {kind:?}, not a CustomResourceDefinition",
                i + 1
            );
        }
        let crd: CustomResourceDefinition = serde_yaml::from_value(value)
            .with_context(|| format!("YAML document {} as a CustomResourceDefinition", i + 1))?;
        crds.push(crd);
    }
    Ok(crds)
}

/// Server-side-apply every CRD found in the YAML files of `dir` (see [`yaml_files`]) and wait
/// until each is `Established`. Returns the CRDs as the server has them.
pub async fn apply_crds_from_dir(
    client: &Client,
    dir: impl AsRef<Path>,
) -> Result<Vec<CustomResourceDefinition>> {
    let dir = dir.as_ref();
    let mut crds = Vec::new();
    for file in yaml_files(dir)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        crds.extend(parse_crds(&text).with_context(|| format!("in {}", file.display()))?);
    }
    if crds.is_empty() {
        bail!("no CustomResourceDefinition in {}", dir.display());
    }
    apply_crds(client, &crds).await
}

/// Server-side-apply the CRDs (field manager [`FIELD_MANAGER`], forced) and wait until each
/// is `Established`.
pub async fn apply_crds(
    client: &Client,
    crds: &[CustomResourceDefinition],
) -> Result<Vec<CustomResourceDefinition>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd
            .metadata
            .name
            .as_deref()
            .context("a CustomResourceDefinition without metadata.name")?;
        let mut crd = crd.clone();
        // Server-side apply refuses these.
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        crd.status = None;
        api.patch(name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CustomResourceDefinition {name}"))?;
    }
    let mut out = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.as_deref().unwrap_or_default();
        out.push(wait_crd_established(client, name, ESTABLISH_TIMEOUT).await?);
    }
    Ok(out)
}

/// Poll until the CRD's `Established` condition is `True`.
pub async fn wait_crd_established(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<CustomResourceDefinition> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let crd = api
            .get(name)
            .await
            .with_context(|| format!("reading CustomResourceDefinition {name}"))?;
        let conditions = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .cloned()
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
        {
            return Ok(crd);
        }
        if Instant::now() > deadline {
            bail!(
                "CustomResourceDefinition {name} not Established after {timeout:?}; conditions: {}",
                conditions
                    .iter()
                    .map(|c| format!(
                        "{}={} ({})",
                        c.type_,
                        c.status,
                        c.message.as_deref().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
        metadata: {name: things.example.com}\n\
        spec:\n  group: example.com\n  scope: Namespaced\n  \
        names: {plural: things, singular: thing, kind: Thing}\n  versions: []\n";

    #[test]
    fn parses_multi_document_yaml_and_skips_empty_documents() {
        let text = format!("---\n# comment only\n---\n{CRD}---\n{CRD}");
        let crds = parse_crds(&text).unwrap();
        assert_eq!(crds.len(), 2);
        assert_eq!(crds[0].metadata.name.as_deref(), Some("things.example.com"));
    }

    #[test]
    fn refuses_other_kinds() {
        let err = parse_crds(&format!("{CRD}---\napiVersion: v1\nkind: Secret\n")).unwrap_err();
        assert!(
            err.to_string().contains("document 2 is a \"Secret\""),
            "{err}"
        );
    }
}
