//! The `tollgate` binary: parse the command line, start tracing, run the command, map the result
//! to an exit code (64 for bad usage or configuration, 1 otherwise).

#![forbid(unsafe_code)]

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tollgate::cli::log_writer::LogWriter;
use tollgate::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // hudsucker's spans carry whole request URIs (query strings may hold keys, e.g. `?key=`),
    // so they stay off whatever RUST_LOG says; Tollgate's own lines name what matters.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive("hudsucker=warn".parse().expect("valid directive"))
        .add_directive("tokio_graceful=warn".parse().expect("valid directive"));
    // Lines are written by a thread of their own, from a buffer it takes whole every few
    // milliseconds: no request waits on standard error or wakes a thread, and under load many
    // lines leave in one write. Not lossy: a full buffer holds loggers back rather than drop lines.
    let (writer, log_guard) = match LogWriter::new("tollgate-log", std::io::stderr()) {
        Ok(logs) => logs,
        Err(err) => {
            eprintln!("tollgate: cannot start the log writer: {err}");
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        // One JSON object per line: timestamp, level, target and the event's fields at the top
        // level (`message` included), the same fields the text lines carry.
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tollgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.execute());
    drop(runtime);
    // Every log line is out before the closing sentence, if any.
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_reported() => ExitCode::from(err.exit_code()),
        Err(err) => {
            // Said once, on standard error, as a sentence (not also as a log line).
            eprintln!("tollgate: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
