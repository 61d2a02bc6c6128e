//! Hosted failover IPs: the VIP is an address the hosting provider routes to one
//! server, moved through the provider's API — a Hetzner Robot failover IP
//! (`manager-type hetzner`, [`robot`]) or a Hetzner Cloud floating IP
//! (`manager-type hetzner-cloud`, [`cloud`]).
//!
//! # What may never happen, and why it does not
//! - **Two holders.** The provider keeps one route per address: whatever the nodes do,
//!   it reaches one server. What vipd must avoid is a route that points at a node that
//!   must not lead for longer than a reaction. A move is asked only on the DCS's word
//!   that this node leads ([`crate::decide::may_move`]); a silent DCS, a grace or a fence never moves
//!   the route, and a node that is not leading never calls the API after its start-up
//!   check. A move still in flight when the lead is lost cannot be called back. The
//!   provider locks the address while a switch runs, so the new leader's move waits
//!   for it (refused as locked, retried) and lands last. Should the old move reach the
//!   provider only after the new one (a request still on the wire), the new leader's
//!   confirming read, [`AFTER_MOVE`] after its move, and then every `hetzner-recheck`,
//!   moves it back.
//! - **A VIP on a node that cannot reach the kernel or the DCS.** The local address
//!   (Cloud; Robot with `hetzner-local-address`) follows the same decision and the same
//!   lifetime as `manager-type basic`, independently of the API: it is removed at once
//!   when the lead is lost, whatever a call in flight is doing.
//! - **A loop stalled by I/O.** A Robot switch answers only once the route moved, which
//!   can take many seconds, and a Cloud assignment is an action to follow. Calls run on
//!   one long-lived worker thread (`worker`); the loop hands it a job and hears the
//!   answer through a socket in its one wait. A worker rather than non-blocking
//!   sockets in the loop: the loop's wait belongs to the DCS watch, and a second
//!   exchange there (name lookup, TLS handshake, a reply that takes a minute, then an
//!   action to poll) would thread a state machine through every turn for a call made
//!   once a minute. At SIGTERM the loop does not wait for a call in flight: the process
//!   exits and the call is abandoned.
//! - **Calls beyond the provider's limits.** Each provider's documented limits are
//!   kept on vipd's side ([`limit`]); a refusal by the provider (rate limit, lock) and
//!   any failure are retried with a backoff doubling from 2 s to 5 min.
//! - **A secret in a log.** Credentials live in [`Secret`]s and request headers only;
//!   error texts are built from statuses, the provider's error codes and messages, and
//!   transport errors, never from requests.

pub mod cloud;
pub mod credentials;
mod http;
pub mod limit;
pub mod robot;
mod worker;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::dcs::Secret;
use crate::dcs::http::Tls;
pub use worker::{Job, Outcome};

/// Where this server's main address comes from (Robot routes to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerIp {
    /// `hetzner-server-ip`.
    Given(IpAddr),
    /// The primary address of this interface.
    Interface(String),
    /// The source address of the kernel's route towards the API.
    Route,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotSettings {
    pub api_url: String,
    pub user: String,
    pub password: Secret,
    pub server_ip: ServerIp,
    /// Also add the VIP to the interface (never announced).
    pub local_address: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSettings {
    pub api_url: String,
    pub token: Secret,
    pub floating_ip_id: u64,
    pub server_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    Robot(RobotSettings),
    Cloud(CloudSettings),
}

/// A hosted VIP's settings (`manager-type` other than `basic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub provider: Provider,
    /// `hetzner-ca-file`; `None`: the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// How often the leader checks the route.
    pub recheck: Duration,
}

impl Settings {
    /// The `manager-type` these settings stand for.
    pub fn manager_type(&self) -> &'static str {
        match self.provider {
            Provider::Robot(_) => "hetzner",
            Provider::Cloud(_) => "hetzner-cloud",
        }
    }

    pub fn api_url(&self) -> &str {
        match &self.provider {
            Provider::Robot(r) => &r.api_url,
            Provider::Cloud(c) => &c.api_url,
        }
    }

    /// Whether the VIP is also an address on the interface.
    pub fn local_address(&self) -> bool {
        match &self.provider {
            Provider::Robot(r) => r.local_address,
            Provider::Cloud(_) => true,
        }
    }

    /// Whether the local address is announced: a routed Robot IP reaches the server
    /// through the provider's router, which needs no ARP; a Cloud floating IP is the
    /// guest's own address on its network.
    pub fn announces(&self) -> bool {
        matches!(self.provider, Provider::Cloud(_))
    }
}

