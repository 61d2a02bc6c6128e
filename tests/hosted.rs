//! Hosted failover IPs: vipd against faithful https fakes of Hetzner's Robot failover API
//! and Cloud floating-IP API ([`crate::fakes::hetzner`]), served with a test CA inside the
//! node's namespace, the leader key in a real etcd. Hetzner's real hosts are never named.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::fakes::hetzner::{
    CLOUD_TOKEN, Canned, CloudConfig, FakeCloud, FakeRobot, ROBOT_PASSWORD, Recorded, RobotConfig,
    TestPki,
};

/// This server's main address, and another server of the same account.
const HERE: &str = "198.51.100.10";
const OTHER: &str = "198.51.100.20";
/// This server's and another server's Cloud ids.
const SERVER_ID: u64 = 42;
const OTHER_ID: u64 = 43;

/// A Robot account whose failover IP (the VIP) routes to `OTHER`, served in the node's
/// namespace, with vipd's credentials file written with shell quoting.
struct Robot {
    lab: SingleNode,
    pki: TestPki,
    fake: FakeRobot,
    files: TempDir,
}

impl Robot {
    fn new() -> Robot {
        Robot::on("127.0.0.1", HERE)
    }

    /// The fake listening on `ip` (of the node's namespace); the account's servers are
    /// `OTHER` and `this_server`.
    fn on(ip: &str, this_server: &str) -> Robot {
        let lab = SingleNode::new();
        let pki = TestPki::new(&[ip]);
        let config = RobotConfig::ipv4(VIP, &[OTHER, this_server]);
        let fake = in_netns(&lab.node.name, || {
            FakeRobot::start(&format!("{ip}:0"), &pki, config)
        });
        let files = TempDir::new(&lab.lab, "hetzner");
        // vip-manager's file, as a shell would read it.
        files.write(
            "hetzner",
            format!("# Robot webservice\nuser=\"#ws+vipdTest\"\npass='{ROBOT_PASSWORD}'\n"),
        );
        Robot {
            lab,
            pki,
            fake,
            files,
        }
    }

    /// The options of a Robot failover IP for this node, then `extra`.
    fn args(&self, extra: &str) -> String {
        format!(
            "--manager-type hetzner --hetzner-api-url {} --hetzner-ca-file {} \
             --hetzner-credentials-file {} --hetzner-server-ip {HERE} --interval 100 -v {extra}",
            self.fake.url(),
            self.pki.ca_file(),
            self.files.file("hetzner")
        )
    }

    fn vipd(&self, extra: &str) -> Proc {
        self.lab.vipd(&self.args(extra))
    }

    /// vipd for another node, `name`, against the same account (its own server IP).
    fn vipd_as(&self, name: &str, server_ip: &str) -> Proc {
        let extra = self.args("").replace(
            &format!("--hetzner-server-ip {HERE}"),
            &format!("--hetzner-server-ip {server_ip}"),
        );
        let args = vipd_args(NODE_IF, name, &self.lab.etcd.endpoint, &extra);
        self.lab.node.vipd(&args)
    }

    fn once(&self, extra: &str) -> Outcome {
        self.lab.once(&format!("--once {}", self.args(extra)))
    }

    fn posts(&self) -> usize {
        self.fake.posts().len()
    }

    /// Waits (at most `secs`) for the route to be `want`.
    fn wait_route(&self, want: &str, secs: u64, vipd: &Proc) {
        let got = wait_until(Duration::from_secs(secs), POLL, || {
            self.fake.route().as_deref() == Some(want)
        });
        assert!(
            got.is_some(),
            "the failover IP never routed to {want} (now {:?}; calls {:?})\n{}",
            self.fake.route(),
            self.fake.requests(),
            vipd.log()
        );
    }
}

