//! `manager-type hetzner` and `hetzner-cloud`: credentials and their precedence,
//! vip-manager's old file, this server's identity, the API and the recheck.

use super::*;
use crate::hosted::{CloudSettings, Provider, RobotSettings, ServerIp};

fn robot(c: &Config) -> &RobotSettings {
    match c.hosted.as_ref().map(|h| &h.provider) {
        Some(Provider::Robot(r)) => r,
        other => panic!("not a Robot failover IP: {other:?}"),
    }
}

fn cloud(c: &Config) -> &CloudSettings {
    match c.hosted.as_ref().map(|h| &h.provider) {
        Some(Provider::Cloud(r)) => r,
        other => panic!("not a Cloud floating IP: {other:?}"),
    }
}

/// BASE without the interface.
fn no_interface<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = BASE.to_vec();
    let at = v.iter().position(|a| *a == "--interface").unwrap();
    v.drain(at..at + 2);
    v.extend(extra);
    v
}

#[test]
fn a_robot_failover_ip_from_vip_managers_files() {
    let creds = TempFile::new("hetzner", b"user=\"#ws+robot\"\npass='p\"w d'\n");
    // vip-manager's old key in an old file: accepted with its deprecation warning.
    let yml = format!(
        "ip: 192.0.2.50\nmask: 24\niface: eth0\ntrigger-key: /service/pg/leader\n\
         hosting_type: hetzner\nhetzner-credentials-file: {}\n",
        creds.path()
    );
    let file = TempFile::new("old.yml", yml.as_bytes());
    let (c, warnings) = config(&["--config", file.path()], &[]);
    let r = robot(&c);
    assert_eq!(r.user, "#ws+robot");
    assert_eq!(r.password, Secret("p\"w d".into()));
    assert_eq!(r.api_url, "https://robot-ws.your-server.de");
    assert_eq!(r.server_ip, ServerIp::Interface("eth0".into()));
    assert!(!r.local_address && !c.local_address() && !c.announces());
    assert_eq!(c.hosted.as_ref().unwrap().recheck, Duration::from_secs(60));
    assert!(
        warnings.iter().any(|w| w.contains("hosting_type")),
        "{warnings:?}"
    );
    // Never the password in a Debug print.
    assert!(!format!("{c:?}").contains("p\"w d"));
}

#[test]
fn the_user_and_password_file_win_over_the_credentials_file() {
    let creds = TempFile::new("hetzner", b"user=from-file\npass=file-pass\n");
    let password = TempFile::new("robot-pass", b"pair-pass\n");
    let (c, warnings) = config(
        &base_with(&[
            "--manager-type=hetzner",
            "--hetzner-user=pair-user",
            "--hetzner-password-file",
            password.path(),
        ]),
        &[("VIP_HETZNER_CREDENTIALS_FILE", creds.path())],
    );
    assert_eq!(robot(&c).user, "pair-user");
    assert_eq!(robot(&c).password, Secret("pair-pass".into()));
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("VIP_HETZNER_CREDENTIALS_FILE is ignored")),
        "{warnings:?}"
    );
    let hetzner = |extra: &[&str]| {
        let mut v = base_with(&["--manager-type=hetzner"]);
        v.extend(extra);
        error(&v, &[])
    };
    assert_eq!(
        hetzner(&["--hetzner-user=u"]),
        "--hetzner-user: set, but hetzner-password-file is not"
    );
    assert_eq!(
        hetzner(&["--hetzner-password-file", password.path()]),
        "--hetzner-password-file: set, but hetzner-user is not"
    );
    let broken = TempFile::new("broken", b"user=u\npass=\"never-shown\n");
    let e = hetzner(&["--hetzner-credentials-file", broken.path()]);
    assert!(
        e.starts_with("--hetzner-credentials-file: ")
            && e.ends_with(": line 2: pass: a double quote is not closed"),
        "{e}"
    );
    assert!(!e.contains("never-shown"));
    let e = hetzner(&["--hetzner-credentials-file=/nonexistent/hetzner"]);
    assert!(
        e.starts_with("--hetzner-credentials-file: cannot read"),
        "{e}"
    );
}

