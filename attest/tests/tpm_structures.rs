//! The TPM structures a real TPM 2.0 (Debian's swtpm, through tpm2-tools)
//! produced: the TPMT_PUBLIC of a P-256 signing key made in the TPM, and a
//! TPM2_Certify of it with qualifying data SHA-256("token.thumbprint").

use custos_attest::tpm::{certified_key, check_certify};

const PUB_AREA: &[u8] = include_bytes!("fixtures/swtpm-pubarea.bin");
const CERT_INFO: &[u8] = include_bytes!("fixtures/swtpm-certinfo.bin");
const KEY_PEM: &str = include_str!("fixtures/swtpm-key.pem");

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

#[test]
fn the_certified_key_is_the_one_tpm2_readpublic_exports() {
    let key = certified_key(PUB_AREA).unwrap();
    let (_, spki) = der::pem::decode_vec(KEY_PEM.as_bytes()).unwrap();
    // An uncompressed P-256 point is the last 65 bytes of its SPKI.
    assert_eq!(key.len(), 65);
    assert_eq!(key.as_slice(), &spki[spki.len() - 65..]);
}

#[test]
fn the_certification_names_that_key_and_nonce_only() {
    let nonce = sha256(b"token.thumbprint");
    check_certify(CERT_INFO, PUB_AREA, &nonce).unwrap();
    let e = check_certify(CERT_INFO, PUB_AREA, &sha256(b"other")).unwrap_err();
    assert!(e.to_string().contains("extraData"), "{e}");
    // Another key's TPMT_PUBLIC (one bit of its x coordinate changed).
    let mut other = PUB_AREA.to_vec();
    let last = other.len() - 1;
    other[last] ^= 1;
    let e = check_certify(CERT_INFO, &other, &nonce).unwrap_err();
    assert!(e.to_string().contains("another key"), "{e}");
    // A key that may leave the TPM (fixedTPM cleared) is refused.
    let mut exportable = PUB_AREA.to_vec();
    exportable[7] &= !0x02;
    assert!(certified_key(&exportable)
        .unwrap_err()
        .to_string()
        .contains("fixedTPM"));
    // Not a certification (type changed), or not from a TPM (magic).
    let mut quote = CERT_INFO.to_vec();
    quote[5] = 0x18;
    assert!(check_certify(&quote, PUB_AREA, &nonce).is_err());
    let mut forged = CERT_INFO.to_vec();
    forged[0] = 0;
    assert!(check_certify(&forged, PUB_AREA, &nonce).is_err());
    // Every truncation is refused, never a panic.
    for n in 0..CERT_INFO.len() {
        assert!(check_certify(&CERT_INFO[..n], PUB_AREA, &nonce).is_err());
    }
    for n in 0..PUB_AREA.len() {
        assert!(certified_key(&PUB_AREA[..n]).is_err());
    }
}
