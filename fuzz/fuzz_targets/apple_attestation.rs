//! Apple device attestation objects as device-attest-01 receives them: the
//! CBOR object and its x5c, each certificate's Apple extensions, and the
//! chain check against Apple's root. Never a panic.
#![no_main]
use custos_attest::apple::{decode_att_obj, read_leaf, AppleVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static VERIFIER: OnceLock<AppleVerifier> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let verifier = VERIFIER.get_or_init(|| AppleVerifier::new(&[]).expect("Apple's root"));
    if let Ok(chain) = decode_att_obj(data) {
        for cert in &chain {
            let _ = read_leaf(cert);
        }
    }
    // The leaf parser alone, on the raw input (a certificate in DER).
    let _ = read_leaf(data);
    let _ = verifier.verify(data, "token", 1_750_000_000);
});
