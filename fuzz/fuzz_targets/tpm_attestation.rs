//! TPM attestation objects and the TPM structures inside them (TPMT_PUBLIC,
//! TPMS_ATTEST), read by hand in custos-attest: refused or accepted, never
//! a panic or an out-of-bounds read.
#![no_main]
use custos_attest::tpm::{certified_key, check_certify, TpmVerifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static VERIFIER: OnceLock<TpmVerifier> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Any valid root will do: the fuzzer cannot forge a chain to it, so
    // `verify` exercises the CBOR and x5c reading; the TPM structure
    // readers are called directly.
    let verifier = VERIFIER.get_or_init(|| {
        TpmVerifier::new(&[custos_attest::apple::APPLE_ROOT_PEM.to_string()]).expect("root")
    });
    let _ = verifier.verify(data, "token.thumbprint", 1_800_000_000);
    let _ = certified_key(data);
    if data.len() > 2 {
        let split = data[0] as usize % data.len();
        let (info, area) = data[1..].split_at(split.min(data.len() - 1));
        let _ = check_certify(info, area, &[0u8; 32]);
    }
});
