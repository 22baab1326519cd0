//! A real `PKIOperation` request, as micromdm's scepclient 2.1 (Debian
//! `scep`) sent it (`fixtures/scepclient-pkcsreq.der`: a PKCSReq for
//! CN=device-1 with challenge `onetime-123`, encrypted to a throwaway RA),
//! read into its parts.

use custos_scep::{MessageType, PkiMessage};
use der::Decode;

const REQUEST: &[u8] = include_bytes!("fixtures/scepclient-pkcsreq.der");

#[test]
fn a_scepclient_pkcsreq_is_read_into_its_parts() {
    let m = PkiMessage::parse(REQUEST).expect("scepclient's request reads");
    assert_eq!(m.message_type, MessageType::PkcsReq);
    assert_eq!(m.transaction_id, "m6eTuK6OJXyYM2llgTyOOREDGb0=");
    assert_eq!(m.sender_nonce.len(), 16);
    // Signed by the client's throwaway self-signed certificate.
    let signer = x509_cert::Certificate::from_der(&m.signer_cert).unwrap();
    assert_eq!(
        signer.tbs_certificate.subject.to_string(),
        "CN=SCEP SIGNER,O=scep-client"
    );
    assert_eq!(
        signer.tbs_certificate.issuer,
        signer.tbs_certificate.subject
    );
    assert_eq!(m.digest_alg.to_string(), "1.3.14.3.2.26", "SHA-1");
    assert_eq!(
        m.signature_alg.to_string(),
        "1.2.840.113549.1.1.5",
        "sha1WithRSAEncryption"
    );
    assert_eq!(m.signature.len(), 256);
    // The signed attributes as the signature covers them: a SET OF.
    assert_eq!(m.signed_attrs_der[0], 0x31);
    // The payload is an EnvelopedData encrypted with single DES (which
    // custos will refuse with badAlg). Go's pkcs7 writes its
    // encryptedContent as a constructed [0] (BER), which a strict DER
    // decoder refuses: reading the envelope must accept that form.
    let envelope = cms::content_info::ContentInfo::from_der(&m.envelope).unwrap();
    assert_eq!(envelope.content_type, custos_scep::oid::ENVELOPED_DATA);
    assert!(envelope
        .content
        .decode_as::<cms::enveloped_data::EnvelopedData>()
        .is_err());
    let des_cbc = [0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x07];
    assert!(m.envelope.windows(des_cbc.len()).any(|w| w == des_cbc));
}

#[test]
fn anything_else_is_refused_not_panicked_on() {
    assert!(PkiMessage::parse(b"").is_err());
    assert!(PkiMessage::parse(&REQUEST[..REQUEST.len() - 1]).is_err());
    // Every single-byte change either still reads or is refused.
    for i in (0..REQUEST.len()).step_by(7) {
        let mut bad = REQUEST.to_vec();
        bad[i] ^= 0x55;
        let _ = PkiMessage::parse(&bad);
    }
    // A certificates-only message is a SignedData with no signer.
    let ra =
        x509_cert::Certificate::from_der(&PkiMessage::parse(REQUEST).unwrap().signer_cert).unwrap();
    let certs_only = custos_scep::certs_only(&[&der::Encode::to_der(&ra).unwrap()]).unwrap();
    assert!(PkiMessage::parse(&certs_only).is_err());
}
