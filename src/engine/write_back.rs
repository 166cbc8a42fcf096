//! The passes after an AudienceSync's email sync, between a Shopify source and a Mailchimp
//! target: SMS subscribers (`spec.sms`, `audience_core::sms` decides) and new customers from
//! Mailchimp (`spec.writeBack.createCustomers`, `audience_core::new_customers` decides).
//!
//! They run after the email plan was applied to the end (a run stopped early, or one whose
//! email sync failed, does neither), and read both sides whole, once for both passes: every shop
//! customer with their phone and SMS consent (a query of its own) and every live member with its
//! tags, names, opt-in time and SMS fields. That is one more full read per run when either is
//! on; the SMS pass needs a customer's consent *time* and the write-back every shop email, which
//! an incremental change feed does not give.
//!
//! SMS waits (and says so: `smsWaiting`) until the sync's first email sync completed, i.e. the
//! status shows a successful run before this one. A dry run plans both and writes nothing.

use std::collections::{HashMap, HashSet};

use audience_core::{
    AudienceMember, ConsentWriteReport, CustomerCreate, Email, MemberStatus, ShopCustomer,
    SmsCounts, SmsDecision, SmsWrite, decide_sms, plan_customer_creates,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::run::{AudienceJob, RunError, RunOutcome, with_progress};

/// What the after-sync passes did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AfterSyncReport {
    /// SMS is on but waits for the first email sync.
    pub sms_waiting: bool,
    pub sms_counts: SmsCounts,
    /// Customers whose phone is not E.164-able (email, reason).
    pub sms_invalid: Vec<(String, String)>,
    pub sms_planned: Vec<SmsWrite>,
    /// `None` on a dry run or when SMS did not run.
    pub sms_applied: Option<ConsentWriteReport>,
    pub creates_planned: Vec<CustomerCreate>,
    /// `None` on a dry run or when write-back is off.
    pub creates_applied: Option<ConsentWriteReport>,
}

/// The after-sync settings of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterSync {
    /// `spec.sms.since`.
    pub sms_since: Option<DateTime<Utc>>,
    /// The sync's first email sync has completed (a successful run before this one).
    pub email_synced: bool,
    /// `spec.writeBack.createCustomers`.
    pub create_customers: bool,
}

/// Runs the passes the job asks for, recording what they did in `outcome.after_sync`.
pub(super) async fn after_email_sync(
    job: &AudienceJob<'_>,
    outcome: &mut RunOutcome,
) -> Result<(), RunError> {
    let settings = &job.after_sync;
    let sms_since = settings.sms_since.filter(|_| settings.email_synced);
    let mut report = AfterSyncReport {
        sms_waiting: settings.sms_since.is_some() && !settings.email_synced,
        ..Default::default()
    };
    let stopped = outcome.applied.as_ref().is_some_and(|a| a.stopped_early);
    if (sms_since.is_none() && !settings.create_customers) || stopped {
        if report.sms_waiting {
            outcome.after_sync = Some(report);
        }
        return Ok(());
    }
    let [one] = job.sources.as_slice() else {
        return Err(RunError::InvalidMapping(
            "sms and writeBack need exactly one source (a Shopify source)".into(),
        ));
    };
    let source = one.source;
    let mut customers: Vec<ShopCustomer> = Vec::new();
    let mut pages = source.shop_customers();
    while let Some(page) = pages.next().await {
        customers.extend(page.map_err(RunError::Source)?);
    }
    drop(pages);
    let mut members: Vec<AudienceMember> = Vec::new();
    let mut pages = job.target.audience_members();
    while let Some(page) = pages.next().await {
        members.extend(
            page.map_err(RunError::Target)?
                .into_iter()
                .filter(|m| m.status != MemberStatus::Archived),
        );
    }
    drop(pages);
    let control = with_progress(&job.control, job.progress.as_ref());

    if let Some(since) = sms_since {
        let by_email: HashMap<&Email, &AudienceMember> =
            members.iter().map(|m| (&m.email, m)).collect();
        for customer in &customers {
            let Some(email) = customer.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
                continue;
            };
            let member = by_email.get(&email).map(|m| &m.sms);
            let decision = decide_sms(customer, &email, member, since);
            report.sms_counts.add(&decision);
            match decision {
                SmsDecision::Write(w) => report.sms_planned.push(w),
                SmsDecision::Reject(reason) => report
                    .sms_invalid
                    .push((email.as_str().to_string(), reason)),
                SmsDecision::Skip(_) => {}
            }
        }
        if !job.dry_run {
            let applied = if report.sms_planned.is_empty() {
                ConsentWriteReport::default()
            } else {
                job.target
                    .write_sms(&report.sms_planned, &control)
                    .await
                    .map_err(RunError::Target)?
            };
            report.sms_applied = Some(applied);
        }
    }

    if settings.create_customers {
        let Some(creator) = source.customer_creator() else {
            return Err(RunError::InvalidMapping(format!(
                "writeBack.createCustomers: the {} source cannot create customers (needs a Shopify source)",
                source.vendor()
            )));
        };
        let shop_emails: HashSet<Email> = customers
            .iter()
            .filter_map(|c| c.email.as_deref().and_then(|e| Email::parse(e).ok()))
            .collect();
        report.creates_planned =
            plan_customer_creates(&members, job.owner_tag.as_deref(), &shop_emails);
        if !job.dry_run {
            let applied = if report.creates_planned.is_empty() {
                ConsentWriteReport::default()
            } else {
                creator
                    .create_customers(&report.creates_planned, &control)
                    .await
                    .map_err(RunError::Source)?
            };
            report.creates_applied = Some(applied);
        }
    }
    outcome.after_sync = Some(report);
    Ok(())
}
