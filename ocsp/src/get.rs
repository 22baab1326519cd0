//! Decoding the GET form of OCSP requests (RFC 6960 Appendix A.1):
//! `{url}/{url-encoding of base64 encoding of the DER request}`.
//!
//! Clients differ: some percent-encode `+`, `/` and `=`, some do not; some
//! drop the padding. A literal `+` is base64, never a space.

use crate::OcspError;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Standard alphabet, padding optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Largest encoded GET request we look at.
pub const MAX_GET_LEN: usize = 8 * 1024;

/// Decodes the part of the path after `/ocsp/` into request DER.
pub fn decode_get_path(encoded: &str) -> Result<Vec<u8>, OcspError> {
    if encoded.is_empty() {
        return Err(OcspError::Malformed("empty GET request".into()));
    }
    if encoded.len() > MAX_GET_LEN {
        return Err(OcspError::Malformed("GET request too long".into()));
    }
    let unescaped = percent_encoding::percent_decode_str(encoded).collect::<Vec<u8>>();
    // Whitespace is not base64; a `+` that became a space upstream is restored.
    let cleaned: Vec<u8> = unescaped
        .into_iter()
        .map(|b| if b == b' ' { b'+' } else { b })
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    LENIENT
        .decode(&cleaned)
        .map_err(|e| OcspError::Malformed(format!("bad base64 in GET request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = &[0xfb, 0xff, 0xbf, 0x30, 0x01, 0x02, 0x03];

    #[test]
    fn accepts_the_encodings_clients_send() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(DER); // "+/+/MAECAw=="
        assert!(b64.contains('+') && b64.contains('/') && b64.ends_with('='));
        assert_eq!(decode_get_path(&b64).unwrap(), DER);
        let escaped = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(decode_get_path(&escaped).unwrap(), DER);
        let lower = b64
            .replace('+', "%2b")
            .replace('/', "%2f")
            .replace('=', "%3d");
        assert_eq!(decode_get_path(&lower).unwrap(), DER);
        assert_eq!(decode_get_path(b64.trim_end_matches('=')).unwrap(), DER);
        assert_eq!(decode_get_path(&b64.replace('+', " ")).unwrap(), DER);
    }

    #[test]
    fn refuses_garbage() {
        assert!(matches!(decode_get_path(""), Err(OcspError::Malformed(_))));
        assert!(matches!(
            decode_get_path("!!!"),
            Err(OcspError::Malformed(_))
        ));
        assert!(matches!(
            decode_get_path("%ZZ"),
            Err(OcspError::Malformed(_))
        ));
        assert!(matches!(
            decode_get_path(&"A".repeat(MAX_GET_LEN + 1)),
            Err(OcspError::Malformed(_))
        ));
    }
}