/// Nothing vipd says names the Robot password or the Cloud token, in clear or in base64.
fn assert_no_secret(text: &str) {
    let basic = vipd::base64::encode(format!("#ws+vipdTest:{ROBOT_PASSWORD}").as_bytes());
    for secret in [ROBOT_PASSWORD, CLOUD_TOKEN, basic.as_str()] {
        assert!(!text.contains(secret), "a secret in vipd's output:\n{text}");
    }
}

/// The lines of `log` that contain `needle`.
fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The error lines of `log` that contain `needle`.
fn errors_with(log: &str, needle: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(" ERROR ") && l.contains(needle))
        .count()
}

#[test]
fn robot_the_leader_moves_the_route_once_and_a_follower_never_calls() {
    gate!(Etcd, "tcpdump", "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, "node2");
    let cap = Capture::start(&r.lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut follower = r.vipd("");
    // One read at start (the credentials' check), then silence.
    let checked = wait_until(Duration::from_secs(5), POLL, || r.fake.gets().len() == 1);
    assert!(checked.is_some(), "no start-up read\n{}", follower.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        r.fake.requests().len(),
        1,
        "a follower called the API\n{}",
        follower.log()
    );

    // This node takes the lead: exactly one move, to this server's address.
    let put = Instant::now();
    r.lab.etcd.put(KEY, NODE_NAME);
    r.wait_route(HERE, 5, &follower);
    let posts = r.fake.posts();
    eprintln!(
        "key written -> move requested at the fake: {:.1} ms",
        posts[0].at.duration_since(put).as_secs_f64() * 1000.0
    );
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].form("active_server_ip").as_deref(), Some(HERE));
    assert_eq!(
        posts[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert!(posts.iter().all(|c| c.authorized));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(r.posts(), 1, "{:?}", r.fake.requests());
    // A routed failover IP: not on the interface, never announced.
    assert_eq!(r.lab.node.prefixes_of(NODE_IF, vip()), Vec::<u8>::new());
    assert_eq!(cap.arps().len(), 0, "{}", describe_arps(&cap.arps()));
    let log = follower.log();
    assert_eq!(lines_with(&log, "moved 192.0.2.50 here"), 1, "{log}");

    // Losing the lead needs no call: the next leader moves the route.
    let calls = r.fake.requests().len();
    r.lab.etcd.put(KEY, "node2");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(r.fake.requests().len(), calls);
    assert_eq!(follower.terminate(Duration::from_secs(3)), Some(0));
    assert_no_secret(&follower.log());
}

#[test]
fn robot_already_here_no_move_and_already_routed_counts_as_done() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    r.fake.set_route(Some(HERE));
    let out = r.once("");
    out.expect(0, "--once, routed here");
    assert!(
        out.stdout.contains("actual=routed-here action=none"),
        "{}",
        out.stdout
    );
    assert_eq!(r.posts(), 0);

    // The read says elsewhere, the route is already here by the time of the move:
    // Robot answers 409 FAILOVER_ALREADY_ROUTED, which is success.
    let elsewhere = format!(
        r#"{{"failover":{{"ip":"{VIP}","netmask":"255.255.255.255","server_ip":"{OTHER}",
        "server_ipv6_net":"2001:db8:1::","server_number":321,"active_server_ip":"{OTHER}"}}}}"#
    );
    r.fake
        .get_reply_override(Some(Canned::json(200, &elsewhere)));
    let out = r.once("");
    out.expect(0, "--once, already routed");
    assert!(
        out.stdout.contains("actual=routed-here action=moved"),
        "{}",
        out.stdout
    );
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, Some(409));

    // A dry run reads and says what it would do.
    r.fake.get_reply_override(None);
    r.fake.set_route(Some(OTHER));
    let out = r.once("--dry-run");
    out.expect(3, "--once --dry-run, elsewhere");
    assert!(
        out.stdout.contains(&format!(
            "actual=routed-elsewhere:{OTHER} action=would-move"
        )),
        "{}",
        out.stdout
    );
    assert_eq!(r.posts(), 1);
    assert_no_secret(&out.stdout);
    assert_no_secret(&out.stderr);
}

