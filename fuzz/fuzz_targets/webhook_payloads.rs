//! Every MDM webhook body parser (our own JSON, Jamf, NanoMDM/MicroMDM,
//! Fleet): never a panic, whatever the body.
#![no_main]
use custos_webhooks::{parse, DeviceEventKind};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let groups = BTreeMap::from([("Lost Devices".to_string(), DeviceEventKind::Lost)]);
    let _ = parse::standard("s", "msg_1", data, 1_700_000_000);
    let _ = parse::jamf("j", data, &groups, 1_700_000_000);
    let _ = parse::nanomdm("n", data, 1_700_000_000);
    let _ = parse::fleet("f", data, 1_700_000_000);
});
