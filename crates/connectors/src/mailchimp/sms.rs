//! The SMS and write-back passes' side of Mailchimp: every live member with its tags, names,
//! `timestamp_opt` and SMS fields, and writes of the SMS fields alone.
//!
//! The SMS member fields (`sms_phone_number`, `sms_subscription_status`, one of `subscribed`,
//! `unsubscribed`, `nonsubscribed`, `pending`) are newer than the stored 3.0.55 spec; they are
//! taken from Mailchimp's current member schema as its official client libraries carry it.
//! **[U]**: that a `PATCH` carrying only them leaves the email `status` unchanged (the API treats
//! absent fields as unchanged on `PATCH`, and the channels are separate in the app).
//!
//! Why one `PATCH /lists/{id}/members/{hash}` per member instead of batch subscribe: the batch
//! body (`members[]`) is the email-subscribe operation and requires each member's email
//! `status`; a PATCH says only what changes. SMS writes are few (new SMS subscribers since the
//! last pass), and they go `write_concurrency` at a time through the key's budget.

use audience_core::{
    ApplyControl, AudienceMember, ConnectorError, ConsentWriteReport, Email, MemberSms,
    MemberSmsStatus, SmsChange, SmsWrite,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Inner;
use super::client::{Call, VENDOR, truncate};
use super::read::{MEMBERS, PAGE_SIZE, paged};
use super::wire::{self, MemberProblem};
use super::write::MemberOutcome;
use crate::http::invalid_response;

const PATCH_MEMBER: &str = "PATCH /lists/{list_id}/members/{subscriber_hash}";

#[derive(Deserialize)]
struct Page {
    members: Vec<SmsMember>,
    total_items: u64,
}

#[derive(Deserialize)]
struct SmsMember {
    #[serde(flatten)]
    member: wire::WireMember,
    #[serde(default)]
    sms_phone_number: Option<String>,
    #[serde(default)]
    sms_subscription_status: Option<String>,
}

fn sms_status(word: &str) -> Result<Option<MemberSmsStatus>, String> {
    Ok(Some(match word {
        "" => return Ok(None),
        "subscribed" => MemberSmsStatus::Subscribed,
        "unsubscribed" => MemberSmsStatus::Unsubscribed,
        "nonsubscribed" => MemberSmsStatus::NonSubscribed,
        "pending" => MemberSmsStatus::Pending,
        other => {
            return Err(format!(
                "sms_subscription_status {:?} is not one the API defines",
                truncate(other, 40)
            ));
        }
    }))
}

fn text(value: Option<&audience_core::FieldValue>) -> String {
    match value {
        Some(audience_core::FieldValue::Text(s)) => s.clone(),
        _ => String::new(),
    }
}

impl Inner {
    pub(crate) fn audience_members(
        &self,
    ) -> BoxStream<'_, Result<Vec<AudienceMember>, ConnectorError>> {
        paged(self.read_ahead, move |offset| {
            Box::pin(async move { self.audience_page(offset).await })
        })
    }

    async fn audience_page(
        &self,
        offset: u64,
    ) -> Result<(Vec<AudienceMember>, u64), ConnectorError> {
        let not_found = self.list_not_found();
        let call = Call::new(Method::GET, MEMBERS, format!("{}/members", self.list_path()))
            .query("count", PAGE_SIZE.to_string())
            .query("offset", offset.to_string())
            .query(
                "fields",
                "members.email_address,members.status,members.merge_fields,members.tags,members.timestamp_opt,members.sms_phone_number,members.sms_subscription_status,total_items",
            )
            .not_found(&not_found);
        let page: Page = self.client.json(&call).await?;
        let mut out = Vec::with_capacity(page.members.len());
        for m in page.members {
            let status = sms_status(m.sms_subscription_status.as_deref().unwrap_or(""))
                .map_err(|e| invalid_response(VENDOR, MEMBERS, e))?;
            let phone = m.sms_phone_number.filter(|p| !p.trim().is_empty());
            let opted_in_at = wire::timestamp(m.member.timestamp_opt.as_deref());
            match m.member.into_member(None) {
                Ok(member) => out.push(AudienceMember {
                    first_name: text(member.fields.get("FNAME")),
                    last_name: text(member.fields.get("LNAME")),
                    email: member.email,
                    status: member.status,
                    tags: member.tags.into_iter().collect(),
                    opted_in_at,
                    sms: MemberSms { phone, status },
                }),
                // The email sync reports these; the SMS pass cannot address them either.
                Err(MemberProblem::InvalidEmail) => {}
                Err(MemberProblem::UnknownStatus(word)) => {
                    return Err(invalid_response(
                        VENDOR,
                        MEMBERS,
                        format!(
                            "member status {:?} is not one the API defines",
                            truncate(&word, 40)
                        ),
                    ));
                }
            }
        }
        Ok((out, page.total_items))
    }

    async fn write_one<'w>(
        &self,
        w: &'w SmsWrite,
    ) -> Result<(&'w Email, MemberOutcome), ConnectorError> {
        let body: Value = match &w.change {
            SmsChange::Subscribe { phone } => {
                json!({"sms_phone_number": phone, "sms_subscription_status": "subscribed"})
            }
            SmsChange::Unsubscribe => json!({"sms_subscription_status": "unsubscribed"}),
        };
        let call = Call::new(
            Method::PATCH,
            PATCH_MEMBER,
            format!(
                "{}/members/{}",
                self.list_path(),
                wire::subscriber_hash(w.email.as_str())
            ),
        )
        .json(&body)?;
        let outcome = self
            .member_call(&call, w.email.as_str(), "writing SMS fields")
            .await?;
        Ok((&w.email, outcome))
    }

    pub(crate) async fn write_sms(
        &self,
        writes: &[SmsWrite],
        control: &ApplyControl,
    ) -> Result<ConsentWriteReport, ConnectorError> {
        let mut report = ConsentWriteReport::default();
        let total = writes.len() as u64;
        // Boxed and collected first: a lazily mapped iterator of borrowing futures trips the
        // compiler's higher-ranked lifetime check inside `async_trait`.
        type Written<'w> = Result<(&'w Email, MemberOutcome), ConnectorError>;
        let calls: Vec<futures::future::BoxFuture<'_, Written<'_>>> = writes
            .iter()
            .map(|w| Box::pin(self.write_one(w)) as _)
            .collect();
        let mut results = futures::stream::iter(calls).buffer_unordered(self.write_concurrency);
        while let Some(result) = results.next().await {
            let (email, outcome) = result?;
            report.write_calls += 1;
            match outcome {
                MemberOutcome::Done => report.written += 1,
                MemberOutcome::Absent => report.rejected.push(audience_core::RecordRejection {
                    email: email.as_str().to_string(),
                    reason: "not a member of the audience (SMS fields not written)".into(),
                }),
                MemberOutcome::Rejected(r) => report.rejected.push(r),
            }
            control.report(report.written + report.rejected.len() as u64, total);
            if control.stop_requested() {
                report.stopped_early = true;
                break;
            }
        }
        Ok(report)
    }
}
