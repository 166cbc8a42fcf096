//! `audience-operator sync -f FILE`: the controller's reconcile for each sync of a manifest, once,
//! without a cluster. Validation, the run and the failure reasons are the controller's own
//! ([`SyncObject`], [`SyncError`]); only where credentials come from differs (the manifest's
//! Secrets or environment variables, see [`super::manifest`]), and there is no status to keep a
//! checkpoint in, so every run reads the source in full.

use std::io::{IsTerminal, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use audience_core::ApplyControl;
use kube::ResourceExt;
use url::Url;

use super::manifest::{self, CredentialOrigin, Manifests, SyncManifest};
use super::report::{RunReport, SyncReport};
use super::{OutputFormat, SyncArgs};
use crate::connect::{self, Credentials};
use crate::controller::SyncError;
use crate::controller::kind::{JobParts, MAILCHIMP_DEFAULT_KEY, SyncObject};
use crate::engine::{Phase, ProgressFn};

/// How to run the syncs of a manifest.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Plan only, whatever the specs say.
    pub dry_run: bool,
    /// The plan id a person approved after a safety stop.
    pub approve: Option<String>,
    /// Send every vendor call to the simulators at this URL.
    pub sandbox: Option<Url>,
    /// Set to stop applying at the next safe point.
    pub stop: Arc<AtomicBool>,
    /// Show progress on stderr.
    pub progress: bool,
}