#[test]
fn robot_a_locked_or_refused_move_is_retried_with_backoff_and_logged_once() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    r.fake.locked_next(2);
    let mut v = r.vipd("");
    r.wait_route(HERE, 15, &v);
    let posts = r.fake.posts();
    assert_eq!(posts.len(), 3, "{posts:?}");
    // Backoff: 2 s, then 4 s.
    let gap = |a: usize, b: usize| posts[b].at.duration_since(posts[a].at);
    assert!(gap(0, 1) >= Duration::from_millis(1900), "{:?}", gap(0, 1));
    assert!(gap(1, 2) >= Duration::from_millis(3900), "{:?}", gap(1, 2));
    v.stop();
    let log = v.log();
    assert_eq!(errors_with(&log, "FAILOVER_LOCKED"), 1, "{log}");
    assert_eq!(lines_with(&log, "the API answers again"), 1, "{log}");

    // A server error: the same, and never a secret in any output.
    r.fake.set_route(Some(OTHER));
    r.fake.fail_next(2, 500, "INTERNAL_ERROR");
    let mut v = r.vipd("");
    r.wait_route(HERE, 15, &v);
    v.stop();
    let log = v.log();
    assert_eq!(errors_with(&log, "INTERNAL_ERROR"), 1, "{log}");
    assert_no_secret(&log);
}

#[test]
fn robot_a_slow_move_stalls_nothing_and_sigterm_exits_at_once() {
    gate!(Etcd, "tcpdump", "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    r.fake.post_delay(Duration::from_secs(5));
    let pending = || r.fake.posts().iter().any(|c| c.status.is_none());
    let cap = Capture::start(&r.lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut v = r.vipd("--hetzner-local-address");
    assert!(
        wait_until(Duration::from_secs(5), POLL, pending).is_some(),
        "no move\n{}",
        v.log()
    );
    // The local address follows the decision while the move is in flight.
    wait_vip(
        || r.lab.node.prefixes_of(NODE_IF, vip()) == [VIP_LEN],
        &v,
        "local address",
    );
    r.lab.etcd.put(KEY, "node2");
    let gone = wait_until(Duration::from_secs(1), POLL, || {
        r.lab.node.prefixes_of(NODE_IF, vip()).is_empty()
    });
    assert!(gone.is_some(), "leader change not acted on\n{}", v.log());
    assert!(pending(), "the move should still be in flight");
    // The local copy of a routed IP is never announced.
    assert_eq!(cap.arps().len(), 0, "{}", describe_arps(&cap.arps()));

    // Back to this node, then SIGTERM in the middle of a slow move: exit 0 at once.
    r.lab.etcd.put(KEY, NODE_NAME);
    wait_vip(
        || r.lab.node.prefixes_of(NODE_IF, vip()) == [VIP_LEN],
        &v,
        "local again",
    );
    assert!(pending());
    let t = Instant::now();
    assert_eq!(v.terminate(Duration::from_secs(3)), Some(0), "{}", v.log());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(r.lab.node.prefixes_of(NODE_IF, vip()).is_empty());
}

#[test]
fn robot_a_new_leader_moves_the_route_while_the_old_ones_move_is_in_flight() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    r.fake.set_route(None);
    r.fake.post_delay(Duration::from_secs(5));
    let mut a = r.vipd("");
    let mut b = r.vipd_as("node2", OTHER);
    let first = wait_until(Duration::from_secs(5), POLL, || r.posts() == 1);
    assert!(first.is_some(), "{}", a.log());
    // The first move (to this node) is in flight; the lead passes to node2.
    r.fake.post_delay(Duration::ZERO);
    r.lab.etcd.put(KEY, "node2");
    // node2 moves it to itself (retrying while the first switch holds the lock), and
    // the route ends where the DCS says.
    r.wait_route(OTHER, 20, &b);
    let to_b: Vec<_> = r
        .fake
        .posts()
        .into_iter()
        .filter(|c| c.form("active_server_ip").as_deref() == Some(OTHER))
        .collect();
    // node2 asked while the first switch was still running (refused as locked), and
    // its retry moved the route.
    assert_eq!(to_b.first().and_then(|c| c.status), Some(409), "{to_b:?}");
    assert_eq!(to_b.last().and_then(|c| c.status), Some(200), "{to_b:?}");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        r.fake.route().as_deref(),
        Some(OTHER),
        "{}\n{}",
        a.log(),
        b.log()
    );
    a.stop();
    b.stop();
}

