//! Segment membership plans: what to add to and remove from a target segment.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::plan::{SafetyLimit, SafetyStop, removal_id};

/// How a SegmentSync shapes the target segment from the source segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SegmentMode {
    /// The target segment becomes exactly the source segment.
    #[default]
    Exact,
    /// Add the source's members; existing members are untouched.
    Union,
    /// Remove the source's members from the target segment.
    Subtract,
}

/// What a segment sync will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentPlan {
    pub add: Vec<Email>,
    pub remove: Vec<Email>,
    pub unchanged: u64,
    /// Members of the target segment before the plan.
    pub target: u64,
}

impl SegmentPlan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Refuses a plan removing more of the segment than the limit allows, unless approved.
    pub fn check_safety(
        &self,
        limit: &SafetyLimit,
        approved: Option<&str>,
    ) -> Result<(), SafetyStop> {
        let plan_id = || removal_id(self.remove.iter().map(Email::as_str));
        limit.check(self.remove.len() as u64, self.target, plan_id, approved)
    }
}

/// Plans the target segment's membership from the source segment's emails and the target's.
/// Output lists are sorted, so plans are deterministic.
pub fn plan_segment(mode: SegmentMode, source: &[Email], target: &[Email]) -> SegmentPlan {
    let source_set: HashSet<&Email> = source.iter().collect();
    let target_set: HashSet<&Email> = target.iter().collect();
    let mut add: Vec<Email> = Vec::new();
    let mut remove: Vec<Email> = Vec::new();
    match mode {
        SegmentMode::Exact | SegmentMode::Union => {
            add = source_set
                .iter()
                .filter(|e| !target_set.contains(*e))
                .map(|e| (*e).clone())
                .collect();
        }
        SegmentMode::Subtract => {
            remove = source_set
                .iter()
                .filter(|e| target_set.contains(*e))
                .map(|e| (*e).clone())
                .collect();
        }
    }
    if mode == SegmentMode::Exact {
        remove = target_set
            .iter()
            .filter(|e| !source_set.contains(*e))
            .map(|e| (*e).clone())
            .collect();
    }
    add.sort();
    remove.sort();
    let target_count = target_set.len() as u64;
    let unchanged = target_count - remove.len() as u64;
    SegmentPlan {
        add,
        remove,
        unchanged,
        target: target_count,
    }
}

/// Where a SegmentSync takes its members from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSegment {
    /// Every customer of the source.
    AllCustomers,
    /// A source segment by id or code (a RetailCRM segment code, a Shopify segment id).
    Segment(String),
}

impl SourceSegment {
    /// What to read from the source to learn the segment's members.
    pub fn read_scope(&self) -> crate::connector::ReadScope {
        match self {
            SourceSegment::AllCustomers => crate::connector::ReadScope::Full,
            SourceSegment::Segment(id) => crate::connector::ReadScope::Segment(id.clone()),
        }
    }
}
