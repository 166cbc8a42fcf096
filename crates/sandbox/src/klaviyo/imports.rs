//! Bulk profile import: `POST /api/profile-bulk-import-jobs` (≤10,000 profiles, ≤5 MB, ≤100 KB a
//! profile, optional `relationships.lists`; 202), `GET /api/profile-bulk-import-jobs[/{job_id}]`,
//! `GET /api/profile-bulk-import-jobs/{id}/import-errors`.
//!
//! A job is `queued` when created and moves one stage on each time it is read
//! (`queued → processing → complete`), so tests follow its life without sleeping; its profiles
//! and list memberships are applied when it completes ([`super::Klaviyo::complete_jobs`] completes
//! every job at once). [U] Klaviyo processes jobs on its own schedule.
//!
//! [U] Schema errors (unknown members, a wrong `type`, limits) refuse the whole request (400/413);
//! a profile that is over 100 KB, has an invalid email or phone, or no identifier becomes an
//! import error of the job instead, with a pointer into the request.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::Klaviyo;
use super::error::ApiError;
use super::jsonapi::{self, Base, Query, opt_time, time};
use super::state::{ImportError, ImportJob, JobStatus};

pub const MAX_IMPORT_PROFILES: usize = 10_000;
pub const MAX_IMPORT_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_IMPORT_PROFILE_BYTES: usize = 100 * 1024;

pub fn render(job: &ImportJob, base: &Base) -> Value {
    let link = base.url(&format!("/api/profile-bulk-import-jobs/{}/", job.id));
    json!({
        "type": "profile-bulk-import-job",
        "id": job.id,
        "attributes": {
            "status": job.status.as_str(),
            "created_at": time(job.created_at),
            "total_count": job.total_count,
            "completed_count": job.completed_count,
            "failed_count": job.failed_count,
            "completed_at": opt_time(job.completed_at),
            "expires_at": time(job.created_at + chrono::Duration::days(7)),
            "started_at": opt_time(job.started_at),
        },
        "relationships": {
            "lists": {"data": job.lists.iter().map(|l| json!({"type": "list", "id": l})).collect::<Vec<_>>(),
                      "links": {"self": format!("{link}relationships/lists/"), "related": format!("{link}lists/")}},
            "profiles": {"links": {"self": format!("{link}relationships/profiles/"), "related": format!("{link}profiles/")}},
            "import-errors": {"links": {"self": format!("{link}relationships/import-errors/"), "related": format!("{link}import-errors/")}},
        },
        "links": {"self": link},
    })
}

/// A per-profile failure found while reading the request.
fn import_error(index: usize, e: &ApiError, payload: &Value) -> ImportError {
    let pointer = match &e.source {
        Some(super::error::Source::Pointer(p)) => p.clone(),
        _ => format!("/data/attributes/profiles/data/{index}"),
    };
    ImportError {
        id: String::new(),
        code: e.code.to_string(),
        title: e.title.to_string(),
        detail: e.detail.clone(),
        pointer,
        original_payload: payload.clone(),
    }
}