/// Where the provider routes the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Here,
    /// Elsewhere: the other server's address (Robot) or `server <id>` (Cloud).
    Elsewhere(String),
    Unrouted,
}

impl Route {
    /// `routed-here`, `routed-elsewhere:<where>`, `unrouted` (the `--once` words).
    pub fn word(&self) -> String {
        match self {
            Route::Here => "routed-here".into(),
            Route::Elsewhere(to) => format!("routed-elsewhere:{}", to.replace(' ', "-")),
            Route::Unrouted => "unrouted".into(),
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Here => f.write_str("this server"),
            Route::Elsewhere(to) => f.write_str(to),
            Route::Unrouted => f.write_str("nowhere"),
        }
    }
}

/// How a call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The API refused the credentials.
    Rejected,
    /// The API does not know the address (not in this account or project).
    NotFound,
    /// A switch in progress, a rate limit: later.
    Busy,
    /// Anything else: unreachable, a server error, an unreadable reply.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// One line without secrets.
    pub text: String,
    /// Not before this (a limit's window, the provider's own word).
    pub retry_at: Option<Instant>,
}

impl Failure {
    pub fn new(kind: FailureKind, text: impl Into<String>) -> Failure {
        Failure {
            kind,
            text: text.into(),
            retry_at: None,
        }
    }

    /// An error reply to `what`, of the kind `kind_of` gives its status and the API's
    /// error code; the line names the status, the code and the message (or the body's
    /// first line when it is no error object). A refusal of the credentials says
    /// `rejected`, so that the log tells it apart.
    pub fn refused(
        status: u16,
        body: &[u8],
        what: &str,
        kind_of: fn(u16, &str) -> FailureKind,
        rejected: &str,
    ) -> Failure {
        let (code, message) = error_object(body).unwrap_or_default();
        let kind = kind_of(status, &code);
        let detail = match (code.is_empty(), message.is_empty()) {
            (true, _) => crate::dcs::http::server_text(body),
            (false, true) => code,
            (false, false) => format!("{code}: {message}"),
        };
        let text = match kind {
            FailureKind::Rejected => format!("{what}: {rejected} ({status} {detail})"),
            _ => format!("{what}: {status} {detail}"),
        };
        Failure::new(kind, text)
    }

    /// A call to `what` that vipd's own count of `limit` leaves no room for until `at`.
    pub fn held_back(what: &str, at: Instant, limit: &str) -> Failure {
        Failure {
            retry_at: Some(at),
            ..Failure::new(
                FailureKind::Busy,
                format!("{what}: held back to stay within {limit}"),
            )
        }
    }

