//! vipd: keeps a virtual IP address on the node that Patroni's leader key names.
//!
//! The daemon turns one loop: **observe** the leader key in the DCS (blocking at most
//! until the turn's deadline), **decide** the wanted state with a pure function
//! ([`decide`]), and **reconcile** it against the kernel's actual state through
//! rtnetlink, announcing the address after every add ([`net`]).
//!
//! Pure code (message building and parsing, the decision, the configuration) is kept
//! apart from I/O so that it is unit-tested without sockets; `unsafe` lives only in the
//! kernel-facing modules [`net::sys`] (sockets), [`signals`], [`caps`] (capabilities)
//! and `hooks::sys` (pidfds, killing a hook's process group);
//! the crate denies it everywhere else.

#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod base64;
#[allow(unsafe_code)]
pub mod caps;
pub mod config;
pub mod daemon;
pub mod dcs;
pub mod decide;
pub mod fence;
pub mod hooks;
pub mod hosted;
pub mod logger;
pub mod metrics;
pub mod net;
#[allow(unsafe_code)]
pub mod signals;
pub mod wake;
