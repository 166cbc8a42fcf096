//! Child processes of the control plane, and making sure none outlives the test binary.
//!
//! Two independent mechanisms:
//! * every attached child gets `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills it when the thread
//!   that spawned it dies, which covers a test binary killed by a signal, an abort, or a crash
//!   (the shared environment spawns from a thread that lives as long as the process);
//! * an `atexit` handler kills (SIGKILL) and reaps every registered child and removes the
//!   registered data directories when the binary exits normally, which is also how libtest
//!   ends after failing (panicking) tests.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static ATEXIT: Once = Once::new();

/// Environment variable: when set (non-empty), data directories are kept for inspection.
pub const KEEP_ENV: &str = "AUDIENCE_OPERATOR_TESTENV_KEEP";

extern "C" fn cleanup_at_exit() {
    // try_lock: never block process exit on a lock some dying thread holds.
    if let Ok(mut pids) = CHILDREN.try_lock() {
        for pid in pids.drain(..) {
            kill_and_reap(pid, Duration::ZERO);
        }
    }
    if let Ok(mut dirs) = DIRS.try_lock() {
        for dir in dirs.drain(..) {
            remove_dir(&dir);
        }
    }
}

fn ensure_atexit() {
    ATEXIT.call_once(|| {
        // SAFETY: registering a plain extern "C" fn without captured state.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
}

/// Remove `dir` at process exit (unless [`KEEP_ENV`] is set).
pub fn remove_at_exit(dir: &Path) {
    ensure_atexit();
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_path_buf());
}

pub(crate) fn forget_dir(dir: &Path) {
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|d| d != dir);
}

pub(crate) fn remove_dir(dir: &Path) {
    if std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty()) {
        eprintln!("audience-testenv: keeping {}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// How a child is tied to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// Killed with the spawning thread (PDEATHSIG) and at process exit.
    Attached,
    /// A new session, outliving us (`make cluster`).
    Detached,
}

/// A running child with its log file.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    pub lifetime: Lifetime,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the exit status and the end of the log if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited early ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log, 40)
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let pid = self.pid();
        if self.child.try_wait().ok().flatten().is_none() {
            signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.child.try_wait().ok().flatten().is_none() {
                signal(pid, libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
        CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
    }
}

/// Spawn `cmd` with stdout and stderr appended to `log`.
pub fn spawn(name: &str, mut cmd: Command, log: &Path, lifetime: Lifetime) -> Result<Proc> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    match lifetime {
        Lifetime::Attached => {
            ensure_atexit();
            // SAFETY: getpid is async-signal-safe.
            let parent = unsafe { libc::getpid() };
            // SAFETY: only async-signal-safe calls (prctl, getppid) run between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died between fork and prctl.
                    if libc::getppid() != parent {
                        return Err(io::Error::other("parent exited"));
                    }
                    Ok(())
                });
            }
        }
        Lifetime::Detached => {
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
    // Register under the lock so an exit racing this spawn still sees the pid.
    let mut children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
    if lifetime == Lifetime::Attached {
        children.push(child.id());
    }
    drop(children);
    Ok(Proc {
        name: name.to_string(),
        child,
        log: log.to_path_buf(),
        lifetime,
    })
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// SIGTERM (if `grace` > 0) then SIGKILL, and reap if it is our child.
fn kill_and_reap(pid: u32, grace: Duration) {
    if !grace.is_zero() {
        signal(pid, libc::SIGTERM);
        std::thread::sleep(grace);
    }
    signal(pid, libc::SIGKILL);
    if let Ok(p) = libc::pid_t::try_from(pid) {
        let mut status = 0;
        // SAFETY: plain syscall; fails harmlessly if `pid` is not our child.
        unsafe {
            libc::waitpid(p, &mut status, 0);
        }
    }
}

/// Is `pid` alive and was it started with `needle` somewhere on its command line?
/// (Guards against signalling a recycled pid.)
pub fn pid_matches(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let all: Vec<String> = BufReader::new(f).lines().map_while(|l| l.ok()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
