//! Finding the test-ground binaries (etcd, kube-apiserver, kube-controller-manager, kubectl,
//! helm): `$AUDIENCE_OPERATOR_TESTBINS`, else whatever `hack/testbins.sh` builds or has cached.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// Directory holding the binaries; set by `make test`, else `hack/testbins.sh` is run.
pub const TESTBINS_ENV: &str = "AUDIENCE_OPERATOR_TESTBINS";

pub const ETCD: &str = "etcd";
pub const KUBE_APISERVER: &str = "kube-apiserver";
pub const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const KUBECTL: &str = "kubectl";
pub const HELM: &str = "helm";
pub const ALL: [&str; 5] = [ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBECTL, HELM];

/// The workspace root (where `hack/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testenv has two parents")
        .to_path_buf()
}

fn complete(dir: &Path) -> bool {
    ALL.iter().all(|b| dir.join(b).is_file())
}

/// The directory with all five binaries, resolved once per process. Runs `hack/testbins.sh`
/// (which builds them on first use, for a long time, with progress on stderr) unless
/// `$AUDIENCE_OPERATOR_TESTBINS` already names a complete directory.
pub fn dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| resolve().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn resolve() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(TESTBINS_ENV).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if complete(&dir) {
            return Ok(dir);
        }
        eprintln!(
            "audience-testenv: ${TESTBINS_ENV}={} lacks some binaries; running hack/testbins.sh",
            dir.display()
        );
    }
    let script = workspace_root().join("hack/testbins.sh");
    eprintln!(
        "audience-testenv: running {} (it builds the binaries on first use)",
        script.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .context("hack/testbins.sh printed no directory")?;
    let dir = PathBuf::from(last.trim());
    if !complete(&dir) {
        bail!(
            "hack/testbins.sh printed {}, which lacks some of {ALL:?}",
            dir.display()
        );
    }
    Ok(dir)
}

/// Path of one binary (see [`ALL`]).
pub fn path(name: &str) -> Result<PathBuf> {
    Ok(dir()?.join(name))
}
