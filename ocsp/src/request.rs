//! Parsing OCSP requests and applying the nonce rules (RFC 8954 / RFC 9654).
//!
//! Signed requests are accepted (the signature is not required and not
//! checked). The nonce extension is kept whole so the response can echo it
//! byte for byte, which is what OpenSSL and FreeRADIUS compare.

use crate::issuer::HashAlg;
use crate::OcspError;
use der::oid::ObjectIdentifier;
use der::Decode;
use x509_cert::ext::Extension;
use x509_ocsp::{CertId, OcspRequest};

/// id-pkix-ocsp-nonce.
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// Most CertIDs answered in one request.
pub const MAX_CERT_IDS: usize = 64;

/// One certificate asked about.
#[derive(Clone, Debug)]
pub struct CertQuery {
    /// The CertID exactly as sent, echoed in the response.
    pub cert_id: CertId,
    /// Its hash algorithm, when we support it.
    pub alg: Option<HashAlg>,
    /// The serial's magnitude bytes (no leading zeros).
    pub serial: Vec<u8>,
}

impl CertQuery {
    /// The request's issuer name hash.
    pub fn name_hash(&self) -> &[u8] {
        self.cert_id.issuer_name_hash.as_bytes()
    }
    /// The request's issuer key hash.
    pub fn key_hash(&self) -> &[u8] {
        self.cert_id.issuer_key_hash.as_bytes()
    }
}

/// A parsed, checked request.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    /// The certificates asked about, in order.
    pub queries: Vec<CertQuery>,
    /// The nonce extension to echo, if the client sent one.
    pub nonce: Option<Extension>,
}

/// Parses DER and checks it. `max_nonce_len` is 32 per RFC 8954 (128 per RFC 9654).
pub fn parse_request(der: &[u8], max_nonce_len: usize) -> Result<ParsedRequest, OcspError> {
    let req = OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    let list = &req.tbs_request.request_list;
    if list.is_empty() {
        return Err(OcspError::Malformed("request lists no certificate".into()));
    }
    if list.len() > MAX_CERT_IDS {
        return Err(OcspError::Malformed(format!(
            "more than {MAX_CERT_IDS} certificates in one request"
        )));
    }
    let nonce = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE))
        .cloned();
    if let Some(ext) = &nonce {
        let len = nonce_len(ext.extn_value.as_bytes());
        if len == 0 || len > max_nonce_len {
            return Err(OcspError::Malformed(format!(
                "nonce of {len} bytes (allowed: 1 to {max_nonce_len})"
            )));
        }
    }
    let queries = list
        .iter()
        .map(|r| CertQuery {
            alg: HashAlg::from_oid(&r.req_cert.hash_algorithm.oid),
            serial: strip_zeros(r.req_cert.serial_number.as_bytes()).to_vec(),
            cert_id: r.req_cert.clone(),
        })
        .collect();
    Ok(ParsedRequest { queries, nonce })
}

/// The nonce extension as RFC 6960 writes it: an OCTET STRING holding the
/// DER of an OCTET STRING with the nonce.
pub fn nonce_extension(nonce: &[u8]) -> Result<Extension, der::Error> {
    use der::Encode;
    Ok(Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: der::asn1::OctetString::new(der::asn1::OctetString::new(nonce)?.to_der()?)?,
    })
}

/// A client's DER request for one CertID, with an optional nonce (used by
/// `custos ocsp check`, the benches and the tests).
pub fn build_request(cert_id: CertId, nonce: Option<&[u8]>) -> Result<Vec<u8>, der::Error> {
    use der::Encode;
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: nonce.map(nonce_extension).transpose()?.map(|e| vec![e]),
        },
        optional_signature: None,
    }
    .to_der()
}

/// The common request, borrowed: one CertID, no nonce, no extensions, no
/// requestor name, no signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimpleQuery<'a> {
    /// The CertID's hash algorithm, when we support it.
    pub alg: Option<HashAlg>,
    /// Issuer name hash.
    pub name_hash: &'a [u8],
    /// Issuer key hash.
    pub key_hash: &'a [u8],
    /// The serial's magnitude bytes (no leading zeros).
    pub serial: &'a [u8],
}

