//! Apple-format attestations built with a test root and intermediate
//! (rcgen) and the Apple extensions, verified by the real verifier: only
//! under their own root, with the right token, in the right shape.

use crate::common;

use common::attest::{Claims, TestAttestationCa};
use custos::attestation::{AppleVerifier, AttestationError};

fn now() -> u64 {
    custos::model::time::unix_now()
}

#[test]
fn test_attestations_verify_only_with_their_root_token_and_shape() {
    let ca = TestAttestationCa::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let claims = Claims {
        serial: "C02TEST1".into(),
        udid: "00008030-TEST".into(),
        os_version: "17.4".into(),
        token: Some("tok-1".into()),
    };
    let obj = ca.att_obj(&key, &claims);
    let v = AppleVerifier::new(std::slice::from_ref(&ca.root_pem)).unwrap();
    let d = v.verify(&obj, "tok-1", now()).unwrap();
    assert_eq!(d.serial.as_deref(), Some("C02TEST1"));
    assert_eq!(d.udid.as_deref(), Some("00008030-TEST"));
    assert_eq!(d.os_version.as_deref(), Some("17.4"));
    assert_eq!(d.public_key, key.public_key_raw());
    assert_eq!(
        v.verify(&obj, "tok-2", now()),
        Err(AttestationError::Freshness(
            "does not match this challenge's token"
        ))
    );
    let no_code = ca.att_obj(
        &key,
        &Claims {
            token: None,
            ..claims.clone()
        },
    );
    assert_eq!(
        v.verify(&no_code, "tok-1", now()),
        Err(AttestationError::Freshness("is missing"))
    );
    let apple = AppleVerifier::new(&[]).unwrap();
    assert!(matches!(
        apple.verify(&obj, "tok-1", now()),
        Err(AttestationError::Chain(_))
    ));
    assert!(matches!(
        v.verify(b"\xff\x00garbage", "tok-1", now()),
        Err(AttestationError::Malformed(_))
    ));
    let mut other = Vec::new();
    ciborium::ser::into_writer(
        &ciborium::value::Value::Map(vec![("fmt".into(), "tpm".into())]),
        &mut other,
    )
    .unwrap();
    assert_eq!(
        v.verify(&other, "tok-1", now()),
        Err(AttestationError::Format("tpm".into()))
    );
    // After the leaf's 90 days: expired.
    assert!(matches!(
        v.verify(&obj, "tok-1", now() + 91 * 86_400),
        Err(AttestationError::Chain(_))
    ));
}

#[test]
fn x5c_must_hold_one_to_five_certificates_of_bounded_size() {
    use ciborium::value::Value;
    let v = AppleVerifier::new(&[]).unwrap();
    let obj = |x5c: Vec<Value>| {
        let mut out = Vec::new();
        ciborium::ser::into_writer(
            &Value::Map(vec![
                ("fmt".into(), "apple".into()),
                (
                    "attStmt".into(),
                    Value::Map(vec![("x5c".into(), Value::Array(x5c))]),
                ),
            ]),
            &mut out,
        )
        .unwrap();
        out
    };
    for x5c in [
        vec![],
        vec![Value::Bytes(vec![0x30; 8]); 6],
        vec![Value::Bytes(vec![0x30; 17 * 1024])],
        vec![Value::Text("not bytes".into())],
    ] {
        assert!(
            matches!(
                v.verify(&obj(x5c), "t", now()),
                Err(AttestationError::Malformed(_))
            ),
            "refused as malformed"
        );
    }
}
