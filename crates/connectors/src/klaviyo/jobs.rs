//! Bulk profile import jobs: profiles split into jobs by count and by bytes, each job created,
//! polled with backoff until it is complete, and its per-profile import errors read back as
//! rejected records with the vendor's reason.

use std::ops::Range;
use std::time::Duration;

use audience_core::{ConnectorError, ErrorKind, RecordRejection};
use reqwest::Method;
use tokio::time::Instant;

use super::Inner;
use super::client::{Call, VENDOR, truncate};
use super::wire::{self, ImportErrorsPage, JobDocument, cursor_of};
use crate::http::invalid_response;

/// Profiles per import job (the API's maximum).
pub const MAX_IMPORT_PROFILES: usize = 10_000;
/// Bytes per import job body. The API says 5 MB; [U] whether decimal or binary, so the smaller.
pub const MAX_IMPORT_BYTES: usize = 5_000_000;
/// Bytes per profile. The API says 100 KB; [U] decimal, the smaller reading.
pub const MAX_PROFILE_BYTES: usize = 100_000;

pub(crate) const CREATE_IMPORT: &str = "POST /api/profile-bulk-import-jobs";
pub(crate) const IMPORT_JOB: &str = "GET /api/profile-bulk-import-jobs/{job_id}";
pub(crate) const IMPORT_ERRORS: &str = "GET /api/profile-bulk-import-jobs/{id}/import-errors";

