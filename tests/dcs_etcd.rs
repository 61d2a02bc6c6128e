//! vipd against Debian's real etcd (3.4), started by each test on loopback (of the host,
//! or of a network namespace the test makes): the v2 keys API and the choice between
//! v2 and v3, authentication (wrong and rotated passwords), TLS with client
//! certificates the test generates with openssl, and a three-member cluster losing
//! members. Secrets never appear in vipd's output.
//!
//! Every test needs root and etcd (the common lab's gate: it fails without them, unless
//! VIPD_ALLOW_SKIP=1); the TLS tests need openssl too.

use std::time::{Duration, Instant};

use crate::common::{Netns, Proc, vipd_bin};
use crate::dcs_lab::*;
use vipd::config::Secret;
use vipd::dcs::etcd::{Credentials, Settings};
use vipd::dcs::etcd_any::{Api, EtcdAny, Mode};
use vipd::dcs::http::Tls;
use vipd::dcs::{Dcs, Observation};

const KEY: &str = "/service/demo/leader";
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
        tls: Tls::default(),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

/// Users root and patroni (read access to /service/), then `auth enable`; the key.
fn enable_auth(etcd: &Etcd) {
    etcd.ctl_ok(false, &["user", "add", ROOT]);
    etcd.ctl_ok(false, &["user", "grant-role", "root", "root"]);
    etcd.ctl_ok(false, &["user", "add", &format!("patroni:{PASSWORD}")]);
    etcd.ctl_ok(false, &["role", "add", "patroni-read"]);
    etcd.ctl_ok(
        false,
        &[
            "role",
            "grant-permission",
            "patroni-read",
            "read",
            "/service/",
            "--prefix",
        ],
    );
    etcd.ctl_ok(false, &["user", "grant-role", "patroni", "patroni-read"]);
    etcd.ctl_ok(false, &["auth", "enable"]);
    etcd.ctl_ok(false, &["--user", ROOT, "put", KEY, "pg1"]);
}

/// `etcdctl user passwd patroni` (the new password on stdin).
fn rotate_password(etcd: &Etcd) {
    let script = format!(
        "echo '{NEW_PASSWORD}' | ETCDCTL_API=3 etcdctl --endpoints={} --user '{ROOT}' \
         user passwd patroni --interactive=false",
        etcd.client_url
    );
    let out = etcd.sh(&script);
    assert!(out.status.success(), "{out:?}");
}

// --- the library against etcd on the host's loopback --------------------------------

#[test]
fn v2_keys_are_followed_by_etcd_and_etcd2_only() {
    if !gate("v2_keys_are_followed_by_etcd_and_etcd2_only", &[]) {
        return;
    }
    let lab = Lab::new("v2");
    let etcd = Etcd::single(
        &lab,
        &EtcdOptions {
            v2: true,
            ..Default::default()
        },
    );
    etcd.ctl_ok(true, &["set", KEY, "pg1"]);
    let ep = [etcd.client_url.as_str()];

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
    etcd.ctl_ok(false, &["put", KEY, "pg2"]);
    assert_eq!(either.observe(soon()), Observation::Leader("pg2".into()));
    assert_eq!(either.following(), Api::V3);
    assert_eq!(v2.observe(soon()), Observation::Leader("pg1".into()));
    // Gone from v3 only: v2 again.
    etcd.ctl_ok(false, &["del", KEY]);
    assert_eq!(either.observe(soon()), Observation::Leader("pg1".into()));
    assert_eq!(either.following(), Api::V2);
    // Gone from both: no leader.
    etcd.ctl_ok(true, &["rm", KEY]);
    assert_eq!(either.observe(soon()), Observation::NoLeader);
    assert_eq!(v3.observe(soon()), Observation::NoLeader);
}

#[test]
fn v2_is_absent_without_enable_v2() {
    if !gate("v2_is_absent_without_enable_v2", &[]) {
        return;
    }
    let lab = Lab::new("nov2");
    let etcd = Etcd::single(&lab, &EtcdOptions::default());
    let ep = [etcd.client_url.as_str()];
    let mut v2 = EtcdAny::new(&settings(&ep, None), Mode::Only(Api::V2));
    match v2.observe(soon()) {
        Observation::Unknown(why) => assert!(why.contains("--enable-v2"), "{why}"),
        other => panic!("{other:?}"),
    }
    // etcd (either) with no key anywhere: no leader, from v3.
    let mut either = EtcdAny::new(&settings(&ep, None), Mode::Either);
    assert_eq!(either.observe(soon()), Observation::NoLeader);
}

