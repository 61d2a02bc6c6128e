//! vipd against Debian's real etcd (3.4), started by each test on the loopback of a network
//! namespace the test makes: the v2 keys API and the choice between
//! v2 and v3, authentication (wrong and rotated passwords), TLS with client
//! certificates the test generates with openssl, and a three-member cluster losing
//! members. Secrets never appear in vipd's output.
//!
//! Every test needs root and etcd (the lab's gate: it fails without them, unless
//! VIPD_ALLOW_SKIP=1); the TLS tests need openssl too.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::fakes::FakeConsul;
use vipd::config::Secret;
use vipd::dcs::etcd::{Credentials, Settings};
use vipd::dcs::etcd_any::{Api, EtcdAny, Mode};
use vipd::dcs::http::Tls;
use vipd::dcs::{Dcs, Observation};

const PASSWORD: &str = "Secr3t-Patroni-Pw";
const NEW_PASSWORD: &str = "N3w-Rotated-Pw";
const ROOT: &str = "root:Root-Pw-9";

fn settings(endpoints: &[&str], credentials: Option<(&str, &str)>) -> Settings {
    Settings {
        endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
        key: KEY.into(),
        credentials: credentials.map(|(user, password)| Credentials {
            user: user.into(),
            password: Secret(password.into()),
        }),
        interval: Duration::from_millis(500),
        watch: true,
        check_interval: Duration::from_millis(500),
        tls: Tls::default(),
        scope: None,
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

/// Users root and patroni (read access to /service/), then `auth enable`; the key.
fn enable_auth(etcd: &Etcd) {
    let patroni = format!("patroni:{PASSWORD}");
    for args in [
        &["user", "add", ROOT][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", &patroni],
        &["role", "add", "patroni-read"],
        &[
            "role",
            "grant-permission",
            "patroni-read",
            "read",
            "/service/",
            "--prefix",
        ],
        &["user", "grant-role", "patroni", "patroni-read"],
        &["auth", "enable"],
        &["--user", ROOT, "put", KEY, "pg1"],
    ] {
        etcd.etcdctl_ok(args);
    }
}

/// `etcdctl user passwd patroni` (the new password on stdin), where `etcd` runs.
fn rotate_password(lab: &NodeLab, etcd: &Etcd) {
    let script = format!(
        "echo '{NEW_PASSWORD}' | ETCDCTL_API=3 etcdctl --endpoints={} --user '{ROOT}' \
         user passwd patroni --interactive=false",
        etcd.endpoint
    );
    lab.node
        .exec(&tool("sh"), &["-c", &script])
        .expect(0, "etcdctl user passwd");
}

/// A lab with etcd on the node's 127.0.0.1:2379, with the arguments of `extra`.
fn etcd_lab(extra: &str) -> (NodeLab, Etcd) {
    let lab = NodeLab::new();
    let (client, extra) = ("http://127.0.0.1:2379", format!("{FAST_ELECTIONS} {extra}"));
    let etcd = Etcd::start_with(&lab.node, &lab.lab, client, &extra, &[]);
    (lab, etcd)
}

// --- the library, on a thread inside the namespace ----------------------------------

#[test]
fn v2_keys_are_followed_by_etcd_and_etcd2_only() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("--enable-v2");
    etcd.v2(&["set", KEY, "pg1"]);
    let ep = [etcd.endpoint.as_str()];
    in_netns(&lab.node.name, || {
        let mut either = EtcdAny::new(&settings(&ep, None), Mode::Either);
        assert_eq!(either.following(), Api::V3);
        assert_eq!(either.observe(soon()), Observation::Leader("pg1".into()));
        assert_eq!(either.following(), Api::V2, "switched to v2");
        let mut v2 = EtcdAny::new(&settings(&ep, None), Mode::Only(Api::V2));
        assert_eq!(v2.observe(soon()), Observation::Leader("pg1".into()));
        let mut v3 = EtcdAny::new(&settings(&ep, None), Mode::Only(Api::V3));
        assert_eq!(v3.observe(soon()), Observation::NoLeader);
        assert_eq!(v3.following(), Api::V3);

        // The key written through v3 too (Patroni moved to its etcd3: section): v3 wins.
        etcd.put(KEY, "pg2");
        assert_eq!(either.observe(soon()), Observation::Leader("pg2".into()));
        assert_eq!(either.following(), Api::V3);
        assert_eq!(v2.observe(soon()), Observation::Leader("pg1".into()));
        // Gone from v3 only: v2 again.
        etcd.del(KEY);
        assert_eq!(either.observe(soon()), Observation::Leader("pg1".into()));
        assert_eq!(either.following(), Api::V2);
        // Gone from both: no leader.
        etcd.v2(&["rm", KEY]);
        assert_eq!(either.observe(soon()), Observation::NoLeader);
        assert_eq!(v3.observe(soon()), Observation::NoLeader);
    });
}

#[test]
fn v2_is_absent_without_enable_v2() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("");
    let ep = [etcd.endpoint.as_str()];
    in_netns(&lab.node.name, || {
        let mut v2 = EtcdAny::new(&settings(&ep, None), Mode::Only(Api::V2));
        match v2.observe(soon()) {
            Observation::Unknown(why) => assert!(why.contains("--enable-v2"), "{why}"),
            other => panic!("{other:?}"),
        }
        // etcd (either) with no key anywhere: no leader, from v3.
        let mut either = EtcdAny::new(&settings(&ep, None), Mode::Either);
        assert_eq!(either.observe(soon()), Observation::NoLeader);
    });
}

#[test]
fn v3_authentication_and_a_rotated_password() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("");
    enable_auth(&etcd);
    let ep = [etcd.endpoint.as_str()];
    in_netns(&lab.node.name, || {
        let mut good = EtcdAny::new(&settings(&ep, Some(("patroni", PASSWORD))), Mode::Either);
        assert_eq!(good.check_credentials(soon()), Ok(()));
        assert_eq!(good.observe(soon()), Observation::Leader("pg1".into()));

        let mut wrong = EtcdAny::new(&settings(&ep, Some(("patroni", "nope"))), Mode::Either);
        let rejected = wrong.check_credentials(soon()).unwrap_err();
        assert!(
            rejected.0.contains("authentication failed"),
            "{}",
            rejected.0
        );
        assert!(!rejected.0.contains("nope"));

        // Without credentials: etcd's "user name is empty", unknown.
        let mut anonymous = EtcdAny::new(&settings(&ep, None), Mode::Only(Api::V3));
        assert!(matches!(anonymous.observe(soon()), Observation::Unknown(_)));

        // The password is changed: etcd invalidates the token (code 16); authenticating
        // again with the old password fails: unknown, without the secret.
        rotate_password(&lab, &etcd);
        match good.observe(soon()) {
            Observation::Unknown(why) => {
                assert!(why.contains("credentials rejected"), "{why}");
                assert!(
                    !why.contains(PASSWORD) && !why.contains(NEW_PASSWORD),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn credentials_without_server_authentication_are_not_needed() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("");
    etcd.put(KEY, "pg1");
    let ep = [etcd.endpoint.as_str()];
    in_netns(&lab.node.name, || {
        // etcd answers "authentication is not enabled" (code 9): read without a token, as
        // etcd's Go client (and so vip-manager) does.
        let mut c = EtcdAny::new(&settings(&ep, Some(("patroni", PASSWORD))), Mode::Either);
        assert_eq!(c.check_credentials(soon()), Ok(()));
        assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
        assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    });
}

// --- vipd in the namespace -------------------------------------------------------

/// Polls every 10 ms until `f` holds (true) or `timeout` passes (false).
fn within(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    wait_until(timeout, ms(10), f).is_some()
}

/// What an idle vipd asks of etcd, counted by etcd itself: with v3, no watch opened
/// after the first and a range read only at every tenth check (the checks in between
/// are `GET /version`, which etcd does not count); with v2, the quorum read of every
/// turn and one streaming wait for all turns.
#[test]
fn an_idle_vipd_asks_etcd_for_little() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("--enable-v2");
    etcd.put(KEY, "pg1");
    etcd.v2(&["set", KEY, "pg1"]);
    let range = || etcd.metric("grpc_server_started_total", &["grpc_method=\"Range\""]);
    let watches = || etcd.metric("grpc_server_started_total", &["grpc_method=\"Watch\""]);
    // etcd 3.4 counts every v2 read twice (measured: one GET adds 2, quorum or not).
    let v2_gets = || etcd.metric("etcd_debugging_store_reads_total", &["action=\"get\""]) / 2.0;
    let v2_waits = || etcd.metric("etcd_debugging_store_watch_requests_total", &[]);
    let (turns, interval) = (20, ms(200));
    for dcs_type in ["etcd3", "etcd2"] {
        let args = format!(
            "--trigger-key {KEY} --dcs-type {dcs_type} --interval 200 --dcs-check-interval 200 \
             --announce-count 1"
        );
        let mut vipd = lab.node.vipd(&pg1_args(&args));
        assert!(
            within(Duration::from_secs(5), || lab.has_vip()),
            "{}",
            vipd.output()
        );
        // Past the first read and watch.
        std::thread::sleep(interval * 2);
        let before = [range(), watches(), v2_gets(), v2_waits()];
        let t0 = Instant::now();
        std::thread::sleep(interval * turns);
        let after = [range(), watches(), v2_gets(), v2_waits()];
        // On a loaded machine the sleep and the metric reads may last longer than the
        // turns asked for: the turns that fit in the time that really passed.
        let fit = (t0.elapsed().as_secs_f64() / interval.as_secs_f64()).floor() + 1.0;
        let [ranges, watches, gets, waits] = [0, 1, 2, 3].map(|k| after[k] - before[k]);
        eprintln!(
            "{dcs_type}: {turns} idle turns: {ranges} range reads, {watches} watches, \
             {gets} v2 reads, {waits} v2 waits"
        );
        if dcs_type == "etcd3" {
            assert!((1.0..=3.0).contains(&ranges), "{ranges} range reads");
            assert_eq!((watches, gets, waits), (0.0, 0.0, 0.0));
        } else {
            // A turn may come a little late: at least three quarters of them.
            assert!(
                (15.0..=fit).contains(&gets),
                "{gets} v2 reads, {fit} turns fit"
            );
            assert_eq!((ranges, watches, waits), (0.0, 0.0, 0.0));
        }
        assert_eq!(vipd.terminate(Duration::from_secs(3)), Some(0));
    }
}

#[test]
fn daemon_follows_a_v2_key_with_waits() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("--enable-v2");
    etcd.v2(&["set", KEY, "pg1"]);
    for dcs_type in ["etcd", "etcd2"] {
        let args = format!("--trigger-key {KEY} --dcs-type {dcs_type} --interval 3000 -v");
        let mut vipd = lab
            .node
            .vipd(&pg1_args(&format!("{args} --announce-count=1")));
        assert!(
            within(Duration::from_secs(5), || lab.has_vip()),
            "{dcs_type}: VIP not added:\n{}",
            vipd.output()
        );
        if dcs_type == "etcd" {
            assert!(
                vipd.output().contains(
                    "following the etcd v2 keys API: trigger key /service/demo/leader exists \
                     there and not in the v3 API"
                ),
                "{}",
                vipd.output()
            );
        }
        // Patroni's key expires (ttl): the wait returns the event at once.
        std::thread::sleep(Duration::from_millis(200));
        etcd.v2(&["rm", KEY]);
        let removed = Instant::now();
        assert!(
            within(Duration::from_secs(2), || !lab.has_vip()),
            "{dcs_type}: VIP kept:\n{}",
            vipd.output()
        );
        let took = removed.elapsed();
        assert!(took < Duration::from_millis(600), "{took:?}");
        etcd.v2(&["set", KEY, "pg1"]);
        let set = Instant::now();
        assert!(within(Duration::from_secs(2), || lab.has_vip()));
        assert!(
            set.elapsed() < Duration::from_millis(600),
            "{:?}",
            set.elapsed()
        );
        // SIGTERM interrupts the wait: vipd exits at once.
        let asked = Instant::now();
        let code = vipd.terminate(Duration::from_secs(3));
        assert_eq!(code, Some(0), "{}", vipd.output());
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(!lab.has_vip(), "released on SIGTERM");
    }
    // etcd3 does not see it, and says where it is.
    let args = format!("--once --dry-run --trigger-key {KEY} --dcs-type etcd3");
    let out = lab.node.vipd_once(&pg1_args(&args));
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("leader=none"), "{out:?}");
    assert!(
        out.stderr.contains(
            "trigger key /service/demo/leader does not exist in the etcd v3 API, but it does \
             in the v2 keys API"
        ),
        "{out:?}"
    );
}

#[test]
fn wrong_password_exits_2_at_start() {
    gate!(Etcd);
    let (lab, etcd) = etcd_lab("");
    enable_auth(&etcd);
    let dir = lab.dir("etcd");
    let pw_file = dir.write("pw", format!("{PASSWORD}\n"));
    let once = format!("--once --dry-run --trigger-key {KEY} --etcd-user patroni -v");
    let good = pg1_args(&format!("{once} --etcd-password-file {pw_file}"));
    let out = lab.node.vipd_once(&good);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.contains("leader=\"pg1\""), "{out:?}");

    let wrong = "Wr0ng-Password";
    let out = lab
        .node
        .vipd_once(&pg1_args(&format!("{once} --etcd-password={wrong}")));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("etcd-user \"patroni\": etcdserver: authentication failed"),
        "{out:?}"
    );
    assert!(!out.stdout.contains(wrong) && !out.stderr.contains(wrong));
    assert!(!out.stderr.contains(PASSWORD));
}

