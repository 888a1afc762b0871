//! The `jwtd` command line: argument parsing, key loading, output. Verification logic lives in the library.

#![warn(unreachable_pub)]

/// Writes a line to standard error, ignoring failure: a daemon whose stderr was closed (a supervisor gone, a
/// test that stopped reading) must keep serving, where `eprintln!` would panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod cli;

// mimalloc: the daemon allocates one small buffer per verified token and per reply batch.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("jwtd: {msg}");
            ExitCode::from(2)
        }
    }
}
