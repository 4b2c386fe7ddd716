//! `tollgate-store`: see `tollgate-store --help` and docs/store.md.

use std::process::ExitCode;

use tollgate_store::config::{self, Command};

fn main() -> ExitCode {
    let config = match config::parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(Command::Run(c)) => c,
        Ok(Command::Help) => {
            print!("{}", config::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("tollgate-store {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("tollgate-store: {msg}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tollgate-store: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tollgate_store::run(*config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tollgate-store: {msg}");
            ExitCode::FAILURE
        }
    }
}