/// A password and a token at the highest verbosity, through failures (a rotated
/// password, ACL denials, no Consul leader): neither ever appears in the output.
#[test]
fn secrets_stay_out_of_the_output() {
    gate!(Etcd);
    const TOKEN: &str = "b1c2d3e4-Consul-Token";
    let (lab, etcd) = etcd_lab("");
    enable_auth(&etcd);
    let args = format!(
        "--trigger-key {KEY} --etcd-user patroni --etcd-password={PASSWORD} \
         --consul-token={TOKEN} --interval 200 --dcs-check-interval 200 --dcs-grace 1000 \
         --verbose"
    );
    // An open watch outlives the password; the read at every tenth check (2 s here)
    // finds it rotated.
    let mut etcd_vipd = lab.node.vipd(&pg1_args(&args));
    let added = within(Duration::from_secs(5), || lab.has_vip());
    assert!(added, "{}", etcd_vipd.output());
    rotate_password(&lab, &etcd);
    let rejected = || etcd_vipd.output().contains("credentials rejected");
    assert!(
        within(Duration::from_secs(5), rejected),
        "{}",
        etcd_vipd.output()
    );
    // Unknown: released after the grace period.
    assert!(within(Duration::from_secs(5), || !lab.has_vip()));
    etcd_vipd.terminate(Duration::from_secs(2));
    let etcd_out = etcd_vipd.output();

    // Consul: ACL denials and a lost leader; the password in the environment too.
    let consul = in_netns(&lab.node.name, || FakeConsul::start(8500));
    consul.put("service/demo/leader", "pg1", Some("s1"));
    consul.require_token(Some(TOKEN));
    let mut cmd = std::process::Command::new(tool("ip"));
    cmd.args(["netns", "exec", &lab.node.name])
        .arg(vipd_bin())
        .env("VIP_ETCD_PASSWORD", PASSWORD)
        .args(pg1_args(&format!(
            "--dcs-type=consul --trigger-key {KEY} --consul-token={TOKEN} --interval=200 \
             --dcs-grace=400 -v"
        )));
    let mut consul_vipd = Proc::spawn("vipd consul", cmd, true);
    let added = within(Duration::from_secs(5), || lab.has_vip());
    assert!(added, "{}", consul_vipd.output());
    consul.require_token(Some("other"));
    std::thread::sleep(Duration::from_millis(500));
    consul.require_token(Some(TOKEN));
    consul.set_no_leader(true);
    std::thread::sleep(Duration::from_millis(500));
    consul_vipd.terminate(Duration::from_secs(3));
    let consul_out = consul_vipd.output();
    assert!(
        consul_out.contains("HTTP 403: ACL not found"),
        "{consul_out}"
    );
    assert!(
        consul_out.contains("HTTP 500: No cluster leader"),
        "{consul_out}"
    );

    for (what, out) in [("etcd", &etcd_out), ("consul", &consul_out)] {
        assert!(
            out.contains("DEBUG"),
            "{what}: not at the highest verbosity:\n{out}"
        );
        for secret in [PASSWORD, NEW_PASSWORD, TOKEN] {
            assert!(
                !out.contains(secret),
                "{what}: {secret} in the output:\n{out}"
            );
        }
    }
}

