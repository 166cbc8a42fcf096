//! `audience-operator sync -f FILE`: each sync of a manifest, once, without a cluster, through the
//! same job path as the controller ([`crate::sync::prepare`]): validation, the run and the failure
//! reasons are shared ([`SyncObject`], [`SyncError`]); only where credentials come from differs
//! (the manifest's Secrets or environment variables, see [`super::manifest`]), and there is no
//! status to keep a checkpoint in, so every audience run reads the source in full. An OrderSync
//! keeps its order cursor in the `--state` file instead ([`super::state`]), so a second run sends
//! nothing new.

use std::io::{IsTerminal, Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use anyhow::Context as _;
use async_trait::async_trait;
use audience_core::ApplyControl;
use kube::ResourceExt;
use url::Url;

use super::manifest::{self, CredentialOrigin, Manifests, SyncManifest};
use super::report::{RunReport, SyncReport};
use super::state::{self, CliState, OrderState, SentEvents};
use super::{OutputFormat, SyncArgs};
use crate::crd::SecretKeyRef;
use crate::engine::{Phase, ProgressFn};
use crate::sync::connect::EndpointPolicy;
use crate::sync::{
    ConnectOptions, CredentialSource, Credentials, DefaultConnectors, Executed, Role, RunControl,
    SyncError, SyncObject, prepare,
};

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
    /// Where OrderSyncs keep their cursors between runs (`None`: every run starts afresh).
    pub state: Option<Arc<Mutex<CliState>>>,
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
        eprintln!(
            "note: {ignored} skipped (sync uses AudienceSync, SegmentSync, OrderSync and Secret)"
        );
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

    let has_orders = manifests
        .syncs
        .iter()
        .any(|s| matches!(s, SyncManifest::Order(_)));
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| state::default_path(&args.file));
    let loaded = if has_orders {
        Some(CliState::load(&state_path)?)
    } else {
        None
    };
    let cli_state = loaded.clone().map(|s| Arc::new(Mutex::new(s)));
    let options = SyncOptions {
        dry_run: args.dry_run,
        approve: args.approve.clone(),
        sandbox: args.sandbox.clone(),
        stop: stop.clone(),
        progress: args.output == OutputFormat::Text && std::io::stderr().is_terminal(),
        state: cli_state.clone(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let reports = run_manifests(&manifests, &options, &env).await;
    if let Some(cli_state) = &cli_state {
        let snapshot = cli_state.lock().expect("state lock").clone();
        // Written only when a cursor moved: a dry run leaves no file behind.
        if Some(&snapshot) != loaded.as_ref() {
            snapshot.save(&state_path)?;
        }
    }

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
            if has_orders {
                // Say where the order cursors live, so a user knows what to delete to start over.
                let saved = if args.dry_run {
                    "read from (a dry run saves nothing)"
                } else {
                    "kept in"
                };
                writeln!(
                    stdout,
                    "order cursors: {saved} {} (--state FILE to choose; delete it to import again)",
                    state_path.display()
                )?;
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
    env: &(dyn Fn(&str) -> Option<String> + Sync),
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
                run_one(&object, None, None, manifests, options, env).await
            }
            SyncManifest::Segment(object) => {
                let mut object = (**object).clone();
                object.spec.dry_run |= options.dry_run;
                let segment = object.spec.target.segment_name().map(str::to_string);
                run_one(&object, segment, None, manifests, options, env).await
            }
            SyncManifest::Order(object) => run_order(object, manifests, options, env).await,
        };
        reports.push(report);
    }
    reports
}

/// An OrderSync with the cursor and start time of its earlier runs from the state (the
/// controller keeps them in `status.checkpoint` and `metadata.creationTimestamp`), and the new
/// cursor saved back once the run accepted it.
async fn run_order(
    object: &crate::crd::OrderSync,
    manifests: &Manifests,
    options: &SyncOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> SyncReport {
    let mut object = object.clone();
    object.spec.dry_run |= options.dry_run;
    let key = CliState::key(object.namespace().as_deref(), &object.name_any());
    let saved = options
        .state
        .as_ref()
        .and_then(|s| s.lock().ok()?.order_syncs.get(&key).cloned())
        .unwrap_or_default();
    let started = saved.started.unwrap_or_else(chrono::Utc::now);
    if object.metadata.creation_timestamp.is_none()
        && let Ok(ts) = jiff::Timestamp::from_second(started.timestamp())
    {
        object.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts));
    }
    if saved.checkpoint.is_some() {
        object
            .status
            .get_or_insert_with(Default::default)
            .checkpoint = saved.checkpoint.clone();
    }
    if let Some(ts) = saved
        .promo_codes_synced_at
        .and_then(|at| jiff::Timestamp::from_second(at.timestamp()).ok())
    {
        object
            .status
            .get_or_insert_with(Default::default)
            .promo_codes_synced_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts));
    }
    // The ids the same target accepted in earlier runs: a changed order sends its new event only.
    let target = object.sent_events_target();
    let sent = saved
        .sent_events
        .as_ref()
        .filter(|kept| target.as_deref() == Some(kept.target.as_str()))
        .and_then(|kept| crate::sent_events::decode(&kept.ids));
    let mut report = run_one(&object, None, sent, manifests, options, env).await;
    let sent_events = match (report.sent_events.take(), target) {
        (Some(ledger), Some(target)) => Some(SentEvents {
            target,
            ids: crate::sent_events::encode(&ledger),
        }),
        _ => saved.sent_events.clone(),
    };
    if report.ok
        && !object.spec.dry_run
        && let Some(state) = &options.state
        && let Ok(mut state) = state.lock()
    {
        state.order_syncs.insert(
            key,
            OrderState {
                started: Some(started),
                checkpoint: report.checkpoint.clone().or(saved.checkpoint),
                sent_events,
                promo_codes_synced_at: report.promo_codes_synced_at.or(saved.promo_codes_synced_at),
            },
        );
    }
    report
}

