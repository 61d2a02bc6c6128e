//! `vipd`: parse the configuration, then run the loop or `--once`.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vipd::config::{self, Command, Config};
use vipd::daemon::Daemon;
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

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    // A variable that is not UTF-8 cannot hold a valid value: say so rather than
    // treating it as unset.
    let env = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let loaded = match config::load(args, &env, &hostname()) {
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
    // Until the TLS issue wires these into the HTTP client, refuse them rather than
    // verify against other roots than the ones the operator named.
    for (key, file) in [
        ("etcd-ca-file", &cfg.etcd_ca_file),
        ("etcd-cert-file", &cfg.etcd_cert_file),
        ("etcd-key-file", &cfg.etcd_key_file),
    ] {
        if let Some(file) = file {
            say(
                std::io::stderr(),
                &format!("vipd: {key}: {file:?}: TLS files are not supported yet"),
            );
            return ExitCode::from(2);
        }
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
        None => daemon.run(&signals),
    };
    ExitCode::from(status as u8)
}
