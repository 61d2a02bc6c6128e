//! The integration tests, in one binary: the lab (`common`: the gate, processes, namespaces,
//! etcd, captures) and the fake servers first, then the tests by subject.

#[macro_use]
mod common;
mod fakes;

mod architecture;
mod conflict;
mod daemon;
mod dcs_consul;
mod dcs_etcd;
mod dcs_patroni;
mod deps;
mod etcd_watch;
mod faults;
mod faults_fuzz_inputs;
mod faults_soak;
mod fencing;
mod fencing_lifetime;
mod hetzner_fakes;
mod hooks;
mod hosted;
mod ipv6;
mod logging;
mod metrics;
mod netlink_kernel;
mod netlink_route;
mod once;
mod packaging;
mod react;
mod reload;
mod scope_cluster;
mod scope_consul;
mod scope_etcd2;
mod scope_etcd3;