#[test]
fn v3_authentication_and_a_rotated_password() {
    if !gate("v3_authentication_and_a_rotated_password", &[]) {
        return;
    }
    let lab = Lab::new("auth");
    let etcd = Etcd::single(&lab, &EtcdOptions::default());
    enable_auth(&etcd);
    let ep = [etcd.client_url.as_str()];

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
    rotate_password(&etcd);
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
}

#[test]
fn credentials_without_server_authentication_are_not_needed() {
    if !gate(
        "credentials_without_server_authentication_are_not_needed",
        &[],
    ) {
        return;
    }
    let lab = Lab::new("noauth");
    let etcd = Etcd::single(&lab, &EtcdOptions::default());
    etcd.ctl_ok(false, &["put", KEY, "pg1"]);
    let ep = [etcd.client_url.as_str()];
    // etcd answers "authentication is not enabled" (code 9): read without a token, as
    // etcd's Go client (and so vip-manager) does.
    let mut c = EtcdAny::new(&settings(&ep, Some(("patroni", PASSWORD))), Mode::Either);
    assert_eq!(c.check_credentials(soon()), Ok(()));
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
    assert_eq!(c.observe(soon()), Observation::Leader("pg1".into()));
}

// --- vipd in a namespace ----------------------------------------------------------

fn ns_lab(test: &str, tools: &[&str]) -> Option<(Lab, Netns)> {
    if !gate(test, tools) {
        return None;
    }
    let lab = Lab::new("etcd");
    let ns = lab.netns();
    Some((lab, ns))
}

fn etcd_in(lab: &Lab, ns: &Netns, opts: &EtcdOptions) -> Etcd {
    let etcd = Etcd::start(lab, Some(ns), "e1", 2379, 2380, None, opts);
    etcd.wait_ready();
    etcd
}

