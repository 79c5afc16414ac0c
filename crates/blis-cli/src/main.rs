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
