//! What `http::redact` masks in vendor error text, and what it leaves readable.

use audience_connectors::http::redact;

#[test]
fn credential_shaped_values_are_masked() {
    let cases = [
        (
            "Invalid token shpat_0123456789abcdef0123456789abcdef",
            "shpat_",
        ),
        (
            "API key 0123456789abcdef0123456789abcdef-us6 is disabled",
            "0123456789abcdef",
        ),
        (
            "header was Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            "eyJhbGci",
        ),
        (
            "Authorization: Basic YXVkaWVuY2Utb3BlcmF0b3I6c2VjcmV0",
            "YXVkaWVu",
        ),
        (r#"{"apiKey": "rcrm-live-key-42"}"#, "rcrm-live-key-42"),
        ("?access_token=abc123secret&x=1", "abc123secret"),
        ("token=lsx_pt_98765", "lsx_pt_98765"),
        (
            "key 9f8e7d6c5b4a39281706f5e4d3c2b1a0ffeeddcc",
            "9f8e7d6c5b4a",
        ),
    ];
    for (text, secret) in cases {
        let out = redact(text, &[]);
        assert!(!out.contains(secret), "{text:?} → {out:?}");
        assert!(out.contains("***"), "{text:?} → {out:?}");
    }
}

#[test]
fn the_connectors_own_secret_and_its_head_are_masked() {
    let out = redact(
        "bad key plainsecret-us9 (plainsecret)",
        &["plainsecret-us9"],
    );
    assert!(!out.contains("plainsecret"), "{out}");
    let out = redact("denied for lsx-faults-1-2", &["lsx-faults-1-2"]);
    assert!(!out.contains("lsx-faults-1-2"), "{out}");
}

#[test]
fn ordinary_vendor_words_stay_readable() {
    for text in [
        "Invalid Resource: Please provide a valid email address.",
        "customer 0b9a1e2c-7d3f-4e5a-9b6c-1d2e3f4a5b6c not found",
        "Rate limit exceeded",
        "The token has expired",
        "member@example.com looks fake or invalid",
    ] {
        assert_eq!(redact(text, &[]), text);
    }
}
