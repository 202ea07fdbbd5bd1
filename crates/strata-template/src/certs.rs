//! Sprig's key and certificate generators: `genPrivateKey`, `genCA*`, `genSelfSignedCert*`,
//! `genSignedCert*` and `buildCustomCert`, with Sprig's PEM formats and messages.
//!
//! Keys are what Go's `crypto/x509` writes for Sprig (`pemBlockForKey`): RSA as PKCS#1
//! (`RSA PRIVATE KEY`), ECDSA as SEC 1 with the curve and public key (`EC PRIVATE KEY`), DSA
//! as OpenSSL's sequence of six integers (`DSA PRIVATE KEY`), Ed25519 as PKCS#8 v1
//! (`PRIVATE KEY`, no public key). A key given to a `*WithKey` function comes back in that
//! format whatever it was given in, as in Sprig. Certificates are built from Sprig's template
//! (`getBaseCertTemplate`): a random 128-bit serial, the common name as the only subject
//! attribute, valid from now for `daysValid` days, key usages digital signature and key
//! encipherment (plus certificate signing for a CA), extended usages server and client auth,
//! basic constraints (`CA:TRUE` for a CA), DNS names then IPs as SANs. rcgen builds and signs
//! them (SHA-256 with RSA or ECDSA, pure Ed25519, as Go picks).
//!
//! Key identifier extensions are rcgen's (derived from a SHA-256 of the key, where Go uses
//! SHA-1; a signed certificate names its CA's) rather than Go's; verifiers only compare
//! them, and `tests/template/certs.rs` checks that openssl verifies both ways.

use std::net::IpAddr;
use std::rc::Rc;

use base64::Engine as _;
use der::asn1::{ObjectIdentifier, OctetStringRef, UintRef};
use der::{Decode as _, Encode as _};
use pkcs8::AlgorithmIdentifierRef;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};

use super::funcs::{FnResult, arity, int_arg, str_arg};
use super::value::{Certificate, Value};

/// The functions of this module.
pub(super) const NAMES: [&str; 8] = [
    "genPrivateKey",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
];

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Calls one of [`NAMES`].
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    match name {
        "genPrivateKey" => {
            n(1)?;
            // Sprig returns its complaints as the value instead of failing.
            Ok(Value::Str(match str_arg(&args[0])? {
                "" | "rsa" => Key::Rsa(Box::new(rsa_key(4096)?)).to_pem(),
                "dsa" => generate_dsa()?.to_pem(),
                "ecdsa" => generate_ring(&rcgen::PKCS_ECDSA_P256_SHA256)?.to_pem(),
                "ed25519" => generate_ring(&rcgen::PKCS_ED25519)?.to_pem(),
                other => format!("Unknown type {other}"),
            }))
        }
        "buildCustomCert" => {
            n(2)?;
            build_custom(str_arg(&args[0])?, str_arg(&args[1])?)
        }
        "genCA" | "genCAWithKey" => {
            n(if name == "genCA" { 2 } else { 3 })?;
            let cn = str_arg(&args[0])?;
            let days = int_arg(&args[1])?;
            let key = given_or_rsa(args.get(2))?;
            let der = certify(&Template::new(cn, &[], &[], days, true), &key, None)?;
            finish(&der, &key)
        }
        "genSelfSignedCert" | "genSelfSignedCertWithKey" => {
            n(if name == "genSelfSignedCert" { 4 } else { 5 })?;
            let (ips, dns) = (names("ip", &args[1])?, names("dns", &args[2])?);
            let template = Template::new(str_arg(&args[0])?, &ips, &dns, int_arg(&args[3])?, false);
            let key = given_or_rsa(args.get(4))?;
            let der = certify(&template, &key, None)?;
            finish(&der, &key)
        }
        "genSignedCert" | "genSignedCertWithKey" => {
            n(if name == "genSignedCert" { 5 } else { 6 })?;
            let (ips, dns) = (names("ip", &args[1])?, names("dns", &args[2])?);
            let template = Template::new(str_arg(&args[0])?, &ips, &dns, int_arg(&args[3])?, false);
            let ca = match &args[4] {
                Value::Cert(ca) => ca,
                other => {
                    return Err(format!(
                        "wrong type for value; expected sprig.certificate; got {}",
                        other.type_name()
                    ));
                }
            };
            let ca_der = pem_block(&ca.cert)
                .ok_or("unable to decode certificate")?
                .into_contents();
            x509_parser::parse_x509_certificate(&ca_der)
                .map_err(|e| format!("error parsing certificate: decodedSignerCert.Bytes: {e}"))?;
            let ca_key =
                parse_key(&ca.key).map_err(|e| format!("error parsing private key: {e}"))?;
            let key = given_or_rsa(args.get(5))?;
            let der = certify(&template, &key, Some((&ca_der, &ca_key)))?;
            finish(&der, &key)
        }
        _ => Err(format!("unknown function {name:?}")),
    }
}

