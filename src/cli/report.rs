//! What `sync` prints: one report per sync, as JSON or as a short human summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::crd::{PendingApproval, PlanReport, RejectedRecord, RunCounts};

/// Rejected records and planned changes shown in text output at most.
const TEXT_SAMPLE: usize = 5;

/// The outcome of one sync.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// `AudienceSync` or `SegmentSync`.
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The source kind as the spec names it (`lightspeedXSeries`, ...).
    pub source: String,
    /// The target kind as the spec names it (`mailchimp`, `klaviyo`).
    pub target: String,
    /// The Mailchimp audience id, or the Klaviyo list (id or name).
    pub audience_id: String,
    /// The Mailchimp static segment or Klaviyo segment list (SegmentSync).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// `upsert`/`mirror` or `exact`/`union`/`subtract`.
    pub mode: String,
    pub dry_run: bool,
    /// The sync succeeded (a dry run: it planned).
    pub ok: bool,
    /// `Synced`, `DryRun`, or why it failed, with the reasons of the `Ready` condition
    /// (`CredentialsMissing`, `AuthFailed`, `SafetyStop`, `CapacityExceeded`, `InvalidSpec`, ...).
    pub outcome: String,
    /// Wall-clock time, e.g. `1.23s`.
    pub duration: String,
    /// What the run did (a dry run: what it would do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<RunCounts>,
    /// A dry run's plan: its counts, a sample of the changes and the id of what it removes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanReport>,
    /// Up to 20 refused records (invalid emails, records the target rejected).
    pub rejected: Vec<RejectedRecord>,
    /// A stop was requested (ctrl-c) and the run ended at a safe point before finishing.
    pub stopped_early: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A safety stop: the plan waiting for approval (`--approve <planId>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// Records read from each source of a multi-source sync, before merging per email.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_reads: Vec<(String, u64)>,
    /// OrderSync: the order cursor the run reached (kept in the `--state` file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// OrderSync into events: the accepted ids to keep in the state file (not printed).
    #[serde(skip)]
    pub sent_events: Option<audience_core::SentLedger>,
    /// OrderSync into a Mailchimp store: when this run synced the shop's promo codes (kept in
    /// the state file, not printed).
    #[serde(skip)]
    pub promo_codes_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// OrderSync: what the status conditions besides `Ready` would say (e.g. the time zones
    /// differ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Where each credential came from: `source`/`target` → `Secret NAME` or `$VARIABLE`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials_from: BTreeMap<String, String>,
}

/// What `sync --output json` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Every sync succeeded.
    pub ok: bool,
    pub dry_run: bool,
    /// The sandbox every call went to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    pub syncs: Vec<SyncReport>,
}

impl SyncReport {
    /// Members created, updated, adopted, archived and segment memberships changed (what a rerun should
    /// find nothing left of).
    pub fn changes(&self) -> u64 {
        self.counts.map_or(0, |c| {
            c.created
                + c.updated
                + c.adopted
                + c.archived
                + c.segment_added
                + c.segment_removed
                + c.events.total()
                + c.consent_written_back
        })
    }

    /// `lightspeedXSeries → Mailchimp audience a1b2c3d4e5 (mirror)`.
    pub fn describe(&self) -> String {
        if self.mode == "orders" {
            if self.target == "mailchimp" {
                return format!("{} orders → Mailchimp e-commerce store", self.source);
            }
            return format!("{} orders → {} events", self.source, self.target);
        }
        let (audience, segment) = match self.target.as_str() {
            "klaviyo" => ("Klaviyo list", "segment list"),
            _ => ("Mailchimp audience", "segment"),
        };
        match &self.segment {
            Some(name) => format!(
                "{} → {audience} {}, {segment} {name:?} ({})",
                self.source, self.audience_id, self.mode
            ),
            None => format!(
                "{} → {audience} {} ({})",
                self.source, self.audience_id, self.mode
            ),
        }
    }

    /// One line of counts: `created 3, updated 2, ...` (or `would create ...` on a dry run).
    pub fn counts_line(&self) -> Option<String> {
        let c = self.counts?;
        if self.mode == "orders" {
            let e = c.events;
            let s = c.orders_skipped;
            if self.target == "mailchimp" {
                // A store keeps orders, not events: the per-kind counts are orders and parts.
                return Some(format!(
                    "{} {} orders ({} lines); refunds {}, fulfilments {}; skipped {} orders (no email {}, zero value {}, invalid email {}, not completed {}, cancelled {}), rejected {}",
                    if self.dry_run {
                        "would create"
                    } else {
                        "created"
                    },
                    e.placed_order,
                    e.ordered_product,
                    e.refunded_order,
                    e.fulfilled_order,
                    c.skipped,
                    s.no_email,
                    s.zero_value,
                    s.invalid_email,
                    s.not_completed,
                    s.cancelled,
                    c.rejected
                ));
            }
            return Some(format!(
                "{} {} events: placed order {}, ordered product {}, refunded order {}, fulfilled order {}; skipped {} orders (no email {}, zero value {}, invalid email {}, not completed {}, cancelled {}), rejected {}",
                if self.dry_run { "would send" } else { "sent" },
                e.total(),
                e.placed_order,
                e.ordered_product,
                e.refunded_order,
                e.fulfilled_order,
                c.skipped,
                s.no_email,
                s.zero_value,
                s.invalid_email,
                s.not_completed,
                s.cancelled,
                c.rejected
            ));
        }
        if self.mode == "subtract" {
            // Subtracting plans nothing for the audience: only the segment changes.
            return Some(format!(
                "segment: {} {}",
                if self.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                c.segment_removed
            ));
        }
        let mut line = if self.dry_run {
            format!(
                "would create {}, update {}, archive {}, unsubscribe {}",
                c.created, c.updated, c.archived, c.unsubscribed
            )
        } else {
            format!(
                "created {}, updated {}, archived {}, unsubscribed {}",
                c.created, c.updated, c.archived, c.unsubscribed
            )
        };
        let _ = write!(
            line,
            "; unchanged {}, skipped {}, rejected {}",
            c.unchanged, c.skipped, c.rejected
        );
        if self.segment.is_some() {
            let verb = if self.dry_run { "would add" } else { "added" };
            let _ = write!(
                line,
                "; segment: {verb} {}, {} {}",
                c.segment_added,
                if self.dry_run { "remove" } else { "removed" },
                c.segment_removed
            );
        }
        if c.adopted + c.not_managed > 0 {
            // Mirror removes only what the sync manages: say what it took over and left alone.
            let _ = write!(
                line,
                "\n  ownership: {} {} (given the sync's owner tag), {} not managed (left alone)",
                if self.dry_run {
                    "would adopt"
                } else {
                    "adopted"
                },
                c.adopted,
                c.not_managed
            );
        }
        if c.drift > 0 {
            let _ = write!(
                line,
                "\n  drift: {} changed in the target behind the sync's back, set back to the source",
                c.drift
            );
        }
        let two_way = c.two_way_note();
        if !two_way.is_empty() {
            let _ = write!(line, "\n  {two_way}");
        }
        if c.consent_by_rule > 0 {
            // The merchant should see who became a non-subscriber, and why.
            let _ = write!(
                line,
                "\n  consent: {} decided by consentPolicy.whenSourceCannotOptIn (the source records opt-outs only)",
                c.consent_by_rule
            );
        }
        Some(line)
    }

    /// The human summary of this sync. `file` names the manifest in the approval hint.
    pub fn render_text(&self, file: &str) -> String {
        let mut out = String::new();
        let status = if self.ok {
            if self.dry_run {
                "planned (dry run, nothing written)".to_string()
            } else if self.stopped_early {
                "stopped early at a safe point".to_string()
            } else {
                "synced".to_string()
            }
        } else if self.outcome == "SafetyStop" {
            "STOPPED by the safety limit; nothing was written".to_string()
        } else {
            format!("FAILED ({})", self.outcome)
        };
        let _ = writeln!(
            out,
            "{} {}: {status} in {}",
            self.kind, self.name, self.duration
        );
        let _ = writeln!(out, "  {}", self.describe());
        if !self.credentials_from.is_empty() {
            let from: Vec<String> = self
                .credentials_from
                .iter()
                .map(|(role, origin)| format!("{role} from {origin}"))
                .collect();
            let _ = writeln!(out, "  credentials: {}", from.join(", "));
        }
        // A subtract reads the source segment only to remove its members from the target segment;
        // it plans nothing for the audience, so there are no audience counts to show.
        if let Some(c) = self.counts
            && self.mode == "orders"
        {
            let _ = writeln!(out, "  read {} orders", c.source);
            for note in &self.notes {
                let _ = writeln!(out, "  note: {note}");
            }
        } else if let Some(c) = self.counts
            && self.mode != "subtract"
        {
            if self.source_reads.is_empty() {
                let _ = writeln!(
                    out,
                    "  read {} source customers; the audience had {} members",
                    c.source, c.target
                );
            } else {
                let reads: Vec<String> = self
                    .source_reads
                    .iter()
                    .map(|(name, n)| format!("{n} from {name}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "  read records ({}), merged per email into {} customers; the audience had {} members",
                    reads.join(", "),
                    c.source,
                    c.target
                );
            }
        }
        if let Some(line) = self.counts_line() {
            let _ = writeln!(out, "  {line}");
        }
        if let Some(plan) = &self.plan {
            if let Some(id) = &plan.plan_id {
                let _ = writeln!(out, "  plan id (of its removals): {id}");
            }
            if !plan.sample.is_empty() {
                let _ = writeln!(out, "  planned changes (sample):");
                for change in plan.sample.iter().take(TEXT_SAMPLE) {
                    let fields = if change.fields.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", change.fields.join(", "))
                    };
                    let _ = writeln!(out, "    {:<13} {}{fields}", change.action, change.email);
                }
                let total = plan.counts.created
                    + plan.counts.updated
                    + plan.counts.archived
                    + plan.counts.segment_added
                    + plan.counts.segment_removed;
                let shown = plan.sample.len().min(TEXT_SAMPLE) as u64;
                if total > shown {
                    let _ = writeln!(out, "    … and {} more", total - shown);
                }
            }
        }
        if !self.rejected.is_empty() {
            let total = self
                .counts
                .map_or(self.rejected.len() as u64, |c| c.rejected);
            let _ = writeln!(out, "  rejected records (sample of {total}):");
            for r in self.rejected.iter().take(TEXT_SAMPLE) {
                let _ = writeln!(out, "    {}: {}", r.email, r.reason);
            }
        }
        if let Some(c) = self.counts
            && c.skipped > 0
            && self.mode != "orders"
        {
            let _ = writeln!(
                out,
                "  skipped {} records: duplicate emails (the last edited wins), members who unsubscribed or bounced in the target (never resubscribed by a sync), addresses the source marks undeliverable, or records the target refused before and the source has not changed since",
                c.skipped
            );
        }
        if let Some(approval) = &self.pending_approval {
            let _ = writeln!(
                out,
                "  the plan would remove {} of {} members ({:.1}%), above the limit of {:.1}%",
                approval.removals, approval.audience, approval.percent, approval.limit_percent
            );
            let _ = writeln!(out, "  plan id: {}", approval.plan_id);
            let _ = writeln!(
                out,
                "  to let exactly this plan go ahead: audience-operator sync -f {file} --approve {}",
                approval.plan_id
            );
            let _ = writeln!(
                out,
                "  (in a cluster: kubectl annotate {} {} {}={} --overwrite)",
                self.kind.to_lowercase(),
                self.name,
                crate::crd::APPROVE_PLAN_ANNOTATION,
                approval.plan_id
            );
        } else if let Some(error) = &self.error {
            let _ = writeln!(out, "  error: {error}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SyncReport {
        SyncReport {
            kind: "AudienceSync".into(),
            name: "x".into(),
            source: "lightspeedXSeries".into(),
            audience_id: "demo".into(),
            mode: "mirror".into(),
            ok: true,
            outcome: "Synced".into(),
            duration: "0.50s".into(),
            counts: Some(RunCounts {
                source: 10,
                target: 2,
                created: 8,
                skipped: 2,
                ..RunCounts::default()
            }),
            ..SyncReport::default()
        }
    }

    #[test]
    fn text_summarises_counts() {
        let text = report().render_text("f.yaml");
        assert!(
            text.starts_with("AudienceSync x: synced in 0.50s\n"),
            "{text}"
        );
        assert!(text.contains("read 10 source customers; the audience had 2 members"));
        assert!(text.contains(
            "created 8, updated 0, archived 0, unsubscribed 0; unchanged 0, skipped 2, rejected 0"
        ));
        assert!(text.contains("skipped 2 records"));
        assert_eq!(report().changes(), 8);
    }

    #[test]
    fn a_safety_stop_says_how_to_approve() {
        let mut r = report();
        r.ok = false;
        r.outcome = "SafetyStop".into();
        r.counts = None;
        r.error = Some("safety stop: ...".into());
        r.pending_approval = Some(PendingApproval {
            plan_id: "00ff".into(),
            removals: 40,
            audience: 100,
            percent: 40.0,
            limit_percent: 10.0,
        });
        let text = r.render_text("examples/a.yaml");
        assert!(text.contains("STOPPED by the safety limit"), "{text}");
        assert!(text.contains("remove 40 of 100 members (40.0%), above the limit of 10.0%"));
        assert!(text.contains("audience-operator sync -f examples/a.yaml --approve 00ff"));
        assert!(text.contains("sync.audience-operator.io/approve-plan=00ff"));
    }

    #[test]
    fn dry_runs_say_would() {
        let mut r = report();
        r.dry_run = true;
        r.segment = Some("VIP".into());
        let line = r.counts_line().unwrap();
        assert!(line.starts_with("would create 8"), "{line}");
        assert!(line.ends_with("segment: would add 0, remove 0"), "{line}");
    }

    #[test]
    fn ownership_says_what_mirror_adopted_and_left_alone() {
        let mut r = report();
        assert!(!r.counts_line().unwrap().contains("ownership"));
        r.counts = Some(RunCounts {
            adopted: 3,
            not_managed: 1000,
            ..RunCounts::default()
        });
        let line = r.counts_line().unwrap();
        assert!(
            line.ends_with(
                "ownership: adopted 3 (given the sync's owner tag), 1000 not managed (left alone)"
            ),
            "{line}"
        );
        assert_eq!(r.changes(), 3);
    }
}
