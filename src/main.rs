//! `vipd`: parse the configuration, then run the loop or `--once`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use vipd::config::{self, Command, Config};
use vipd::daemon::{Daemon, Reloaded};
use vipd::dcs::Dcs;
use vipd::dcs::http::Tls;
use vipd::fence::patroni::{AskPatroni, Patroni};
use vipd::hosted::Hosted;
use vipd::metrics::server::Server;
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
    let urls: Vec<String> = cfg
        .endpoints
        .iter()
        .chain(&cfg.patroni_url)
        .cloned()
        .collect();
    Tls::load(&cfg.tls_files(), &urls)
}

/// The provider's side of a hosted failover IP (its worker thread started), when
/// `manager-type` is not `basic`. A CA file rustls refuses is a configuration error.
fn hosted(cfg: &Config) -> Result<Option<Hosted>, String> {
    let Some(settings) = cfg.hosted.clone() else {
        return Ok(None);
    };
    let tls = Tls::for_api(
        settings.ca_file.as_deref(),
        "hetzner-ca-file",
        settings.api_url(),
    )?;
    Hosted::start(settings, cfg.vip.addr, &tls)
        .map(Some)
        .map_err(|e| format!("starting the API worker: {e}"))
}

/// The client of this node's Patroni REST API, when `patroni-url` is set.
fn patroni(cfg: &Config, tls: &Tls) -> Option<Box<dyn AskPatroni>> {
    let url = cfg.patroni_url.as_deref()?;
    Some(Box::new(Patroni::new(url, cfg.interval, tls, cfg.role())))
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
    let tls = load_tls(&config)?;
    let dcs = if current.dcs_settings().need_new_client(&settings) {
        let deadline = settings.startup_deadline();
        Some(vipd::dcs::open(&settings, &tls, deadline).map_err(|rejected| rejected.0)?)
    } else {
        None
    };
    let patroni = patroni(&config, &tls);
    let hosted = match config.hosted_changed(current) {
        true => hosted(&config)?,
        false => None,
    };
    let metrics_server = match config.metrics_listen {
        Some(addr) if config.metrics_listen != current.metrics_listen => Some(bind_metrics(addr)?),
        _ => None,
    };
    Ok(Reloaded {
        config,
        dcs,
        patroni,
        metrics_server,
        hosted,
    })
}

/// The metrics server on `addr`; an address that cannot be bound is a configuration
/// error.
fn bind_metrics(addr: std::net::SocketAddr) -> Result<Server, String> {
    Server::bind(addr).map_err(|e| format!("metrics-listen: cannot listen on {addr}: {e}"))
}

/// One line on stderr (the logger is not set up yet), then exit with `status`.
fn fail(status: u8, text: &str) -> ExitCode {
    say(std::io::stderr(), &format!("vipd: {text}"));
    ExitCode::from(status)
}

fn main() -> ExitCode {
    // First of all: a SIGHUP or SIGTERM sent right after the start (a reload issued as
    // the service starts) is recorded for the loop instead of killing vipd by default.
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(1, &format!("installing signal handlers: {e}")),
    };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let loaded = match config::load(args.clone(), &env, &hostname()) {
        Ok(l) => l,
        Err(e) => return fail(2, &e.to_string()),
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
        Err(e) => return fail(2, &e),
    };
    vipd::logger::init(cfg.verbose);
    vipd::logger::set_tag(cfg.role().log_tag());
    let env_warnings = config::unknown_env_warnings(std::env::vars_os().map(|(k, _)| k));
    for w in loaded.warnings.iter().chain(&env_warnings) {
        log::warn!("{w}");
    }
    match start(cfg, &tls, signals, once, &args) {
        Ok(status) | Err(status) => ExitCode::from(status),
    }
}

/// Open the kernel's sockets and the DCS client, keep only the two capabilities, then
/// run the loop (or `--once`): its exit status, or the one of the step that failed
/// (logged). The signal handlers are already in place, so no signal interrupts a change.
fn start(
    cfg: Config,
    tls: &Tls,
    signals: Signals,
    once: Option<(bool, bool)>,
    args: &[OsString],
) -> Result<u8, u8> {
    let kernel = Kernel::open().map_err(|e| {
        log::error!("{e} (vipd needs CAP_NET_ADMIN and CAP_NET_RAW)");
        1
    })?;
    // Bound before the DCS is asked anything: a taken port fails at once.
    let metrics_server = match (cfg.metrics_listen, once) {
        (Some(addr), None) => Some(bind_metrics(addr).map_err(|e| {
            log::error!("{e}");
            2
        })?),
        _ => None,
    };
    let settings = cfg.dcs_settings();
    let dcs = vipd::dcs::open(&settings, tls, settings.startup_deadline()).map_err(|rejected| {
        log::error!("{}", rejected.0);
        2
    })?;
    let patroni = patroni(&cfg, tls);
    let hosted = hosted(&cfg).map_err(|e| {
        log::error!("{e}");
        2
    })?;
    let daemon = Daemon::new(cfg, dcs, kernel)
        .with_hosted(hosted)
        .with_patroni(patroni)
        .with_metrics_server(metrics_server)
        .with_hooks();
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
        None => daemon.run(&signals, &mut |current: &Config| reload(args, current)),
    };
    Ok(status as u8)
}