pub async fn create_job(
    State(sim): State<Klaviyo>,
    base: Base,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > MAX_IMPORT_BYTES {
        return Err(ApiError::too_large(format!(
            "The payload is {} bytes; at most {MAX_IMPORT_BYTES} are allowed.",
            body.len()
        )));
    }
    let doc = jsonapi::parse_body(&body)?;
    let data = jsonapi::data_object(
        &doc,
        "profile-bulk-import-job",
        &["type", "attributes", "relationships"],
    )?;
    let attrs = jsonapi::object(data.required("attributes")?, "/data/attributes")?;
    attrs.only(&["profiles"])?;
    let profiles = jsonapi::object(attrs.required("profiles")?, "/data/attributes/profiles")?;
    profiles.only(&["data"])?;
    let items = profiles.array("data")?;
    if items.is_empty() {
        return Err(ApiError::invalid(
            "/data/attributes/profiles/data",
            "At least one profile is required.",
        ));
    }
    if items.len() > MAX_IMPORT_PROFILES {
        return Err(ApiError::invalid(
            "/data/attributes/profiles/data",
            format!(
                "At most {MAX_IMPORT_PROFILES} profiles may be imported per job; got {}.",
                items.len()
            ),
        ));
    }
    let lists = match data.get("relationships") {
        None => Vec::new(),
        Some(rel) => {
            let rel = jsonapi::object(rel, "/data/relationships")?;
            rel.only(&["lists"])?;
            let lists = jsonapi::object(rel.required("lists")?, "/data/relationships/lists")?;
            lists.only(&["data"])?;
            lists
                .array("data")?
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let ptr = format!("/data/relationships/lists/data/{i}");
                    let obj = jsonapi::object(item, &ptr)?;
                    obj.only(&["type", "id"])?;
                    obj.resource_type("list")?;
                    obj.req_str("id")
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("/data/attributes/profiles/data/{i}");
        let obj = jsonapi::object(item, &ptr)?;
        obj.only(&["type", "id", "attributes", "meta"])?;
        obj.resource_type("profile")?;
        if obj.get("meta").is_some() || obj.get("id").is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                obj.at(if obj.get("meta").is_some() {
                    "meta"
                } else {
                    "id"
                }),
                "Profile ids and meta in bulk import jobs are not simulated [U].",
            ));
        }
        let attrs_ptr = format!("{ptr}/attributes");
        let attrs = jsonapi::object(obj.required("attributes")?, &attrs_ptr)?;
        // Unknown attributes are a schema error of the whole request.
        let allowed: Vec<&str> = jsonapi::PROFILE_ATTRIBUTES
            .iter()
            .chain(&["_kx"])
            .copied()
            .collect();
        attrs.only(&allowed)?;
        let size = item.to_string().len();
        if size > MAX_IMPORT_PROFILE_BYTES {
            let e = ApiError::too_large(format!(
                "The profile is {size} bytes; at most {MAX_IMPORT_PROFILE_BYTES} are allowed."
            ));
            errors.push(import_error(i, &e, &Value::Null));
            continue;
        }
        match jsonapi::profile_attributes(attrs, &["_kx"]) {
            Ok(input) if input.has_identifier() => pending.push(input),
            Ok(_) => errors.push(import_error(
                i,
                &ApiError::invalid(
                    &attrs_ptr,
                    "One of 'email', 'phone_number' or 'external_id' is required.",
                ),
                item,
            )),
            Err(e) => errors.push(import_error(i, &e, item)),
        }
    }
    let mut state = sim.lock();
    if let Some(missing) = lists.iter().position(|l| !state.lists.contains_key(l)) {
        return Err(ApiError::invalid(
            format!("/data/relationships/lists/data/{missing}/id"),
            format!("A list with id {} does not exist.", lists[missing]),
        ));
    }
    let id = state.job_id();
    for error in &mut errors {
        error.id = state.job_id();
    }
    let now = state.now();
    let job = ImportJob {
        id: id.clone(),
        status: JobStatus::Queued,
        created_at: now,
        started_at: None,
        completed_at: None,
        total_count: items.len(),
        completed_count: 0,
        failed_count: errors.len(),
        pending,
        lists,
        errors,
        profile_ids: Vec::new(),
    };
    state.import_jobs.insert(id.clone(), job);
    if state.job_stage_polls == 0 {
        state.complete_job(&id);
    }
    let job = state.import_jobs[&id].clone();
    drop(state);
    let doc = render(&job, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::ACCEPTED,
        json!({"data": doc, "links": {"self": link}}),
    ))
}

pub async fn get_job(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(job_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(raw.as_deref(), &["fields[profile-bulk-import-job]"])?;
    let mut state = sim.lock();
    if !state.import_jobs.contains_key(&job_id) {
        return Err(no_job(&job_id));
    }
    let job = state.import_jobs[&job_id].clone();
    // The answer shows the stage the job had; the read moves it on for the next one.
    state.advance_job(&job_id);
    drop(state);
    let doc = render(&job, &base);
    let link = doc["links"]["self"].clone();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": doc, "links": {"self": link}}),
    ))
}

fn no_job(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "A profile bulk import job with id {id} does not exist."
    ))
}

pub async fn get_jobs(
    State(sim): State<Klaviyo>,
    base: Base,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        raw.as_deref(),
        &[
            "fields[profile-bulk-import-job]",
            "page[cursor]",
            "page[size]",
        ],
    )?;
    let size = query.page_size(20, 100)?;
    let jobs: Vec<(String, ImportJob)> = sim
        .lock()
        .import_jobs
        .values()
        .map(|j| (j.id.clone(), j.clone()))
        .collect();
    let (chunk, links) =
        jsonapi::page(&jobs, &query, size, &base, "/api/profile-bulk-import-jobs")?;
    let data: Vec<Value> = chunk.iter().map(|j| render(j, &base)).collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}

pub async fn get_errors(
    State(sim): State<Klaviyo>,
    base: Base,
    Path(job_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        raw.as_deref(),
        &["fields[import-error]", "page[cursor]", "page[size]"],
    )?;
    let size = query.page_size(20, 100)?;
    let job = sim
        .lock()
        .import_jobs
        .get(&job_id)
        .cloned()
        .ok_or_else(|| no_job(&job_id))?;
    let mut errors: Vec<(String, ImportError)> = job
        .errors
        .iter()
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    errors.sort_by(|a, b| a.0.cmp(&b.0));
    let path = format!("/api/profile-bulk-import-jobs/{job_id}/import-errors");
    let (chunk, links) = jsonapi::page(&errors, &query, size, &base, &path)?;
    let data: Vec<Value> = chunk
        .iter()
        .map(|e| {
            json!({
                "type": "import-error",
                "id": e.id,
                "attributes": {
                    "code": e.code,
                    "title": e.title,
                    "detail": e.detail,
                    "source": {"pointer": e.pointer},
                    "original_payload": if e.original_payload.is_null() { Value::Null } else { e.original_payload.clone() },
                },
            })
        })
        .collect();
    Ok(jsonapi::respond(
        StatusCode::OK,
        json!({"data": data, "links": links}),
    ))
}