#[test]
fn this_servers_address_and_the_interface() {
    let creds = TempFile::new("hetzner", b"user=u\npass=p\n");
    let creds_path = creds.path();
    let with = |extra: &[&'static str]| -> Vec<&str> {
        let mut v = vec![
            "--manager-type=hetzner",
            "--hetzner-credentials-file",
            creds_path,
        ];
        v.extend(extra);
        v
    };
    // No interface: routed only, this server's address from the route to the API.
    let (c, _) = config(&no_interface(&with(&[])), &[]);
    assert_eq!(robot(&c).server_ip, ServerIp::Route);
    assert_eq!(c.interface, "");
    let (c, _) = config(
        &no_interface(&with(&["--hetzner-server-ip=198.51.100.7"])),
        &[],
    );
    assert_eq!(
        robot(&c).server_ip,
        ServerIp::Given("198.51.100.7".parse().unwrap())
    );
    // A local address needs the interface.
    assert_eq!(
        error(&no_interface(&with(&["--hetzner-local-address"])), &[]),
        "interface: not set (required)"
    );
    let (c, _) = config(&base_with(&with(&["--hetzner-local-address"])), &[]);
    assert!(c.local_address() && !c.announces());
    assert_eq!(
        error(&base_with(&with(&["--hetzner-server-ip=2001:db8::7"])), &[]),
        "--hetzner-server-ip: \"2001:db8::7\" is not of the failover IP 192.0.2.50's family \
         (Robot routes it to the server's address of that family)"
    );
    assert_eq!(
        error(&base_with(&with(&["--hetzner-recheck=35999"])), &[])
            .split(':')
            .next(),
        Some("--hetzner-recheck")
    );
    assert_eq!(
        error(
            &base_with(&with(&["--hetzner-api-url=http://192.0.2.1"])),
            &[]
        ),
        "--hetzner-api-url: \"http://192.0.2.1\" must be an https:// URL (the credentials \
         travel with each call)"
    );
}

#[test]
fn a_cloud_floating_ip() {
    let token = TempFile::new("cloud-token", b"tok-123\n");
    let all = [
        "--manager-type=hetzner-cloud",
        "--hetzner-floating-ip-id=4711",
        "--hetzner-server-id=42",
    ];
    let mut flags = base_with(&all);
    flags.extend(["--hetzner-cloud-token-file", token.path()]);
    let (c, _) = config(&flags, &[]);
    let cl = cloud(&c);
    assert_eq!(
        (cl.floating_ip_id, cl.server_id, cl.token.0.as_str()),
        (4711, 42, "tok-123")
    );
    assert_eq!(cl.api_url, "https://api.hetzner.cloud/v1");
    assert!(c.local_address() && c.announces());
    assert_eq!(
        error(&base_with(&all), &[]),
        "hetzner-cloud-token-file: not set (required with manager-type hetzner-cloud)"
    );
    let mut bad = flags.clone();
    bad.push("--hetzner-server-id=-1");
    assert_eq!(
        error(&bad, &[]),
        "--hetzner-server-id: \"-1\" is not an id (a positive whole number)"
    );
    let mut fast = flags.clone();
    fast.push("--hetzner-recheck=9999");
    assert!(error(&fast, &[]).starts_with("--hetzner-recheck"));
    let two_lines = TempFile::new("cloud-token2", b"tok\nen\n");
    let mut flags = base_with(&all);
    flags.extend(["--hetzner-cloud-token-file", two_lines.path()]);
    assert!(error(&flags, &[]).ends_with("does not hold a token (one line of printable ASCII)"));
}

#[test]
fn settings_of_another_manager_type_are_noted_as_ignored() {
    let (c, warnings) = config(
        &base_with(&["--hetzner-user=u", "--hetzner-recheck=60000"]),
        &[],
    );
    assert_eq!(c.hosted, None);
    assert_eq!(
        warnings,
        [
            "--hetzner-user is ignored with manager-type basic",
            "--hetzner-recheck is ignored with manager-type basic"
        ]
    );
}