#[test]
fn robot_credentials_refused_at_start_exit_2() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, "node2");
    r.fake.set_credentials("#ws+vipdTest", "rotated-elsewhere");
    let out = r.once("");
    out.expect(2, "--once, bad credentials");
    assert!(
        out.stderr.contains("refused the credentials"),
        "{}",
        out.stderr
    );
    let v = r.vipd("");
    let out = v.finish(Duration::from_secs(10));
    out.expect(2, "daemon, bad credentials");
    assert_eq!(
        lines_with(&out.stderr, "refused the credentials"),
        1,
        "{}",
        out.stderr
    );
    assert_no_secret(&out.stderr);
    assert_eq!(r.posts(), 0);
}

#[test]
fn robot_malformed_and_oversized_replies_are_unknown() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    for (canned, says) in [
        (Canned::json(200, "{\"failover\": [1,"), "not JSON"),
        (
            Canned::json(200, "{\"failover\":{\"active_server_ip\":7}}"),
            "not a string",
        ),
        (Canned::oversized(2 << 20), "larger"),
    ] {
        r.fake.get_reply_override(Some(canned));
        let out = r.once("");
        out.expect(1, says);
        assert!(out.stdout.contains("actual=unknown"), "{}", out.stdout);
        assert!(out.stdout.contains(says), "{says}: {}", out.stdout);
    }
    assert_eq!(r.posts(), 0);
}

#[test]
fn robot_hosting_type_from_an_old_file_and_the_address_of_the_interface() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    // vip-manager 1.x's file, with its hosting_type key; this server's address is
    // the interface's primary one (192.0.2.11), which the account knows.
    let config = RobotConfig::ipv4(VIP, &[OTHER, "192.0.2.11"]);
    let fake = in_netns(&r.lab.node.name, || {
        FakeRobot::start("127.0.0.1:0", &r.pki, config)
    });
    let yml = format!(
        "ip: {VIP}\nnetmask: {VIP_LEN}\ninterface: {NODE_IF}\ntrigger-key: {KEY}\n\
         trigger-value: {NODE_NAME}\ndcs-endpoints: {}\nhosting_type: hetzner\n\
         hetzner-api-url: {}\nhetzner-ca-file: {}\nhetzner-credentials-file: {}\n",
        r.lab.etcd.endpoint,
        fake.url(),
        r.pki.ca_file(),
        r.files.file("hetzner")
    );
    let file = r.files.write("vip-manager.yml", yml);
    r.lab.etcd.put(KEY, NODE_NAME);
    let out = r
        .lab
        .node
        .vipd_once(&args(&format!("--once --config {file}")));
    out.expect(0, "--once from an old file");
    assert!(out.stdout.contains("action=moved"), "{}", out.stdout);
    assert!(out.stderr.contains("hosting_type"), "{}", out.stderr);
    assert_eq!(fake.route().as_deref(), Some("192.0.2.11"));
}

