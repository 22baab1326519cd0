//! Certificate serial numbers: a newtype that keeps one canonical form.
//!
//! A serial is stored and compared as its big-endian magnitude with leading
//! zero bytes stripped, which is how it appears in a DER INTEGER once the sign
//! byte is removed and how OpenSSL prints it. Users see and type it as
//! uppercase hex. This module never touches storage or the network.

use std::fmt;
use std::str::FromStr;

/// Longest serial RFC 5280 allows (20 octets of content).
const MAX_LEN: usize = 20;

/// A positive certificate serial number in canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// Why a serial was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    /// The text was not hexadecimal.
    #[error("serial must be hexadecimal (e.g. 4F1C0A...), got {0:?}")]
    NotHex(String),
    /// Zero is not a valid serial.
    #[error("serial must not be zero")]
    Zero,
    /// Longer than RFC 5280's 20 octets.
    #[error("serial is longer than 20 octets")]
    TooLong,
}

impl Serial {
    /// Builds a serial from big-endian magnitude bytes (leading zeros allowed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SerialError> {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .ok_or(SerialError::Zero)?;
        let magnitude = &bytes[start..];
        if magnitude.len() > MAX_LEN {
            return Err(SerialError::TooLong);
        }
        Ok(Serial(magnitude.to_vec()))
    }

    /// A fresh serial of 128 bits from the operating system's CSPRNG.
    pub fn random() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        loop {
            let mut bytes = [0u8; 16];
            // The system RNG only fails if the OS has no entropy source at all;
            // there is no safe way to continue issuing certificates then.
            aws_lc_rs::rand::SecureRandom::fill(&rng, &mut bytes)
                .expect("operating system CSPRNG unavailable");
            if let Ok(serial) = Serial::from_bytes(&bytes) {
                return serial;
            }
        }
    }

    /// The canonical magnitude bytes (no leading zeros).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Uppercase hex, as printed and accepted by the CLI.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }

    /// The x509-cert form used when encoding certificates.
    pub fn to_x509(&self) -> x509_cert::serial_number::SerialNumber {
        // Canonical serials are at most 20 octets of positive magnitude, which
        // `SerialNumber::new` always accepts.
        x509_cert::serial_number::SerialNumber::new(&self.0)
            .expect("canonical serial encodes as a SerialNumber")
    }
}

impl FromStr for Serial {
    type Err = SerialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cleaned: String = s
            .trim()
            .trim_start_matches("0x")
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let padded = if cleaned.len() % 2 == 1 {
            format!("0{cleaned}")
        } else {
            cleaned
        };
        let bytes = hex::decode(&padded).map_err(|_| SerialError::NotHex(s.to_string()))?;
        if bytes.is_empty() {
            return Err(SerialError::NotHex(s.to_string()));
        }
        Serial::from_bytes(&bytes)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_strips_leading_zeros() {
        let s: Serial = "00:0a:ff".parse().unwrap();
        assert_eq!(s.as_bytes(), &[0x0a, 0xff]);
        assert_eq!(s.to_hex(), "0AFF");
        assert_eq!("aff".parse::<Serial>().unwrap(), s);
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!("00".parse::<Serial>(), Err(SerialError::Zero));
        assert!(matches!(
            "xyz".parse::<Serial>(),
            Err(SerialError::NotHex(_))
        ));
        assert!(matches!("".parse::<Serial>(), Err(SerialError::NotHex(_))));
        assert_eq!("01".repeat(21).parse::<Serial>(), Err(SerialError::TooLong));
    }

    #[test]
    fn random_serials_are_distinct_and_positive() {
        let a = Serial::random();
        let b = Serial::random();
        assert_ne!(a, b);
        assert!(a.as_bytes().len() <= 16);
        assert_ne!(a.as_bytes()[0], 0);
    }
}