pub async fn main(args: SyncArgs) -> anyhow::Result<()> {
    init_logging();
    let file = args.file.display().to_string();
    let text = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the manifest from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {file}"))?
    };
    let manifests = manifest::parse(&text).with_context(|| format!("reading {file}"))?;
    for ignored in &manifests.ignored {
        eprintln!("note: {ignored} skipped (sync uses AudienceSync, SegmentSync and Secret)");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let on_interrupt = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.store(true, Ordering::Relaxed);
            eprintln!("\nstopping at the next safe point (ctrl-c again to abort)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let options = SyncOptions {
        dry_run: args.dry_run,
        approve: args.approve.clone(),
        sandbox: args.sandbox.clone(),
        stop: stop.clone(),
        progress: args.output == OutputFormat::Text && std::io::stderr().is_terminal(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let reports = run_manifests(&manifests, &options, &env).await;

    let mut stdout = std::io::stdout().lock();
    match args.output {
        OutputFormat::Json => {
            let run = RunReport {
                ok: reports.iter().all(|r| r.ok),
                dry_run: args.dry_run,
                sandbox: args.sandbox.as_ref().map(|u| u.to_string()),
                syncs: reports.clone(),
            };
            serde_json::to_writer_pretty(&mut stdout, &run)?;
            writeln!(stdout)?;
        }
        OutputFormat::Text => {
            for (i, report) in reports.iter().enumerate() {
                if i > 0 {
                    writeln!(stdout)?;
                }
                write!(stdout, "{}", report.render_text(&file))?;
            }
        }
    }
    stdout.flush()?;

    if options.stop.load(Ordering::Relaxed) {
        anyhow::bail!("interrupted: writes stopped at a safe point; run again to finish");
    }
    let failed: Vec<&SyncReport> = reports.iter().filter(|r| !r.ok).collect();
    match failed.as_slice() {
        [] => Ok(()),
        [one] if one.outcome == "SafetyStop" => anyhow::bail!(
            "{} {} stopped by the safety limit; approve with --approve {}",
            one.kind,
            one.name,
            one.pending_approval
                .as_ref()
                .map_or("<plan id>", |p| p.plan_id.as_str())
        ),
        [one] => anyhow::bail!("{} {} failed ({})", one.kind, one.name, one.outcome),
        many => anyhow::bail!(
            "{} of {} syncs failed: {}",
            many.len(),
            reports.len(),
            many.iter()
                .map(|r| format!("{} ({})", r.name, r.outcome))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Logs (connector retries, warnings) go to stderr; `RUST_LOG` overrides the default `warn`.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs every sync of a manifest in file order and reports each; a failure does not stop the
/// others. `env` looks up the environment variables that stand in for missing Secrets.
pub async fn run_manifests(
    manifests: &Manifests,
    options: &SyncOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<SyncReport> {
    let mut reports = Vec::with_capacity(manifests.syncs.len());
    for sync in &manifests.syncs {
        if options.stop.load(Ordering::Relaxed) {
            reports.push(SyncReport {
                kind: sync.kind().to_string(),
                name: sync.name().to_string(),
                namespace: sync.namespace().map(str::to_string),
                outcome: "Interrupted".into(),
                duration: "0.00s".into(),
                error: Some("not run: interrupted before it started".into()),
                ..SyncReport::default()
            });
            continue;
        }
        let report = match sync {
            SyncManifest::Audience(object) => {
                let mut object = (**object).clone();
                object.spec.dry_run |= options.dry_run;
                run_one(&object, None, manifests, options, env).await
            }
            SyncManifest::Segment(object) => {
                let mut object = (**object).clone();
                object.spec.dry_run |= options.dry_run;
                let segment = object
                    .spec
                    .target
                    .mailchimp
                    .as_ref()
                    .map(|m| m.segment.trim().to_string());
                run_one(&object, segment, manifests, options, env).await
            }
        };
        reports.push(report);
    }
    reports
}

async fn run_one<K: SyncObject>(
    object: &K,
    segment: Option<String>,
    manifests: &Manifests,
    options: &SyncOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> SyncReport {
    let started = Instant::now();
    let mut report = SyncReport {
        kind: K::KIND.to_string(),
        name: object.name_any(),
        namespace: object.namespace(),
        source: object
            .source_spec()
            .kind()
            .map_or("none", |k| k.as_str())
            .to_string(),
        audience_id: object
            .target_spec()
            .and_then(|t| t.mailchimp)
            .map(|m| m.audience_id)
            .unwrap_or_default(),
        segment,
        mode: object.mode_str().to_string(),
        dry_run: object.dry_run(),
        ..SyncReport::default()
    };
    let mut secrets: Vec<Credentials> = Vec::new();
    let progress = options
        .progress
        .then(|| progress_line(format!("{} {}", K::KIND, report.name)));
    let result = execute(
        object,
        manifests,
        options,
        env,
        &mut report,
        &mut secrets,
        progress.clone(),
    )
    .await;
    if progress.is_some() {
        eprint!("\r\x1b[2K");
    }
    report.duration = format!("{:.2}s", started.elapsed().as_secs_f64());
    match result {
        Ok(executed) => {
            report.ok = true;
            report.outcome = if report.dry_run { "DryRun" } else { "Synced" }.to_string();
            report.counts = Some(executed.counts);
            report.plan = executed.plan;
            report.rejected = executed.rejected;
            report.stopped_early = executed.stopped_early;
        }
        Err(error) => {
            report.ok = false;
            report.outcome = error.reason().as_str().to_string();
            report.pending_approval = error.pending_approval();
            // Connectors never echo a secret; masking here makes sure of it.
            let mut message = error.to_string();
            for creds in &secrets {
                message = connect::redact(&message, creds);
            }
            report.error = Some(message);
        }
    }
    report
}

async fn execute<K: SyncObject>(
    object: &K,
    manifests: &Manifests,
    options: &SyncOptions,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut SyncReport,
    secrets: &mut Vec<Credentials>,
    progress: Option<ProgressFn>,
) -> Result<crate::controller::kind::Executed, SyncError> {
    object.validate().map_err(SyncError::InvalidSpec)?;
    let connections = object.connections()?;
    let namespace = object.namespace();
    let mut credentials = |role: &str, reference, default_key| {
        let (creds, origin) = manifests
            .credentials(role, reference, default_key, namespace.as_deref(), env)
            .map_err(SyncError::CredentialsMissing)?;
        let origin = match origin {
            CredentialOrigin::Manifest => format!("Secret {}", creds.secret_name),
            CredentialOrigin::Environment(var) => format!("${var}"),
        };
        report.credentials_from.insert(role.to_string(), origin);
        secrets.push(creds.clone());
        Ok::<Credentials, SyncError>(creds)
    };
    let source_creds = credentials(
        "source",
        connections.source_secret,
        connections.source_default_key,
    )?;
    let target_creds = credentials("target", &connections.target_secret, MAILCHIMP_DEFAULT_KEY)?;
    let sandbox = options.sandbox.as_ref();
    let source = connect::build_source(connections.source, &source_creds, sandbox)?;
    let target = connect::build_target(&connections.target, &target_creds, sandbox)?;
    let parts = JobParts {
        source: source.as_ref(),
        target: target.as_ref(),
        approved_plan: options.approve.clone(),
        control: ApplyControl {
            progress: None,
            stop: options.stop.clone(),
        },
        progress,
    };
    Ok(object.execute(parts).await?)
}

/// A progress line on stderr, redrawn at most ten times a second.
fn progress_line(label: String) -> ProgressFn {
    let last = Mutex::new(Instant::now() - Duration::from_secs(1));
    Arc::new(move |phase, done, total| {
        let Ok(mut last) = last.lock() else { return };
        if last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        let phase = match phase {
            Phase::ReadingTarget => "reading Mailchimp",
            Phase::ReadingSource => "reading the source",
            Phase::Planning => "planning",
            Phase::Applying => "writing",
        };
        let of = if total > 0 {
            format!("/{total}")
        } else {
            String::new()
        };
        eprint!("\r\x1b[2K{label}: {phase} {done}{of}");
    })
}
