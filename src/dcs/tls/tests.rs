//! The TLS files judged by rustls: fixtures openssl made (tests/fixtures/tls/make.sh).

use super::*;

#[test]
fn https_detection() {
    assert!(is_https("https://b:2"));
    assert!(is_https("HTTPS://b:2"));
    assert!(!is_https("http://a:1"));
    assert!(!is_https("http"));
    assert!(!is_https(&"é".repeat(5)), "no panic inside a character");
}

const HTTPS: &[&str] = &["https://127.0.0.1:2379"];

fn endpoints() -> Vec<String> {
    HTTPS.iter().map(|s| s.to_string()).collect()
}

#[test]
fn without_https_the_files_are_not_read() {
    let gone = TlsFiles {
        ca: Some("/nonexistent/ca.pem".into()),
        cert: None,
        key: None,
    };
    assert!(Tls::load(&gone, &["http://127.0.0.1:2379".into()]).is_ok());
}

#[cfg(not(feature = "tls"))]
#[test]
fn without_the_feature_https_is_refused() {
    let e = Tls::load(&TlsFiles::default(), &endpoints()).unwrap_err();
    assert_eq!(
        e,
        "dcs-endpoints: \"https://127.0.0.1:2379\" needs TLS, and this vipd was built \
         without it (cargo feature \"tls\")"
    );
}

#[cfg(feature = "tls")]
mod with_tls {
    use super::*;

    /// A PEM file under the temp dir, removed on drop.
    struct Pem {
        path: PathBuf,
    }

    impl Pem {
        fn new(tag: &str, text: &str) -> Pem {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("vipd-http-test-{}-{n}-{tag}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            Pem { path }
        }
    }

