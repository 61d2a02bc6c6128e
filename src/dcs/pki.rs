//! Certificate and private-key checks, as pure functions on DER bytes.
//!
//! ureq hands a client certificate and key to rustls with `.expect(…)`: a key that does
//! not match its certificate, or one that ring cannot load, panics at the first https
//! request (an abort in vipd's release build). So the files are checked here first, the
//! way rustls checks them: the certificate must be an X.509 v3 certificate (webpki
//! refuses others), and the SubjectPublicKeyInfo derived from the private key must
//! equal the certificate's byte for byte (`CertifiedKey::keys_match`). The keys ring
//! can sign with are RSA (2048..8192 bits, e ≥ 65537), ECDSA P-256 and P-384 (with the
//! public key inside the private key, which ring requires) and Ed25519.
//!
//! A small DER reader (single-byte tags, definite lengths, everything bounded by the
//! input) is all that is needed; no function here panics on any input.

use std::fmt;

/// The PEM label a private key came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `RSA PRIVATE KEY`: PKCS#1 RSAPrivateKey.
    Pkcs1,
    /// `PRIVATE KEY`: PKCS#8 PrivateKeyInfo (RSA, EC or Ed25519 inside).
    Pkcs8,
    /// `EC PRIVATE KEY`: SEC1 ECPrivateKey.
    Sec1,
}

/// What is wrong with a certificate or key: a short phrase for an error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiError(pub String);

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(why: &str) -> Result<T, PkiError> {
    Err(PkiError(why.to_string()))
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
/// `[0]` constructed (certificate version, EC parameters, PKCS#8 attributes).
const CONTEXT_0: u8 = 0xa0;
/// `[1]` constructed (ECPrivateKey publicKey).
const CONTEXT_1: u8 = 0xa1;
/// `[1]` primitive (PKCS#8 v2 / OneAsymmetricKey publicKey).
const CONTEXT_1_PRIMITIVE: u8 = 0x81;

// Object identifiers, DER contents only.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A DER reader over a slice: each call takes one TLV from the front.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(input: &'a [u8]) -> Reader<'a> {
        Reader { rest: input }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV: its tag and contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), PkiError> {
        let (&tag, after_tag) = self
            .rest
            .split_first()
            .ok_or_else(|| PkiError("truncated DER".into()))?;
        if tag & 0x1f == 0x1f {
            return err("unsupported DER tag");
        }
        let (&first, after_len) = after_tag
            .split_first()
            .ok_or_else(|| PkiError("truncated DER".into()))?;
        let (len, body) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || after_len.len() < n {
                return err("bad DER length");
            }
            let (len_bytes, body) = after_len.split_at(n);
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, body)
        };
        if body.len() < len {
            return err("truncated DER");
        }
        let (value, rest) = body.split_at(len);
        self.rest = rest;
        Ok((tag, value))
    }

    /// The next TLV, which must have tag `tag`; its contents.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], PkiError> {
        match self.any()? {
            (t, value) if t == tag => Ok(value),
            _ => Err(PkiError(format!("{what} expected"))),
        }
    }

    /// The next TLV if it has tag `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<&'a [u8]>, PkiError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(|(_, v)| Some(v))
        } else {
            Ok(None)
        }
    }

    fn finish(&self, what: &str) -> Result<(), PkiError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(PkiError(format!("trailing data after {what}")))
        }
    }
}

/// The contents of a single TLV that must fill `input` exactly.
fn single(input: &[u8], tag: u8, what: &str) -> Result<(), PkiError> {
    let mut r = Reader::new(input);
    r.expect(tag, what)?;
    r.finish(what)
}

/// A DER TLV with `tag` around `contents`.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// A positive INTEGER's magnitude without leading zero bytes.
fn magnitude(int: &[u8]) -> &[u8] {
    let skip = int.iter().take_while(|&&b| b == 0).count();
    &int[skip..]
}

/// The minimal DER INTEGER for a non-negative magnitude.
fn unsigned_integer(mag: &[u8]) -> Vec<u8> {
    let mag = magnitude(mag);
    let mut contents = Vec::with_capacity(mag.len() + 1);
    if mag.first().is_none_or(|&b| b & 0x80 != 0) {
        contents.push(0);
    }
    contents.extend_from_slice(mag);
    tlv(INTEGER, &contents)
}

fn bit_length(mag: &[u8]) -> usize {
    let mag = magnitude(mag);
    match mag.first() {
        None => 0,
        Some(&b) => (mag.len() - 1) * 8 + (8 - b.leading_zeros() as usize),
    }
}

/// The SubjectPublicKeyInfo contents (inside the outer SEQUENCE) for an algorithm
/// identifier's contents and a public key, as rustls builds it (`public_key_to_spki`).
fn spki_contents(alg_id: &[u8], public_key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(public_key);
    let mut out = tlv(SEQUENCE, alg_id);
    out.extend(tlv(BIT_STRING, &bits));
    out
}