async fn run_one<K: SyncObject>(
    object: &K,
    segment: Option<String>,
    sent_events: Option<audience_core::SentLedger>,
    manifests: &Manifests,
    options: &SyncOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> SyncReport {
    let started = Instant::now();
    let mut report = SyncReport {
        kind: K::KIND.to_string(),
        name: object.name_any(),
        namespace: object.namespace(),
        source: source_names(object),
        target: object
            .target()
            .map(|t| t.kind_str())
            .or_else(|| object.event_target().map(|t| t.kind_str()))
            .unwrap_or("none")
            .to_string(),
        audience_id: object
            .target()
            .map(|t| t.destination().to_string())
            .unwrap_or_default(),
        segment,
        mode: object.mode_str().to_string(),
        dry_run: object.dry_run(),
        ..SyncReport::default()
    };
    let credentials = ManifestCredentials {
        manifests,
        namespace: object.namespace(),
        env,
        read: Mutex::default(),
    };
    let progress = options
        .progress
        .then(|| progress_line(format!("{} {}", K::KIND, report.name)));
    let result = execute(object, &credentials, options, progress.clone(), sent_events).await;
    if progress.is_some() {
        eprint!("\r\x1b[2K");
    }
    report.duration = format!("{:.2}s", started.elapsed().as_secs_f64());
    let read = credentials.read.into_inner().unwrap_or_default();
    report.credentials_from = read.origins;
    match result {
        Ok(executed) => {
            report.ok = true;
            report.outcome = if report.dry_run { "DryRun" } else { "Synced" }.to_string();
            report.counts = Some(executed.counts);
            report.plan = executed.plan;
            report.rejected = executed.rejected;
            report.stopped_early = executed.stopped_early;
            report.source_reads = executed.source_reads;
            report.checkpoint = executed.checkpoint;
            report.sent_events = executed.sent_events;
            report.promo_codes_synced_at = executed.promo_codes_synced_at;
            report.notes = executed
                .notices
                .iter()
                .filter(|n| n.status)
                .map(|n| n.message.clone())
                .collect();
        }
        Err(error) => {
            report.ok = false;
            report.outcome = error.reason().as_str().to_string();
            report.pending_approval = error.pending_approval();
            // Connectors never echo a secret; masking here makes sure of it.
            let mut message = error.to_string();
            for creds in &read.credentials {
                message = creds.redact(&message);
            }
            report.error = Some(message);
        }
    }
    report
}

async fn execute<K: SyncObject>(
    object: &K,
    credentials: &ManifestCredentials<'_>,
    options: &SyncOptions,
    progress: Option<ProgressFn>,
    sent_events: Option<audience_core::SentLedger>,
) -> Result<Executed, SyncError> {
    // The person running `sync -f` holds the credentials: any endpoint they name is theirs.
    let connectors = DefaultConnectors::new(ConnectOptions {
        endpoints: EndpointPolicy::Any,
        ..ConnectOptions::default()
    });
    let prepared = prepare(object, credentials, &connectors, options.sandbox.as_ref()).await?;
    let control = RunControl {
        approved_plan: options.approve.clone(),
        control: ApplyControl {
            progress: None,
            stop: options.stop.clone(),
        },
        progress,
        // The state file is written once, after the run.
        on_checkpoint: None,
        sent_events,
    };
    prepared.run(object, control).await
}

/// Credentials from the manifest's Secrets, else environment variables; remembers what it handed
/// out (where each came from, for the report; the values, to mask them in messages).
struct ManifestCredentials<'a> {
    manifests: &'a Manifests,
    namespace: Option<String>,
    env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    read: Mutex<ReadCredentials>,
}

#[derive(Default)]
struct ReadCredentials {
    origins: BTreeMap<String, String>,
    credentials: Vec<Credentials>,
}

#[async_trait]
impl CredentialSource for ManifestCredentials<'_> {
    async fn credentials(
        &self,
        role: Role,
        reference: &SecretKeyRef,
        default_key: &str,
    ) -> Result<Credentials, SyncError> {
        let (creds, origin) = self
            .manifests
            .credentials(
                role.as_str(),
                reference,
                default_key,
                self.namespace.as_deref(),
                self.env,
            )
            .map_err(SyncError::CredentialsMissing)?;
        let origin = match origin {
            CredentialOrigin::Manifest => format!("Secret {}", creds.secret_name),
            CredentialOrigin::Environment(var) => format!("${var}"),
        };
        let mut read = self.read.lock().expect("credentials lock");
        // Several sources: every Secret read for the role is named.
        read.origins
            .entry(role.as_str().to_string())
            .and_modify(|known| {
                if !known.split(" and ").any(|o| o == origin) {
                    known.push_str(" and ");
                    known.push_str(&origin);
                }
            })
            .or_insert(origin);
        read.credentials.push(creds.clone());
        Ok(creds)
    }
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
            Phase::ReadingTarget => "reading the target",
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

/// The sources a report names: the kind of a single source, `name (kind), ...` for several.
fn source_names<K: SyncObject>(object: &K) -> String {
    let specs = object.source_specs();
    let kind = |spec: &crate::crd::SourceSpec| spec.kind().map_or("none", |k| k.as_str());
    match specs.as_slice() {
        [] => "none".to_string(),
        [(_, spec)] => kind(spec).to_string(),
        many => many
            .iter()
            .map(|(name, spec)| format!("{name} ({})", kind(spec)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
