//! The one HTTP client of every DCS type ([`conn`] over [`wire`]), the endpoints of one
//! DCS tried in turn ([`Endpoints`]), bounded replies, secret-free error texts, path
//! encoding, and the TLS files (`etcd-ca-file`, `etcd-cert-file`, `etcd-key-file`, used
//! for every https:// endpoint, whatever the DCS), loaded and checked once at start-up.
//!
//! Certificate verification is always on: against the CA file when one is named,
//! otherwise against the Mozilla roots built into the binary. A build without the `tls`
//! feature refuses https:// endpoints at start-up.

pub mod conn;
pub mod wire;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use conn::{Connection, Error, Request};
use wire::Reply;

/// Replies larger than this are refused (a leader key reply is a few hundred bytes).
pub const MAX_REPLY: usize = 64 * 1024;

/// The longest server text quoted in a log line.
const MAX_TEXT: usize = 200;

/// A TLS file is never larger than this.
#[cfg(feature = "tls")]
const MAX_PEM: u64 = 1 << 20;

/// One endpoint: its URL as configured (for messages) and its connection.
pub struct Endpoint {
    pub url: String,
    pub conn: Connection,
}

/// The endpoints of one DCS, asked in turn: a failed one is skipped and asked again
/// later.
pub struct Endpoints {
    pub list: Vec<Endpoint>,
    /// The one asked first (the last that answered).
    pub current: usize,
}

impl Endpoints {
    pub fn new(urls: &[String], interval: Duration, tls: &Tls) -> Endpoints {
        let list = urls
            .iter()
            .map(|url| {
                let url = url.trim_end_matches('/');
                Endpoint {
                    url: url.to_string(),
                    conn: Connection::new(url, interval, tls),
                }
            })
            .collect();
        Endpoints { list, current: 0 }
    }

    /// The order to ask them in this time: each once, from the current one.
    pub fn order(&self) -> impl Iterator<Item = usize> + use<> {
        let (n, first) = (self.list.len(), self.current);
        (0..n).map(move |k| (first + k) % n)
    }

    /// Endpoint `i` failed: the next turn starts after it; the reason, named by the
    /// endpoint, joins `errors`.
    pub fn failed(&mut self, i: usize, why: impl std::fmt::Display, errors: &mut Vec<String>) {
        errors.push(format!("{}: {why}", self.list[i].url));
        self.current = (i + 1) % self.list.len();
    }

    /// GET `path` (pieces: path, query) on endpoint `i` with at most one extra header
    /// (a token), until `deadline`; `interruptible` for a wait for a change.
    pub fn get(
        &mut self,
        i: usize,
        path: &[&str],
        header: Option<(&str, &str)>,
        deadline: Instant,
        interruptible: bool,
    ) -> Result<Reply, Error> {
        let headers = header.as_slice();
        let req = Request {
            method: "GET",
            path,
            headers,
            body: None,
            interruptible,
        };
        self.list[i].conn.request(&req, deadline)
    }
}

/// A server's reply text for a log line: the first line, control characters dropped,
/// at most 200 characters.
pub fn server_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.trim().lines().next().unwrap_or("").trim();
    let mut out: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TEXT)
        .collect();
    if out.is_empty() {
        out.push_str("(empty reply)");
    } else if line.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

/// Percent-encode a key for a URL path: `/` stays, as do RFC 3986's unreserved
/// characters; everything else (blanks, `?`, `#`, `%`, non-ASCII) is escaped.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The TLS files named in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// The TLS settings of the agent: loaded and checked files, or the defaults.
#[derive(Clone, Default)]
pub struct Tls {
    #[cfg(feature = "tls")]
    config: Option<ureq::tls::TlsConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "tls")]
        let configured = self.config.is_some();
        #[cfg(not(feature = "tls"))]
        let configured = false;
        f.debug_struct("Tls")
            .field("configured", &configured)
            .finish()
    }
}

fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

fn uses_https(endpoints: &[String]) -> bool {
    endpoints.iter().any(|e| is_https(e))
}

/// `etcd-key-file "/etc/vipd/key.pem"` for error lines.
fn named(option: &str, path: &Path) -> String {
    format!("{option} {path:?}")
}

impl Tls {
    /// The rustls configuration for https:// endpoints.
    // A stand-in until the TLS files are loaded into a rustls configuration directly.
    #[cfg(feature = "tls")]
    pub fn client_config(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        None
    }