#[test]
fn robot_sighup_to_another_manager_type_releases_in_the_old_mode_first() {
    gate!(Etcd, "openssl");
    let r = Robot::new();
    r.lab.etcd.put(KEY, NODE_NAME);
    let basic = format!(
        "ip: {VIP}\nnetmask: {VIP_LEN}\ninterface: {NODE_IF}\ntrigger-key: {KEY}\n\
         trigger-value: {NODE_NAME}\ndcs-endpoints: {}\ninterval: 100\n",
        r.lab.etcd.endpoint
    );
    let file = r.files.write("vipd.yml", &basic);
    let mut v = r.lab.node.vipd(&args(&format!("--config {file} -v")));
    wait_vip(
        || r.lab.node.prefixes_of(NODE_IF, vip()) == [VIP_LEN],
        &v,
        "basic",
    );
    let hetzner = format!(
        "{basic}manager-type: hetzner\nhetzner-api-url: {}\nhetzner-ca-file: {}\n\
         hetzner-credentials-file: {}\nhetzner-server-ip: {HERE}\n",
        r.fake.url(),
        r.pki.ca_file(),
        r.files.file("hetzner")
    );
    r.files.write("vipd.yml", hetzner);
    v.signal("HUP");
    r.wait_route(HERE, 5, &v);
    assert!(
        r.lab.node.prefixes_of(NODE_IF, vip()).is_empty(),
        "{}",
        v.log()
    );
    v.stop();
    let log = v.log();
    assert!(log.contains("(manager-type basic)"), "{log}");
}

/// A Cloud project whose floating IP (the VIP) is assigned to another server.
fn cloud_lab() -> (SingleNode, TestPki, FakeCloud, TempDir) {
    let lab = SingleNode::new();
    let pki = TestPki::new(&[]);
    let config = CloudConfig::new(4711, VIP, &[OTHER_ID, SERVER_ID]);
    let fake = in_netns(&lab.node.name, || {
        FakeCloud::start("127.0.0.1:0", &pki, config)
    });
    let files = TempDir::new(&lab.lab, "cloud");
    files.write("token", format!("{CLOUD_TOKEN}\n"));
    (lab, pki, fake, files)
}

#[test]
fn cloud_the_leader_assigns_follows_the_action_and_owns_the_address() {
    gate!(Etcd, "tcpdump", "openssl");
    let (lab, pki, fake, files) = cloud_lab();
    lab.etcd.put(KEY, NODE_NAME);
    fake.locked_next(1);
    fake.action_steps(2);
    let cap = Capture::start(&lab.peer, PEER_IF, ANNOUNCEMENTS);
    let mut v = lab.vipd(&format!(
        "--manager-type hetzner-cloud --hetzner-cloud-api-url {} --hetzner-ca-file {} \
         --hetzner-cloud-token-file {} --hetzner-floating-ip-id 4711 \
         --hetzner-server-id {SERVER_ID} --interval 100 -v",
        fake.url(),
        pki.ca_file(),
        files.file("token")
    ));
    let assigned = wait_until(Duration::from_secs(15), POLL, || {
        fake.server() == Some(SERVER_ID)
    });
    assert!(assigned.is_some(), "{:?}\n{}", fake.requests(), v.log());
    // Locked once, then assigned: two assignment requests, the action followed.
    let assigns: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|c| c.path.ends_with("/actions/assign"))
        .collect();
    assert_eq!(assigns.len(), 2, "{assigns:?}");
    assert_eq!(
        assigns[1].json(),
        Some(serde_json::json!({"server": SERVER_ID}))
    );
    assert!(fake.gets().iter().any(|c| c.path.contains("/actions/")));
    // The guest owns the address and announces it.
    wait_vip(
        || lab.node.prefixes_of(NODE_IF, vip()) == [VIP_LEN],
        &v,
        "cloud",
    );
    assert!(!cap.wait_arps(1, Duration::from_secs(5)).is_empty());
    lab.etcd.put(KEY, "node2");
    let gone = wait_until(Duration::from_secs(2), POLL, || {
        lab.node.prefixes_of(NODE_IF, vip()).is_empty()
    });
    assert!(gone.is_some(), "{}", v.log());
    v.stop();
    let log = v.log();
    assert_eq!(errors_with(&log, "locked"), 1, "{log}");
    assert_no_secret(&log);
}

