//! What the one job path needs from each sync kind: its spec parts, its extra validation and how
//! it runs. AudienceSync and SegmentSync implement it in [`super::audience`] and
//! [`super::segment`]; a new kind of sync implements it once and the controller and `sync -f`
//! both run it.

use std::fmt::Debug;

use async_trait::async_trait;
use audience_core::webhook_subscriptions::Interest;
use audience_core::{ApplyControl, OrderDestination, OrderSource, Target};
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::connect;
use super::error::SyncError;
use crate::crd::status::HeldRejection;
use crate::crd::{
    EventTargetRef, FieldMappingSpec, PlanReport, RejectedRecord, RunCounts, Schedule, SourceRef,
    SourceSpec, SyncStatus, TargetRef,
};
pub use crate::engine::NamedSource;
use crate::engine::{ProgressFn, RunError};
use crate::schedule::Cadence;

/// The parts of a run the caller supplies.
pub struct JobParts<'a> {
    /// The sources, in spec order (one for most syncs).
    pub sources: Vec<NamedSource<'a>>,
    pub target: &'a dyn Target,
    pub approved_plan: Option<String>,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// The parts of an order run (OrderSync) the caller supplies.
pub struct OrderParts<'a> {
    pub source: &'a dyn OrderSource,
    pub sink: &'a OrderDestination,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
    pub on_checkpoint: Option<crate::engine::CheckpointFn>,
    /// The event ids the target accepted in earlier runs (kept by the caller).
    pub sent_events: Option<audience_core::SentLedger>,
}

/// A condition a run asks the status to carry besides `Ready` (e.g. OrderSync's
/// `TimeZonesDiffer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What a sync connects to; the Secrets that unlock each side are each source's
/// `credentials()` and `target.credentials()`.
#[derive(Debug, Clone)]
pub struct Connections<'a> {
    /// Each source with its name, in spec order.
    pub sources: Vec<(&'a str, SourceRef<'a>)>,
    pub target: TargetRef<'a>,
}

/// What a finished run reports.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub counts: RunCounts,
    pub rejected: Vec<RejectedRecord>,
    /// Dry runs: the plan.
    pub plan: Option<PlanReport>,
    pub checkpoint: Option<String>,
    /// The email-activity cursor the run reached (`None`: keep the status's).
    pub email_activity_cursor: Option<chrono::DateTime<chrono::Utc>>,
    /// When the shop's promo codes were synced in this run (`None`: keep the status's).
    pub promo_codes_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A stop was requested (shutdown, lost leadership) and the run ended at a safe point before
    /// it finished: what it applied is counted, the rest is left for the next run.
    pub stopped_early: bool,
    /// The refused writes to remember (`None`: keep what the status holds, e.g. a dry run).
    pub held_rejections: Option<Vec<HeldRejection>>,
    /// Records read from each source of a multi-source sync before merging, by name.
    pub source_reads: Vec<(String, u64)>,
    /// Full or incremental (AudienceSync; `None` for kinds that always read everything).
    pub mode: Option<crate::engine::RunMode>,
    /// `spec.fullResync`: when the next full reconcile is due after a full run.
    pub full_resync: Option<std::time::Duration>,
    /// The `Ready` message of a kind with its own counts (OrderSync); `None`: the audience one.
    pub message: Option<String>,
    /// Conditions to set besides `Ready`.
    pub notices: Vec<Notice>,
    /// The records the run changed, for the activity log (`crate::activity`).
    pub activity: Vec<audience_core::activity::ActivityEntry>,
    /// OrderSync into events: the ledger of accepted event ids to keep, when the run added to
    /// it (`None`: keep what is kept).
    pub sent_events: Option<audience_core::SentLedger>,
}

