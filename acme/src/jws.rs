//! JWS as ACME uses it (RFC 8555 §6.2, RFC 7515, RFC 7638): flattened JSON
//! serialization, a protected header with `alg`, `nonce`, `url` and exactly
//! one of `jwk` or `kid`, signatures ES256, ES384, RS256 (≥ 2048 bits) and
//! EdDSA (Ed25519), and the HS256 MAC of external account bindings.
//!
//! This module checks form and signatures only. Whether the nonce is fresh,
//! the URL is the one requested and the `kid` names a live account is the
//! server's decision; it has the state.

use crate::problem::{Problem, ProblemType};
use aws_lc_rs::{digest, hmac, signature};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

/// The signature algorithms accepted on ACME requests.
pub const ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Decodes unpadded base64url, as JOSE requires.
pub fn b64u_decode(text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Problem::malformed(format!("{what} is not unpadded base64url")))
}

/// Encodes unpadded base64url.
pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Elliptic curves of EC keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// A public key in JWK form (RFC 7517), of a type ACME accounts may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Jwk {
    /// An EC key: affine coordinates.
    Ec {
        /// Its curve.
        curve: Curve,
        /// x, big-endian, fixed length.
        x: Vec<u8>,
        /// y, big-endian, fixed length.
        y: Vec<u8>,
    },
    /// An RSA key.
    Rsa {
        /// Modulus, big-endian without leading zeros.
        n: Vec<u8>,
        /// Public exponent, big-endian without leading zeros.
        e: Vec<u8>,
    },
    /// An Ed25519 key.
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
}

fn member<'a>(v: &'a Value, name: &str) -> Result<&'a str, Problem> {
    v.get(name).and_then(Value::as_str).ok_or_else(|| {
        Problem::new(
            ProblemType::BadPublicKey,
            format!("JWK has no \"{name}\" string"),
        )
    })
}

fn strip_zeros(mut b: Vec<u8>) -> Vec<u8> {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.drain(..start);
    b
}