#[test]
fn robot_this_servers_address_from_the_route_and_certificates_always_verified() {
    gate!(Etcd, "openssl");
    // The API on the node's own address: the kernel's source towards it is 192.0.2.11.
    let Robot {
        lab,
        pki,
        fake,
        files,
    } = Robot::on("192.0.2.11", "192.0.2.11");
    // No interface: a routed failover IP alone.
    let yml = |ca: &str| {
        format!(
            "ip: {VIP}\nnetmask: 32\ntrigger-key: {KEY}\ntrigger-value: {NODE_NAME}\n\
             dcs-endpoints: {}\nmanager-type: hetzner\nhetzner-api-url: {}\n\
             hetzner-ca-file: {ca}\nhetzner-credentials-file: {}\n",
            lab.etcd.endpoint,
            fake.url(),
            files.file("hetzner")
        )
    };
    lab.etcd.put(KEY, NODE_NAME);
    let wrong = files.write("wrong-ca.yml", yml(&pki.other_ca_file()));
    let out = lab
        .node
        .vipd_once(&args(&format!("--once --config {wrong}")));
    out.expect(
        1,
        "--once with a CA that did not sign the API's certificate",
    );
    assert!(out.stdout.contains("actual=unknown"), "{}", out.stdout);
    assert_eq!(
        fake.requests().len(),
        0,
        "no request over an unverified connection"
    );
    let right = files.write("vipd.yml", yml(&pki.ca_file()));
    let out = lab
        .node
        .vipd_once(&args(&format!("--once --config {right}")));
    out.expect(0, "--once, this server's address from the route");
    assert!(
        out.stdout.contains("actual=routed-here action=moved"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("interface="), "{}", out.stdout);
    assert_eq!(fake.route().as_deref(), Some("192.0.2.11"));
}

#[test]
fn robot_an_ipv6_failover_net_routes_to_this_servers_subnet() {
    gate!(Etcd, "openssl");
    let lab = SingleNode::new();
    let pki = TestPki::new(&[]);
    let config = RobotConfig::ipv6("2001:db8:f::", &["2001:db8:1::", "2001:db8:2::"]);
    let fake = in_netns(&lab.node.name, || {
        FakeRobot::start("127.0.0.1:0", &pki, config)
    });
    let files = TempDir::new(&lab.lab, "hetzner");
    files.write(
        "hetzner",
        format!("user=#ws+vipdTest\npass={ROBOT_PASSWORD}\n"),
    );
    // The VIP is an address of the failover net; this server's address is sent as its
    // /64 subnet's.
    let yml = format!(
        "ip: 2001:db8:f::5\nnetmask: 64\ntrigger-key: {KEY}\ntrigger-value: {NODE_NAME}\n\
         dcs-endpoints: {}\nmanager-type: hetzner\nhetzner-api-url: {}\n\
         hetzner-ca-file: {}\nhetzner-credentials-file: {}\n\
         hetzner-server-ip: 2001:db8:2::7\n",
        lab.etcd.endpoint,
        fake.url(),
        pki.ca_file(),
        files.file("hetzner")
    );
    let file = files.write("vipd.yml", yml);
    lab.etcd.put(KEY, NODE_NAME);
    let out = lab
        .node
        .vipd_once(&args(&format!("--once --config {file}")));
    out.expect(0, "--once, an IPv6 failover net");
    assert!(
        out.stdout.contains("actual=routed-here action=moved"),
        "{}",
        out.stdout
    );
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].path.ends_with("/failover/2001:db8:f::"),
        "{posts:?}"
    );
    assert_eq!(
        posts[0].form("active_server_ip").as_deref(),
        Some("2001:db8:2::")
    );
    assert_eq!(fake.route().as_deref(), Some("2001:db8:2::"));
}
