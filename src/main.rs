//! The `ringgate` binary: command line → configuration → server. Nothing else lives here.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use ringgate::cli::{Cli, Command};
use ringgate::config::{Config, Machine};
use ringgate::server::StartError;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a bad flag or config, as for clap's own usage errors.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            let first = first.trim_start_matches("error: ");
            // "the following required arguments were not provided:" names them on the next line.
            match lines.next().filter(|_| first.ends_with(':')) {
                Some(what) => eprintln!("ringgate: {first} {}", what.trim()),
                None => eprintln!("ringgate: {first}"),
            }
            return ExitCode::from(USAGE);
        }
    };
    if let Some(Command::Generate { what }) = cli.command {
        // Needs no configuration: it describes the flags, not this host.
        return match what.write(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringgate: cannot write: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Passwd(args)) = &cli.command {
        // Edits a user file; needs no configuration.
        return match ringgate::cli::passwd::run(args) {
            Ok(done) => {
                eprintln!("ringgate: {done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringgate: {e}");
                match e {
                    ringgate::cli::passwd::Error::Usage(_) => ExitCode::from(USAGE),
                    ringgate::cli::passwd::Error::Io { .. } => ExitCode::FAILURE,
                }
            }
        };
    }
    let config = match Config::load(cli.config.as_deref(), cli.layer(), &Machine::probe()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringgate: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(Command::CheckHost) = cli.command {
        use ringgate::cli::check_host::{Readings, Verdict, assess, render};
        let rows = assess(&Readings::read(), &config);
        print!("{}", render(&rows));
        return if rows.iter().any(|r| r.verdict == Verdict::Critical) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }

    // Log lines go through a background writer: a slow stderr never stalls a worker; when its
    // queue is full, lines are dropped rather than waited for.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("ringgate-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_level))
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // SIGHUP reads the same file, under the same flags, again.
    let (file, flags) = (cli.config.clone(), cli.layer());
    let reload = ringgate::server::Reload {
        load: {
            let file = file.clone();
            Box::new(move || Config::load(file.as_deref(), flags.clone(), &Machine::probe()))
        },
        file,
    };
    match ringgate::server::run(config, reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            drop(_flush_on_exit);
            eprintln!("ringgate: {e}");
            match e {
                // A bad user file is the operator's input, like a bad config key.
                StartError::Auth(_) | StartError::Policy(_) | StartError::Tls(_) => {
                    ExitCode::from(USAGE)
                }
                StartError::Io(_) => ExitCode::FAILURE,
            }
        }
    }
}