    impl Drop for Pem {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = crate::base64::encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tls/",
                $name
            ))
            .as_slice()
        };
    }

    fn files(ca: Option<&Pem>, cert: Option<&Pem>, key: Option<&Pem>) -> TlsFiles {
        TlsFiles {
            ca: ca.map(|p| p.path.clone()),
            cert: cert.map(|p| p.path.clone()),
            key: key.map(|p| p.path.clone()),
        }
    }

    #[test]
    fn matching_files_load() {
        let ca = Pem::new("ca", &pem("CERTIFICATE", fixture!("p256.crt.der")));
        let cert = Pem::new("crt", &pem("CERTIFICATE", fixture!("rsa.crt.der")));
        for (label, der) in [
            ("RSA PRIVATE KEY", fixture!("rsa.p1.der")),
            ("PRIVATE KEY", fixture!("rsa.p8.der")),
        ] {
            let key = Pem::new("key", &pem(label, der));
            let tls = Tls::load(&files(Some(&ca), Some(&cert), Some(&key)), &endpoints());
            assert!(tls.is_ok(), "{label}: {:?}", tls.err());
        }
        let ec_cert = Pem::new("crt", &pem("CERTIFICATE", fixture!("p256.crt.der")));
        let ec_key = Pem::new("key", &pem("EC PRIVATE KEY", fixture!("p256.sec1.der")));
        assert!(Tls::load(&files(None, Some(&ec_cert), Some(&ec_key)), &endpoints()).is_ok());
        for (crt, label, key) in [
            (
                fixture!("p384.crt.der"),
                "EC PRIVATE KEY",
                fixture!("p384.sec1.der"),
            ),
            (
                fixture!("ed25519.crt.der"),
                "PRIVATE KEY",
                fixture!("ed25519.p8.der"),
            ),
        ] {
            let cert = Pem::new("crt", &pem("CERTIFICATE", crt));
            let key = Pem::new("key", &pem(label, key));
            let tls = Tls::load(&files(None, Some(&cert), Some(&key)), &endpoints());
            assert!(tls.is_ok(), "{label}: {:?}", tls.err());
        }
        // A CA alone, and nothing at all (the built-in roots).
        assert!(Tls::load(&files(Some(&ca), None, None), &endpoints()).is_ok());
        assert!(Tls::load(&TlsFiles::default(), &endpoints()).is_ok());
    }

    /// rustls compares the key's public half with the certificate's, for every key
    /// type it can use (an Ed25519 key's public half is derived from its seed).
    #[test]
    fn a_key_for_another_certificate_names_both_files() {
        let cert = Pem::new("crt", &pem("CERTIFICATE", fixture!("rsa.crt.der")));
        let ed_cert = Pem::new("edcrt", &pem("CERTIFICATE", fixture!("ed25519.crt.der")));
        for (cert, label, der) in [
            (&cert, "EC PRIVATE KEY", fixture!("p256.sec1.der")),
            (&cert, "PRIVATE KEY", fixture!("ed25519.p8.der")),
            (&ed_cert, "PRIVATE KEY", fixture!("rsa.p8.der")),
        ] {
            let key = Pem::new("key", &pem(label, der));
            let e = Tls::load(&files(None, Some(cert), Some(&key)), &endpoints()).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "etcd-key-file {:?}: the key does not match the certificate in \
                     etcd-cert-file {:?}",
                    key.path, cert.path
                )
            );
        }
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_the_file() {
        let good_cert = Pem::new("crt", &pem("CERTIFICATE", fixture!("rsa.crt.der")));
        let good_key = Pem::new("key", &pem("PRIVATE KEY", fixture!("rsa.p8.der")));
        let garbage = Pem::new("garbage", "this is not PEM\n");
        let truncated = Pem::new("trunc", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let not_der = Pem::new("notder", &pem("CERTIFICATE", b"not a certificate"));
        let v1 = Pem::new("v1", &pem("CERTIFICATE", fixture!("v1.crt.der")));
        let small = Pem::new("small", &pem("PRIVATE KEY", fixture!("rsa1024.p8.der")));
        let p521 = Pem::new("p521", &pem("PRIVATE KEY", fixture!("p521.p8.der")));
        let p256_cert = Pem::new("p256", &pem("CERTIFICATE", fixture!("p256.crt.der")));
        let no_public = Pem::new(
            "nopub",
            &pem("EC PRIVATE KEY", fixture!("p256-nopub.sec1.der")),
        );
        let encrypted = Pem::new("enc", &pem("ENCRYPTED PRIVATE KEY", b"\x30\x00"));
        let missing = Pem {
            path: std::env::temp_dir().join("vipd-http-test-missing/none.pem"),
        };

        const NO_KEY: &str = "no unencrypted PEM private key";
        const UNUSABLE: &str = "rustls cannot use the key";
        // A CA alone, or a certificate and its key.
        let ca = |p| files(Some(p), None, None);
        let pair = |c, k| files(None, Some(c), Some(k));
        let cases: [(TlsFiles, &Pem, &str); 12] = [
            (ca(&missing), &missing, "cannot read it"),
            (ca(&garbage), &garbage, "no PEM certificate"),
            (ca(&truncated), &truncated, "not a valid PEM file"),
            (ca(&not_der), &not_der, "does not parse"),
            (pair(&garbage, &good_key), &garbage, "no PEM certificate"),
            (pair(&v1, &good_key), &v1, "UnsupportedCertVersion"),
            (pair(&good_cert, &missing), &missing, "cannot read it"),
            (pair(&good_cert, &garbage), &garbage, NO_KEY),
            (pair(&good_cert, &encrypted), &encrypted, NO_KEY),
            (pair(&good_cert, &small), &small, UNUSABLE),
            (pair(&good_cert, &p521), &p521, UNUSABLE),
            (pair(&p256_cert, &no_public), &no_public, UNUSABLE),
        ];
        for (files, named, why) in cases {
            let e = Tls::load(&files, &endpoints()).unwrap_err();
            assert!(
                e.contains(&format!("{:?}", named.path)) && e.contains(why),
                "{why}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