/// A private key of one of the kinds Go's Sprig handles.
enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    /// An elliptic-curve key: the curve's OID, the private scalar and the public point.
    Ec {
        curve: ObjectIdentifier,
        secret: Vec<u8>,
        public: Vec<u8>,
    },
    /// The 32-byte seed.
    Ed25519(Vec<u8>),
    /// OpenSSL's DER `SEQUENCE { version, p, q, g, y, x }`; Go cannot sign certificates with it.
    Dsa(Vec<u8>),
}

/// OpenSSL's (and Sprig's `DSAKeyFormat`) DSA private key.
#[derive(der::Sequence)]
struct DsaKeyFormat<'a> {
    version: u8,
    p: UintRef<'a>,
    q: UintRef<'a>,
    g: UintRef<'a>,
    y: UintRef<'a>,
    x: UintRef<'a>,
}

impl Key {
    /// Sprig's `pemBlockForKey`.
    fn to_pem(&self) -> String {
        let (tag, der) = match self {
            Key::Rsa(key) => (
                "RSA PRIVATE KEY",
                key.to_pkcs1_der()
                    .expect("a generated or parsed RSA key encodes")
                    .as_bytes()
                    .to_vec(),
            ),
            Key::Ec {
                curve,
                secret,
                public,
            } => (
                "EC PRIVATE KEY",
                sec1::EcPrivateKey {
                    private_key: secret,
                    parameters: Some(sec1::EcParameters::NamedCurve(*curve)),
                    public_key: Some(public),
                }
                .to_der()
                .expect("an EC key encodes"),
            ),
            Key::Ed25519(seed) => ("PRIVATE KEY", ed25519_pkcs8(seed)),
            Key::Dsa(der) => ("DSA PRIVATE KEY", der.clone()),
        };
        pem::encode_config(
            &pem::Pem::new(tag, der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// The key as rcgen signs with it.
    fn key_pair(&self) -> Result<rcgen::KeyPair, String> {
        let pkcs8 = match self {
            Key::Rsa(key) => key
                .to_pkcs8_der()
                .map_err(|e| e.to_string())?
                .as_bytes()
                .to_vec(),
            Key::Ec {
                curve,
                secret,
                public,
            } => {
                // ring wants the curve in the PKCS#8 wrapper only, not in the SEC 1 key too.
                let inner = sec1::EcPrivateKey {
                    private_key: secret,
                    parameters: None,
                    public_key: Some(public),
                }
                .to_der()
                .map_err(|e| e.to_string())?;
                pkcs8::PrivateKeyInfo {
                    algorithm: AlgorithmIdentifierRef {
                        oid: OID_EC,
                        parameters: Some(curve.into()),
                    },
                    private_key: &inner,
                    public_key: None,
                }
                .to_der()
                .map_err(|e| e.to_string())?
            }
            Key::Ed25519(seed) => ed25519_pkcs8(seed),
            Key::Dsa(_) => {
                return Err(
                    "x509: certificate private key does not implement crypto.Signer".into(),
                );
            }
        };
        rcgen::KeyPair::try_from(pkcs8.as_slice()).map_err(|e| e.to_string())
    }
}

/// Go's `MarshalPKCS8PrivateKey` of an Ed25519 key: version 1, the seed, no public key.
fn ed25519_pkcs8(seed: &[u8]) -> Vec<u8> {
    let inner = OctetStringRef::new(seed)
        .and_then(|o| o.to_der())
        .expect("32 bytes encode");
    pkcs8::PrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: OID_ED25519,
            parameters: None,
        },
        private_key: &inner,
        public_key: None,
    }
    .to_der()
    .expect("an Ed25519 key encodes")
}

fn rsa_key(bits: usize) -> Result<rsa::RsaPrivateKey, String> {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| format!("error generating rsa key: {e}"))
}

/// An ECDSA or Ed25519 key from ring (through rcgen), taken apart into [`Key`].
fn generate_ring(alg: &'static rcgen::SignatureAlgorithm) -> Result<Key, String> {
    let pair = rcgen::KeyPair::generate_for(alg)
        .map_err(|e| format!("failed to generate private key: {e}"))?;
    key_from_pkcs8(&pair.serialize_der())
}

