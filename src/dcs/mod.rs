//! The distributed consensus store (DCS) holding Patroni's leader key.

pub mod consul;
pub mod etcd;
pub mod etcd2;
pub mod etcd_any;
pub mod http;
pub mod patroni;
pub mod scope;
pub mod tls;

use std::fmt;
use std::time::{Duration, Instant};

use etcd::Rejected;
use etcd_any::{Api, EtcdAny, Mode};
use tls::{Tls, TlsFiles};

use crate::wake::Wake;

/// Which DCS holds the leader key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcsType {
    /// `etcd`: etcd's v3 API, or its v2 keys API while only v2 has the key.
    Etcd,
    /// `etcd3`: etcd's v3 API only (through the JSON gateway).
    Etcd3,
    /// `etcd2`: etcd's v2 keys API only (Patroni's `etcd:` section).
    Etcd2,
    /// `consul`: Consul's KV store.
    Consul,
    /// `patroni`: Patroni's REST API on this node.
    Patroni,
}

impl DcsType {
    /// The endpoint used when `dcs-endpoints` is not set.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            DcsType::Etcd | DcsType::Etcd3 | DcsType::Etcd2 => "http://127.0.0.1:2379",
            DcsType::Consul => "http://127.0.0.1:8500",
            DcsType::Patroni => "http://127.0.0.1:8008",
        }
    }

    /// The name as `dcs-type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DcsType::Etcd => "etcd",
            DcsType::Etcd3 => "etcd3",
            DcsType::Etcd2 => "etcd2",
            DcsType::Consul => "consul",
            DcsType::Patroni => "patroni",
        }
    }

    /// Whether this is one of the etcd types.
    pub fn is_etcd(self) -> bool {
        matches!(self, DcsType::Etcd | DcsType::Etcd3 | DcsType::Etcd2)
    }
}

/// A password or token: never printed, not even by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
    /// Nothing happened until the deadline, or until the wait was woken.
    Deadline,
}

/// A source of leader observations.
pub trait Dcs {
    /// Look at the leader key, returning no later than `deadline` (approximately: a
    /// request made when the turn is already late still gets a few tens of
    /// milliseconds).
    fn observe(&mut self, deadline: Instant) -> Observation;

    /// Block until the key changes after the last [`Dcs::observe`], until `deadline`,
    /// or until one of `wake`'s descriptors is ready or a signal arrives (then
    /// [`Wait::Deadline`], the watch or request kept for the next wait). `None` when this
    /// DCS (or its configuration) cannot wait for changes: the caller then waits until
    /// the deadline itself.
    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        let _ = (deadline, wake);
        None
    }

    /// [`Dcs::wait`] that only a signal ends early.
    fn wait_for_change(&mut self, deadline: Instant) -> Option<Wait> {
        self.wait(deadline, Wake::SIGNALS)
    }

    /// When the DCS last really answered (a read, or an event of its watch) for the
    /// last [`Dcs::observe`]: a client that may report a remembered state says how old
    /// it is, so that `dcs-grace` counts from a true fact. `None`: the observation is
    /// fresh.
    fn last_fact(&self) -> Option<Instant> {
        None
    }

    /// The latest moment the leader key is known to exist until (its lease, as far as
    /// this client knows; renewals only push it later). `None`: not known, or the DCS
    /// has no such thing.
    fn lease_bound(&self) -> Option<Instant> {
        None
    }

    /// Ask the DCS how long the key's lease lasts, when it can tell (etcd v3).
    fn ask_lease(&mut self, deadline: Instant) {
        let _ = deadline;
    }

    /// Forget what a watch or a blocking query remembers, so that the next
    /// [`Dcs::observe`] reads afresh (after this process was paused).
    fn forget(&mut self) {}
}

impl<T: Dcs + ?Sized> Dcs for Box<T> {
    fn observe(&mut self, deadline: Instant) -> Observation {
        (**self).observe(deadline)
    }

    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        (**self).wait(deadline, wake)
    }

    fn last_fact(&self) -> Option<Instant> {
        (**self).last_fact()
    }

    fn lease_bound(&self) -> Option<Instant> {
        (**self).lease_bound()
    }

    fn ask_lease(&mut self, deadline: Instant) {
        (**self).ask_lease(deadline)
    }

    fn forget(&mut self) {
        (**self).forget()
    }
}

/// Everything a DCS client is built from: the configuration hands it down, so that this
/// module never needs to know the configuration's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub dcs_type: DcsType,
    /// Base URLs with scheme, without trailing slash.
    pub endpoints: Vec<String>,
    /// The trigger key (Patroni REST: the path asked).
    pub key: String,
    pub etcd_user: Option<String>,
    pub etcd_password: Option<Secret>,
    pub consul_token: Option<Secret>,
    /// The loop's interval: a turn's wait and the connect timeouts derive from it.
    pub interval: Duration,
    /// Wait for changes (etcd watch, Consul blocking query) rather than read once a turn.
    pub watch: bool,
    /// With an etcd v3 watch: the longest time between two reads of the key.
    pub check_interval: Duration,
    pub tls: TlsFiles,
    /// A `replica` or `sync` VIP: read the whole scope with these rules ([`scope`]);
    /// `None`: the leader key alone.
    pub scope: Option<scope::Rules>,
    /// This node's member name (the trigger value).
    pub member: String,
}