/// TLS: etcd with `--client-cert-auth` and certificates the test makes.
#[cfg(feature = "tls")]
pub(crate) mod tls {
    use super::*;

    /// A CA (and another), a server certificate for 127.0.0.1 and a client certificate,
    /// made by openssl in a scratch directory.
    pub(crate) struct Pki(TempDir);

    impl Pki {
        /// `openssl` with the words of `line`, in the directory.
        fn openssl(&self, line: &str) {
            let mut cmd = std::process::Command::new(tool("openssl"));
            cmd.current_dir(&self.0.path).args(args(line));
            let out = Proc::spawn("openssl", cmd, true).finish(Duration::from_secs(30));
            assert!(out.status.success(), "openssl {line}: {out:?}");
        }

        pub(crate) fn new(lab: &NodeLab) -> Pki {
            let pki = Pki(lab.dir("pki"));
            let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
            for ca in ["ca", "other-ca"] {
                let subject = format!("-subj /CN=vipd-test-{ca} -days 2");
                pki.openssl(&format!(
                    "req -x509 {ec} -keyout {ca}.key -out {ca}.crt {subject}"
                ));
            }
            // clientAuth too: etcd 3.4's JSON gateway dials etcd's own gRPC server with
            // the server certificate, which --client-cert-auth checks.
            let server_ext =
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n";
            pki.0.write("server.ext", server_ext);
            pki.0.write("client.ext", "extendedKeyUsage=clientAuth\n");
            for (name, cn) in [("server", "127.0.0.1"), ("client", "patroni")] {
                pki.openssl(&format!(
                    "req {ec} -keyout {name}.key -out {name}.csr -subj /CN={cn}"
                ));
                pki.openssl(&format!(
                    "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                     -out {name}.crt -days 2 -extfile {name}.ext"
                ));
            }
            // A key that belongs to no certificate here.
            pki.openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out stray.key");
            pki
        }

