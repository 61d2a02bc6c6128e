//! The TLS files (`etcd-ca-file`, `etcd-cert-file`, `etcd-key-file`, used for every
//! https:// endpoint, whatever the DCS), loaded once at start-up and on SIGHUP into the
//! rustls client configuration every https connection uses.
//!
//! rustls itself judges the files: the configuration is built here, in-process, with
//! the very calls a connection relies on (`ClientConfig::builder_with_provider` with the
//! ring provider, `with_client_auth_cert`). A key that does not match its certificate,
//! one rustls cannot use, or a CA certificate it cannot parse is therefore a one-line
//! configuration error naming the file (vipd exits 2), never a failure at the first
//! connection. Verification is always on: against the CA file when one is named,
//! otherwise against the Mozilla roots built into the binary. A build without the `tls`
//! feature refuses https:// endpoints at start-up.

use std::path::PathBuf;

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

/// The client side of TLS: none while no endpoint is https://.
#[derive(Clone, Default)]
pub struct Tls {
    #[cfg(feature = "tls")]
    config: Option<std::sync::Arc<rustls::ClientConfig>>,
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

impl Tls {
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
        #[cfg(feature = "tls")]
        return rustls_files::load(files, "etcd-ca-file");
        #[cfg(not(feature = "tls"))]
        {
            let _ = files;
            Ok(Tls::default())
        }
    }

    /// The client side of a hosting provider's API at `url` (always https://),
    /// verified against the CA file of `option` (`hetzner-ca-file`) or the built-in
    /// roots. Errors are one line naming the option and the file.
    pub fn for_api(ca: Option<&std::path::Path>, option: &str, url: &str) -> Result<Tls, String> {
        if !cfg!(feature = "tls") {
            return Err(format!(
                "{url:?} needs TLS, and this vipd was built without it (cargo feature \"tls\")"
            ));
        }
        #[cfg(feature = "tls")]
        return rustls_files::load(
            &TlsFiles {
                ca: ca.map(std::path::Path::to_path_buf),
                ..TlsFiles::default()
            },
            option,
        );
        #[cfg(not(feature = "tls"))]
        {
            let _ = (ca, option);
            Ok(Tls::default())
        }
    }

    /// The rustls configuration for https:// connections (`None` without one).
    #[cfg(feature = "tls")]
    pub fn client_config(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        self.config.clone()
    }
}

#[cfg(feature = "tls")]
mod rustls_files {
    use std::io::Read;
    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::{self, PemObject};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, Error, InconsistentKeys, RootCertStore};

    use super::{Tls, TlsFiles};

    /// `etcd-key-file "/etc/vipd/key.pem"` for error lines.
    fn named(option: &str, path: &Path) -> String {
        format!("{option} {path:?}")
    }

    /// A TLS file is never larger than this.
    const MAX_PEM: u64 = 1 << 20;

    pub(super) fn load(files: &TlsFiles, ca_option: &str) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots(files.ca.as_deref(), ca_option)?);
        let config = match (&files.cert, &files.key) {
            (Some(cert_path), Some(key_path)) => {
                let cert_name = named("etcd-cert-file", cert_path);
                let key_name = named("etcd-key-file", key_path);
                let chain = certificates(cert_path, &cert_name)?;
                let key = private_key(key_path, &key_name)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| refused(e, &cert_name, &key_name))?
            }
            (None, None) => builder.with_no_client_auth(),
            // The configuration refuses one without the other.
            _ => return Err("etcd-cert-file and etcd-key-file must be set together".into()),
        };
        Ok(Tls {
            config: Some(Arc::new(config)),
        })
    }

    /// Why rustls refused a certificate and key, naming the file at fault.
    fn refused(e: Error, cert_name: &str, key_name: &str) -> String {
        match e {
            Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                format!("{key_name}: the key does not match the certificate in {cert_name}")
            }
            Error::InvalidCertificate(why) => {
                format!("{cert_name}: rustls refuses the certificate: {why:?}")
            }
            Error::General(why) => format!(
                "{key_name}: rustls cannot use the key: {why} (it takes RSA keys of 2048 bits \
                 or more, ECDSA P-256 or P-384 keys with their public half, Ed25519)"
            ),
            other => format!("{key_name}: rustls cannot use the key: {other}"),
        }
    }

    /// The CA file's certificates, or the Mozilla roots.
    fn roots(ca: Option<&Path>, option: &str) -> Result<RootCertStore, String> {
        let Some(path) = ca else {
            return Ok(RootCertStore::from_iter(
                webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
            ));
        };
        let name = named(option, path);
        let mut store = RootCertStore::empty();
        for (i, cert) in certificates(path, &name)?.into_iter().enumerate() {
            store
                .add(cert)
                .map_err(|e| format!("{name}: certificate {} does not parse: {e}", i + 1))?;
        }
        Ok(store)
    }

    fn read(path: &Path, name: &str) -> Result<Vec<u8>, String> {
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

    fn bad_pem(name: &str, e: pem::Error) -> String {
        format!("{name}: not a valid PEM file: {e:?}")
    }

    /// Every certificate in a PEM file (at least one).
    fn certificates(path: &Path, name: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let bytes = read(path, name)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_pem(name, e))?;
        if certs.is_empty() {
            return Err(format!("{name}: no PEM certificate in it"));
        }
        Ok(certs)
    }

    /// The first private key in a PEM file (never echoed).
    fn private_key(path: &Path, name: &str) -> Result<PrivateKeyDer<'static>, String> {
        let bytes = read(path, name)?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
            pem::Error::NoItemsFound => format!(
                "{name}: no unencrypted PEM private key in it (RSA PRIVATE KEY, PRIVATE KEY \
                 or EC PRIVATE KEY)"
            ),
            e => bad_pem(name, e),
        })
    }
}

#[cfg(test)]
mod tests;
