//! Operator maintenance of a data dir: [`verify`] (`custos ledger verify`:
//! what status readers serve agrees with the records) and [`backup`]
//! (`custos backup` / `custos restore`).

pub mod backup;
pub mod verify;