    /// Whether vipd must not go on at start-up (as for credentials etcd refuses).
    pub fn fatal_at_start(&self) -> bool {
        matches!(self.kind, FailureKind::Rejected | FailureKind::NotFound)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a job found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub route: Route,
    /// A move was made; the route before it.
    pub moved_from: Option<Route>,
}

/// The provider's side of a job: read the route, move it here.
pub trait Api: Send {
    fn read(&mut self, now: Instant) -> Result<Route, Failure>;
    /// Route the VIP to this server (the route was read and is elsewhere); the route
    /// the answer states, if it states one (otherwise it is read back).
    fn claim(&mut self, now: Instant) -> Result<Option<Route>, Failure>;
}

/// Carry out `job` against `api`: a read, or a read and, when the route is elsewhere,
/// a move and a read back.
pub fn carry_out(api: &mut dyn Api, job: Job) -> Result<Done, Failure> {
    let route = api.read(Instant::now())?;
    if job == Job::Read || route == Route::Here {
        return Ok(Done {
            route,
            moved_from: None,
        });
    }
    let after = match api.claim(Instant::now())? {
        Some(stated) => stated,
        None => api.read(Instant::now())?,
    };
    match after {
        Route::Here => Ok(Done {
            route: Route::Here,
            moved_from: Some(route),
        }),
        other => Err(Failure::new(
            FailureKind::Failed,
            format!("the move was accepted, but the VIP still routes to {other}"),
        )),
    }
}

/// After a move, the route is read again this soon (then every `hetzner-recheck`), so
/// that a late move by the previous leader is undone quickly.
pub const AFTER_MOVE: Duration = Duration::from_secs(10);

/// The shortest and longest wait before a failed job is tried again.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The loop's side: what the decision asks of the provider, the job in flight, when
/// the next one is due, and what the last answer said.
pub struct Hosted {
    settings: Settings,
    vip: IpAddr,
    worker: worker::Worker,
    lead: bool,
    seq: u64,
    /// The job in flight: its number and kind.
    in_flight: Option<(u64, Job)>,
    /// When the next job is due (leading, or the start-up check not yet made).
    next: Option<Instant>,
    backoff: Duration,
    /// The route the last answer reported; `None`: unknown.
    route: Option<Route>,
    /// The last failure logged, so that a repeated one is not logged again.
    failing: Option<(FailureKind, String)>,
    /// Whether an answer (or a failure to reach the API) came since start.
    checked: bool,
}

impl Hosted {
    /// Start the worker for `settings` (the VIP is `vip`); the first job, due at once,
    /// checks the credentials whether this node leads or not.
    pub fn start(settings: Settings, vip: IpAddr, tls: &Tls) -> std::io::Result<Hosted> {
        // Without TLS the configuration refuses every provider (its API is https
        // only), and the API clients are left out of the binary.
        #[cfg(not(feature = "tls"))]
        {
            let _ = (settings, vip, tls);
            Err(std::io::Error::other("built without TLS"))
        }
        #[cfg(feature = "tls")]
        {
            let api = api_for(&settings, vip, tls);
            Hosted::with_api(settings, vip, api)
        }
    }