impl Jwk {
    /// Reads a JWK, refusing key types and sizes we do not accept.
    pub fn from_json(v: &Value) -> Result<Jwk, Problem> {
        let bad = |d: String| Problem::new(ProblemType::BadPublicKey, d);
        match member(v, "kty")? {
            "EC" => {
                let curve = match member(v, "crv")? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    other => return Err(bad(format!("EC curve {other} is not accepted"))),
                };
                let x = b64u_decode(member(v, "x")?, "JWK x")?;
                let y = b64u_decode(member(v, "y")?, "JWK y")?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(bad(format!(
                        "{} coordinates of the wrong length",
                        curve.name()
                    )));
                }
                Ok(Jwk::Ec { curve, x, y })
            }
            "RSA" => {
                let n = strip_zeros(b64u_decode(member(v, "n")?, "JWK n")?);
                let e = strip_zeros(b64u_decode(member(v, "e")?, "JWK e")?);
                let bits = n.first().map_or(0, |top| {
                    (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
                });
                if bits < MIN_RSA_BITS {
                    return Err(bad(format!(
                        "RSA key of {bits} bits (at least {MIN_RSA_BITS} required)"
                    )));
                }
                if e.is_empty() {
                    return Err(bad("RSA exponent is zero".into()));
                }
                Ok(Jwk::Rsa { n, e })
            }
            "OKP" => match member(v, "crv")? {
                "Ed25519" => {
                    let x = b64u_decode(member(v, "x")?, "JWK x")?;
                    if x.len() != 32 {
                        return Err(bad("Ed25519 key is not 32 bytes".into()));
                    }
                    Ok(Jwk::Ed25519 { x })
                }
                other => Err(bad(format!("OKP curve {other} is not accepted"))),
            },
            other => Err(bad(format!("key type {other} is not accepted"))),
        }
    }

    /// The JWK as JSON with its required members only (also what the
    /// thumbprint hashes).
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.canonical()).unwrap_or(Value::Null)
    }

    /// RFC 7638 canonical form: required members, sorted, no whitespace.
    fn canonical(&self) -> String {
        match self {
            Jwk::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.name(),
                b64u(x),
                b64u(y)
            ),
            Jwk::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64u(e), b64u(n)),
            Jwk::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64u(x)),
        }
    }

    /// RFC 7638 SHA-256 thumbprint, base64url: the key's identity, and the
    /// second half of every key authorization.
    pub fn thumbprint(&self) -> String {
        b64u(digest::digest(&digest::SHA256, self.canonical().as_bytes()).as_ref())
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Jwk::Ec {
                curve: Curve::P256, ..
            } => "ES256",
            Jwk::Ec {
                curve: Curve::P384, ..
            } => "ES384",
            Jwk::Rsa { .. } => "RS256",
            Jwk::Ed25519 { .. } => "EdDSA",
        }
    }

    /// The key as it appears in a certificate's subjectPublicKey BIT STRING
    /// for EC (uncompressed point) and Ed25519; RSA keys compare by modulus
    /// and exponent instead (see [`Jwk::Rsa`]).
    pub fn public_key_bits(&self) -> Option<Vec<u8>> {
        match self {
            Jwk::Ec { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some(point)
            }
            Jwk::Ed25519 { x } => Some(x.clone()),
            Jwk::Rsa { .. } => None,
        }
    }

    /// True when `subject_public_key` (the content of a certificate's or
    /// CSR's subjectPublicKey BIT STRING) is this key.
    pub fn matches_public_key(&self, subject_public_key: &[u8]) -> bool {
        match self {
            Jwk::Rsa { n, e } => {
                use der::asn1::UintRef;
                use der::Encode;
                #[derive(der::Sequence)]
                struct RsaPublicKey<'a> {
                    n: UintRef<'a>,
                    e: UintRef<'a>,
                }
                let (Ok(n), Ok(e)) = (UintRef::new(n), UintRef::new(e)) else {
                    return false;
                };
                RsaPublicKey { n, e }
                    .to_der()
                    .is_ok_and(|der| der == subject_public_key)
            }
            other => other
                .public_key_bits()
                .is_some_and(|bits| bits == subject_public_key),
        }
    }

    /// Verifies `sig` over `input` under `alg`, which must be this key's.
    pub fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> Result<(), Problem> {
        if alg != self.algorithm() {
            return Err(bad_algorithm(format!(
                "alg {alg} does not match the {} key",
                self.algorithm()
            )));
        }
        let ok = match self {
            Jwk::Ec { curve, .. } => {
                let scheme = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                let point = self.public_key_bits().unwrap_or_default();
                signature::UnparsedPublicKey::new(scheme, point)
                    .verify(input, sig)
                    .is_ok()
            }
            Jwk::Ed25519 { x } => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(input, sig)
                .is_ok(),
            Jwk::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(Problem::malformed("JWS signature does not verify"))
        }
    }
}

fn bad_algorithm(detail: String) -> Problem {
    let mut p = Problem::new(ProblemType::BadSignatureAlgorithm, detail);
    p.algorithms = Some(ALGORITHMS.to_vec());
    p
}

/// Flattened JSON serialization, as sent on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

/// Who signed a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A key given in full (newAccount, revokeCert with the certificate's key).
    Jwk(Jwk),
    /// An account URL.
    Kid(String),
}

/// A parsed JWS whose signature has not been checked yet.
#[derive(Clone, Debug)]
pub struct Jws {
    /// `alg`.
    pub alg: String,
    /// `nonce` (absent only in EAB inner JWSs).
    pub nonce: Option<String>,
    /// `url`.
    pub url: Option<String>,
    /// `jwk` or `kid`.
    pub signer: Option<Signer>,
    /// The decoded payload; empty for POST-as-GET.
    pub payload: Vec<u8>,
    /// The payload exactly as sent (EAB compares it to the account key).
    pub payload_b64: String,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Parses the flattened JSON form without applying ACME's header rules
    /// (used for the inner JWS of an external account binding).
    pub fn parse_value(v: &Value) -> Result<Jws, Problem> {
        let f: Flattened = serde_json::from_value(v.clone())
            .map_err(|e| Problem::malformed(format!("not a flattened JWS: {e}")))?;
        Jws::from_flattened(f)
    }

