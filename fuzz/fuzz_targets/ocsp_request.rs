//! An OCSP request body as POSTed to `/ocsp`: the hot path's quick parser
//! and the full parser must never panic, and must agree on what they both
//! accept.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let simple = custos_ocsp::request::parse_simple(data);
    let full = custos_ocsp::request::parse_request(data, 128);
    if let (Some(s), Ok(f)) = (&simple, &full) {
        assert_eq!(f.queries.len(), 1, "the quick parser takes single requests only");
        assert_eq!(f.queries[0].serial.as_slice(), s.serial);
        assert_eq!(f.queries[0].name_hash(), s.name_hash);
        assert_eq!(f.queries[0].key_hash(), s.key_hash);
    }
});