/// Splits items of the given encoded sizes into consecutive runs of at most `max_count` items
/// whose body (`overhead` plus the items plus one separator between two) stays within
/// `max_bytes`. An item too large for any body travels alone (callers refuse those first).
pub fn split_batches(
    sizes: &[usize],
    max_count: usize,
    max_bytes: usize,
    overhead: usize,
) -> Vec<Range<usize>> {
    let max_count = max_count.max(1);
    let mut batches = Vec::new();
    let mut start = 0usize;
    let mut bytes = overhead;
    for (i, size) in sizes.iter().enumerate() {
        let count = i - start;
        let added = size + usize::from(count > 0);
        if count > 0 && (count >= max_count || bytes + added > max_bytes) {
            batches.push(start..i);
            start = i;
            bytes = overhead + size;
        } else {
            bytes += added;
        }
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

/// One profile of an import: its email and its encoded JSON.
pub(crate) struct Encoded<'a> {
    pub email: &'a str,
    pub json: Vec<u8>,
}

impl Inner {
    /// Creates one import job of `profiles` (adding them to `list_id` when given), waits for it
    /// and returns the profiles it refused. Counts the job creation in `write_calls`.
    pub(crate) async fn import_job(
        &self,
        profiles: &[Encoded<'_>],
        list_id: Option<&str>,
    ) -> Result<Vec<RecordRejection>, ConnectorError> {
        let parts: Vec<&[u8]> = profiles.iter().map(|p| p.json.as_slice()).collect();
        let body = wire::import_job_body(&parts, list_id);
        let not_found = list_id.map(Self::list_not_found);
        let mut call = Call::new(
            Method::POST,
            CREATE_IMPORT,
            "/api/profile-bulk-import-jobs".into(),
        )
        .raw_body(body);
        if let Some(meaning) = &not_found {
            call = call.not_found(meaning);
        }
        let created: JobDocument = self.client.json(&call).await?;
        drop(call);
        let job = self.wait_for_job(created).await?;
        let failed = job.data.attributes.failed_count;
        if failed == Some(0) {
            return Ok(Vec::new());
        }
        let sent: Vec<&str> = profiles.iter().map(|p| p.email).collect();
        let rejected = self.import_errors(&job.data.id, &sent).await?;
        if let Some(failed) = failed
            && failed as usize > rejected.len()
        {
            tracing::warn!(
                vendor = VENDOR,
                job = %job.data.id,
                failed,
                named = rejected.len(),
                "import errors name fewer profiles than the job failed"
            );
        }
        Ok(rejected)
    }

    /// Polls the job until it is complete: waits `min_delay`, doubling up to `max_delay`, for at
    /// most `max_wait`.
    async fn wait_for_job(&self, mut job: JobDocument) -> Result<JobDocument, ConnectorError> {
        let id = job.data.id.clone();
        if id.is_empty() || id.contains('/') || id.contains('?') {
            return Err(invalid_response(
                VENDOR,
                CREATE_IMPORT,
                format!("import job id {:?}", truncate(&id, 40)),
            ));
        }
        let deadline = Instant::now() + self.poll.max_wait;
        let mut delay = self.poll.min_delay;
        loop {
            match job.data.attributes.status.as_str() {
                "complete" => return Ok(job),
                "queued" | "processing" => {}
                "cancelled" => {
                    return Err(ConnectorError::new(
                        VENDOR,
                        IMPORT_JOB,
                        ErrorKind::Server,
                        format!(
                            "import job {id} was cancelled by Klaviyo; its profiles are sent again on the next run"
                        ),
                    ));
                }
                other => {
                    return Err(invalid_response(
                        VENDOR,
                        IMPORT_JOB,
                        format!("import job status {:?}", truncate(other, 40)),
                    ));
                }
            }
            if Instant::now() + delay > deadline {
                return Err(ConnectorError::new(
                    VENDOR,
                    IMPORT_JOB,
                    ErrorKind::Server,
                    format!(
                        "import job {id} still {} after {:?}",
                        job.data.attributes.status, self.poll.max_wait
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.poll.max_delay.max(Duration::from_millis(1)));
            let call = Call::new(
                Method::GET,
                IMPORT_JOB,
                format!("/api/profile-bulk-import-jobs/{id}"),
            );
            job = self.client.json(&call).await?;
            if job.data.id != id {
                return Err(invalid_response(
                    VENDOR,
                    IMPORT_JOB,
                    "the answer is about another job",
                ));
            }
        }
    }

    /// Every import error of a job, as rejections of the profiles in `sent` (the job's order).
    async fn import_errors(
        &self,
        job_id: &str,
        sent: &[&str],
    ) -> Result<Vec<RecordRejection>, ConnectorError> {
        let mut rejected = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut call = Call::new(
                Method::GET,
                IMPORT_ERRORS,
                format!("/api/profile-bulk-import-jobs/{job_id}/import-errors"),
            )
            .query("page[size]", "100");
            if let Some(cursor) = &cursor {
                call = call.query("page[cursor]", cursor.clone());
            }
            let page: ImportErrorsPage = self.client.json(&call).await?;
            for error in &page.data {
                let reason = self.client.redact_text(&error.attributes.reason());
                match error.attributes.email(sent) {
                    Some(email) => rejected.push(RecordRejection {
                        email: email.trim().to_lowercase(),
                        reason: truncate(&reason, 300),
                    }),
                    None => tracing::warn!(
                        vendor = VENDOR,
                        job = %job_id,
                        reason = %truncate(&reason, 120),
                        "an import error that names no profile of the job"
                    ),
                }
            }
            cursor = page
                .links
                .and_then(|l| l.next)
                .and_then(|next| cursor_of(&next));
            if cursor.is_none() {
                break;
            }
        }
        rejected.sort_by(|a, b| a.email.cmp(&b.email));
        rejected.dedup_by(|a, b| a.email == b.email);
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_count() {
        let sizes = vec![10; 25_000];
        let batches = split_batches(&sizes, MAX_IMPORT_PROFILES, MAX_IMPORT_BYTES, 100);
        assert_eq!(batches, vec![0..10_000, 10_000..20_000, 20_000..25_000]);
        assert!(split_batches(&[], 10, 100, 0).is_empty());
    }

    #[test]
    fn splits_by_bytes_counting_separators_and_overhead() {
        // overhead 10, items of 30: 10 + 30 + 31 + 31 = 102 > 100, so two to a body (71).
        let batches = split_batches(&[30; 5], 100, 100, 10);
        assert_eq!(batches, vec![0..2, 2..4, 4..5]);
        // Exactly at the limit fits: 10 + 44 + 46 = 100.
        assert_eq!(split_batches(&[44, 45], 100, 100, 10), vec![0..2]);
        assert_eq!(split_batches(&[44, 46], 100, 100, 10), vec![0..1, 1..2]);
        // An oversized item travels alone.
        assert_eq!(
            split_batches(&[5, 500, 5], 100, 100, 10),
            vec![0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn bytes_split_real_profiles_under_five_megabytes() {
        // 10,000 profiles of ~1 KB each exceed 5 MB: bytes, not count, decide.
        let sizes = vec![1_000; 10_000];
        let batches = split_batches(&sizes, MAX_IMPORT_PROFILES, MAX_IMPORT_BYTES, 200);
        assert_eq!(batches.len(), 3);
        for batch in &batches {
            let body = 200 + batch.clone().map(|i| sizes[i] + 1).sum::<usize>() - 1;
            assert!(body <= MAX_IMPORT_BYTES, "{body}");
        }
        // 200 + 4,994 × 1,000 + 4,993 separators = 4,999,193 fits; one more would be 5,000,194.
        assert_eq!(batches[0], 0..4_994);
    }
}
