//! Scopes of private keys: each route needs the scopes the spec's `x-klaviyo-scopes` lists for
//! its operation, and a key created with fewer is answered 403 `permission_denied`. A key the
//! test gave no scopes has every scope (Klaviyo's "full access" key). [U] A `:write` scope
//! grants the matching `:read` too, as Klaviyo's "full access" per area does in its key editor;
//! the wording of the error detail is the simulator's.

use std::collections::BTreeSet;

/// The scopes each route needs, from the spec's `x-klaviyo-scopes`.
pub const SCOPES: &[(&str, &str, &[&str])] = &[
    ("GET", "/api/profiles", &["profiles:read"]),
    ("POST", "/api/profiles", &["profiles:write"]),
    ("GET", "/api/profiles/{id}", &["profiles:read"]),
    ("PATCH", "/api/profiles/{id}", &["profiles:write"]),
    ("POST", "/api/profile-import", &["profiles:write"]),
    (
        "GET",
        "/api/profile-bulk-import-jobs",
        &["lists:read", "profiles:read"],
    ),
    (
        "POST",
        "/api/profile-bulk-import-jobs",
        &["lists:write", "profiles:write"],
    ),
    (
        "GET",
        "/api/profile-bulk-import-jobs/{job_id}",
        &["lists:read", "profiles:read"],
    ),
    (
        "GET",
        "/api/profile-bulk-import-jobs/{id}/import-errors",
        &["profiles:read"],
    ),
    ("GET", "/api/lists", &["lists:read"]),
    ("POST", "/api/lists", &["lists:write"]),
    ("GET", "/api/lists/{id}", &["lists:read"]),
    (
        "GET",
        "/api/lists/{id}/profiles",
        &["lists:read", "profiles:read"],
    ),
    (
        "POST",
        "/api/lists/{id}/relationships/profiles",
        &["lists:write", "profiles:write"],
    ),
    (
        "DELETE",
        "/api/lists/{id}/relationships/profiles",
        &["lists:write", "profiles:write"],
    ),
    (
        "POST",
        "/api/profile-subscription-bulk-create-jobs",
        &["lists:write", "profiles:write", "subscriptions:write"],
    ),
    (
        "POST",
        "/api/profile-subscription-bulk-delete-jobs",
        &["lists:write", "profiles:write", "subscriptions:write"],
    ),
    ("GET", "/api/segments", &["segments:read"]),
    ("GET", "/api/segments/{id}", &["segments:read"]),
    (
        "GET",
        "/api/segments/{id}/profiles",
        &["profiles:read", "segments:read"],
    ),
    ("POST", "/api/events", &["events:write"]),
    ("POST", "/api/event-bulk-create-jobs", &["events:write"]),
    ("GET", "/api/metrics", &["metrics:read"]),
    ("GET", "/api/metrics/{id}", &["metrics:read"]),
    ("GET", "/api/accounts", &["accounts:read"]),
    ("GET", "/api/accounts/{id}", &["accounts:read"]),
];

/// The scopes of `operation` that `granted` lacks (none for a route the table does not list).
pub fn missing(granted: &BTreeSet<String>, operation: (&str, &str)) -> Vec<&'static str> {
    let Some((_, _, needed)) = SCOPES
        .iter()
        .find(|(method, path, _)| *method == operation.0 && *path == operation.1)
    else {
        return Vec::new();
    };
    needed
        .iter()
        .copied()
        .filter(|scope| {
            let write = scope.replace(":read", ":write");
            !granted.contains(*scope) && !granted.contains(&write)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_served_has_its_scopes_and_write_implies_read() {
        for (method, path, _) in super::super::ROUTES {
            let entry = SCOPES.iter().find(|(m, p, _)| m == method && p == path);
            assert!(
                entry.is_some_and(|(_, _, s)| !s.is_empty()),
                "{method} {path}"
            );
        }
        let granted: BTreeSet<String> = ["profiles:write".to_string()].into();
        assert!(missing(&granted, ("GET", "/api/profiles")).is_empty());
        assert_eq!(
            missing(&granted, ("POST", "/api/profile-bulk-import-jobs")),
            ["lists:write"]
        );
    }
}
