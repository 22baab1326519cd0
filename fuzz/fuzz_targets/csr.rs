//! PKCS#10 requests as ACME finalize, the admin API and `custos issue`
//! receive them (PEM or DER): parsing, the requested names, the key checks
//! and the self-signature; and a bare SubjectPublicKeyInfo. Never a panic.
#![no_main]
use custos_csr::{verify_csr, VerifiedCsr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_csr(data);
    let _ = VerifiedCsr::for_own_key(data);
});
