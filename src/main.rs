//! The binary: parse flags, start logging, run the exporter or the simulator, and turn any
//! start-up error into one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::error::ErrorKind;

use clouddevice_exporter::cli::account::EnvLookup;
use clouddevice_exporter::cli::{Config, Demo, ExporterArgs};
use clouddevice_exporter::run::{Cli, Command};
use clouddevice_exporter::{check, healthcheck, logging, run, simulate};
use clouddevice_simulator::SimHandle;

// A scrape of a large fleet makes and frees millions of small strings, which mimalloc does with
// much less CPU than glibc's allocator (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (v3 `mimalloc.h`); the Rust bindings
/// name no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    tune_memory();
    let cli = match Cli::from_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spans several lines (possible values, tips, usage); keep what
            // says what is wrong and how to fix it, on one line.
            let rendered = e.render().to_string();
            let parts: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"))
                .map(|l| l.strip_prefix("error: ").unwrap_or(l))
                .collect();
            return fail(&format!("{}; see --help", parts.join(" ")), 2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 1),
    };
    let result = match cli.command {
        Some(Command::Simulate(args)) => {
            logging::init(args.log.level, args.log.format);
            runtime
                .block_on(simulate::run(*args))
                .map_err(|e| e.to_string())
        }
        Some(Command::Healthcheck(args)) => runtime
            .block_on(healthcheck::run(args))
            .map_err(|e| format!("healthcheck: {e}")),
        Some(Command::Check(args)) => {
            let check::CheckArgs {
                exporter: args,
                account,
                config_only,
            } = *args;
            let (config, demo) = match configure(args, &runtime) {
                Ok(configured) => configured,
                Err(exit) => return exit,
            };
            let (report, all_read) =
                runtime.block_on(check::run(&config, account.as_deref(), config_only));
            print!("{report}");
            drop(demo);
            return if all_read {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        None => {
            let (config, demo) = match configure(cli.exporter, &runtime) {
                Ok(configured) => configured,
                Err(exit) => return exit,
            };
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            let result = runtime
                .block_on(run::exporter(config))
                .map_err(|e| e.to_string());
            drop(demo);
            // Password checks of a reload that was dropped still run on blocking threads; the
            // process does not wait for them.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            result
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, 1),
    }
}

/// Validates the exporter's flags and starts logging; under `--demo` its simulator listens
/// first, so that what it serves is part of the configuration as validated (it lives as long as
/// what it returns).
fn configure(
    args: ExporterArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Config, Option<(SimHandle, Demo)>), ExitCode> {
    let log = args.log;
    let demo = match args.demo.then(|| runtime.block_on(run::start_demo())) {
        Some(Ok(demo)) => Some(demo),
        Some(Err(e)) => return Err(fail(&e.to_string(), 1)),
        None => None,
    };
    let setup = demo.as_ref().map(|(_, demo)| demo);
    let config = args
        .validate_demo(EnvLookup::process(), setup)
        .map_err(|e| fail(&e.to_string(), 2))?;
    logging::init(log.level, log.format);
    Ok((config, demo))
}

/// Makes a large scrape's memory go back to the system once the scrape is over.
fn tune_memory() {
    // Freed memory goes back at once. mimalloc's default is to wait a second, but it only looks
    // again when the program next allocates: an idle exporter would hold a large scrape's memory
    // until the next scrape. MIMALLOC_PURGE_DELAY still overrides this.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide allocator option; mimalloc reads it each time it purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    // No transparent huge pages. A huge page stays resident as long as any byte of it is in use,
    // so a large scrape left memory held long after it ended, for no CPU gain (BENCHMARKS.md).
    // mimalloc's `no_thp` feature stops it asking for them; this covers kernels that give them
    // unasked.
    #[cfg(target_os = "linux")]
    // SAFETY: a process-wide flag with integer arguments; it touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("clouddevice_exporter: {message}");
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_we_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // mimalloc v3's default purge delay is 1000 ms; any other option at this index would
        // mean the enum moved in a mimalloc upgrade and main would set the wrong option.
        // SAFETY: reads a process-wide allocator option.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, 1000);
    }
}