    /// Load and check the TLS files for `endpoints`. Without an https:// endpoint the
    /// files are not used (the configuration already warned). Errors are one line
    /// naming the option and the file: vipd exits 2 on them.
    pub fn load(files: &TlsFiles, endpoints: &[String]) -> Result<Tls, String> {
        let Some(https) = endpoints.iter().find(|e| is_https(e)) else {
            return Ok(Tls::default());
        };
        if !cfg!(feature = "tls") {
            return Err(format!(
                "dcs-endpoints: {https:?} needs TLS, and this vipd was built without it \
                 (cargo feature \"tls\")"
            ));
        }
        Tls::load_files(files)
    }

    #[cfg(not(feature = "tls"))]
    fn load_files(_: &TlsFiles) -> Result<Tls, String> {
        Ok(Tls::default())
    }

    #[cfg(feature = "tls")]
    fn load_files(files: &TlsFiles) -> Result<Tls, String> {
        use super::pki;
        use ureq::tls::{ClientCert, RootCerts, TlsConfig, TlsProvider};

        let mut builder = TlsConfig::builder().provider(TlsProvider::Rustls);
        if let Some(path) = &files.ca {
            let name = named("etcd-ca-file", path);
            let certs = pem_certificates(path, &name)?;
            for (i, cert) in certs.iter().enumerate() {
                pki::parse_certificate(cert.der())
                    .map_err(|e| format!("{name}: certificate {} does not parse: {e}", i + 1))?;
            }
            builder = builder.root_certs(RootCerts::new_with_certs(&certs));
        }
        match (&files.cert, &files.key) {
            (Some(cert_path), Some(key_path)) => {
                let cert_name = named("etcd-cert-file", cert_path);
                let key_name = named("etcd-key-file", key_path);
                let chain = pem_certificates(cert_path, &cert_name)?;
                let Some(leaf) = chain.first() else {
                    return Err(format!("{cert_name}: no certificate in it"));
                };
                let leaf = pki::parse_certificate(leaf.der())
                    .map_err(|e| format!("{cert_name}: the certificate does not parse: {e}"))?;
                if leaf.version != 3 {
                    return Err(format!(
                        "{cert_name}: an X.509 v{} certificate; rustls accepts only v3",
                        leaf.version
                    ));
                }
                let key = pem_private_key(key_path, &key_name)?;
                // ureq does not export its KeyKind type, only its Debug names.
                let kind = match format!("{:?}", key.kind()).as_str() {
                    "Pkcs1" => pki::KeyKind::Pkcs1,
                    "Pkcs8" => pki::KeyKind::Pkcs8,
                    "Sec1" => pki::KeyKind::Sec1,
                    other => return Err(format!("{key_name}: unsupported key kind {other}")),
                };
                match pki::key_matches(&leaf, kind, key.der()) {
                    Err(e) => return Err(format!("{key_name}: {e}")),
                    Ok(Some(false)) => {
                        return Err(format!(
                            "{key_name}: the key does not match the certificate in {cert_name}"
                        ));
                    }
                    // Ok(None): the public key is not in the file; the self-check at
                    // start-up (Tls::self_check) settles it.
                    Ok(_) => {}
                }
                builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            // The configuration refuses one without the other.
            _ => return Err("etcd-cert-file and etcd-key-file must be set together".into()),
        }
        Ok(Tls {
            config: Some(builder.build()),
        })
    }

    /// Let rustls itself accept the client certificate and key, in a child process:
    /// ureq builds the rustls configuration at the first https connection and panics
    /// (aborts, in the release build) if rustls refuses them, for reasons beyond
    /// [`super::pki`]'s checks (a key whose numbers are inconsistent, an Ed25519 key
    /// that does not store its public half, a certificate extension webpki rejects).
    /// The child (this executable with `VIPD_TLS_SELF_CHECK` set, see
    /// [`self_check_child`]) connects once to a loopback listener of its own; its death
    /// is reported here as an error naming both files. Inconclusive outcomes (the
    /// executable cannot be run) pass.
    pub fn self_check(files: &TlsFiles, endpoints: &[String]) -> Result<(), String> {
        use std::io::Read;
        use std::process::{Command, Stdio};

        let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
            return Ok(());
        };
        if !cfg!(feature = "tls") || !uses_https(endpoints) {
            return Ok(());
        }
        let Ok(exe) = std::env::current_exe() else {
            return Ok(());
        };
        let mut cmd = Command::new(exe);
        cmd.env(SELF_CHECK, "1")
            .env(SELF_CHECK_CERT, cert)
            .env(SELF_CHECK_KEY, key)
            .env_remove(SELF_CHECK_CA)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(ca) = &files.ca {
            cmd.env(SELF_CHECK_CA, ca);
        }
        let Ok(mut child) = cmd.spawn() else {
            return Ok(());
        };
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut stderr = Vec::new();
        if let Some(pipe) = child.stderr.take() {
            let _ = pipe.take(16 * 1024).read_to_end(&mut stderr);
        }
        match status {
            Some(status) if !status.success() => Err(format!(
                "{} and {}: rustls refuses them: {}",
                named("etcd-cert-file", cert),
                named("etcd-key-file", key),
                panic_message(&stderr)
            )),
            _ => Ok(()),
        }
    }
}