/// A sync kind (AudienceSync, SegmentSync).
#[async_trait]
pub trait SyncObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: &'static str;
    /// What this kind's webhooks are about: the topics it registers (`webhooks.register`) and
    /// the hints that trigger it (customer and campaign hints for customer syncs, order hints
    /// for order syncs).
    const WEBHOOK_INTEREST: Interest = Interest::Customers;

    fn sync_status(&self) -> Option<&SyncStatus>;
    fn schedule(&self) -> &Schedule;
    fn suspend(&self) -> bool;
    fn dry_run(&self) -> bool;
    /// The target a kind keeps a ledger of accepted event ids for (`crate::sent_events`), as
    /// a fingerprint of its connection; `None` for kinds that keep none.
    fn sent_events_target(&self) -> Option<String> {
        None
    }
    /// `spec.activityLog`; `None` for kinds that keep no activity log.
    fn activity_log(&self) -> Option<&crate::crd::audience::ActivityLogSpec> {
        None
    }
    /// `spec.webhooks.register`: the operator keeps webhook subscriptions at the vendors for
    /// this sync (see [`crate::controller::registration`]). AudienceSyncs and OrderSyncs have it.
    fn registers_webhooks(&self) -> bool {
        false
    }
    /// The source segment whose metadata is watched between runs (SegmentSync with a
    /// RetailCRM segment; see [`crate::controller::segment_watch`]).
    fn watched_segment(&self) -> Option<String> {
        None
    }
    /// The sources with their names, in spec order (a single `source` is named by its kind).
    fn source_specs(&self) -> Vec<(&str, &SourceSpec)>;
    /// The target's connection.
    fn target(&self) -> Option<TargetRef<'_>>;
    fn mode_str(&self) -> &'static str;
    fn field_mapping(&self) -> &FieldMappingSpec;
    /// The field mapping, with the target's defaults for the names the spec leaves out.
    fn mapping(&self) -> audience_core::FieldMapping {
        let defaults = self
            .target()
            .map(connect::default_mapping)
            .unwrap_or_default();
        self.field_mapping().to_mapping(&defaults)
    }
    /// No run has finished yet: this run is the first full push, a history import.
    fn first_run(&self) -> bool {
        self.sync_status()
            .and_then(|s| s.last_sync_time.as_ref())
            .is_none()
    }
    /// Writes the target refused in earlier runs, as the status remembers them.
    fn remembered_rejections(&self) -> Vec<audience_core::RememberedRejection> {
        self.sync_status()
            .map(|s| {
                s.held_rejections
                    .iter()
                    .filter_map(HeldRejection::to_core)
                    .collect()
            })
            .unwrap_or_default()
    }
    /// Kind-specific checks beyond the schema.
    fn validate_kind(&self) -> Result<(), String> {
        Ok(())
    }

    /// Runs the sync.
    async fn execute(&self, parts: JobParts<'_>) -> Result<Executed, RunError>;

    /// Where the events of an order sync go; `None` (the default): the kind syncs customers
    /// into [`Self::target`] and runs through [`Self::execute`].
    fn event_target(&self) -> Option<EventTargetRef<'_>> {
        None
    }

    /// Runs an order sync (a kind whose [`Self::event_target`] is given).
    async fn execute_orders(&self, _parts: OrderParts<'_>) -> Result<Executed, RunError> {
        Err(RunError::InvalidMapping(format!(
            "{} does not sync orders",
            Self::KIND
        )))
    }

    /// The source and the target, or why the spec lacks one.
    fn connections(&self) -> Result<Connections<'_>, SyncError> {
        let specs = self.source_specs();
        if specs.is_empty() {
            return Err(SyncError::InvalidSpec("no source".into()));
        }
        let sources = specs
            .into_iter()
            .map(|(name, spec)| {
                spec.get()
                    .map(|source| (name, source))
                    .ok_or_else(|| SyncError::InvalidSpec(format!("source {name} names no kind")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let target = self
            .target()
            .ok_or_else(|| SyncError::InvalidSpec("no target".into()))?;
        Ok(Connections { sources, target })
    }

    /// Every Secret this object reads.
    fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (_, spec) in self.source_specs() {
            if let Some(r) = spec.credentials() {
                names.push(r.name.clone());
            }
        }
        if let Some(t) = self.target() {
            names.push(t.credentials().name.clone());
        }
        names.sort();
        names.dedup();
        names
    }

    /// All checks the API server cannot make (pure).
    fn validate(&self) -> Result<(), String> {
        Cadence::parse(self.schedule())?;
        let specs = self.source_specs();
        if specs.is_empty() {
            return Err("give a source".into());
        }
        for (name, spec) in &specs {
            if spec.kinds_given() != 1 {
                return Err(if specs.len() == 1 {
                    "give exactly one source kind".into()
                } else {
                    format!("source {name}: give exactly one source kind")
                });
            }
        }
        let target = self.target().ok_or("give a target")?;
        connect::validate_mapping(target, &self.mapping())?;
        self.validate_kind()
    }
}
