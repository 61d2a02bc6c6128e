//! Tests on keys and certificates openssl made (tests/fixtures/tls/make.sh).

use super::*;

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

const RSA_CRT: &[u8] = fixture!("rsa.crt.der");
const RSA_P1: &[u8] = fixture!("rsa.p1.der");
const RSA_P8: &[u8] = fixture!("rsa.p8.der");
const RSA1024_P8: &[u8] = fixture!("rsa1024.p8.der");
const V1_CRT: &[u8] = fixture!("v1.crt.der");
const P256_CRT: &[u8] = fixture!("p256.crt.der");
const P256_P8: &[u8] = fixture!("p256.p8.der");
const P256_SEC1: &[u8] = fixture!("p256.sec1.der");
const P256_NOPUB: &[u8] = fixture!("p256-nopub.sec1.der");
const P384_CRT: &[u8] = fixture!("p384.crt.der");
const P384_SEC1: &[u8] = fixture!("p384.sec1.der");
const P521_P8: &[u8] = fixture!("p521.p8.der");
const ED_CRT: &[u8] = fixture!("ed25519.crt.der");
const ED_P8: &[u8] = fixture!("ed25519.p8.der");

fn cert(der: &[u8]) -> Certificate<'_> {
    parse_certificate(der).unwrap()
}

#[test]
fn certificates_parse_with_their_version() {
    for der in [RSA_CRT, P256_CRT, P384_CRT, ED_CRT] {
        assert_eq!(cert(der).version, 3);
    }
    assert_eq!(cert(V1_CRT).version, 1);
    // The SPKI is inside the certificate, starting with its algorithm SEQUENCE.
    let c = cert(P256_CRT);
    assert_eq!(c.spki.first(), Some(&SEQUENCE));
    assert!(P256_CRT.windows(c.spki.len()).any(|w| w == c.spki));
}

#[test]
fn keys_match_their_own_certificates() {
    let cases: [(&[u8], KeyKind, &[u8]); 6] = [
        (RSA_CRT, KeyKind::Pkcs1, RSA_P1),
        (RSA_CRT, KeyKind::Pkcs8, RSA_P8),
        (V1_CRT, KeyKind::Pkcs8, RSA_P8),
        (P256_CRT, KeyKind::Pkcs8, P256_P8),
        (P256_CRT, KeyKind::Sec1, P256_SEC1),
        (P384_CRT, KeyKind::Sec1, P384_SEC1),
    ];
    for (i, (crt, kind, key)) in cases.iter().enumerate() {
        assert_eq!(
            key_matches(&cert(crt), *kind, key),
            Ok(Some(true)),
            "case {i}"
        );
    }
}

#[test]
fn keys_do_not_match_other_certificates() {
    let cases: [(&[u8], KeyKind, &[u8]); 5] = [
        (P256_CRT, KeyKind::Pkcs1, RSA_P1),
        (RSA_CRT, KeyKind::Pkcs8, P256_P8),
        (P384_CRT, KeyKind::Sec1, P256_SEC1),
        (P256_CRT, KeyKind::Sec1, P384_SEC1),
        (ED_CRT, KeyKind::Pkcs8, RSA_P8),
    ];
    for (i, (crt, kind, key)) in cases.iter().enumerate() {
        assert_eq!(
            key_matches(&cert(crt), *kind, key),
            Ok(Some(false)),
            "case {i}"
        );
    }
}

#[test]
fn ed25519_v1_keys_do_not_store_the_public_key() {
    assert_eq!(
        public_key(KeyKind::Pkcs8, ED_P8),
        Ok(PublicKey::NotStored("Ed25519"))
    );
    assert_eq!(key_matches(&cert(ED_CRT), KeyKind::Pkcs8, ED_P8), Ok(None));
}

#[test]
fn keys_ring_cannot_use_are_errors() {
    let e = public_key(KeyKind::Pkcs8, RSA1024_P8).unwrap_err();
    assert!(e.0.contains("1024-bit"), "{e}");
    let e = public_key(KeyKind::Pkcs8, P521_P8).unwrap_err();
    assert!(e.0.contains("unsupported EC curve"), "{e}");
    let e = public_key(KeyKind::Sec1, P256_NOPUB).unwrap_err();
    assert!(e.0.contains("does not include its public key"), "{e}");
    // The wrong label for the bytes.
    assert!(public_key(KeyKind::Pkcs1, RSA_P8).is_err());
    assert!(public_key(KeyKind::Sec1, RSA_P1).is_err());
    assert!(public_key(KeyKind::Pkcs8, P256_SEC1).is_err());
}

#[test]
fn der_lengths_round_trip() {
    for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536] {
        let contents = vec![7u8; len];
        let encoded = tlv(OCTET_STRING, &contents);
        let mut r = Reader::new(&encoded);
        assert_eq!(r.any().unwrap(), (OCTET_STRING, contents.as_slice()));
        assert!(r.is_empty());
    }
    assert_eq!(unsigned_integer(&[0x80]), vec![INTEGER, 2, 0, 0x80]);
    assert_eq!(unsigned_integer(&[0, 0, 0x7f]), vec![INTEGER, 1, 0x7f]);
    assert_eq!(unsigned_integer(&[]), vec![INTEGER, 1, 0]);
    assert_eq!(bit_length(&[0, 1, 0]), 9);
}

/// Every prefix and many single-byte corruptions of real inputs: errors, no panics.
#[test]
fn truncated_and_corrupted_inputs_never_panic() {
    let inputs: [(&[u8], Option<KeyKind>); 8] = [
        (RSA_CRT, None),
        (P256_CRT, None),
        (ED_CRT, None),
        (RSA_P1, Some(KeyKind::Pkcs1)),
        (RSA_P8, Some(KeyKind::Pkcs8)),
        (P256_SEC1, Some(KeyKind::Sec1)),
        (P256_P8, Some(KeyKind::Pkcs8)),
        (ED_P8, Some(KeyKind::Pkcs8)),
    ];
    let check = |bytes: &[u8], kind: Option<KeyKind>| match kind {
        None => {
            let _ = parse_certificate(bytes);
        }
        Some(kind) => {
            let _ = public_key(kind, bytes);
        }
    };
    for (input, kind) in inputs {
        for end in 0..input.len() {
            let prefix = &input[..end];
            match kind {
                None => assert!(parse_certificate(prefix).is_err(), "prefix {end}"),
                Some(kind) => assert!(public_key(kind, prefix).is_err(), "prefix {end}"),
            }
        }
        let mut copy = input.to_vec();
        for i in (0..copy.len()).step_by(3) {
            for value in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let saved = copy[i];
                copy[i] = value;
                check(&copy, kind);
                copy[i] = saved;
            }
        }
        // Trailing bytes are refused.
        let mut longer = input.to_vec();
        longer.push(0);
        check(&longer, kind);
        match kind {
            None => assert!(parse_certificate(&longer).is_err()),
            Some(kind) => assert!(public_key(kind, &longer).is_err()),
        }
    }
    for junk in [
        &b""[..],
        b"\x30",
        b"\x30\x84\xff\xff\xff\xff",
        b"\x1f\x01\x00",
        b"\x30\x80",
    ] {
        assert!(parse_certificate(junk).is_err());
        assert!(public_key(KeyKind::Pkcs8, junk).is_err());
    }
}
