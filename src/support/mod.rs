//! Small pieces any module may use: [`files`] (atomic and 0600 writes),
//! [`metrics`] (the Prometheus registry), [`instance`] (how a running
//! `custos serve` announces itself and is found). They import nothing else
//! of custos.

pub mod console_users;
pub mod files;
pub mod instance;
pub mod metrics;

/// An error and every source under it, `outer: inner: …`, for a log line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}