fn generate_dsa() -> Result<Key, String> {
    let rng = &mut rsa::rand_core::OsRng;
    let components = dsa::Components::generate(rng, dsa::KeySize::DSA_2048_256);
    let key = dsa::SigningKey::generate(rng, components);
    let public = key.verifying_key();
    let c = public.components();
    let (p, q, g) = (
        c.p().to_bytes_be(),
        c.q().to_bytes_be(),
        c.g().to_bytes_be(),
    );
    let (y, x) = (public.y().to_bytes_be(), key.x().to_bytes_be());
    fn uint(b: &[u8]) -> Result<UintRef<'_>, String> {
        UintRef::new(b).map_err(|e| e.to_string())
    }
    let der = DsaKeyFormat {
        version: 0,
        p: uint(&p)?,
        q: uint(&q)?,
        g: uint(&g)?,
        y: uint(&y)?,
        x: uint(&x)?,
    }
    .to_der()
    .map_err(|e| format!("failed to generate private key: {e}"))?;
    Ok(Key::Dsa(der))
}

/// Go's `ParsePKCS8PrivateKey` for the kinds it knows.
fn key_from_pkcs8(der: &[u8]) -> Result<Key, String> {
    let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| e.to_string())?;
    match info.algorithm.oid {
        OID_RSA => Ok(Key::Rsa(Box::new(
            rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string())?,
        ))),
        OID_EC => {
            let curve = info.algorithm.parameters_oid().map_err(|e| {
                format!("x509: failed to parse EC private key embedded in PKCS#8: {e}")
            })?;
            ec_key(info.private_key, Some(curve))
        }
        OID_ED25519 => {
            let seed = OctetStringRef::from_der(info.private_key)
                .map_err(|e| format!("x509: invalid Ed25519 private key: {e}"))?;
            if seed.as_bytes().len() != 32 {
                return Err(format!(
                    "x509: invalid Ed25519 private key length: {}",
                    seed.as_bytes().len()
                ));
            }
            Ok(Key::Ed25519(seed.as_bytes().to_vec()))
        }
        other => Err(format!(
            "x509: PKCS#8 wrapping contained private key with unknown algorithm: {other}"
        )),
    }
}

/// A SEC 1 `ECPrivateKey`; the curve comes from the key or its PKCS#8 wrapper.
fn ec_key(der: &[u8], outer_curve: Option<ObjectIdentifier>) -> Result<Key, String> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| e.to_string())?;
    let curve = outer_curve
        .or(key.parameters.and_then(|p| p.named_curve()))
        .ok_or("x509: failed to parse EC private key: no curve")?;
    let public = key
        .public_key
        .ok_or("x509: EC private key without its public key is not supported here")?;
    Ok(Key::Ec {
        curve,
        secret: key.private_key.to_vec(),
        public: public.to_vec(),
    })
}

/// The first PEM block of `text`, as Go's `pem.Decode` finds it.
fn pem_block(text: &str) -> Option<pem::Pem> {
    let start = text.find("-----BEGIN ")?;
    pem::parse(&text[start..]).ok()
}

/// Sprig's `parsePrivateKeyPEM`, with its messages.
fn parse_key(text: &str) -> Result<Key, String> {
    let block = pem_block(text).ok_or("no PEM data in input")?;
    let tag = block.tag();
    if tag == "PRIVATE KEY" {
        return key_from_pkcs8(block.contents())
            .map_err(|e| format!("decoding PEM as PKCS#8: {e}"));
    }
    let Some(kind) = tag.strip_suffix(" PRIVATE KEY") else {
        return Err(format!("no private key data in PEM block of type {tag}"));
    };
    match kind {
        "RSA" => rsa::RsaPrivateKey::from_pkcs1_der(block.contents())
            .map(|k| Key::Rsa(Box::new(k)))
            .map_err(|e| format!("parsing RSA private key from PEM: {e}")),
        "EC" => ec_key(block.contents(), None)
            .map_err(|e| format!("parsing EC private key from PEM: {e}")),
        "DSA" => DsaKeyFormat::from_der(block.contents())
            .map(|_| Key::Dsa(block.contents().to_vec()))
            .map_err(|e| format!("parsing DSA private key from PEM: {e}")),
        _ => Err(format!("invalid private key type {tag}")),
    }
}

/// The key of a `*WithKey` call (its PEM argument), or a new 2048-bit RSA key as Sprig makes.
fn given_or_rsa(pem: Option<&Value>) -> Result<Key, String> {
    match pem {
        Some(text) => parse_key(str_arg(text)?).map_err(|e| format!("parsing private key: {e}")),
        None => Ok(Key::Rsa(Box::new(rsa_key(2048)?))),
    }
}

