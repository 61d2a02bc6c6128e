//! `vipd`: parse the configuration, then run the loop or `--once`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use vipd::config::{self, Command, Config};
use vipd::daemon::{Daemon, Reloaded};
use vipd::dcs::Dcs;
use vipd::dcs::http::Tls;
use vipd::net::Kernel;
use vipd::signals::Signals;

/// Write to a stream, ignoring a dead pipe (never panic on output).
fn say(mut out: impl Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

fn hostname() -> String {
    vipd::net::sys::hostname().unwrap_or_default()
}

/// A variable that is not UTF-8 cannot hold a valid value: it is read lossily so that
/// validation names it rather than treating it as unset.
fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The TLS files, loaded and judged by rustls: a certificate or key it refuses is a
/// configuration error (one line naming the file), never a failure at a connection.
fn load_tls(cfg: &Config) -> Result<Tls, String> {
    Tls::load(&cfg.tls_files(), &cfg.endpoints)
}

/// SIGHUP: the same arguments and environment, read again; a new DCS client when its
/// settings changed (or TLS files are used: they may have been renewed), checked like
/// at start-up.
fn reload(args: &[OsString], current: &Config) -> Result<Reloaded<Box<dyn Dcs>>, String> {
    let loaded = config::load(args.to_vec(), &env, &hostname()).map_err(|e| e.to_string())?;
    let Command::Run(config) = loaded.command else {
        return Err("the command line no longer asks to run the daemon".into());
    };
    for w in &loaded.warnings {
        log::warn!("SIGHUP: {w}");
    }
    let settings = config.dcs_settings();
    let dcs = if current.dcs_settings().need_new_client(&settings) {
        let tls = load_tls(&config)?;
        let deadline = settings.startup_deadline();
        Some(vipd::dcs::open(&settings, &tls, deadline).map_err(|rejected| rejected.0)?)
    } else {
        None
    };
    Ok(Reloaded { config, dcs })
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let loaded = match config::load(args.clone(), &env, &hostname()) {
        Ok(l) => l,
        Err(e) => {
            say(std::io::stderr(), &format!("vipd: {e}"));
            return ExitCode::from(2);
        }
    };
    let (cfg, once) = match loaded.command {
        Command::Help => {
            say(std::io::stdout(), &config::help_text());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            say(
                std::io::stdout(),
                concat!("vipd ", env!("CARGO_PKG_VERSION")),
            );
            return ExitCode::SUCCESS;
        }
        Command::Run(cfg) => (cfg, None),
        Command::Once {
            config,
            dry_run,
            json,
        } => (config, Some((dry_run, json))),
    };
    let tls = match load_tls(&cfg) {
        Ok(tls) => tls,
        Err(e) => {
            say(std::io::stderr(), &format!("vipd: {e}"));
            return ExitCode::from(2);
        }
    };
    vipd::logger::init(cfg.verbose);
    let env_warnings = config::unknown_env_warnings(std::env::vars_os().map(|(k, _)| k));
    for w in loaded.warnings.iter().chain(&env_warnings) {
        log::warn!("{w}");
    }
    // Before anything can fail half-way: from here on SIGTERM cannot interrupt a change.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!("installing signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let kernel = match Kernel::open() {
        Ok(k) => k,
        Err(e) => {
            log::error!("{e} (vipd needs CAP_NET_ADMIN and CAP_NET_RAW)");
            return ExitCode::from(1);
        }
    };
    let settings = cfg.dcs_settings();
    let dcs = match vipd::dcs::open(&settings, &tls, settings.startup_deadline()) {
        Ok(dcs) => dcs,
        Err(rejected) => {
            log::error!("{}", rejected.0);
            return ExitCode::from(2);
        }
    };
    let daemon = Daemon::new(cfg, dcs, kernel);
    // Sockets open, configuration read: keep only CAP_NET_ADMIN and CAP_NET_RAW.
    match vipd::caps::drop_to_net_admin_and_raw() {
        Ok(d) => log::debug!(
            "capabilities kept: {:#x} (bounding set narrowed: {})",
            d.kept,
            d.bounding
        ),
        Err(e) => log::warn!("cannot drop capabilities: {e}"),
    }
    let status = match once {
        Some((dry_run, json)) => {
            let (status, line) = daemon.once(dry_run, json);
            say(std::io::stdout(), &line);
            status
        }
        None => daemon.run(&signals, &mut |current: &Config| reload(&args, current)),
    };
    ExitCode::from(status as u8)
}
