//! The delegated OCSP responder: its own short-lived key and certificate
//! (EKU OCSPSigning, ocsp-nocheck), issued by the issuing CA, loaded at
//! start and renewed before it expires.

use super::*;

/// The delegated OCSP responder: certificate and key.
pub struct OcspSigner {
    /// Its certificate (EKU OCSPSigning, ocsp-nocheck).
    pub cert: Certificate,
    /// The certificate in DER, as included in responses.
    pub cert_der: Vec<u8>,
    /// The key that signs responses.
    pub key: SigningKey,
    /// notAfter in Unix seconds.
    pub not_after: u64,
    /// notBefore in Unix seconds.
    pub not_before: u64,
}

pub(super) fn load_ocsp_signer(paths: &CaPaths) -> anyhow::Result<OcspSigner> {
    let cert = load_cert(&paths.ocsp_cert(), "OCSP responder certificate")?;
    let key = load_key(&paths.ocsp_key(), "OCSP responder key")?;
    if !key_matches(&cert, &key) {
        bail!(
            "{}: this key does not match {}",
            paths.ocsp_key().display(),
            paths.ocsp_cert().display()
        );
    }
    let (not_before, not_after) = validity_secs(&cert);
    Ok(OcspSigner {
        cert_der: cert.to_der()?,
        cert,
        key,
        not_after,
        not_before,
    })
}

pub(super) fn issue_ocsp_signer(
    issuer: &Certificate,
    issuer_key: &SigningKey,
    algorithm: KeyAlgorithm,
    validity_days: u32,
) -> anyhow::Result<OcspSigner> {
    let key = SigningKey::generate(algorithm)?;
    let (cert, cert_der) = responder_certificate(
        issuer,
        issuer_key,
        key.spki(),
        &key.key_id(),
        "custos OCSP Responder",
        validity_days,
    )?;
    let (not_before, not_after) = validity_secs(&cert);
    Ok(OcspSigner {
        cert,
        cert_der,
        key,
        not_after,
        not_before,
    })
}

/// A delegated OCSP responder certificate (EKU OCSPSigning, ocsp-nocheck)
/// for `spki`, named `cn` in the issuer's organisation, `validity_days`
/// long but never past the issuing CA.
fn responder_certificate(
    issuer: &Certificate,
    issuer_key: &SigningKey,
    spki: spki::SubjectPublicKeyInfoOwned,
    key_id: &[u8],
    cn: &str,
    validity_days: u32,
) -> anyhow::Result<(Certificate, Vec<u8>)> {
    let now = unix_now();
    let (_, issuer_not_after) = validity_secs(issuer);
    let not_after = (now + days(validity_days)).min(issuer_not_after);
    let org = organization(issuer);
    Ok(sign_certificate(
        CertParts {
            serial: Serial::random(),
            subject: name(cn, &org)?,
            spki,
            not_before: now - 3600,
            not_after,
            extensions: vec![
                basic_constraints(false, None)?,
                extension(true, &KeyUsage(KeyUsages::DigitalSignature.into()))?,
                extension(false, &ExtendedKeyUsage(vec![ID_KP_OCSP_SIGNING]))?,
                ocsp_nocheck()?,
                subject_key_id(key_id)?,
                authority_key_id(&issuer_key.key_id())?,
            ],
        },
        &issuer.tbs_certificate.subject,
        issuer_key,
    )?)
}

pub(super) fn write_ocsp_signer(paths: &CaPaths, signer: &OcspSigner) -> anyhow::Result<()> {
    // Key first: a crash between the two writes leaves a mismatched pair that
    // `load` reports, rather than a certificate whose key is lost.
    write_atomic(
        &paths.ocsp_key(),
        signer.key.to_pkcs8_pem()?.as_bytes(),
        Visibility::Secret,
    )?;
    write_atomic(
        &paths.ocsp_cert(),
        cert_pem(&signer.cert_der)?.as_bytes(),
        Visibility::Public,
    )?;
    Ok(())
}

impl Ca {
    /// A delegated OCSP responder certificate for a stateless responder's
    /// own key (`spki`), named `custos OCSP Responder <name>`: EKU
    /// OCSPSigning, ocsp-nocheck, `validity_days` long (never past the
    /// issuing CA). Returns the certificate and its DER.
    pub fn issue_responder_cert(
        &self,
        spki: spki::SubjectPublicKeyInfoOwned,
        responder: &str,
        validity_days: u32,
    ) -> anyhow::Result<(Certificate, Vec<u8>)> {
        use sha1::Digest;
        let key_id: [u8; 20] = sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).into();
        responder_certificate(
            &self.issuer,
            &self.issuer_key,
            spki,
            &key_id,
            &format!("custos OCSP Responder {responder}"),
            validity_days,
        )
    }
}
