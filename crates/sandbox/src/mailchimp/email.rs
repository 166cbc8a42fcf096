//! Email addresses as Mailchimp sees them: the subscriber hash, syntax and "looks fake" checks.

use md5::{Digest, Md5};

/// `subscriber_hash`: the hex MD5 of the **lowercased** address (spec: `List_Members.id`, "The MD5
/// hash of the lowercase version of the list member's email address").
pub fn subscriber_hash(email: &str) -> String {
    hex_md5(&email.trim().to_lowercase())
}

pub(crate) fn hex_md5(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `unique_email_id`: "An identifier for the address across all of Mailchimp" — the same for one
/// address in every list, so derived from the address itself.
pub(crate) fn unique_email_id(email: &str) -> String {
    hex_md5(&format!("unique:{}", email.trim().to_lowercase()))[..10].to_string()
}

/// True for a 32-character hex string (what a `subscriber_hash` path segment must be, unless it
/// is an email address: Mailchimp computes the hash itself when given an address).
pub(crate) fn is_md5_hex(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not an email address at all.
    Syntax,
    /// Syntactically fine, but on a reserved or throw-away domain.
    Fake,
}

/// Domains reserved by RFC 2606/6761 (never deliverable) and a few well-known throw-away
/// services; Mailchimp answers "… looks fake or invalid, please enter a real email address." for
/// such addresses (observed for `example.com`, `yopmail.com`, `trash-mail.com` in public issue
/// threads).
const FAKE_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "mailinator.com",
    "yopmail.com",
    "trash-mail.com",
    "guerrillamail.com",
    "10minutemail.com",
];
const FAKE_SUFFIXES: &[&str] = &[".example", ".test", ".invalid", ".localhost", ".local"];

/// Checks an address the way the simulator's Mailchimp does.
pub(crate) fn check(email: &str) -> Result<(), Rejection> {
    if !syntax_ok(email) {
        return Err(Rejection::Syntax);
    }
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let fake = domain == "localhost"
        || FAKE_DOMAINS.contains(&domain.as_str())
        || FAKE_SUFFIXES.iter().any(|s| domain.ends_with(s));
    if fake { Err(Rejection::Fake) } else { Ok(()) }
}

/// A practical address check: one `@`, a sane local part, a dotted domain of LDH labels and an
/// alphabetic top-level domain of at least two letters.
fn syntax_ok(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.contains(['(', ')', '<', '>', ',', ';', ':', '\\', '"', '[', ']'])
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld = labels[labels.len() - 1];
    labels.iter().all(|l| label_ok(l)) && tld.len() >= 2 && tld.chars().all(char::is_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_of_lowercased_address() {
        // md5("urist.mcvankab@freddiesjokes.com"), the example in Mailchimp's docs.
        assert_eq!(
            subscriber_hash("Urist.McVankab@FreddiesJokes.com"),
            "62eeb292278cc15f5817cb78f7790b08"
        );
    }

    #[test]
    fn checks_syntax_and_fake_domains() {
        assert_eq!(check("ada@maplemail.net"), Ok(()));
        assert_eq!(check("ada.b+tag@mail.co.uk"), Ok(()));
        assert_eq!(check("ada@example.com"), Err(Rejection::Fake));
        assert_eq!(check("ada@shop.example"), Err(Rejection::Fake));
        assert_eq!(check("ada@foo.test"), Err(Rejection::Fake));
        assert_eq!(check("ada@x.invalid"), Err(Rejection::Fake));
        assert_eq!(check("ada@localhost"), Err(Rejection::Syntax));
        assert_eq!(check("ada"), Err(Rejection::Syntax));
        assert_eq!(check("ada@@x.com"), Err(Rejection::Syntax));
        assert_eq!(check("a da@x.com"), Err(Rejection::Syntax));
        assert_eq!(check("ada@x"), Err(Rejection::Syntax));
        assert_eq!(check("ada@x.c0m"), Err(Rejection::Syntax));
    }
}
