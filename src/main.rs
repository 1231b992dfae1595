//! The `ringgate` binary: command line → configuration → server. Nothing else lives here.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringgate::config::{Config, IoDriver, Machine, RawConfig, RelayKind};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An HTTP forward proxy for CONNECT tunnels. Every flag overrides the same key of the config file;
/// with no arguments ringgate runs on its embedded default config (see --print-config).
#[derive(Debug, Parser)]
#[command(name = "ringgate", version)]
struct Cli {
    /// TOML config file; its keys override the embedded default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Address to listen on, IPv4 or [IPv6]:port (repeatable) [default: 127.0.0.1:3128]
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Worker threads; 0 = one per available core [default: 0]
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// io driver [default: auto]
    #[arg(long, value_enum)]
    io_driver: Option<IoDriver>,
    /// Tunnel relay [default: splice]
    #[arg(long, value_enum)]
    relay: Option<RelayKind>,
    /// listen(2) backlog [default: 1024]
    #[arg(long, value_name = "N")]
    backlog: Option<u32>,
    /// Relay pipe capacity in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    pipe_size: Option<usize>,
    /// Empty pipes kept per worker for reuse [default: 64]
    #[arg(long, value_name = "N")]
    pipe_pool: Option<usize>,
    /// Per-worker buffer of the copy relay in bytes [default: 65536]
    #[arg(long, value_name = "BYTES")]
    copy_buffer: Option<usize>,
    /// Largest request head, else 431 [default: 16384]
    #[arg(long, value_name = "BYTES")]
    max_head_bytes: Option<usize>,
    /// Longest request-target, else 414 [default: 8192]
    #[arg(long, value_name = "BYTES")]
    max_target_bytes: Option<usize>,
    /// Most header fields, else 431 [default: 100]
    #[arg(long, value_name = "N")]
    max_headers: Option<usize>,
    /// Seconds a client has to send a complete head [default: 10]
    #[arg(long, value_name = "SECS")]
    header_timeout: Option<u64>,
    /// Seconds to resolve and connect to a CONNECT target, else 504 [default: 10]
    #[arg(long, value_name = "SECS")]
    connect_timeout: Option<u64>,
    /// Seconds a tunnel may sit with no bytes moving [default: 300]
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Seconds open tunnels get to finish on SIGTERM/SIGINT [default: 30]
    #[arg(long, value_name = "SECS")]
    shutdown_grace: Option<u64>,
    /// Threads for blocking name resolution [default: 4]
    #[arg(long, value_name = "N")]
    resolver_threads: Option<usize>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives [default: info]
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

impl Cli {
    /// The flags as the top configuration layer.
    fn layer(&self) -> RawConfig {
        RawConfig {
            listen: (!self.listen.is_empty()).then(|| self.listen.clone()),
            workers: self.workers,
            io_driver: self.io_driver,
            relay: self.relay,
            backlog: self.backlog,
            pipe_size: self.pipe_size,
            pipe_pool: self.pipe_pool,
            copy_buffer: self.copy_buffer,
            max_head_bytes: self.max_head_bytes,
            max_target_bytes: self.max_target_bytes,
            max_headers: self.max_headers,
            header_timeout_secs: self.header_timeout,
            connect_timeout_secs: self.connect_timeout,
            idle_timeout_secs: self.idle_timeout,
            shutdown_grace_secs: self.shutdown_grace,
            resolver_threads: self.resolver_threads,
            log_level: self.log_level.clone(),
        }
    }
}

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
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("ringgate: {}", first.trim_start_matches("error: "));
            return ExitCode::from(USAGE);
        }
    };
    let config = match Config::load(cli.config.as_deref(), cli.layer(), &Machine::probe()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringgate: {e}");
            return ExitCode::from(USAGE);
        }
    };
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

    match ringgate::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            drop(_flush_on_exit);
            eprintln!("ringgate: {e}");
            ExitCode::FAILURE
        }
    }
}