/// What a certificate says about itself, as far as the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate<'a> {
    /// X.509 version: 1, 2 or 3.
    pub version: u8,
    /// The SubjectPublicKeyInfo contents (without its outer SEQUENCE tag and length).
    pub spki: &'a [u8],
}

/// Parse the outer layers of an X.509 certificate (RFC 5280 §4.1), as webpki does.
pub fn parse_certificate(der: &[u8]) -> Result<Certificate<'_>, PkiError> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(SEQUENCE, "certificate SEQUENCE")?;
    outer.finish("the certificate")?;
    let mut cert = Reader::new(cert);
    let tbs = cert.expect(SEQUENCE, "tbsCertificate")?;
    let signature_alg = cert.expect(SEQUENCE, "signatureAlgorithm")?;
    cert.expect(BIT_STRING, "signature")?;
    cert.finish("the signature")?;

    let mut tbs = Reader::new(tbs);
    let version = match tbs.optional(CONTEXT_0)? {
        None => 1,
        Some(explicit) => {
            let mut v = Reader::new(explicit);
            let n = v.expect(INTEGER, "version")?;
            v.finish("version")?;
            match n {
                [0] => 1,
                [1] => 2,
                [2] => 3,
                _ => return err("unknown certificate version"),
            }
        }
    };
    let serial = tbs.expect(INTEGER, "serialNumber")?;
    if serial.is_empty() {
        return err("empty serialNumber");
    }
    let inner_alg = tbs.expect(SEQUENCE, "signature algorithm")?;
    if inner_alg != signature_alg {
        return err("signature algorithms differ inside and outside tbsCertificate");
    }
    tbs.expect(SEQUENCE, "issuer")?;
    tbs.expect(SEQUENCE, "validity")?;
    tbs.expect(SEQUENCE, "subject")?;
    let spki = tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut s = Reader::new(spki);
    s.expect(SEQUENCE, "public key algorithm")?;
    s.expect(BIT_STRING, "public key")?;
    s.finish("the public key")?;
    Ok(Certificate { version, spki })
}

/// The public half of a private key, as far as it can be known without arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// SubjectPublicKeyInfo contents, comparable with [`Certificate::spki`].
    Spki(Vec<u8>),
    /// A key whose public half is not stored in the file (an Ed25519 PKCS#8 v1 key):
    /// only a signature could show whether it matches.
    NotStored(&'static str),
}

/// The public key of an RSAPrivateKey (RFC 8017 A.1.2), checked against ring's limits.
fn rsa_public(der: &[u8]) -> Result<PublicKey, PkiError> {
    let mut outer = Reader::new(der);
    let key = outer.expect(SEQUENCE, "RSAPrivateKey")?;
    outer.finish("the RSA key")?;
    let mut key = Reader::new(key);
    if key.expect(INTEGER, "version")? != [0] {
        return err("multi-prime RSA keys are not supported");
    }
    let n = key.expect(INTEGER, "modulus")?;
    let e = key.expect(INTEGER, "publicExponent")?;
    for what in [
        "privateExponent",
        "prime1",
        "prime2",
        "exponent1",
        "exponent2",
        "coefficient",
    ] {
        key.expect(INTEGER, what)?;
    }
    key.finish("the RSA key")?;
    let bits = bit_length(n);
    if !(2048..=8192).contains(&bits) {
        return Err(PkiError(format!(
            "a {bits}-bit RSA key is not supported (2048 to 8192 bits)"
        )));
    }
    let e_mag = magnitude(e);
    if e_mag.len() > 5 || bit_length(e_mag) > 33 {
        return err("the RSA public exponent is too large");
    }
    let e_val = e_mag.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e_val < 65537 || e_val % 2 == 0 {
        return err("the RSA public exponent must be odd and at least 65537");
    }
    let mut public = unsigned_integer(n);
    public.extend(unsigned_integer(e));
    let public = tlv(SEQUENCE, &public);
    let mut alg = tlv(OID, OID_RSA_ENCRYPTION);
    alg.extend(tlv(NULL, &[]));
    Ok(PublicKey::Spki(spki_contents(&alg, &public)))
}

