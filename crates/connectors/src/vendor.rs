//! What the operator needs to know about a vendor, owned by the vendor's connector: its name, the
//! Secret key its credential sits under by default, and how an API base URL is completed from an
//! `endpoint` override or a sandbox. The operator dispatches on its own spec types and asks the
//! connector for these facts, so no vendor knowledge lives above the connectors.

/// A vendor's facts, one `pub const DESCRIPTOR` per connector module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorDescriptor {
    /// The vendor's name in metrics, errors and Events, and the path prefix the sandbox serves
    /// its simulator under (`{sandbox}/{name}`): `shopify`, `lightspeed-x`, `mailchimp`, ...
    pub name: &'static str,
    /// The key of the credentials Secret read when the spec names none.
    pub default_secret_key: &'static str,
    /// What the credential is called in messages ("access token", "API key").
    pub credential_name: &'static str,
    /// The vendor's own API hosts: an exact name, or `*.` and a domain for any host below it.
    /// Credentials may always be sent there over https.
    pub hosts: &'static [&'static str],
}

impl VendorDescriptor {
    /// `host` is one of the vendor's own API hosts.
    pub fn owns_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| host_matches(pattern, host))
    }
}

/// `host` matches `pattern`: the same name (case-insensitive), or below the domain of a
/// `*.domain` pattern (`*.example.com` matches `a.example.com`, not `example.com` or
/// `evil-example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim().to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
        None => host == pattern,
    }
}

/// `base` with `suffix` appended unless it already ends with it (after trimming `/`).
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(suffix) {
        base.to_string()
    } else {
        format!("{base}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_names_and_subdomains_only() {
        assert!(host_matches("a.klaviyo.com", "A.Klaviyo.com"));
        assert!(host_matches("*.myshopify.com", "shop.myshopify.com"));
        assert!(host_matches("*.myshopify.com", "shop.myshopify.com."));
        assert!(!host_matches("*.myshopify.com", "myshopify.com"));
        assert!(!host_matches("*.myshopify.com", "evilmyshopify.com"));
        assert!(!host_matches(
            "*.myshopify.com",
            "shop.myshopify.com.evil.io"
        ));
        assert!(!host_matches("a.klaviyo.com", "b.klaviyo.com"));
    }

    #[test]
    fn a_suffix_is_added_once() {
        assert_eq!(with_suffix("http://h/x/", "/api/2.0"), "http://h/x/api/2.0");
        assert_eq!(
            with_suffix("http://h/x/api/2.0/", "/api/2.0"),
            "http://h/x/api/2.0"
        );
    }
}