#[test]
fn daemon_follows_a_v2_key_with_waits() {
    let Some((lab, ns)) = ns_lab("daemon_follows_a_v2_key_with_waits", &[]) else {
        return;
    };
    let etcd = etcd_in(
        &lab,
        &ns,
        &EtcdOptions {
            v2: true,
            ..Default::default()
        },
    );
    etcd.ctl_ok(true, &["set", KEY, "pg1"]);
    for dcs_type in ["etcd", "etcd2"] {
        let args = vip_args(&[
            "--trigger-key",
            KEY,
            "--dcs-type",
            dcs_type,
            "--interval",
            "3000",
            "--announce-count=1",
            "-v",
        ]);
        let mut vipd = vipd(&ns, &args);
        assert!(
            wait_until(Duration::from_secs(5), || has_vip(&ns)),
            "{dcs_type}: VIP not added:\n{}",
            output(&vipd)
        );
        if dcs_type == "etcd" {
            assert!(
                output(&vipd).contains(
                    "following the etcd v2 keys API: trigger key /service/demo/leader exists \
                     there and not in the v3 API"
                ),
                "{}",
                output(&vipd)
            );
        }
        // Patroni's key expires (ttl): the wait returns the event at once.
        std::thread::sleep(Duration::from_millis(200));
        etcd.ctl_ok(true, &["rm", KEY]);
        let removed = Instant::now();
        assert!(
            wait_until(Duration::from_secs(2), || !has_vip(&ns)),
            "{dcs_type}: VIP kept:\n{}",
            output(&vipd)
        );
        assert!(
            removed.elapsed() < Duration::from_millis(600),
            "{:?}",
            removed.elapsed()
        );
        etcd.ctl_ok(true, &["set", KEY, "pg1"]);
        let set = Instant::now();
        assert!(wait_until(Duration::from_secs(2), || has_vip(&ns)));
        assert!(
            set.elapsed() < Duration::from_millis(600),
            "{:?}",
            set.elapsed()
        );
        // SIGTERM interrupts the wait: vipd exits at once.
        let asked = Instant::now();
        assert_eq!(
            terminate(&mut vipd, Duration::from_secs(3)),
            Some(0),
            "{}",
            output(&vipd)
        );
        assert!(
            asked.elapsed() < Duration::from_millis(1000),
            "{:?}",
            asked.elapsed()
        );
        assert!(!has_vip(&ns), "released on SIGTERM");
    }
    // etcd3 does not see it, and says where it is.
    let out = vipd_once(
        &ns,
        &vip_args(&[
            "--once",
            "--dry-run",
            "--trigger-key",
            KEY,
            "--dcs-type",
            "etcd3",
        ]),
    );
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
    let Some((lab, ns)) = ns_lab("wrong_password_exits_2_at_start", &[]) else {
        return;
    };
    let etcd = etcd_in(&lab, &ns, &EtcdOptions::default());
    enable_auth(&etcd);
    let pw_file = lab.write("pw", format!("{PASSWORD}\n").as_bytes());
    let good = vip_args(&[
        "--once",
        "--dry-run",
        "--trigger-key",
        KEY,
        "--etcd-user",
        "patroni",
        "--etcd-password-file",
        &pw_file,
        "-v",
    ]);
    let out = vipd_once(&ns, &good);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.contains("leader=\"pg1\""), "{out:?}");

    let wrong = "Wr0ng-Password";
    let flag = format!("--etcd-password={wrong}");
    let bad = vip_args(&[
        "--once",
        "--dry-run",
        "--trigger-key",
        KEY,
        "--etcd-user",
        "patroni",
        &flag,
        "-v",
    ]);
    let out = vipd_once(&ns, &bad);
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
    let Some((lab, ns)) = ns_lab("secrets_stay_out_of_the_output", &[]) else {
        return;
    };
    const TOKEN: &str = "b1c2d3e4-Consul-Token";
    let etcd = etcd_in(&lab, &ns, &EtcdOptions::default());
    enable_auth(&etcd);
    let pw_flag = format!("--etcd-password={PASSWORD}");
    let token_flag = format!("--consul-token={TOKEN}");
    let args = vip_args(&[
        "--trigger-key",
        KEY,
        "--etcd-user",
        "patroni",
        &pw_flag,
        &token_flag,
        "--interval",
        "200",
        "--dcs-grace",
        "1000",
        "--verbose",
    ]);
    let mut etcd_vipd = vipd(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(5), || has_vip(&ns)),
        "{}",
        output(&etcd_vipd)
    );
    rotate_password(&etcd);
    assert!(
        wait_until(Duration::from_secs(5), || output(&etcd_vipd)
            .contains("credentials rejected")),
        "{}",
        output(&etcd_vipd)
    );
    // Unknown: released after the grace period.
    assert!(wait_until(Duration::from_secs(5), || !has_vip(&ns)));
    terminate(&mut etcd_vipd, Duration::from_secs(2));
    let etcd_out = output(&etcd_vipd);

    // Consul: ACL denials and a lost leader; the password in the environment too.
    let consul = inside(&ns, || crate::fakes::FakeConsul::start(8500));
    consul.put("service/demo/leader", "pg1", Some("s1"));
    consul.require_token(Some(TOKEN));
    let mut cmd = std::process::Command::new(crate::common::tool("ip"));
    cmd.args(["netns", "exec", &ns.name])
        .arg(vipd_bin())
        .env("VIP_ETCD_PASSWORD", PASSWORD)
        .args(vip_args(&[
            "--dcs-type=consul",
            "--trigger-key",
            KEY,
            &token_flag,
            "--interval=200",
            "--dcs-grace=400",
            "-v",
        ]));
    let mut consul_vipd = Proc::spawn("vipd consul", cmd, true);
    assert!(
        wait_until(Duration::from_secs(5), || has_vip(&ns)),
        "{}",
        output(&consul_vipd)
    );
    consul.require_token(Some("other"));
    std::thread::sleep(Duration::from_millis(500));
    consul.require_token(Some(TOKEN));
    consul.set_no_leader(true);
    std::thread::sleep(Duration::from_millis(500));
    terminate(&mut consul_vipd, Duration::from_secs(3));
    let consul_out = output(&consul_vipd);
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
mod tls {
    use super::*;

