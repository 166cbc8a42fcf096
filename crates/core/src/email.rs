//! Email addresses as every vendor compares them: trimmed, lowercased, syntax-checked.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A normalised email address (trimmed, lowercased, syntactically valid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address {raw:?}: {reason}")]
pub struct InvalidEmail {
    pub raw: String,
    pub reason: &'static str,
}

impl Email {
    /// Normalises and checks `raw`. The check is deliberately practical (what Mailchimp and Klaviyo
    /// accept), not the full RFC 5322 grammar: one `@`, a non-empty local part without spaces, and a
    /// dotted domain of letters, digits and hyphens.
    pub fn parse(raw: &str) -> Result<Email, InvalidEmail> {
        let invalid = |reason| InvalidEmail {
            raw: raw.to_string(),
            reason,
        };
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(invalid("empty"));
        }
        if email.len() > 254 {
            return Err(invalid("longer than 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("missing @"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("local part empty or longer than 64 characters"));
        }
        if domain.contains('@') {
            return Err(invalid("more than one @"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid("misplaced dot in local part"));
        }
        if !local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        {
            return Err(invalid("forbidden character in local part"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid("domain has no dot"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("empty or overlong domain label"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("domain label starts or ends with a hyphen"));
            }
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid("forbidden character in domain"));
            }
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid("top-level domain too short or numeric"));
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (after the `@`).
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        assert_eq!(
            Email::parse("  Ana.Berg@Mail.COM \n").unwrap().as_str(),
            "ana.berg@mail.com"
        );
    }

    #[test]
    fn refuses_malformed_addresses_with_a_reason() {
        for raw in [
            "",
            "no-at-sign",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-x.com",
            "a@x..com",
            ".a@x.com",
            "a@x.c",
        ] {
            let err = Email::parse(raw).unwrap_err();
            assert_eq!(err.raw, raw);
            assert!(!err.reason.is_empty());
        }
    }

    #[test]
    fn accepts_plus_addressing_and_subdomains() {
        assert!(Email::parse("ava+news@mail.shop.co.uk").is_ok());
    }
}
