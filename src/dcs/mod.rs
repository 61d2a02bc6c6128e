//! The distributed consensus store (DCS) holding Patroni's leader key.

pub mod consul;
pub mod etcd;
pub mod etcd2;
pub mod etcd_any;
pub mod http;
pub mod patroni;
pub mod pki;
pub mod plain;
pub mod resolve;

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::{Config, DcsType};
use etcd::Rejected;
use etcd_any::{Api, EtcdAny, Mode};
use http::Tls;

/// What one look at the leader key found. Only `Leader` and `NoLeader` are facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The key holds this value (Patroni: the leader's member name).
    Leader(String),
    /// The DCS answered that the key does not exist: nobody leads.
    NoLeader,
    /// No answer, or one that cannot be trusted; the text says why.
    Unknown(String),
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Leader(name) => write!(f, "leader {name:?}"),
            Observation::NoLeader => f.write_str("no leader"),
            Observation::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// How waiting for a change of the leader key ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The key changed after the last observation; this is its new state.
    Changed(Observation),
    /// The watch broke (cancelled, compacted, stream error): read the key afresh now.
    Reread,
    /// Nothing happened until the deadline.
    Deadline,
}

/// A source of leader observations.
pub trait Dcs {
    /// Look at the leader key, returning no later than `deadline` (approximately: a
    /// request already on the wire may overrun it by its own timeout).
    fn observe(&mut self, deadline: Instant) -> Observation;

    /// Block until the key changes after the last [`Dcs::observe`], or until
    /// `deadline`. `None` when this DCS (or its configuration) cannot wait for changes:
    /// the caller then sleeps until the deadline itself.
    fn wait_for_change(&mut self, deadline: Instant) -> Option<Wait> {
        let _ = deadline;
        None
    }
}

impl<T: Dcs + ?Sized> Dcs for Box<T> {
    fn observe(&mut self, deadline: Instant) -> Observation {
        (**self).observe(deadline)
    }

    fn wait_for_change(&mut self, deadline: Instant) -> Option<Wait> {
        (**self).wait_for_change(deadline)
    }
}

/// The etcd client settings of a configuration.
pub fn etcd_settings(cfg: &Config, tls: &Tls) -> etcd::Settings {
    etcd::Settings {
        endpoints: cfg.endpoints.clone(),
        key: cfg.trigger_key.clone(),
        credentials: match (&cfg.etcd_user, &cfg.etcd_password) {
            (Some(user), password) => Some(etcd::Credentials {
                user: user.clone(),
                password: password
                    .clone()
                    .unwrap_or(crate::config::Secret(String::new())),
            }),
            _ => None,
        },
        interval: cfg.interval,
        watch: !cfg.no_watch,
        tls: tls.clone(),
    }
}

/// The client for the configured `dcs-type`, with the TLS settings already loaded
/// ([`http::Tls::load`]). Where credentials are configured they are tried once, until
/// `deadline`: a server that refuses them is a configuration error (vipd exits 2); one
/// that cannot be reached is not (the loop retries).
pub fn open(cfg: &Config, tls: &Tls, deadline: Instant) -> Result<Box<dyn Dcs>, Rejected> {
    let etcd = |mode: Mode| -> Result<Box<dyn Dcs>, Rejected> {
        let mut client = EtcdAny::new(&etcd_settings(cfg, tls), mode);
        client.check_credentials(deadline)?;
        Ok(Box::new(client))
    };
    match cfg.dcs_type {
        DcsType::Etcd => etcd(Mode::Either),
        DcsType::Etcd3 => etcd(Mode::Only(Api::V3)),
        DcsType::Etcd2 => etcd(Mode::Only(Api::V2)),
        DcsType::Consul => Ok(Box::new(consul::Consul::new(&consul::Settings {
            endpoints: cfg.endpoints.clone(),
            key: cfg.trigger_key.clone(),
            token: cfg.consul_token.clone(),
            interval: cfg.interval,
            watch: !cfg.no_watch,
            tls: tls.clone(),
        }))),
        DcsType::Patroni => Ok(Box::new(patroni::Patroni::new(&patroni::Settings {
            endpoint: cfg.endpoints.first().cloned().unwrap_or_default(),
            path: cfg.trigger_key.clone(),
            interval: cfg.interval,
            tls: tls.clone(),
        }))),
    }
}

/// Whether a configuration read again (SIGHUP) needs a new DCS client: any setting a
/// client is built from changed, or TLS files are in use (they may have been renewed
/// under the same names).
pub fn needs_new_client(old: &Config, new: &Config) -> bool {
    let settings = |c: &Config| {
        (
            c.dcs_type,
            c.endpoints.clone(),
            c.trigger_key.clone(),
            c.etcd_user.clone(),
            c.etcd_password.clone(),
            c.consul_token.clone(),
            c.interval,
            c.no_watch,
        )
    };
    let tls_files = |c: &Config| {
        [&c.etcd_ca_file, &c.etcd_cert_file, &c.etcd_key_file]
            .iter()
            .any(|f| f.is_some())
    };
    settings(old) != settings(new) || tls_files(old) || tls_files(new)
}

/// How long start-up may spend on a credential check.
pub fn startup_deadline(cfg: &Config) -> Instant {
    Instant::now() + cfg.interval.max(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::decide::Grace;

    fn config() -> Config {
        Config::example()
    }

    #[test]
    fn a_new_client_only_for_client_settings_or_tls_files() {
        let old = config();
        // Settings the client does not use: keep it.
        let mut new = config();
        new.trigger_value = "pg2".into();
        new.dcs_grace = Grace::Never;
        new.vip.prefix_len = 32;
        new.verbose = true;
        assert!(!needs_new_client(&old, &new));
        // Each setting it is built from.
        let changes: [fn(&mut Config); 8] = [
            |c| c.dcs_type = DcsType::Consul,
            |c| c.endpoints.push("http://127.0.0.1:3379".into()),
            |c| c.trigger_key = "/service/other/leader".into(),
            |c| c.etcd_user = Some("patroni".into()),
            |c| c.etcd_password = Some(Secret("pw".into())),
            |c| c.consul_token = Some(Secret("t".into())),
            |c| c.interval = Duration::from_millis(500),
            |c| c.no_watch = true,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut new = config();
            change(&mut new);
            assert!(needs_new_client(&old, &new), "change {i}");
        }
        // TLS files may have been renewed under the same name: always a new client.
        let mut tls = config();
        tls.etcd_ca_file = Some("/etc/vipd/ca.pem".into());
        assert!(needs_new_client(&tls, &tls.clone()));
    }

    #[test]
    fn etcd_credentials_from_the_configuration() {
        let mut cfg = config();
        assert!(etcd_settings(&cfg, &Tls::default()).credentials.is_none());
        // A user without a password authenticates with an empty one (as warned).
        cfg.etcd_user = Some("patroni".into());
        let c = etcd_settings(&cfg, &Tls::default()).credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.0.as_str()), ("patroni", ""));
        cfg.etcd_password = Some(Secret("pw".into()));
        let c = etcd_settings(&cfg, &Tls::default()).credentials.unwrap();
        assert_eq!(c.password, Secret("pw".into()));
    }
}