    /// A CA (and another), a server certificate for 127.0.0.1 and a client certificate,
    /// made by openssl in the lab's directory.
    struct Pki<'a> {
        lab: &'a Lab,
    }

    impl Pki<'_> {
        fn openssl(&self, args: &[&str]) {
            let mut cmd = std::process::Command::new(crate::common::tool("openssl"));
            cmd.current_dir(&self.lab.dir.path).args(args);
            let out = Proc::spawn("openssl", cmd, true).finish(Duration::from_secs(30));
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        }

        fn new(lab: &Lab) -> Pki<'_> {
            let pki = Pki { lab };
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ];
            for ca in ["ca", "other-ca"] {
                let (key, crt, subj) = (
                    format!("{ca}.key"),
                    format!("{ca}.crt"),
                    format!("/CN=vipd test {ca}"),
                );
                let mut args = vec!["req", "-x509"];
                args.extend(ec);
                args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj, "-days", "2"]);
                pki.openssl(&args);
            }
            // clientAuth too: etcd 3.4's JSON gateway dials etcd's own gRPC server with
            // the server certificate, which --client-cert-auth checks.
            lab.write(
                "server.ext",
                b"subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
            );
            lab.write("client.ext", b"extendedKeyUsage=clientAuth\n");
            for (name, cn) in [("server", "127.0.0.1"), ("client", "patroni")] {
                let (key, csr, crt, ext, subj) = (
                    format!("{name}.key"),
                    format!("{name}.csr"),
                    format!("{name}.crt"),
                    format!("{name}.ext"),
                    format!("/CN={cn}"),
                );
                let mut args = vec!["req"];
                args.extend(ec);
                args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
                pki.openssl(&args);
                pki.openssl(&[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ]);
            }
            // A key that belongs to no certificate here.
            pki.openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "stray.key",
            ]);
            pki
        }

        fn path(&self, name: &str) -> String {
            self.lab.path(name).to_string_lossy().into_owned()
        }
    }

    fn tls_etcd(lab: &Lab, ns: &Netns, pki: &Pki) -> Etcd {
        let opts = EtcdOptions {
            client_scheme: Some("https"),
            extra: vec![
                "--cert-file".into(),
                pki.path("server.crt"),
                "--key-file".into(),
                pki.path("server.key"),
                "--trusted-ca-file".into(),
                pki.path("ca.crt"),
                "--client-cert-auth".into(),
            ],
            ..Default::default()
        };
        let etcd = Etcd::start(lab, Some(ns), "e1", 2379, 2380, None, &opts).with_tls_flags(vec![
            format!("--cacert={}", pki.path("ca.crt")),
            format!("--cert={}", pki.path("client.crt")),
            format!("--key={}", pki.path("client.key")),
        ]);
        etcd.wait_ready();
        etcd.ctl_ok(false, &["put", KEY, "pg1"]);
        etcd
    }

    fn once_with(ns: &Netns, ca: &str, cert: Option<(&str, &str)>) -> crate::common::Outcome {
        let mut args = vec![
            "--once",
            "--dry-run",
            "--trigger-key",
            KEY,
            "--dcs-endpoints",
            "https://127.0.0.1:2379",
            "--etcd-ca-file",
            ca,
        ];
        if let Some((cert, key)) = cert {
            args.extend(["--etcd-cert-file", cert, "--etcd-key-file", key]);
        }
        vipd_once(ns, &vip_args(&args))
    }

    #[test]
    fn tls_with_a_client_certificate() {
        let Some((lab, ns)) = ns_lab("tls_with_a_client_certificate", &["openssl"]) else {
            return;
        };
        let pki = Pki::new(&lab);
        let _etcd = tls_etcd(&lab, &ns, &pki);
        let (crt, key) = (pki.path("client.crt"), pki.path("client.key"));

        let out = once_with(&ns, &pki.path("ca.crt"), Some((&crt, &key)));
        assert_eq!(out.code(), Some(3), "{out:?}");
        assert!(out.stdout.contains("leader=\"pg1\""), "{out:?}");

        // Another CA: the server's certificate is not trusted; a clear error, exit 1.
        let out = once_with(&ns, &pki.path("other-ca.crt"), Some((&crt, &key)));
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(
            out.stdout
                .contains("invalid peer certificate: UnknownIssuer"),
            "{out:?}"
        );

        // Without a client certificate etcd refuses the handshake.
        let out = once_with(&ns, &pki.path("ca.crt"), None);
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(out.stdout.contains("leader=unknown"), "{out:?}");
    }

    #[test]
    fn tls_file_errors_exit_2_naming_the_file() {
        let Some((lab, ns)) = ns_lab("tls_file_errors_exit_2_naming_the_file", &["openssl"]) else {
            return;
        };
        let pki = Pki::new(&lab);
        let garbage = lab.write("garbage.pem", b"not a certificate\n");
        let missing = pki.path("missing.pem");
        let (ca, crt, key) = (
            pki.path("ca.crt"),
            pki.path("client.crt"),
            pki.path("client.key"),
        );
        let cases = [
            // A key for another certificate: never let it reach ureq (which panics).
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
            let out = vipd_once(
                &ns,
                &vip_args(&[
                    "--once",
                    "--trigger-key",
                    KEY,
                    "--dcs-endpoints",
                    "https://127.0.0.1:2379",
                    "--etcd-ca-file",
                    ca,
                    "--etcd-cert-file",
                    crt,
                    "--etcd-key-file",
                    &key,
                ]),
            );
            assert_eq!(out.code(), Some(2), "{named}: {out:?}");
            assert!(
                out.stderr.contains(named) && out.stderr.contains(why),
                "{named}: {out:?}"
            );
            assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
            assert!(!out.stderr.contains("panicked"), "{out:?}");
        }
    }

    /// An Ed25519 key does not store its public half, so only rustls itself can tell
    /// that it belongs to another certificate: the start-up self-check asks it, in a
    /// child process.
    #[test]
    fn tls_self_check_catches_what_the_files_do_not_show() {
        let Some((lab, ns)) = ns_lab(
            "tls_self_check_catches_what_the_files_do_not_show",
            &["openssl"],
        ) else {
            return;
        };
        let pki = Pki::new(&lab);
        pki.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed-a.key"]);
        pki.openssl(&["genpkey", "-algorithm", "ED25519", "-out", "ed-b.key"]);
        pki.openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            "ed-a.key",
            "-subj",
            "/CN=patroni",
            "-days",
            "2",
            "-out",
            "ed-a.crt",
        ]);
        let crt = pki.path("ed-a.crt");
        let out = once_with(
            &ns,
            &pki.path("ca.crt"),
            Some((&crt, &pki.path("ed-b.key"))),
        );
        assert_eq!(out.code(), Some(2), "{out:?}");
        assert!(
            out.stderr.contains("ed-a.crt")
                && out.stderr.contains("ed-b.key")
                && out.stderr.contains("KeyMismatch"),
            "{out:?}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        // The matching key passes the check (and then cannot connect: no etcd here).
        let out = once_with(
            &ns,
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
    let Some((_lab, ns)) = ns_lab("without_tls_https_is_refused_at_start", &[]) else {
        return;
    };
    let out = vipd_once(
        &ns,
        &vip_args(&[
            "--once",
            "--trigger-key",
            KEY,
            "--dcs-endpoints",
            "http://127.0.0.1:2379,https://127.0.0.1:2379",
        ]),
    );
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(
        out.stderr,
        "vipd: dcs-endpoints: \"https://127.0.0.1:2379\" needs TLS, and this vipd was built \
         without it (cargo feature \"tls\")\n"
    );
}

#[test]
fn three_members_lose_one_then_two() {
    let Some((lab, ns)) = ns_lab("three_members_lose_one_then_two", &[]) else {
        return;
    };
    let members = [
        ("m1", 2379u16, 2380u16),
        ("m2", 3379, 3380),
        ("m3", 4379, 4380),
    ];
    let cluster: Vec<String> = members
        .iter()
        .map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}"))
        .collect();
    let cluster = cluster.join(",");
    let mut etcds: Vec<Etcd> = members
        .iter()
        .map(|(n, c, p)| {
            Etcd::start(
                &lab,
                Some(&ns),
                n,
                *c,
                *p,
                Some(&cluster),
                &Default::default(),
            )
        })
        .collect();
    for e in &etcds {
        e.wait_ready();
    }
    etcds[1].ctl_ok(false, &["put", KEY, "pg1"]);
    let endpoints = "http://127.0.0.1:2379,http://127.0.0.1:3379,http://127.0.0.1:4379";
    let args = vip_args(&[
        "--trigger-key",
        KEY,
        "--dcs-endpoints",
        endpoints,
        "--interval",
        "300",
        "--dcs-grace",
        "2500",
        "--announce-count=1",
        "-v",
    ]);
    let mut vipd = vipd(&ns, &args);
    assert!(
        wait_until(Duration::from_secs(5), || has_vip(&ns)),
        "{}",
        output(&vipd)
    );
    // The member vipd talks to (the first endpoint) stops: it goes on through the
    // others, the VIP stays.
    etcds[0].stop();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        assert!(has_vip(&ns), "VIP lost:\n{}", output(&vipd));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!output(&vipd).contains("removed"), "{}", output(&vipd));
    // A second one: no quorum, unknown; kept through the grace period, then released.
    etcds[1].stop();
    let lost = Instant::now();
    assert!(
        wait_until(Duration::from_secs(8), || !has_vip(&ns)),
        "VIP kept:\n{}",
        output(&vipd)
    );
    let after = lost.elapsed();
    assert!(
        after >= Duration::from_millis(2000) && after < Duration::from_millis(5000),
        "released {after:?} after losing quorum:\n{}",
        output(&vipd)
    );
    assert_eq!(terminate(&mut vipd, Duration::from_secs(3)), Some(0));
}