    /// Parses an ACME request body and applies RFC 8555 §6.2's header
    /// rules: an accepted `alg`, a `nonce`, a `url`, exactly one of `jwk`
    /// and `kid`.
    pub fn parse_request(body: &[u8]) -> Result<Jws, Problem> {
        let f: Flattened = serde_json::from_slice(body)
            .map_err(|e| Problem::malformed(format!("request body is not a flattened JWS: {e}")))?;
        let jws = Jws::from_flattened(f)?;
        if !ALGORITHMS.contains(&jws.alg.as_str()) {
            return Err(bad_algorithm(format!("alg {} is not accepted", jws.alg)));
        }
        if jws.url.is_none() {
            return Err(Problem::unauthorized("protected header has no url"));
        }
        if jws.signer.is_none() {
            return Err(Problem::malformed(
                "protected header needs exactly one of jwk and kid",
            ));
        }
        if jws.nonce.is_none() {
            return Err(Problem::new(
                ProblemType::BadNonce,
                "protected header has no nonce",
            ));
        }
        Ok(jws)
    }

    fn from_flattened(f: Flattened) -> Result<Jws, Problem> {
        let header_bytes = b64u_decode(&f.protected, "protected header")?;
        let header: Value = serde_json::from_slice(&header_bytes)
            .map_err(|e| Problem::malformed(format!("protected header is not JSON: {e}")))?;
        let text = |name: &str| -> Result<Option<String>, Problem> {
            match header.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(Problem::malformed(format!(
                    "protected header {name} is not a string"
                ))),
            }
        };
        let alg = text("alg")?.ok_or_else(|| Problem::malformed("protected header has no alg"))?;
        let kid = text("kid")?;
        let jwk = header.get("jwk");
        let signer = match (jwk, kid) {
            (Some(_), Some(_)) => {
                return Err(Problem::malformed("protected header has both jwk and kid"))
            }
            (Some(j), None) => Some(Signer::Jwk(Jwk::from_json(j)?)),
            (None, Some(k)) => Some(Signer::Kid(k)),
            (None, None) => None,
        };
        let payload = b64u_decode(&f.payload, "payload")?;
        let signature = b64u_decode(&f.signature, "signature")?;
        let mut signing_input = Vec::with_capacity(f.protected.len() + 1 + f.payload.len());
        signing_input.extend_from_slice(f.protected.as_bytes());
        signing_input.push(b'.');
        signing_input.extend_from_slice(f.payload.as_bytes());
        Ok(Jws {
            alg,
            nonce: text("nonce")?,
            url: text("url")?,
            signer,
            payload,
            payload_b64: f.payload,
            signing_input,
            signature,
        })
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        key.verify(&self.alg, &self.signing_input, &self.signature)
    }

    /// Checks an HS256 MAC (external account binding) with `mac_key`.
    pub fn verify_hs256(&self, mac_key: &[u8]) -> Result<(), Problem> {
        if self.alg != "HS256" {
            return Err(Problem::malformed(format!(
                "external account binding uses alg {}, not HS256",
                self.alg
            )));
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, mac_key);
        hmac::verify(&key, &self.signing_input, &self.signature)
            .map_err(|_| Problem::unauthorized("external account binding MAC does not verify"))
    }

    /// True for POST-as-GET (empty payload).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty() && self.payload_b64.is_empty()
    }

    /// The payload as JSON of type `T`.
    pub fn payload_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| Problem::malformed(format!("payload: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn ec_jwk(pair: &EcdsaKeyPair, curve: Curve) -> Jwk {
        let point = pair.public_key().as_ref();
        let n = curve.coordinate_len();
        Jwk::Ec {
            curve,
            x: point[1..1 + n].to_vec(),
            y: point[1 + n..].to_vec(),
        }
    }

    fn sign_request(header: &Value, payload: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let protected = b64u(header.to_string().as_bytes());
        let payload = b64u(payload);
        let sig = sign(format!("{protected}.{payload}").as_bytes());
        serde_json::json!({"protected": protected, "payload": payload, "signature": b64u(&sig)})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn es256_and_es384_requests_verify_and_tampering_fails() {
        let rng = SystemRandom::new();
        for (alg, scheme, curve) in [
            (
                "ES256",
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                Curve::P256,
            ),
            (
                "ES384",
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                Curve::P384,
            ),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(scheme, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(scheme, pkcs8.as_ref()).unwrap();
            let jwk = ec_jwk(&pair, curve);
            let header = serde_json::json!({"alg": alg, "nonce": "n1", "url": "https://x/acme/new-account", "jwk": jwk.to_json()});
            let body = sign_request(&header, br#"{"termsOfServiceAgreed":true}"#, |m| {
                pair.sign(&rng, m).unwrap().as_ref().to_vec()
            });
            let jws = Jws::parse_request(&body).unwrap();
            assert_eq!(jws.signer, Some(Signer::Jwk(jwk.clone())));
            jws.verify(&jwk).unwrap();
            // A different payload under the same signature fails.
            let mut v: Value = serde_json::from_slice(&body).unwrap();
            v["payload"] = Value::String(b64u(b"{}"));
            let forged = Jws::parse_request(v.to_string().as_bytes()).unwrap();
            assert!(forged.verify(&jwk).is_err());
        }
    }

    #[test]
    fn ed25519_verifies_and_thumbprint_matches_rfc7638() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = Jwk::Ed25519 {
            x: pair.public_key().as_ref().to_vec(),
        };
        let header = serde_json::json!({"alg": "EdDSA", "nonce": "n", "url": "u", "kid": "https://x/acme/acct/1"});
        let body = sign_request(&header, b"", |m| pair.sign(m).as_ref().to_vec());
        let jws = Jws::parse_request(&body).unwrap();
        assert!(jws.is_post_as_get());
        jws.verify(&jwk).unwrap();

        // RFC 7638 §3.1's example key and thumbprint.
        let rsa = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            Jwk::from_json(&rsa).unwrap().thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn header_rules_give_the_rfc_problem_types() {
        let header = |v: Value| {
            let protected = b64u(v.to_string().as_bytes());
            serde_json::json!({"protected": protected, "payload": "", "signature": "AA"})
                .to_string()
        };
        let kind = |body: String| Jws::parse_request(body.as_bytes()).unwrap_err().kind;
        assert_eq!(
            kind(header(
                serde_json::json!({"alg": "none", "nonce": "n", "url": "u", "kid": "k"})
            )),
            ProblemType::BadSignatureAlgorithm
        );
        assert_eq!(
            kind(header(
                serde_json::json!({"alg": "HS256", "nonce": "n", "url": "u", "kid": "k"})
            )),
            ProblemType::BadSignatureAlgorithm
        );
        assert_eq!(
            kind(header(
                serde_json::json!({"alg": "ES256", "url": "u", "kid": "k"})
            )),
            ProblemType::BadNonce
        );
        assert_eq!(
            kind(header(
                serde_json::json!({"alg": "ES256", "nonce": "n", "url": "u"})
            )),
            ProblemType::Malformed
        );
        assert_eq!(
            kind(header(
                serde_json::json!({"alg": "ES256", "nonce": "n", "kid": "k"})
            )),
            ProblemType::Unauthorized
        );
        assert_eq!(kind("{".into()), ProblemType::Malformed);
        assert_eq!(
            kind(r#"{"protected":"e30","payload":"","signature":"","header":{}}"#.into()),
            ProblemType::Malformed
        );
        let small_rsa = serde_json::json!({"kty": "RSA", "n": b64u(&[0xff; 128]), "e": "AQAB"});
        assert_eq!(
            Jwk::from_json(&small_rsa).unwrap_err().kind,
            ProblemType::BadPublicKey
        );
    }

    #[test]
    fn eab_mac_verifies_only_with_the_right_key() {
        let key = b"0123456789abcdef0123456789abcdef";
        let protected =
            b64u(br#"{"alg":"HS256","kid":"eab-1","url":"https://x/acme/new-account"}"#);
        let payload = b64u(b"{}");
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            format!("{protected}.{payload}").as_bytes(),
        );
        let v = serde_json::json!({"protected": protected, "payload": payload, "signature": b64u(tag.as_ref())});
        let jws = Jws::parse_value(&v).unwrap();
        jws.verify_hs256(key).unwrap();
        assert!(jws
            .verify_hs256(b"another key of the same length!!")
            .is_err());
    }
}
