//! Which etcd API holds the leader key: `dcs-type etcd3` reads v3 only, `etcd2` v2
//! only, and `etcd` (the default, and what Debian's `VIP_TYPE=etcd` means for Patroni's
//! `etcd:` and `etcd3:` sections alike) reads v3 and, when v3 has no such key but v2
//! has, uses v2, with one log line whenever the API it follows changes. A v2 key is
//! invisible to the v3 API: without this, a cluster Patroni runs through v2 would look
//! leaderless and lose its VIP on the upgrade from vip-manager.
//!
//! With a single API the other one is still looked at while the key is absent, until
//! it is found there once, to say in the log that the key lives in the other API.
//!
//! A replica VIP reads the whole scope: there "the key exists" means "the scope exists"
//! (a leader key or a member record), whether or not its VIP has a holder, so that a
//! scope with no eligible member neither sends the choice to the other API nor makes
//! it look there every turn.

use std::time::Instant;

use super::etcd::{Etcd, Rejected, Settings};
use super::etcd2::Etcd2;
use super::{Dcs, Observation, Wait};
use crate::wake::Wake;

/// One of etcd's two key spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V3,
    V2,
}

impl Api {
    fn other(self) -> Api {
        match self {
            Api::V3 => Api::V2,
            Api::V2 => Api::V3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Api::V3 => "v3",
            Api::V2 => "v2 keys",
        }
    }

    fn dcs_type(self) -> &'static str {
        match self {
            Api::V3 => "etcd3",
            Api::V2 => "etcd2",
        }
    }
}

/// Which API(s) to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// v3, or v2 while only v2 has the key (`dcs-type etcd`).
    Either,
    /// This API only (`etcd3`, `etcd2`).
    Only(Api),
}

/// What the next observation should do, given the followed API's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Report this answer.
    Report,
    /// Look at the other API too.
    AskOther,
}

/// With a single API: after it answered `obs`, is the other one worth a look (to say
/// where the key is)? Only while the key is absent, until found there once.
pub fn after_answer(obs: &Observation, hinted: bool) -> Next {
    match obs {
        Observation::NoLeader if !hinted => Next::AskOther,
        _ => Next::Report,
    }
}

/// With `dcs-type etcd`: the answer and the API followed from now on, given v3's
/// answer and a way to ask v2 (asked only when needed). v3 wins whenever it has the
/// key; v2 is used when v3 has none but v2 has; with neither, changes are awaited where
/// the key was last. While v2 is followed, a failure to read either is unknown, never
/// "no leader" (a hiccup of v2 must not release the VIP).
pub fn either(
    following: Api,
    v3: Observation,
    ask_v2: impl FnOnce() -> Observation,
) -> (Api, Observation) {
    match (v3, following) {
        (Observation::Leader(v), _) => (Api::V3, Observation::Leader(v)),
        (Observation::Unknown(why), Api::V3) => (Api::V3, Observation::Unknown(why)),
        // v3 cannot be read while v2 is the source: v2's answer stands.
        (Observation::Unknown(_), Api::V2) => (Api::V2, ask_v2()),
        (Observation::NoLeader, _) => match (ask_v2(), following) {
            (Observation::Leader(v), _) => (Api::V2, Observation::Leader(v)),
            // Neither: wait where the key was last (Patroni writes it back there).
            (Observation::NoLeader, _) => (following, Observation::NoLeader),
            (Observation::Unknown(why), Api::V2) => (Api::V2, Observation::Unknown(why)),
            // Only a probe (v2 disabled, most likely): v3's fact stands.
            (Observation::Unknown(why), Api::V3) => {
                log::debug!("etcd v2 keys API (read as the key is absent in v3): {why}");
                (Api::V3, Observation::NoLeader)
            }
        },
    }
}

/// etcd through v3, v2 or either.
pub struct EtcdAny {
    v3: Etcd,
    v2: Etcd2,
    mode: Mode,
    following: Api,
    /// With a single API: the other one was seen to hold the key (and it was logged).
    hinted: bool,
    key: String,
}

/// What the API choice sees of `obs`: in scope mode (`exists` is `Some`), the scope's
/// presence; otherwise the observation itself.
fn presence(obs: &Observation, exists: Option<bool>) -> Observation {
    match (obs, exists) {
        (Observation::Unknown(_), _) | (_, None) => obs.clone(),
        (_, Some(true)) => Observation::Leader("(scope)".into()),
        (_, Some(false)) => Observation::NoLeader,
    }
}

impl EtcdAny {
    pub fn new(settings: &Settings, mode: Mode) -> EtcdAny {
        EtcdAny {
            v3: Etcd::new(settings),
            v2: Etcd2::new(settings),
            mode,
            following: match mode {
                Mode::Only(api) => api,
                Mode::Either => Api::V3,
            },
            hinted: false,
            key: settings.key.clone(),
        }
    }

    /// The API whose answers are reported now.
    pub fn following(&self) -> Api {
        self.following
    }

    fn scope_exists(&self, api: Api) -> Option<bool> {
        match api {
            Api::V3 => self.v3.scope_exists(),
            Api::V2 => self.v2.scope_exists(),
        }
    }

    fn ask(&mut self, api: Api, deadline: Instant) -> Observation {
        match api {
            Api::V3 => self.v3.observe(deadline),
            Api::V2 => self.v2.observe(deadline),
        }
    }

    /// At start-up: rejected credentials are a configuration error (exit 2).
    pub fn check_credentials(&mut self, deadline: Instant) -> Result<(), Rejected> {
        match self.mode {
            Mode::Only(Api::V2) => self.v2.check_credentials(deadline),
            _ => self.v3.check_credentials(deadline),
        }
    }
}

