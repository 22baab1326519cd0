//! The SCEP registration authority: an RSA key, because SCEP clients
//! encrypt their requests to the RA certificate's key and cannot encrypt to
//! an EC key, and its certificate issued by the issuing CA
//! (digitalSignature + keyEncipherment). Made at first use, kept in the CA
//! directory (`scep-ra.pem`, `scep-ra.key` 0600), renewed when due.

use super::*;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use der::pem::LineEnding;

/// The SCEP RA: certificate and RSA key.
pub struct ScepRa {
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
    /// notAfter in Unix seconds.
    pub not_after: u64,
    key: PrivateDecryptingKey,
    signer: aws_lc_rs::signature::RsaKeyPair,
}

impl std::fmt::Debug for ScepRa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScepRa(not after {})", self.not_after)
    }
}

impl ScepRa {
    /// The RSA key that decrypts requests.
    pub fn key(&self) -> &PrivateDecryptingKey {
        &self.key
    }

    fn from_pkcs8(cert_der: Vec<u8>, not_after: u64, pkcs8: &[u8]) -> anyhow::Result<ScepRa> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|_| anyhow!("the SCEP RA key is not an RSA key"))?;
        let signer = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| anyhow!("the SCEP RA key cannot sign: {e}"))?;
        Ok(ScepRa {
            cert_der,
            not_after,
            key,
            signer,
        })
    }
}

impl custos_scep::RaKey for ScepRa {
    fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    fn unwrap_key(&self, wrapped: &[u8]) -> Option<Vec<u8>> {
        let key = aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey::new(self.key.clone()).ok()?;
        let mut out = vec![0u8; key.min_output_size()];
        let n = key.decrypt(wrapped, &mut out).ok()?.len();
        out.truncate(n);
        Some(out)
    }

    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        self.signer
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|e| e.to_string())?;
        Ok(sig)
    }
}

/// How long the RA certificate lives, and when it is renewed.
const RA_DAYS: u32 = 365;
const RA_RENEW_BEFORE_DAYS: u32 = 30;

impl Ca {
    /// The SCEP RA: kept in memory, else read from the CA directory, else
    /// (first use, or within 30 days of its end) made now: an RSA key of
    /// `bits` (2048, 3072 or 4096) and a one-year certificate (never past
    /// the issuing CA). A key of another size is kept until its renewal.
    /// The caller records a new one in the ledger and the audit log.
    pub fn scep_ra(&self, bits: u32) -> anyhow::Result<Arc<ScepRa>> {
        let mut slot = self.scep_ra.lock().unwrap_or_else(|e| e.into_inner());
        let due = |ra: &ScepRa| ra.not_after <= unix_now() + days(RA_RENEW_BEFORE_DAYS);
        if let Some(ra) = slot.as_ref().filter(|ra| !due(ra)) {
            return Ok(ra.clone());
        }
        if slot.is_none() && self.paths.scep_ra_cert().exists() {
            let ra = Arc::new(load_scep_ra(&self.paths)?);
            *slot = Some(ra.clone());
            if !due(&ra) {
                return Ok(ra);
            }
        }
        let ra = Arc::new(self.issue_scep_ra(bits)?);
        *slot = Some(ra.clone());
        Ok(ra)
    }

    fn issue_scep_ra(&self, bits: u32) -> anyhow::Result<ScepRa> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => bail!("scep.ra_key_bits must be 2048, 3072 or 4096, not {other}"),
        };
        let key = PrivateDecryptingKey::generate(size)
            .map_err(|_| anyhow!("cannot make the SCEP RA's RSA key"))?;
        let spki_der = AsDer::<PublicKeyX509Der>::as_der(&key.public_key())
            .map_err(|_| anyhow!("cannot encode the SCEP RA's public key"))?;
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_ref())?;
        let key_id: [u8; 20] = {
            use sha1::Digest;
            sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).into()
        };
        let now = unix_now();
        let (_, issuer_not_after) = validity_secs(&self.issuer);
        let (cert, cert_der) = sign_certificate(
            CertParts {
                serial: Serial::random(),
                subject: name("custos SCEP RA", &organization(&self.issuer))?,
                spki,
                not_before: now - 3600,
                not_after: (now + days(RA_DAYS)).min(issuer_not_after),
                extensions: vec![
                    basic_constraints(false, None)?,
                    extension(
                        true,
                        &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                    )?,
                    subject_key_id(&key_id)?,
                    authority_key_id(&self.issuer_key.key_id())?,
                ],
            },
            &self.issuer.tbs_certificate.subject,
            &self.issuer_key,
        )?;
        // Key first: a crash between the writes leaves a pair `load`
        // refuses, not a certificate whose key is lost.
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&key)
            .map_err(|_| anyhow!("cannot encode the SCEP RA's key"))?;
        let pem = der::pem::encode_string("PRIVATE KEY", LineEnding::LF, pkcs8.as_ref())
            .map_err(|e| anyhow!("cannot encode the SCEP RA's key: {e}"))?;
        write_atomic(
            &self.paths.scep_ra_key(),
            pem.as_bytes(),
            Visibility::Secret,
        )?;
        write_atomic(
            &self.paths.scep_ra_cert(),
            cert_pem(&cert_der)?.as_bytes(),
            Visibility::Public,
        )?;
        tracing::info!(
            not_after = validity_secs(&cert).1,
            "made the SCEP RA certificate"
        );
        ScepRa::from_pkcs8(cert_der, validity_secs(&cert).1, pkcs8.as_ref())
    }
}

fn load_scep_ra(paths: &CaPaths) -> anyhow::Result<ScepRa> {
    let cert = load_cert(&paths.scep_ra_cert(), "SCEP RA certificate")?;
    let pem = read_named(&paths.scep_ra_key(), "SCEP RA key")?;
    let (label, der) = der::pem::decode_vec(&pem)
        .map_err(|e| anyhow!("{}: {e}", paths.scep_ra_key().display()))?;
    if label != "PRIVATE KEY" {
        bail!(
            "{}: not a PKCS#8 private key",
            paths.scep_ra_key().display()
        );
    }
    let ra = ScepRa::from_pkcs8(cert.to_der()?, validity_secs(&cert).1, &der)
        .map_err(|e| anyhow!("{}: {e}", paths.scep_ra_key().display()))?;
    let key = ra.key();
    let public = AsDer::<PublicKeyX509Der>::as_der(&key.public_key())
        .map_err(|_| anyhow!("cannot encode the SCEP RA's public key"))?;
    if public.as_ref() != cert.tbs_certificate.subject_public_key_info.to_der()? {
        bail!(
            "{}: this key does not match {}",
            paths.scep_ra_key().display(),
            paths.scep_ra_cert().display()
        );
    }
    Ok(ra)
}
