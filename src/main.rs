//! `vipd`: parse the configuration, then run the loop or `--once`.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vipd::config::{self, Command, Config};
use vipd::daemon::{Daemon, Reloaded};
use vipd::dcs::etcd::{Credentials, Etcd, Settings};
use vipd::net::Kernel;
use vipd::signals::Signals;

/// Write to a stream, ignoring a dead pipe (never panic on output).
fn say(mut out: impl Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

fn etcd_settings(cfg: &Config) -> Settings {
    Settings {
        endpoints: cfg.endpoints.clone(),
        key: cfg.trigger_key.clone(),
        credentials: match (&cfg.etcd_user, &cfg.etcd_password) {
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                password: password.clone(),
            }),
            _ => None,
        },
        interval: cfg.interval,
        watch: !cfg.no_watch,
    }
}

/// A variable that is not UTF-8 cannot hold a valid value: it is read lossily so that
/// validation names it rather than treating it as unset.
fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Settings this build cannot honour yet: one line naming the key and file.
fn unsupported(cfg: &Config) -> Result<(), String> {
    // Until the TLS issue wires these into the HTTP client, refuse them rather than
    // verify against other roots than the ones the operator named.
    for (key, file) in [
        ("etcd-ca-file", &cfg.etcd_ca_file),
        ("etcd-cert-file", &cfg.etcd_cert_file),
        ("etcd-key-file", &cfg.etcd_key_file),
    ] {
        if let Some(file) = file {
            return Err(format!("{key}: {file:?}: TLS files are not supported yet"));
        }
    }
    Ok(())
}

/// SIGHUP: the same arguments and environment, read again; a new DCS client when
/// its settings changed, checked like at start-up.
fn reload(args: &[OsString], current: &Config) -> Result<Reloaded<Etcd>, String> {
    let loaded = config::load(args.to_vec(), &env, &hostname()).map_err(|e| e.to_string())?;
    let Command::Run(config) = loaded.command else {
        return Err("the command line no longer asks to run the daemon".into());
    };
    unsupported(&config)?;
    for w in &loaded.warnings {
        log::warn!("SIGHUP: {w}");
    }
    let settings = etcd_settings(&config);
    let dcs = if settings != etcd_settings(current) {
        let mut etcd = Etcd::new(&settings);
        let deadline = Instant::now() + config.interval.max(Duration::from_secs(2));
        etcd.check_credentials(deadline)
            .map_err(|rejected| rejected.0)?;
        Some(etcd)
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
        Command::Once { config, dry_run } => (config, Some(dry_run)),
    };
    if let Err(e) = unsupported(&cfg) {
        say(std::io::stderr(), &format!("vipd: {e}"));
        return ExitCode::from(2);
    }
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
    let mut etcd = Etcd::new(&etcd_settings(&cfg));
    if let Err(rejected) =
        etcd.check_credentials(Instant::now() + cfg.interval.max(Duration::from_secs(2)))
    {
        log::error!("{}", rejected.0);
        return ExitCode::from(2);
    }
    let daemon = Daemon::new(cfg, etcd, kernel);
    let status = match once {
        Some(dry_run) => {
            let (status, line) = daemon.once(dry_run);
            say(std::io::stdout(), &line);
            status
        }
        None => daemon.run(&signals, &mut |current: &Config| reload(&args, current)),
    };
    ExitCode::from(status as u8)
}
