//! The path of `GET /ocsp/<url-encoded base64>`: decoded, then parsed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(der) = custos_ocsp::get::decode_get_path(path) {
        let _ = custos_ocsp::request::parse_simple(&der);
        let _ = custos_ocsp::request::parse_request(&der, 32);
    }
});
