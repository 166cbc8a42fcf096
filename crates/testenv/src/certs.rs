//! A throw-away certificate authority for the test control plane (rcgen, ECDSA P-256).

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// The object identifier of the X.509 `organizationName` attribute. rcgen keeps one value per
/// attribute type, so a second group is written under this OID as a "custom" attribute: the
/// certificate then carries two `O=` attributes, which Kubernetes reads as two groups.
const ORGANIZATION_OID: [u64; 4] = [2, 5, 4, 10];

/// A PEM certificate with its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey").finish_non_exhaustive()
    }
}

/// A certificate authority that signs the apiserver's serving certificate and client
/// certificates (the apiserver trusts it through `--client-ca-file`).
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA with a fresh key.
    pub fn new() -> Result<Self> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "audience-testenv-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().context("generating the CA key")?;
        let issuer = CertifiedIssuer::self_signed(params, key).context("self-signing the CA")?;
        Ok(Self { issuer })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate (DER).
    pub fn cert_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// The CA private key (PEM).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub fn serving_cert(&self, hosts: &[&str]) -> Result<CertKey> {
        let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(names).context("serving certificate names")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate that Kubernetes authenticates as user `user` (CN) with the given
    /// groups (O). At most two groups can be carried (see [`ORGANIZATION_OID`]).
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertKey> {
        anyhow::ensure!(
            groups.len() <= 2,
            "a test client certificate carries at most two groups, got {groups:?}"
        );
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        if let Some(g) = groups.first() {
            dn.push(DnType::OrganizationName, *g);
        }
        if let Some(g) = groups.get(1) {
            dn.push(DnType::CustomDnType(ORGANIZATION_OID.to_vec()), *g);
        }
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<CertKey> {
        let key = KeyPair::generate().context("generating a key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing a certificate")?;
        Ok(CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A fresh key pair as (private key PEM (PKCS#8), public key PEM), ECDSA P-256, e.g. for
/// signing service-account tokens.
pub fn new_key_pair_pem() -> Result<(String, String)> {
    let key = KeyPair::generate().context("generating a key")?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_certificates_and_keys() {
        let ca = Ca::new().unwrap();
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.key_pem().contains("PRIVATE KEY"));
        let serving = ca.serving_cert(&["127.0.0.1", "localhost"]).unwrap();
        assert!(serving.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let client = ca.client_cert("alice", &["a", "b"]).unwrap();
        assert!(client.key_pem.contains("PRIVATE KEY"));
        assert!(ca.client_cert("alice", &["a", "b", "c"]).is_err());
        let (private, public) = new_key_pair_pem().unwrap();
        assert!(private.contains("BEGIN PRIVATE KEY"));
        assert!(public.contains("BEGIN PUBLIC KEY"));
    }
}
