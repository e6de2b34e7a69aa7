//! `medledger`: the one binary of a medledger node and its tools.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod cli;
mod gateway;
mod node;

use clap::Parser;

/// mimalloc rather than the system allocator: executing a block builds and
/// drops tens of thousands of small state-tree nodes, and glibc's malloc and
/// free were about a third of a replay's execution time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
