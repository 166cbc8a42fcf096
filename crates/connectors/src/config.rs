//! Checks every connector makes on its configuration before the first call, with errors that
//! never echo a secret.

use audience_core::{ConnectorError, ErrorKind};

/// A configuration the connector cannot work with (bad id, bad URL, bad tunable).
pub fn invalid_config(vendor: &'static str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(vendor, "configuration", ErrorKind::InvalidConfig, message)
}

/// Credentials unusable as given (empty, spaces, a malformed key), found before any call.
pub fn invalid_credentials(vendor: &'static str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(
        vendor,
        "credentials",
        ErrorKind::InvalidCredentials,
        message,
    )
}

/// The secret, trimmed, or why it is unusable: empty, or with inner spaces or control characters
/// (a pasted value with a line break, two values in one key). The message names `what` (e.g.
/// "access token"), never the value.
pub fn checked_secret(
    vendor: &'static str,
    what: &str,
    secret: &str,
) -> Result<String, ConnectorError> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(invalid_credentials(vendor, format!("the {what} is empty")));
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid_credentials(
            vendor,
            format!("the {what} contains spaces or control characters"),
        ));
    }
    Ok(secret.to_string())
}

/// An http(s) URL with a host, without a trailing `/`.
pub fn checked_base_url(vendor: &'static str, base_url: &str) -> Result<String, ConnectorError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(trimmed.to_string())
        }
        _ => Err(invalid_config(
            vendor,
            format!(
                "base URL {:?} is not an http(s) URL",
                crate::http::truncate(trimmed, 80)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_without_being_echoed() {
        assert_eq!(checked_secret("v", "token", "  abc \n").unwrap(), "abc");
        for bad in ["", "   ", "ab cd", "ab\u{7}cd"] {
            let err = checked_secret("v", "token", bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidCredentials);
            if bad.trim().len() > 2 {
                assert!(!err.to_string().contains(bad.trim()), "{err}");
            }
        }
    }

    #[test]
    fn base_urls_must_be_http() {
        assert_eq!(
            checked_base_url("v", "http://h:1/x/").unwrap(),
            "http://h:1/x"
        );
        assert!(checked_base_url("v", "ftp://h").is_err());
        assert!(checked_base_url("v", "not a url").is_err());
    }
}
