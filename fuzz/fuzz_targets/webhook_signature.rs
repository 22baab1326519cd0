//! Standard Webhooks verification with hostile headers: the first line of
//! the input is `id`, the second the timestamp, the third the signature
//! header, the rest the body.
#![no_main]
use custos_webhooks::standard::{verify, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let id = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let ts = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let sig = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let body = parts.next().unwrap_or_default();
    let secret = Secret::parse("whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==").unwrap();
    let _ = verify(&[secret], id, ts, sig, body, 1_700_000_000);
    let _ = Secret::parse(id.unwrap_or_default());
});
