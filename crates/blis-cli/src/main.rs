//! `blis`: the command-line front end. Parsing and wiring only; the simulator lives in the
//! library crates.

mod args;
mod calibrate;
mod compose;
mod convert;
mod policy_config;
mod replay;
mod run;
mod sweep;

use clap::Parser;

use crate::args::{Cli, Command};

/// mimalloc with large (2 MiB) OS pages: the simulator's per-instance structures are large and
/// touched at random, so fewer TLB misses; mimalloc is also cheaper per malloc/free than glibc
/// (S3 300 k: user CPU ≈ −13 %; wall is noisier, the kernel's page-fault time varies).
/// The allocator does not affect outputs (nothing depends on addresses).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs before mimalloc's own load-time initialisation (a prioritised `.init_array` entry runs
/// before the unprioritised ones), so its first arena may already use large OS pages.
extern "C" fn mimalloc_options() {
    // SAFETY: sets a mimalloc option; touches no allocation state.
    unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) };
}

#[used]
#[unsafe(link_section = ".init_array.00099")]
static MIMALLOC_OPTIONS: extern "C" fn() = mimalloc_options;

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Calibrate(args) => calibrate::calibrate(args),
        Command::Replay(args) => replay::replay(args),
        Command::Convert(args) => convert::convert(args),
        Command::Compose(args) => compose::compose(args),
        Command::Sweep(args) => sweep::sweep(args),
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}