        pub(crate) fn path(&self, name: &str) -> String {
            self.0.file(name)
        }
    }

    pub(crate) fn tls_etcd(lab: &NodeLab, pki: &Pki) -> Etcd {
        let extra = format!(
            "{FAST_ELECTIONS} --cert-file {} --key-file {} --trusted-ca-file {} \
             --client-cert-auth",
            pki.path("server.crt"),
            pki.path("server.key"),
            pki.path("ca.crt")
        );
        let ctl = [
            ("cacert", "ca.crt"),
            ("cert", "client.crt"),
            ("key", "client.key"),
        ]
        .map(|(flag, file)| format!("--{flag}={}", pki.path(file)));
        let etcd = Etcd::start_with(&lab.node, &lab.lab, "https://127.0.0.1:2379", &extra, &ctl);
        etcd.put(KEY, "pg1");
        etcd
    }

    /// `--once --dry-run` against https://127.0.0.1:2379, trusting `ca`, with a client
    /// certificate and key if given.
    fn once_with(lab: &NodeLab, ca: &str, cert: Option<(&str, &str)>) -> Outcome {
        let mut args = format!(
            "--once --dry-run --trigger-key {KEY} --dcs-endpoints https://127.0.0.1:2379 \
             --etcd-ca-file {ca}"
        );
        if let Some((cert, key)) = cert {
            args += &format!(" --etcd-cert-file {cert} --etcd-key-file {key}");
        }
        lab.node.vipd_once(&pg1_args(&args))
    }

