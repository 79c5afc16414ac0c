//! `blis`: the command-line front end. Parsing and wiring only; the simulator lives in the
//! library crates and every run is described and assembled by `blis-config`.

mod args;
mod calibrate;
mod compose;
mod convert;
mod list;
mod observe;
mod plan;
mod run;
mod sweep;

/// mimalloc rather than the system allocator: requests are allocated on the routing thread
/// and freed on instance threads (`--threads`), where glibc's arenas contend and grow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::FromArgMatches;

use crate::args::{Cli, Command};

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let matches = match args::command().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => exit_on_clap_error(e),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_on_clap_error(e));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(cli.log.filter())
        .with_target(false)
        .without_time()
        .init();
    let result = match &cli.command {
        Command::Run(a) => run::run(a, &argv),
        Command::Replay(a) => run::replay(a, &argv),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Calibrate(a) => calibrate::calibrate(a),
        Command::Convert(a) => convert::convert(a),
        Command::Compose(a) => compose::compose(a),
        Command::Plan(a) => plan::plan(a),
        Command::List(a) => list::list(a),
        Command::Observe(a) => observe::observe(a, &argv),
        Command::Completion(a) => {
            // The command as parsed (defaults shown, observe's flags annotated), so the script
            // offers exactly what `blis` accepts.
            clap_complete::generate(a.shell, &mut args::command(), "blis", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}

/// Help and version go to stdout as clap prints them; a usage error is one line on stderr and
/// exit status 2.
fn exit_on_clap_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.to_string();
    let mut line = text.lines().next().unwrap_or("invalid arguments").to_string();
    for extra in text
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.starts_with("[possible values") || l.starts_with("tip:"))
    {
        line.push(' ');
        line.push_str(extra);
    }
    eprintln!("{line}");
    std::process::exit(2);
}