/// Sprig's `getNetIPs` / `getAlternateDNSStrs`: nil or a list of strings.
fn names(what: &str, v: &Value) -> Result<Vec<String>, String> {
    let items = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::List(items) => items,
        other => {
            return Err(format!(
                "wrong type for value; expected []interface {{}}; got {}",
                other.type_name()
            ));
        }
    };
    items
        .iter()
        .map(|item| match item {
            Value::Str(s) => Ok(s.clone()),
            other if what == "ip" => Err(format!(
                "error parsing ip: {} is not a string",
                other.to_go_string()
            )),
            other => Err(format!(
                "error processing alternate dns name: {} is not a string",
                other.to_go_string()
            )),
        })
        .collect()
}

/// What Sprig's `getBaseCertTemplate` fills in.
struct Template<'a> {
    cn: &'a str,
    ips: &'a [String],
    dns: &'a [String],
    days: i64,
    ca: bool,
}

impl<'a> Template<'a> {
    fn new(cn: &'a str, ips: &'a [String], dns: &'a [String], days: i64, ca: bool) -> Self {
        Template {
            cn,
            ips,
            dns,
            days,
            ca,
        }
    }

    fn params(&self) -> Result<rcgen::CertificateParams, String> {
        use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyUsagePurpose as Ku};
        let mut params = rcgen::CertificateParams::default();
        let mut subject = rcgen::DistinguishedName::new();
        // Go leaves an empty common name out, and writes a PrintableString where it can.
        if !self.cn.is_empty() {
            let value = match rcgen::string::PrintableString::try_from(self.cn) {
                Ok(p) => rcgen::DnValue::PrintableString(p),
                Err(_) => rcgen::DnValue::Utf8String(self.cn.to_string()),
            };
            subject.push(rcgen::DnType::CommonName, value);
        }
        params.distinguished_name = subject;
        let mut serial = [0u8; 16];
        rand::fill(&mut serial);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = i32::try_from(self.days)
            .ok()
            .and_then(|days| time::Duration::DAY.checked_mul(days))
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| format!("daysValid {} is out of range", self.days))?;
        params.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        if self.ca {
            params.key_usages.push(Ku::KeyCertSign);
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        } else {
            params.is_ca = rcgen::IsCa::ExplicitNoCa;
        }
        params.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
        for dns in self.dns {
            let name = rcgen::string::Ia5String::try_from(dns.as_str())
                .map_err(|_| format!("x509: {dns:?} cannot be encoded as an IA5String"))?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(name));
        }
        for ip in self.ips {
            let addr: IpAddr = ip.parse().map_err(|_| format!("error parsing ip: {ip}"))?;
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(addr));
        }
        Ok(params)
    }
}

/// Sprig's `getCertAndKey`: the DER of `template`'s certificate for `key`, signed by `key`
/// itself or by the CA (certificate DER and key).
fn certify(template: &Template, key: &Key, ca: Option<(&[u8], &Key)>) -> Result<Vec<u8>, String> {
    let create = |e: rcgen::Error| format!("error creating certificate: {e}");
    let mut params = template.params()?;
    let pair = key
        .key_pair()
        .map_err(|e| format!("error creating certificate: {e}"))?;
    let cert = match ca {
        None => params.self_signed(&pair).map_err(create)?,
        Some((ca_der, ca_key)) => {
            params.use_authority_key_identifier_extension = true;
            let signer = ca_key
                .key_pair()
                .map_err(|e| format!("error creating certificate: {e}"))?;
            let issuer =
                rcgen::Issuer::from_ca_cert_der(&ca_der.to_vec().into(), signer).map_err(create)?;
            params.signed_by(&pair, &issuer).map_err(create)?
        }
    };
    Ok(cert.der().to_vec())
}

/// Sprig's `certificate{Cert, Key}` of a new certificate.
fn finish(der: &[u8], key: &Key) -> FnResult {
    let cert = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    Ok(Value::Cert(Rc::new(Certificate {
        cert,
        key: key.to_pem(),
    })))
}

/// Sprig's `buildCustomCertificate`: base64 PEMs checked and handed back as they are.
fn build_custom(b64cert: &str, b64key: &str) -> FnResult {
    let b64 = base64::engine::general_purpose::STANDARD;
    let cert = b64
        .decode(b64cert)
        .map_err(|_| "unable to decode base64 certificate")?;
    let key = b64
        .decode(b64key)
        .map_err(|_| "unable to decode base64 private key")?;
    let (cert, key) = (
        String::from_utf8_lossy(&cert).into_owned(),
        String::from_utf8_lossy(&key).into_owned(),
    );
    let block = pem_block(&cert).ok_or("unable to decode certificate")?;
    x509_parser::parse_x509_certificate(block.contents())
        .map_err(|e| format!("error parsing certificate: decodedCert.Bytes: {e}"))?;
    parse_key(&key).map_err(|e| format!("error parsing private key: {e}"))?;
    Ok(Value::Cert(Rc::new(Certificate { cert, key })))
}