    #[test]
    fn tls_with_a_client_certificate() {
        gate!(Etcd, "openssl");
        let lab = NodeLab::new();
        let pki = Pki::new(&lab);
        let _etcd = tls_etcd(&lab, &pki);
        let (crt, key) = (pki.path("client.crt"), pki.path("client.key"));

        let out = once_with(&lab, &pki.path("ca.crt"), Some((&crt, &key)));
        assert_eq!(out.code(), Some(3), "{out:?}");
        assert!(out.stdout.contains("leader=\"pg1\""), "{out:?}");

        // Another CA: the server's certificate is not trusted; a clear error, exit 1.
        let out = once_with(&lab, &pki.path("other-ca.crt"), Some((&crt, &key)));
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(
            out.stdout
                .contains("invalid peer certificate: UnknownIssuer"),
            "{out:?}"
        );

        // Without a client certificate etcd refuses the handshake.
        let out = once_with(&lab, &pki.path("ca.crt"), None);
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(out.stdout.contains("leader=unknown"), "{out:?}");
    }

    /// With client certificates, the JSON gateway and authentication all on, etcd refuses
    /// any client certificate that has a CommonName, in plain text (HTTP 400): vipd quotes
    /// etcd's words and says what to do instead.
    #[test]
    fn tls_gateway_refusing_a_common_name_is_quoted_with_the_way_out() {
        gate!(Etcd, "openssl");
        let lab = NodeLab::new();
        let pki = Pki::new(&lab);
        let etcd = tls_etcd(&lab, &pki);
        enable_auth(&etcd);
        let args = format!(
            "--once --dry-run --trigger-key {KEY} --dcs-endpoints https://127.0.0.1:2379 \
             --etcd-ca-file {} --etcd-cert-file {} --etcd-key-file {} --etcd-user patroni \
             --etcd-password {PASSWORD}",
            pki.path("ca.crt"),
            pki.path("client.crt"),
            pki.path("client.key")
        );
        let out = lab.node.vipd_once(&pg1_args(&args));
        assert_eq!(out.code(), Some(1), "{out:?}");
        for words in [
            "authenticate: HTTP 400: ",
            "CommonName of client sending a request against gateway will be ignored and not \
             used as expected",
            "a client certificate without a CommonName",
            "password authentication without client certificates",
        ] {
            assert!(out.stdout.contains(words), "{words}: {out:?}");
        }
        assert!(!out.stdout.contains("invalid JSON"), "{out:?}");
        assert!(!out.stdout.contains(PASSWORD), "{out:?}");
    }

