//! What the one job path needs from each sync kind: its spec parts, its extra validation and how
//! it runs. AudienceSync and SegmentSync implement it in [`super::audience`] and
//! [`super::segment`]; a new kind of sync implements it once and the controller and `sync -f`
//! both run it.

use std::fmt::Debug;

use async_trait::async_trait;
use audience_core::{ApplyControl, Source, Target};
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::connect;
use super::error::SyncError;
use crate::crd::status::HeldRejection;
use crate::crd::{
    FieldMappingSpec, PlanReport, RejectedRecord, RunCounts, Schedule, SourceRef, SourceSpec,
    SyncStatus, TargetRef,
};
use crate::engine::{ProgressFn, RunError};
use crate::schedule::Cadence;

/// The parts of a run the caller supplies.
pub struct JobParts<'a> {
    pub source: &'a dyn Source,
    pub target: &'a dyn Target,
    pub approved_plan: Option<String>,
    pub control: ApplyControl,
    pub progress: Option<ProgressFn>,
}

/// What a sync connects to; the Secrets that unlock each side are `source.credentials()` and
/// `target.credentials()`.
#[derive(Debug, Clone, Copy)]
pub struct Connections<'a> {
    pub source: SourceRef<'a>,
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
    /// A stop was requested (shutdown, lost leadership) and the run ended at a safe point before
    /// it finished: what it applied is counted, the rest is left for the next run.
    pub stopped_early: bool,
    /// The refused writes to remember (`None`: keep what the status holds, e.g. a dry run).
    pub held_rejections: Option<Vec<HeldRejection>>,
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

    fn sync_status(&self) -> Option<&SyncStatus>;
    fn schedule(&self) -> &Schedule;
    fn suspend(&self) -> bool;
    fn dry_run(&self) -> bool;
    fn source_spec(&self) -> &SourceSpec;
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

    /// The source and the target, or why the spec lacks one.
    fn connections(&self) -> Result<Connections<'_>, SyncError> {
        let source = self
            .source_spec()
            .get()
            .ok_or_else(|| SyncError::InvalidSpec("no source".into()))?;
        let target = self
            .target()
            .ok_or_else(|| SyncError::InvalidSpec("no target".into()))?;
        Ok(Connections { source, target })
    }

    /// Every Secret this object reads.
    fn secret_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(r) = self.source_spec().credentials() {
            names.push(r.name.clone());
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
        if self.source_spec().kinds_given() != 1 {
            return Err("give exactly one source kind".into());
        }
        let target = self.target().ok_or("give a target")?;
        connect::validate_mapping(target, &self.mapping())?;
        self.validate_kind()
    }
}
