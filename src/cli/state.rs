//! `sync -f --state FILE`: where an OrderSync run outside a cluster keeps what the controller
//! keeps in `status` and a ConfigMap: its order cursor, the time it started (events before it are
//! history), the ids of the events its target accepted (`crate::sent_events`) and when the shop's
//! promo codes were last synced.
//!
//! One JSON file for every OrderSync of a manifest, keyed `namespace/name` (`default` when the
//! manifest gives none). By default `.audience-operator-state` next to the manifest (the
//! current directory for stdin): JSON, but without the `.json` ending, so `kubectl apply -f` of
//! the manifests' folder does not take it for a manifest. A state file under the old name
//! (`.audience-operator-state.json`) is read when the new one is missing, and removed once the
//! state is saved under the new one. The file is written after each run that moved a cursor; delete
//! it to start over (the target's dedupe by unique id still records nothing twice).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The default file name.
pub const DEFAULT_STATE_FILE: &str = ".audience-operator-state";

/// The default file name before: `kubectl apply -f DIR` read it as a manifest and failed.
const LEGACY_STATE_FILE: &str = ".audience-operator-state.json";

/// The old-named file beside a default-named `path`, if `path` has the default name.
fn legacy_beside(path: &Path) -> Option<PathBuf> {
    (path.file_name()? == DEFAULT_STATE_FILE).then(|| path.with_file_name(LEGACY_STATE_FILE))
}

/// The state file for a manifest at `manifest` (`-`: stdin).
pub fn default_path(manifest: &Path) -> PathBuf {
    if manifest == Path::new("-") {
        return PathBuf::from(DEFAULT_STATE_FILE);
    }
    manifest.parent().map_or_else(
        || PathBuf::from(DEFAULT_STATE_FILE),
        |dir| dir.join(DEFAULT_STATE_FILE),
    )
}

/// One OrderSync's saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    /// When the sync first ran (its `creationTimestamp` stand-in).
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    /// The cursor after the last page the target accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The ids of the events the target accepted (`crate::sent_events`), so a changed order
    /// sends only its new event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_events: Option<SentEvents>,
    /// When the shop's promo codes were last synced into a Mailchimp store, so a run within
    /// `promoCodes.every` makes no promo call (the controller's `status.promoCodesSyncedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo_codes_synced_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An event target's accepted ids, as `crate::sent_events::encode` writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentEvents {
    /// The target they were accepted by (`SyncObject::sent_events_target`).
    pub target: String,
    pub ids: String,
}

/// Every OrderSync's state, by `namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CliState {
    #[serde(default)]
    pub order_syncs: BTreeMap<String, OrderState>,
}

impl CliState {
    /// The state in `path`, empty when the file does not exist.
    pub fn load(path: &Path) -> anyhow::Result<CliState> {
        if !path.exists()
            && let Some(legacy) = legacy_beside(path).filter(|legacy| legacy.exists())
        {
            return CliState::load(&legacy);
        }
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("reading the state file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CliState::default()),
            Err(e) => Err(e).with_context(|| format!("reading the state file {}", path.display())),
        }
    }

    /// Writes the state to `path` (through a temporary file, so a crash leaves the old one).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n")
            .with_context(|| format!("writing the state file {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("writing the state file {}", path.display()))?;
        // What the old-named file held is in the new one now.
        if let Some(legacy) = legacy_beside(path) {
            let _ = std::fs::remove_file(legacy);
        }
        Ok(())
    }

    pub fn key(namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", namespace.unwrap_or("default"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() {
        let dir = std::env::temp_dir().join(format!("ao-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DEFAULT_STATE_FILE);
        let _ = std::fs::remove_file(&path);
        assert_eq!(CliState::load(&path).unwrap(), CliState::default());
        let mut state = CliState::default();
        state.order_syncs.insert(
            CliState::key(None, "orders"),
            OrderState {
                started: Some(chrono::Utc::now()),
                checkpoint: Some("cp-1".into()),
                sent_events: Some(SentEvents {
                    target: "klaviyo-0123".into(),
                    ids: "AAAAAAAAAAA=".into(),
                }),
                promo_codes_synced_at: Some(chrono::Utc::now()),
            },
        );
        state.save(&path).unwrap();
        assert_eq!(CliState::load(&path).unwrap(), state);
        assert_eq!(
            default_path(Path::new("examples/x.yaml")),
            Path::new("examples").join(DEFAULT_STATE_FILE)
        );
    }

    #[test]
    fn an_old_named_state_file_is_read_and_replaced_by_the_new_name() {
        let dir = std::env::temp_dir().join(format!("ao-legacy-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DEFAULT_STATE_FILE);
        let legacy = dir.join(LEGACY_STATE_FILE);
        let _ = std::fs::remove_file(&path);
        let mut state = CliState::default();
        state.order_syncs.insert(
            CliState::key(None, "orders"),
            OrderState {
                checkpoint: Some("cp-old".into()),
                ..OrderState::default()
            },
        );
        std::fs::write(&legacy, serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(
            CliState::load(&path).unwrap(),
            state,
            "read under the old name"
        );
        state.save(&path).unwrap();
        assert!(!legacy.exists(), "the old-named file is gone once saved");
        assert_eq!(CliState::load(&path).unwrap(), state);
        assert!(
            !DEFAULT_STATE_FILE.ends_with(".json"),
            "kubectl apply -f DIR skips it"
        );
    }
}
