//! Small pieces any module may use: [`files`] (atomic and 0600 writes),
//! [`metrics`] (the Prometheus registry), [`instance`] (how a running
//! `custos serve` announces itself and is found). They import nothing else
//! of custos.

pub mod files;
pub mod instance;
pub mod metrics;