/// The public key of an ECPrivateKey (RFC 5915). `curve` is the named curve from the
/// PKCS#8 algorithm identifier, if the key came wrapped in one.
fn ec_public(der: &[u8], curve: Option<&[u8]>) -> Result<PublicKey, PkiError> {
    let mut outer = Reader::new(der);
    let key = outer.expect(SEQUENCE, "ECPrivateKey")?;
    outer.finish("the EC key")?;
    let mut key = Reader::new(key);
    if key.expect(INTEGER, "version")? != [1] {
        return err("unknown ECPrivateKey version");
    }
    key.expect(OCTET_STRING, "privateKey")?;
    let params = match key.optional(CONTEXT_0)? {
        None => None,
        Some(p) => {
            let mut p = Reader::new(p);
            let oid = p.expect(OID, "named curve")?;
            p.finish("the curve")?;
            Some(oid)
        }
    };
    let Some(public) = key.optional(CONTEXT_1)? else {
        return err("the EC key does not include its public key (ring requires it)");
    };
    let mut p = Reader::new(public);
    let bits = p.expect(BIT_STRING, "publicKey")?;
    p.finish("the public key")?;
    let point = match bits.split_first() {
        Some((0, point)) => point,
        _ => return err("malformed EC public key"),
    };
    let curve = match (curve, params) {
        (Some(a), Some(b)) if a != b => {
            return err("the EC key names two different curves");
        }
        (Some(c), _) | (None, Some(c)) => c,
        // ring tries P-256, then P-384; the point's length tells which fits.
        (None, None) => match point.len() {
            65 => OID_P256,
            97 => OID_P384,
            _ => return err("unsupported EC curve"),
        },
    };
    let len = match curve {
        OID_P256 => 65,
        OID_P384 => 97,
        _ => return err("unsupported EC curve (P-256 and P-384 are)"),
    };
    if point.len() != len || point.first() != Some(&4) {
        return err("the EC public key is not an uncompressed point of its curve");
    }
    let mut alg = tlv(OID, OID_EC_PUBLIC_KEY);
    alg.extend(tlv(OID, curve));
    Ok(PublicKey::Spki(spki_contents(&alg, point)))
}

/// The public key of a PKCS#8 PrivateKeyInfo / OneAsymmetricKey (RFC 5208, 5958).
fn pkcs8_public(der: &[u8]) -> Result<PublicKey, PkiError> {
    let mut outer = Reader::new(der);
    let info = outer.expect(SEQUENCE, "PrivateKeyInfo")?;
    outer.finish("the key")?;
    let mut info = Reader::new(info);
    let version = info.expect(INTEGER, "version")?;
    if version != [0] && version != [1] {
        return err("unknown PKCS#8 version");
    }
    let alg = info.expect(SEQUENCE, "privateKeyAlgorithm")?;
    let private = info.expect(OCTET_STRING, "privateKey")?;
    info.optional(CONTEXT_0)?;
    let stored_public = info.optional(CONTEXT_1_PRIMITIVE)?;
    info.finish("the key")?;

    let mut alg = Reader::new(alg);
    let oid = alg.expect(OID, "algorithm")?;
    match oid {
        OID_RSA_ENCRYPTION => {
            if !alg.is_empty() {
                single(alg.rest, NULL, "NULL parameters")?;
            }
            rsa_public(private)
        }
        OID_EC_PUBLIC_KEY => {
            let curve = alg.expect(OID, "named curve")?;
            alg.finish("the algorithm")?;
            ec_public(private, Some(curve))
        }
        OID_ED25519 => {
            alg.finish("the algorithm")?;
            let mut p = Reader::new(private);
            let seed = p.expect(OCTET_STRING, "Ed25519 private key")?;
            p.finish("the Ed25519 key")?;
            if seed.len() != 32 {
                return err("malformed Ed25519 private key");
            }
            match stored_public {
                None => Ok(PublicKey::NotStored("Ed25519")),
                Some(bits) => match bits.split_first() {
                    Some((0, point)) if point.len() == 32 => Ok(PublicKey::Spki(spki_contents(
                        &tlv(OID, OID_ED25519),
                        point,
                    ))),
                    _ => err("malformed Ed25519 public key"),
                },
            }
        }
        _ => err("unsupported key algorithm (RSA, ECDSA P-256/P-384 and Ed25519 are)"),
    }
}

/// The public key of a private key in DER form, or why rustls would refuse the key.
pub fn public_key(kind: KeyKind, der: &[u8]) -> Result<PublicKey, PkiError> {
    match kind {
        KeyKind::Pkcs1 => rsa_public(der),
        KeyKind::Pkcs8 => pkcs8_public(der),
        KeyKind::Sec1 => ec_public(der, None),
    }
}

/// Whether a private key belongs to a certificate: `Ok(true)` when the public keys are
/// equal, `Ok(false)` when they differ, `Err` when the key cannot be used at all.
/// `None` inside means the file does not store the public key (see [`PublicKey`]).
pub fn key_matches(
    cert: &Certificate<'_>,
    kind: KeyKind,
    key_der: &[u8],
) -> Result<Option<bool>, PkiError> {
    Ok(match public_key(kind, key_der)? {
        PublicKey::Spki(spki) => Some(spki == cert.spki),
        PublicKey::NotStored(_) => None,
    })
}

#[cfg(test)]
mod tests;