const SELF_CHECK: &str = "VIPD_TLS_SELF_CHECK";
const SELF_CHECK_CA: &str = "VIPD_TLS_SELF_CHECK_CA";
const SELF_CHECK_CERT: &str = "VIPD_TLS_SELF_CHECK_CERT";
const SELF_CHECK_KEY: &str = "VIPD_TLS_SELF_CHECK_KEY";

/// The reason in a child's panic output (`thread 'main' panicked at FILE:LINE:COL:`
/// followed by the message), or a fixed text.
pub fn panic_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            // Rust ≥ 1.73 puts the message on the next line; older ones after "', ".
            let message = match line.split_once("' panicked at '") {
                Some((_, rest)) => rest.to_string(),
                None => lines.next().unwrap_or("").to_string(),
            };
            let message = message.trim();
            // ureq's expect text is "valid client auth certificate: <rustls error>".
            let message = message
                .strip_prefix("valid client auth certificate: ")
                .unwrap_or(message);
            if !message.is_empty() {
                return server_text(message.as_bytes());
            }
        }
    }
    "the TLS self-check failed".into()
}

/// In the child started by [`Tls::self_check`]: make ureq build its rustls
/// configuration with the files and exit. `None` when this process is not such a
/// child. Call it first thing in `main`.
pub fn self_check_child() -> Option<u8> {
    std::env::var_os(SELF_CHECK)?;
    let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let files = TlsFiles {
        ca: path(SELF_CHECK_CA),
        cert: path(SELF_CHECK_CERT),
        key: path(SELF_CHECK_KEY),
    };
    let Ok(tls) = Tls::load(&files, &["https://127.0.0.1".to_string()]) else {
        return Some(0);
    };
    let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
        return Some(0);
    };
    let Ok(addr) = listener.local_addr() else {
        return Some(0);
    };
    // Accept the connection and close it: the handshake fails at once, after ureq has
    // built (or failed to build) the rustls configuration.
    std::thread::spawn(move || {
        let _ = listener.accept();
    });
    let _ = self_check_agent(&tls)
        .get(format!("https://{addr}/"))
        .config()
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .call();
    Some(0)
}

/// The agent the self-check child makes its one request with.
fn self_check_agent(tls: &Tls) -> ureq::Agent {
    let builder = ureq::Agent::config_builder().timeout_connect(Some(Duration::from_secs(1)));
    #[cfg(feature = "tls")]
    let builder = match &tls.config {
        Some(config) => builder.tls_config(config.clone()),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    ureq::Agent::new_with_config(builder.build())
}

#[cfg(feature = "tls")]
fn read_pem(path: &Path, name: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot read it: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(format!("{name}: larger than {} KiB", MAX_PEM >> 10));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file (at least one).
#[cfg(feature = "tls")]
fn pem_certificates(
    path: &Path,
    name: &str,
) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let bytes = read_pem(path, name)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{name}: not a valid PEM file: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(format!("{name}: no PEM certificate in it"));
    }
    Ok(certs)
}

/// The first private key in a PEM file (never echoed).
#[cfg(feature = "tls")]
fn pem_private_key(path: &Path, name: &str) -> Result<ureq::tls::PrivateKey<'static>, String> {
    let bytes = read_pem(path, name)?;
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::PrivateKey(k)) => return Ok(k),
            Ok(_) => {}
            Err(e) => return Err(format!("{name}: not a valid PEM file: {e}")),
        }
    }
    Err(format!(
        "{name}: no unencrypted PEM private key in it (RSA PRIVATE KEY, PRIVATE KEY or \
         EC PRIVATE KEY)"
    ))
}

#[cfg(test)]
mod tests;
