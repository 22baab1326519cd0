//! `custos.toml` as an operator (or a tool writing it) may get it wrong:
//! parsing, typed values (CIDR ranges, addresses, reasons, schedules) and
//! the range checks. Never a panic; an error names what is wrong.
#![no_main]
use custos_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Config::from_toml(text) {
            assert!(!e.to_string().is_empty());
        }
    }
});