    #[test]
    fn tls_file_errors_exit_2_naming_the_file() {
        gate!(Etcd, "openssl");
        let lab = NodeLab::new();
        let pki = Pki::new(&lab);
        let garbage = pki.0.write("garbage.pem", "not a certificate\n");
        let missing = pki.path("missing.pem");
        let (ca, crt, key) = (
            pki.path("ca.crt"),
            pki.path("client.crt"),
            pki.path("client.key"),
        );
        // (CA, certificate, key, the file named, the reason given)
        let cases = [
            // A key for another certificate: refused at start, never at a connection.
            (
                &ca,
                &crt,
                pki.path("stray.key"),
                "stray.key",
                "does not match",
            ),
            (
                &ca,
                &crt,
                pki.path("server.key"),
                "server.key",
                "does not match",
            ),
            (
                &ca,
                &crt,
                garbage.clone(),
                "garbage.pem",
                "no unencrypted PEM private key",
            ),
            (&ca, &crt, missing.clone(), "missing.pem", "cannot read"),
            (
                &garbage,
                &crt,
                key.clone(),
                "garbage.pem",
                "no PEM certificate",
            ),
            (
                &ca,
                &garbage,
                key.clone(),
                "garbage.pem",
                "no PEM certificate",
            ),
        ];
        for (ca, crt, key, named, why) in cases {
            let out = lab.node.vipd_once(&pg1_args(&format!(
                "--once --trigger-key {KEY} --dcs-endpoints https://127.0.0.1:2379 \
                 --etcd-ca-file {ca} --etcd-cert-file {crt} --etcd-key-file {key}"
            )));
            assert_eq!(out.code(), Some(2), "{named}: {out:?}");
            assert!(
                out.stderr.contains(named) && out.stderr.contains(why),
                "{named}: {out:?}"
            );
            assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
            assert!(!out.stderr.contains("panicked"), "{out:?}");
        }
    }

