//! SCEP `PKIOperation` bodies as `/scep` will receive them: the outer CMS
//! SignedData read into its SCEP attributes, signer and envelope. Never a
//! panic.
#![no_main]
use custos_scep::PkiMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PkiMessage::parse(data);
});