    /// [`Hosted::start`] with the provider's side given (tests use a fake).
    pub fn with_api(settings: Settings, vip: IpAddr, api: Box<dyn Api>) -> std::io::Result<Hosted> {
        Ok(Hosted {
            worker: worker::Worker::spawn(api)?,
            settings,
            vip,
            lead: false,
            seq: 0,
            in_flight: None,
            next: Some(Instant::now()),
            backoff: FIRST_BACKOFF,
            route: None,
            failing: None,
            checked: false,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The route as last read; `None`: unknown.
    pub fn route(&self) -> Option<&Route> {
        self.route.as_ref()
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The descriptor that is readable when the worker answered.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.worker.fd()
    }

    /// When the loop must call [`Hosted::step`] even if the worker is silent.
    pub fn deadline(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            None
        } else {
            self.next
        }
    }

    /// The decision of this turn: whether this node should hold the VIP. Taking the
    /// lead asks for a check at once; losing it stops every call (one in flight is
    /// left to finish, its answer only noted).
    pub fn lead(&mut self, lead: bool, now: Instant) {
        if lead == self.lead {
            return;
        }
        self.lead = lead;
        if lead {
            self.next = Some(now);
            self.backoff = FIRST_BACKOFF;
        } else {
            if self.checked {
                self.next = None;
            }
            if self.in_flight.is_some_and(|(_, job)| job == Job::Ensure) {
                log::warn!(
                    "{}: this node no longer leads while a move of {} is in flight; the \
                     next leader moves it on",
                    self.settings.manager_type(),
                    self.vip
                );
            }
        }
    }

    /// Take the worker's answers, then hand it the job that is due; `rang`: the loop's
    /// `poll` found [`Hosted::fd`] readable. `Err`: the start-up check found the
    /// credentials or the address refused (exit 2).
    pub fn step(&mut self, now: Instant, rang: bool) -> Result<(), Failure> {
        if rang {
            self.worker.silence();
        }
        while let Some(outcome) = self.worker.answer() {
            self.take(outcome, now)?;
        }
        if self.in_flight.is_none() && self.next.is_some_and(|at| at <= now) {
            let job = if self.lead { Job::Ensure } else { Job::Read };
            self.seq += 1;
            if self.worker.send(self.seq, job) {
                self.in_flight = Some((self.seq, job));
                self.next = None;
            } else {
                self.fail(
                    Failure::new(FailureKind::Failed, "the API worker stopped"),
                    now,
                );
            }
        }
        Ok(())
    }

    fn take(&mut self, outcome: Outcome, now: Instant) -> Result<(), Failure> {
        let Some((_, job)) = self.in_flight.filter(|(seq, _)| *seq == outcome.seq) else {
            return Ok(());
        };
        self.in_flight = None;
        let first = !std::mem::replace(&mut self.checked, true);
        let kind = self.settings.manager_type();
        match outcome.result {
            Err(f) if first && f.fatal_at_start() => return Err(f),
            Err(f) => self.fail(f, now),
            Ok(done) => {
                if let Some((_, was)) = self.failing.take() {
                    log::info!("{kind}: the API answers again (after: {was})");
                }
                self.backoff = FIRST_BACKOFF;
                match (&done.moved_from, self.lead) {
                    (Some(from), true) => {
                        log::info!("{kind}: moved {} here (it routed to {from})", self.vip)
                    }
                    (Some(from), false) => log::warn!(
                        "{kind}: a move made while this node led routed {} here (from \
                         {from}); the leader moves it back",
                        self.vip
                    ),
                    (None, _) if self.route.as_ref() != Some(&done.route) => {
                        log::info!("{kind}: {} routes to {}", self.vip, done.route)
                    }
                    (None, _) => {}
                }
                // A read made before this node took the lead found the route
                // elsewhere: the move is due now, not at the next recheck.
                let due = match (job, &done.moved_from) {
                    (Job::Read, _) if done.route != Route::Here => now,
                    (Job::Ensure, Some(_)) => now + AFTER_MOVE.min(self.settings.recheck),
                    _ => now + self.settings.recheck,
                };
                self.route = Some(done.route);
                self.next = self.lead.then_some(due);
            }
        }
        Ok(())
    }

    fn fail(&mut self, f: Failure, now: Instant) {
        let kind = self.settings.manager_type();
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        let at = f.retry_at.map_or(now + wait, |r| r.max(now + wait));
        let key = (f.kind, f.text.clone());
        if self.lead {
            self.next = Some(at);
        }
        if self.failing.as_ref() != Some(&key) {
            let secs = at.saturating_duration_since(now).as_secs_f64();
            if self.lead {
                log::error!("{kind}: {}; trying again in {secs:.0} s", f.text);
            } else {
                log::error!("{kind}: {}", f.text);
            }
            self.failing = Some(key);
        } else {
            log::debug!("{kind}: {} (again)", f.text);
        }
        self.route = None;
    }

    /// `--once`: carry out `job` and wait for it, at most `bound`.
    pub fn run_once(&mut self, job: Job, bound: Duration) -> Result<Done, Failure> {
        self.seq += 1;
        if !self.worker.send(self.seq, job) {
            return Err(Failure::new(FailureKind::Failed, "the API worker stopped"));
        }
        match self.worker.wait(self.seq, bound) {
            Some(result) => result,
            None => Err(Failure::new(
                FailureKind::Failed,
                format!(
                    "no answer from {} within {} s",
                    self.settings.api_url(),
                    bound.as_secs()
                ),
            )),
        }
    }
}

#[cfg(feature = "tls")]
fn api_for(settings: &Settings, vip: IpAddr, tls: &Tls) -> Box<dyn Api> {
    match &settings.provider {
        Provider::Robot(r) => Box::new(robot::Robot::new(r.clone(), vip, tls)),
        Provider::Cloud(c) => Box::new(cloud::Cloud::new(c.clone(), tls)),
    }
}

/// The object named `name` at the top of a JSON reply (`{"failover":{…}}`,
/// `{"floating_ip":{…}}`, `{"action":{…}}`).
pub fn object_of(body: &[u8], name: &str) -> Result<serde_json::Value, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    match v.get_mut(name).map(serde_json::Value::take) {
        Some(o) if o.is_object() => Ok(o),
        _ => Err(format!("the reply has no {name} object")),
    }
}

/// The error object both APIs answer with, `{"error":{"code":…,"message":…}}`: its code
/// and message (bounded, printable), if the body is one.
pub fn error_object(body: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let text = |k: &str| match e.get(k).and_then(serde_json::Value::as_str) {
        Some(s) if !s.is_empty() => crate::dcs::http::server_text(s.as_bytes()),
        _ => String::new(),
    };
    Some((text("code"), text("message")))
}

#[cfg(test)]
mod tests;