/// Reads the common request shape without allocating. `None` for anything
/// else (several CertIDs, a nonce or other extension, a signature, bad DER):
/// the caller then uses [`parse_request`], which decides and explains.
pub fn parse_simple(der: &[u8]) -> Option<SimpleQuery<'_>> {
    use der::asn1::{IntRef, OctetStringRef};
    use der::Reader;
    let mut reader = der::SliceReader::new(der).ok()?;
    let query = reader
        .sequence(|ocsp_request| {
            ocsp_request.sequence(|tbs_request| {
                tbs_request.sequence(|request_list| {
                    request_list.sequence(|request| {
                        request.sequence(|cert_id| {
                            let alg = spki::AlgorithmIdentifierRef::decode(cert_id)?;
                            let name_hash = OctetStringRef::decode(cert_id)?;
                            let key_hash = OctetStringRef::decode(cert_id)?;
                            let serial = IntRef::decode(cert_id)?;
                            Ok(SimpleQuery {
                                alg: HashAlg::from_oid(&alg.oid),
                                name_hash: name_hash.as_bytes(),
                                key_hash: key_hash.as_bytes(),
                                serial: strip_zeros(serial.as_bytes()),
                            })
                        })
                    })
                })
            })
        })
        .ok()?;
    reader.finish(query).ok()
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// Length of the nonce proper: the content of the inner OCTET STRING (RFC
/// 6960 form), or the raw extension value for clients that omit the wrapper.
fn nonce_len(extn_value: &[u8]) -> usize {
    match der::asn1::OctetString::from_der(extn_value) {
        Ok(inner) => inner.as_bytes().len(),
        Err(_) => extn_value.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::OctetString;
    use der::Encode;
    use spki::AlgorithmIdentifierOwned;
    use x509_cert::serial_number::SerialNumber;
    use x509_ocsp::{Request, TbsRequest};

    fn request_cert_id() -> CertId {
        CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: crate::issuer::ID_SHA1,
                parameters: None,
            },
            issuer_name_hash: OctetString::new(vec![1u8; 20]).unwrap(),
            issuer_key_hash: OctetString::new(vec![2u8; 20]).unwrap(),
            serial_number: SerialNumber::new(&[0x01, 0x02]).unwrap(),
        }
    }

    fn request(nonce: Option<&[u8]>, ids: usize) -> Vec<u8> {
        let cert_id = request_cert_id();
        let req = OcspRequest {
            tbs_request: TbsRequest {
                version: Default::default(),
                requestor_name: None,
                request_list: (0..ids)
                    .map(|_| Request {
                        req_cert: cert_id.clone(),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: nonce.map(|n| {
                    vec![Extension {
                        extn_id: ID_PKIX_OCSP_NONCE,
                        critical: false,
                        extn_value: OctetString::new(
                            OctetString::new(n).unwrap().to_der().unwrap(),
                        )
                        .unwrap(),
                    }]
                }),
            },
            optional_signature: None,
        };
        req.to_der().unwrap()
    }

    #[test]
    fn parses_cert_ids_and_nonce() {
        let parsed = parse_request(&request(Some(&[7u8; 16]), 2), 32).unwrap();
        assert_eq!(parsed.queries.len(), 2);
        assert_eq!(parsed.queries[0].serial, vec![1, 2]);
        assert_eq!(parsed.queries[0].alg, Some(HashAlg::Sha1));
        assert!(parsed.nonce.is_some());
        assert!(parse_request(&request(None, 1), 32)
            .unwrap()
            .nonce
            .is_none());
    }

    #[test]
    fn simple_requests_are_read_without_the_full_parser() {
        let simple = request(None, 1);
        let q = parse_simple(&simple).unwrap();
        let full = parse_request(&simple, 32).unwrap();
        assert_eq!(q.serial, &full.queries[0].serial[..]);
        assert_eq!(q.alg, full.queries[0].alg);
        assert_eq!(q.name_hash, full.queries[0].name_hash());
        assert_eq!(q.key_hash, full.queries[0].key_hash());
        // Anything else is left to the full parser.
        assert!(parse_simple(&request(Some(&[7u8; 16]), 1)).is_none());
        assert!(parse_simple(&request(None, 2)).is_none());
        assert!(parse_simple(&simple[..simple.len() - 1]).is_none());
        let mut trailing = simple.clone();
        trailing.push(0);
        assert!(parse_simple(&trailing).is_none());
    }

    #[test]
    fn built_requests_parse_back() {
        let cert_id = request_cert_id();
        let der = build_request(cert_id.clone(), Some(&[5u8; 16])).unwrap();
        let parsed = parse_request(&der, 32).unwrap();
        assert_eq!(parsed.queries[0].cert_id, cert_id);
        assert_eq!(parsed.nonce, Some(nonce_extension(&[5u8; 16]).unwrap()));
        assert!(parse_request(&build_request(cert_id, None).unwrap(), 32)
            .unwrap()
            .nonce
            .is_none());
    }

    #[test]
    fn nonce_length_rules() {
        assert!(parse_request(&request(Some(&[1u8; 32]), 1), 32).is_ok());
        assert!(matches!(
            parse_request(&request(Some(&[1u8; 33]), 1), 32),
            Err(OcspError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(&request(Some(&[]), 1), 32),
            Err(OcspError::Malformed(_))
        ));
        assert!(parse_request(&request(Some(&[1u8; 100]), 1), 128).is_ok());
    }

    #[test]
    fn garbage_and_empty_lists_are_malformed() {
        assert!(matches!(
            parse_request(b"\x30\x03\x02\x01", 32),
            Err(OcspError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(&request(None, 0), 32),
            Err(OcspError::Malformed(_))
        ));
        let mut trailing = request(None, 1);
        trailing.push(0);
        assert!(matches!(
            parse_request(&trailing, 32),
            Err(OcspError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(&request(None, MAX_CERT_IDS + 1), 32),
            Err(OcspError::Malformed(_))
        ));
    }
}
