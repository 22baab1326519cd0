//! The `custos` binary: parses the command line and runs it. All logic lives
//! in the library so tests and benches use the same code.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match custos::cli::main().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custos: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
