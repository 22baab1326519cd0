//! An ACME request body: the flattened JWS, its protected header's key,
//! the signature check with that key, and the payload as JSON.
#![no_main]
use custos_acme::jws::{Jwk, Jws};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jws) = Jws::parse_request(data) else {
        return;
    };
    let _ = jws.is_post_as_get();
    let _ = jws.payload_json::<serde_json::Value>();
    let _ = jws.verify_hs256(b"0123456789abcdef0123456789abcdef");
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(protected) = v.get("protected").and_then(|p| p.as_str()) {
            if let Ok(bytes) = custos_acme::jws::b64u_decode(protected, "protected") {
                if let Ok(header) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    if let Some(jwk) = header.get("jwk") {
                        if let Ok(key) = Jwk::from_json(jwk) {
                            let _ = key.thumbprint();
                            let _ = key.public_key_bits();
                            let _ = jws.verify(&key);
                        }
                    }
                }
            }
        }
    }
});
