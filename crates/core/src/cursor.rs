//! Saved checkpoints made safe to read from.
//!
//! A checkpoint is the source's own opaque position (see [`Checkpoint`]), but two rules hold for
//! every source, so they live here rather than in each connector:
//!
//! - **Never in the future.** A checkpoint that is a time (Shopify's `updatedAt`, Lightspeed
//!   R-Series' `timeStamp`) is capped at our clock when it is saved: a vendor clock running ahead,
//!   or one record stamped in the future, would otherwise move the cursor past edits still to
//!   come, and every later read would return nothing until the clock caught up (the failure mode
//!   of other sync tools). Capping only ever moves a cursor back, so at worst a few records are
//!   read again, which the diff absorbs. Checkpoints that are not times (X-Series versions,
//!   RetailCRM history ids) are positions in the vendor's own sequence and are kept as they are.
//! - **One per source.** A multi-source sync saves one JSON object of each source's checkpoint by
//!   name ([`SourceCheckpoints`]); a source missing from it (added to the spec since, or one that
//!   gave no checkpoint yet) reads in full.
//!
//! The overlap window is the connectors' business, because only they know the vendor's clock
//! precision: Shopify reads `updated_at >= checkpoint` and drops the customers the checkpoint
//! names at that second; Lightspeed R-Series steps a checkpoint back one second while the server
//! may still hand out that second; X-Series versions and RetailCRM history ids are exact.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::connector::Checkpoint;

/// `checkpoint`, or, when it is a time after `now` (optionally followed by `|…`, as Shopify's
/// boundary ids), `now` in the checkpoint's own offset, truncated to the second, without the
/// suffix (the ids named customers at the later time). Other checkpoints are returned unchanged.
pub fn cap_checkpoint(checkpoint: Checkpoint, now: DateTime<Utc>) -> Checkpoint {
    let time = checkpoint.split('|').next().unwrap_or_default().trim();
    match DateTime::parse_from_rfc3339(time) {
        Ok(at) if at.with_timezone(&Utc) > now => now
            .with_timezone(at.offset())
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        _ => checkpoint,
    }
}

/// The checkpoints of a multi-source sync by source name, saved as one JSON object of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceCheckpoints(BTreeMap<String, Checkpoint>);

impl SourceCheckpoints {
    /// The saved object. Anything else (a single source's checkpoint saved before the sync got a
    /// second source, a hand-edited status) holds no checkpoint: every source reads in full.
    pub fn parse(saved: &str) -> SourceCheckpoints {
        let map = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(saved)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some((name, s)),
                _ => None,
            })
            .collect();
        SourceCheckpoints(map)
    }

    pub fn get(&self, name: &str) -> Option<&Checkpoint> {
        self.0.get(name)
    }

    pub fn set(&mut self, name: &str, checkpoint: Checkpoint) {
        self.0.insert(name.to_string(), checkpoint);
    }

    /// Keeps only the sources still in the spec.
    pub fn retain(&mut self, names: &[&str]) {
        self.0.retain(|name, _| names.contains(&name.as_str()));
    }

    /// Caps every checkpoint at `now` ([`cap_checkpoint`]).
    pub fn capped(self, now: DateTime<Utc>) -> SourceCheckpoints {
        SourceCheckpoints(
            self.0
                .into_iter()
                .map(|(name, cp)| (name, cap_checkpoint(cp, now)))
                .collect(),
        )
    }

    /// The JSON object to save; `None` when no source has a checkpoint.
    pub fn to_checkpoint(&self) -> Option<Checkpoint> {
        (!self.0.is_empty()).then(|| serde_json::to_string(&self.0).expect("strings serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-01T12:00:00.750Z".parse().unwrap()
    }

    #[test]
    fn a_future_time_is_capped_at_now_in_its_own_offset() {
        assert_eq!(
            cap_checkpoint("2026-12-01T12:30:00Z|7000012,7000019".into(), now()),
            "2026-12-01T12:00:00Z"
        );
        assert_eq!(
            cap_checkpoint("2026-12-01T09:00:00-05:00".into(), now()),
            "2026-12-01T07:00:00-05:00"
        );
    }

    #[test]
    fn a_past_time_and_non_times_are_kept() {
        for kept in [
            "2026-12-01T11:59:59Z|7000012",
            "2026-12-01T06:59:00-05:00",
            "123456",
            "",
            "not a time|1",
        ] {
            assert_eq!(cap_checkpoint(kept.into(), now()), kept);
        }
    }

    #[test]
    fn source_checkpoints_round_trip_and_forget_what_is_unreadable() {
        let mut cps = SourceCheckpoints::parse(r#"{"web":"2026-12-01T13:00:00Z","store":"42"}"#);
        assert_eq!(cps.get("store").map(String::as_str), Some("42"));
        cps.set("pos", "7".into());
        cps.retain(&["web", "pos"]);
        let saved = cps.capped(now()).to_checkpoint().unwrap();
        let again = SourceCheckpoints::parse(&saved);
        assert_eq!(
            again.get("web").map(String::as_str),
            Some("2026-12-01T12:00:00Z")
        );
        assert_eq!(again.get("pos").map(String::as_str), Some("7"));
        assert_eq!(again.get("store"), None);
        for unreadable in ["v9", "[1]", r#"{"web":1}"#, ""] {
            assert_eq!(
                SourceCheckpoints::parse(unreadable),
                SourceCheckpoints::default()
            );
        }
        assert_eq!(SourceCheckpoints::default().to_checkpoint(), None);
    }
}
