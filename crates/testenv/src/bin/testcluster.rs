//! The test control plane for people: `testcluster up|down|status [DIR]`.
//!
//! `up` starts etcd, kube-apiserver and kube-controller-manager in the background with their
//! data, logs, pid files and the admin kubeconfig in DIR (default `target/cluster`); `down`
//! stops them and removes DIR.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use audience_testenv::{ControlPlane, ControlPlaneOptions, Lifetime, bins, plane, process};

const COMPONENTS: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| bins::workspace_root().join("target/cluster"));
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&dir),
        Some("down") => down(&dir),
        Some("status") => status(&dir).map(|running| {
            if !running {
                std::process::exit(3);
            }
        }),
        _ => {
            eprintln!("usage: testcluster up|down|status [DIR]   (DIR defaults to target/cluster)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testcluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn running(dir: &Path) -> Vec<(String, u32)> {
    let needle = dir.display().to_string();
    COMPONENTS
        .iter()
        .filter_map(|name| {
            let pid = std::fs::read_to_string(dir.join(format!("{name}.pid")))
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()?;
            process::pid_matches(pid, &needle).then(|| (name.to_string(), pid))
        })
        .collect()
}

fn up(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let procs = running(&dir);
    if procs.len() == COMPONENTS.len() {
        eprintln!("testcluster: already running in {}", dir.display());
        return print_usage(&dir);
    }
    if !procs.is_empty() {
        eprintln!(
            "testcluster: a partial cluster runs in {}; restarting it",
            dir.display()
        );
        plane::stop_dir(&dir)?;
    }
    let cp = ControlPlane::start(ControlPlaneOptions {
        dir: Some(dir.clone()),
        lifetime: Lifetime::Detached,
        controller_manager: true,
        ..Default::default()
    })?;
    for (name, pid) in cp.pids() {
        eprintln!(
            "testcluster: {name} pid {pid}, log {}",
            dir.join(format!("{name}.log")).display()
        );
    }
    cp.detach();
    print_usage(&dir)
}

fn print_usage(dir: &Path) -> Result<()> {
    let kubeconfig = dir.join("kubeconfig");
    eprintln!("testcluster: stop it with `make cluster-down`; use it with:");
    println!("export KUBECONFIG={}", kubeconfig.display());
    eprintln!(
        "testcluster: tests use it with AUDIENCE_OPERATOR_TEST_KUBECONFIG={}",
        kubeconfig.display()
    );
    Ok(())
}

fn down(dir: &Path) -> Result<()> {
    if !dir.exists() {
        eprintln!("testcluster: nothing in {}", dir.display());
        return Ok(());
    }
    let dir = dir.canonicalize()?;
    for s in plane::stop_dir(&dir)? {
        eprintln!("testcluster: stopped {s}");
    }
    if !running(&dir).is_empty() {
        bail!("some processes in {} are still running", dir.display());
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    eprintln!("testcluster: removed {}", dir.display());
    Ok(())
}

fn status(dir: &Path) -> Result<bool> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let procs = running(&dir);
    for name in COMPONENTS {
        match procs.iter().find(|(n, _)| n == name) {
            Some((_, pid)) => println!("{name}: running (pid {pid})"),
            None => println!("{name}: not running"),
        }
    }
    if procs.len() == COMPONENTS.len() {
        println!("kubeconfig: {}", dir.join("kubeconfig").display());
    }
    Ok(procs.len() == COMPONENTS.len())
}