    /// An Ed25519 key file holds only its seed: rustls derives the public half and
    /// compares it with the certificate's, at start-up.
    #[test]
    fn tls_ed25519_key_for_another_certificate_exits_2() {
        gate!(Etcd, "openssl");
        let lab = NodeLab::new();
        let pki = Pki::new(&lab);
        pki.openssl("genpkey -algorithm ED25519 -out ed-a.key");
        pki.openssl("genpkey -algorithm ED25519 -out ed-b.key");
        pki.openssl("req -new -x509 -key ed-a.key -subj /CN=patroni -days 2 -out ed-a.crt");
        let crt = pki.path("ed-a.crt");
        let out = once_with(
            &lab,
            &pki.path("ca.crt"),
            Some((&crt, &pki.path("ed-b.key"))),
        );
        assert_eq!(out.code(), Some(2), "{out:?}");
        assert!(
            out.stderr.contains("ed-a.crt")
                && out.stderr.contains("ed-b.key")
                && out.stderr.contains("does not match"),
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        // The matching key passes the check (and then cannot connect: no etcd here).
        let out = once_with(
            &lab,
            &pki.path("ca.crt"),
            Some((&crt, &pki.path("ed-a.key"))),
        );
        assert_eq!(out.code(), Some(1), "{out:?}");
    }
}

/// A build without TLS refuses https:// endpoints at start-up.
#[cfg(not(feature = "tls"))]
#[test]
fn without_tls_https_is_refused_at_start() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let endpoints = "http://127.0.0.1:2379,https://127.0.0.1:2379";
    let args = format!("--once --trigger-key {KEY} --dcs-endpoints {endpoints}");
    let out = lab.node.vipd_once(&pg1_args(&args));
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        "vipd: dcs-endpoints: \"https://127.0.0.1:2379\" needs TLS, and this vipd was built \
         without it (cargo feature \"tls\")\n"
    );
}

#[test]
fn three_members_lose_one_then_two() {
    gate!(Etcd);
    let lab = NodeLab::new();
    let mut cluster = EtcdCluster::start(&lab.node, &lab.lab, 3, FAST_ELECTIONS);
    cluster.members[1].put(KEY, "pg1");
    let mut vipd = lab.node.vipd(&pg1_args(&format!(
        "--trigger-key {KEY} --dcs-endpoints {} --interval 300 --dcs-grace 2500 \
         --announce-count=1 -v",
        cluster.endpoints()
    )));
    let added = within(Duration::from_secs(5), || lab.has_vip());
    assert!(added, "{}", vipd.output());
    // The member vipd talks to (the first endpoint) stops: it goes on through the
    // others, the VIP stays.
    cluster.members[0].stop();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        assert!(lab.has_vip(), "VIP lost:\n{}", vipd.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!vipd.output().contains("removed"), "{}", vipd.output());
    // A second one: no quorum, unknown; kept through the grace period, then released.
    cluster.members[1].stop();
    let lost = Instant::now();
    let released = within(Duration::from_secs(8), || !lab.has_vip());
    assert!(released, "VIP kept:\n{}", vipd.output());
    let after = lost.elapsed();
    assert!(
        after >= Duration::from_millis(2000) && after < Duration::from_millis(5000),
        "released {after:?} after losing quorum:\n{}",
        vipd.output()
    );
    assert_eq!(vipd.terminate(Duration::from_secs(3)), Some(0));
}