impl Settings {
    /// The etcd client's part of these settings.
    pub fn etcd(&self, tls: &Tls) -> etcd::Settings {
        etcd::Settings {
            endpoints: self.endpoints.clone(),
            key: self.key.clone(),
            credentials: self.etcd_user.as_ref().map(|user| etcd::Credentials {
                user: user.clone(),
                password: self.etcd_password.clone().unwrap_or(Secret(String::new())),
            }),
            interval: self.interval,
            watch: self.watch,
            check_interval: self.check_interval,
            tls: tls.clone(),
            scope: self.scope_reader(),
        }
    }

    /// A fresh reader of the scope for a replica VIP.
    pub fn scope_reader(&self) -> Option<scope::Scope> {
        let rules = self.scope.clone()?;
        Some(scope::Scope::new(rules, &self.key, &self.member))
    }

    /// How long start-up may spend on a credential check.
    pub fn startup_deadline(&self) -> Instant {
        Instant::now() + self.interval.max(Duration::from_secs(2))
    }

    /// Whether settings read again (SIGHUP) need a new client: any of them changed, or
    /// TLS files are in use (they may have been renewed under the same names).
    pub fn need_new_client(&self, new: &Settings) -> bool {
        self != new || self.tls.any() || new.tls.any()
    }
}

/// The client for the configured `dcs-type`, with the TLS settings already loaded
/// ([`tls::Tls::load`]). Where credentials are configured they are tried once, until
/// `deadline`: a server that refuses them is a configuration error (vipd exits 2); one
/// that cannot be reached is not (the loop retries).
pub fn open(settings: &Settings, tls: &Tls, deadline: Instant) -> Result<Box<dyn Dcs>, Rejected> {
    let etcd = |mode: Mode| -> Result<Box<dyn Dcs>, Rejected> {
        let mut client = EtcdAny::new(&settings.etcd(tls), mode);
        client.check_credentials(deadline)?;
        Ok(Box::new(client))
    };
    match settings.dcs_type {
        DcsType::Etcd => etcd(Mode::Either),
        DcsType::Etcd3 => etcd(Mode::Only(Api::V3)),
        DcsType::Etcd2 => etcd(Mode::Only(Api::V2)),
        DcsType::Consul => Ok(Box::new(consul::Consul::new(&consul::Settings {
            endpoints: settings.endpoints.clone(),
            key: settings.key.clone(),
            token: settings.consul_token.clone(),
            interval: settings.interval,
            watch: settings.watch,
            tls: tls.clone(),
            scope: settings.scope_reader(),
        }))),
        DcsType::Patroni => Ok(Box::new(patroni::Patroni::new(&patroni::Settings {
            endpoint: settings.endpoints.first().cloned().unwrap_or_default(),
            path: settings.key.clone(),
            interval: settings.interval,
            tls: tls.clone(),
            scope: settings.scope_reader(),
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            dcs_type: DcsType::Etcd,
            endpoints: vec!["http://127.0.0.1:2379".into()],
            key: "/service/demo/leader".into(),
            etcd_user: None,
            etcd_password: None,
            consul_token: None,
            interval: Duration::from_secs(1),
            watch: true,
            check_interval: Duration::from_secs(3),
            tls: TlsFiles::default(),
            scope: None,
            member: "pg1".into(),
        }
    }

    #[test]
    fn a_new_client_only_for_changed_settings_or_tls_files() {
        let old = settings();
        assert!(!old.need_new_client(&settings()));
        let changes: [fn(&mut Settings); 9] = [
            |s| s.dcs_type = DcsType::Consul,
            |s| s.endpoints.push("http://127.0.0.1:3379".into()),
            |s| s.key = "/service/other/leader".into(),
            |s| s.etcd_user = Some("patroni".into()),
            |s| s.etcd_password = Some(Secret("pw".into())),
            |s| s.consul_token = Some(Secret("t".into())),
            |s| s.interval = Duration::from_millis(500),
            |s| s.watch = false,
            |s| s.check_interval = Duration::from_secs(5),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut new = settings();
            change(&mut new);
            assert!(old.need_new_client(&new), "change {i}");
        }
        // TLS files may have been renewed under the same name: always a new client.
        let mut tls = settings();
        tls.tls.ca = Some("/etc/vipd/ca.pem".into());
        assert!(tls.need_new_client(&tls.clone()));
    }

    #[test]
    fn etcd_credentials_from_the_settings() {
        let mut s = settings();
        assert!(s.etcd(&Tls::default()).credentials.is_none());
        // A user without a password authenticates with an empty one (as warned).
        s.etcd_user = Some("patroni".into());
        let c = s.etcd(&Tls::default()).credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.0.as_str()), ("patroni", ""));
        s.etcd_password = Some(Secret("pw".into()));
        let c = s.etcd(&Tls::default()).credentials.unwrap();
        assert_eq!(c.password, Secret("pw".into()));
    }
}