impl Dcs for EtcdAny {
    fn observe(&mut self, deadline: Instant) -> Observation {
        let Mode::Only(api) = self.mode else {
            let v3 = self.v3.observe(deadline);
            let v3_seen = presence(&v3, self.v3.scope_exists());
            let v2 = &mut self.v2;
            let mut v2_obs = None;
            let (api, seen) = either(self.following, v3_seen, || {
                let obs = v2.observe(deadline);
                let seen = presence(&obs, v2.scope_exists());
                v2_obs = Some(obs);
                seen
            });
            // The answer of the API chosen (the same as `seen` but in scope mode).
            let obs = match (api, v2_obs) {
                (Api::V3, _) if matches!(seen, Observation::Unknown(_)) => seen,
                (Api::V3, _) => v3,
                (Api::V2, Some(obs)) if !matches!(seen, Observation::Unknown(_)) => obs,
                (Api::V2, _) => seen,
            };
            if api != self.following {
                log::info!(
                    "following the etcd {} API: trigger key {} {}",
                    api.name(),
                    self.key,
                    match api {
                        Api::V2 => "exists there and not in the v3 API",
                        Api::V3 => "exists there (v3 wins over v2)",
                    }
                );
                self.following = api;
            }
            return obs;
        };
        let obs = self.ask(api, deadline);
        if after_answer(&presence(&obs, self.scope_exists(api)), self.hinted) == Next::Report {
            return obs;
        }
        let other = api.other();
        let answer = self.ask(other, deadline);
        match presence(&answer, self.scope_exists(other)) {
            Observation::Leader(value) => {
                log::warn!(
                    "trigger key {} does not exist in the etcd {} API, but it does in the {} \
                     API (value {value:?}); dcs-type {} reads only the {} API (dcs-type etcd \
                     follows either, {} the other)",
                    self.key,
                    api.name(),
                    other.name(),
                    api.dcs_type(),
                    api.name(),
                    other.dcs_type()
                );
                self.hinted = true;
            }
            Observation::Unknown(why) => {
                log::debug!(
                    "etcd {} API (read as the key is absent): {why}",
                    other.name()
                );
            }
            Observation::NoLeader => {}
        }
        obs
    }

    fn wait(&mut self, deadline: Instant, wake: Wake<'_>) -> Option<Wait> {
        match self.following {
            Api::V3 => self.v3.wait(deadline, wake),
            Api::V2 => self.v2.wait(deadline, wake),
        }
    }

    fn last_fact(&self) -> Option<Instant> {
        match self.following {
            Api::V3 => self.v3.last_fact(),
            Api::V2 => self.v2.last_fact(),
        }
    }

    fn lease_bound(&self) -> Option<Instant> {
        match self.following {
            Api::V3 => self.v3.lease_bound(),
            Api::V2 => self.v2.lease_bound(),
        }
    }

    fn ask_lease(&mut self, deadline: Instant) {
        match self.following {
            Api::V3 => self.v3.ask_lease(deadline),
            Api::V2 => self.v2.ask_lease(deadline),
        }
    }

    fn forget(&mut self) {
        self.v3.forget();
        self.v2.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_api_looks_at_the_other_only_while_the_key_is_absent() {
        let leader = Observation::Leader("pg1".into());
        let unknown = Observation::Unknown("down".into());
        for hinted in [false, true] {
            assert_eq!(after_answer(&leader, hinted), Next::Report);
            // An unreachable DCS is never a reason to read the other API.
            assert_eq!(after_answer(&unknown, hinted), Next::Report);
        }
        assert_eq!(after_answer(&Observation::NoLeader, false), Next::AskOther);
        assert_eq!(
            after_answer(&Observation::NoLeader, true),
            Next::Report,
            "said once is enough"
        );
    }

    fn leader(v: &str) -> Observation {
        Observation::Leader(v.into())
    }

    fn unknown() -> Observation {
        Observation::Unknown("down".into())
    }

    #[test]
    fn either_prefers_v3_and_falls_back_to_v2() {
        let never = || -> Observation { panic!("v2 must not be asked") };
        for following in [Api::V3, Api::V2] {
            // v3 has the key: v3, v2 not asked.
            assert_eq!(
                either(following, leader("a"), never),
                (Api::V3, leader("a"))
            );
            // Only v2 has it.
            assert_eq!(
                either(following, Observation::NoLeader, || leader("b")),
                (Api::V2, leader("b"))
            );
            // Neither: no leader, still waiting on the API that had the key last.
            assert_eq!(
                either(following, Observation::NoLeader, || Observation::NoLeader),
                (following, Observation::NoLeader)
            );
        }
        // Following v3: a v3 failure is unknown without asking v2; a v2 failure while
        // v3 says absent is v3's fact.
        assert_eq!(either(Api::V3, unknown(), never), (Api::V3, unknown()));
        assert_eq!(
            either(Api::V3, Observation::NoLeader, unknown),
            (Api::V3, Observation::NoLeader)
        );
        // Following v2: a v2 failure is unknown (never a release), and when v3 cannot
        // be read v2's answer stands.
        assert_eq!(
            either(Api::V2, Observation::NoLeader, unknown),
            (Api::V2, unknown())
        );
        assert_eq!(
            either(Api::V2, unknown(), || leader("b")),
            (Api::V2, leader("b"))
        );
        assert_eq!(either(Api::V2, unknown(), unknown), (Api::V2, unknown()));
    }

    #[test]
    fn api_names() {
        assert_eq!(Api::V3.other(), Api::V2);
        assert_eq!(Api::V2.other(), Api::V3);
        assert_eq!(Api::V2.dcs_type(), "etcd2");
    }
}
