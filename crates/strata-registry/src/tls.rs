//! Whom a registry connection trusts: the system's CA bundle (or `$SSL_CERT_FILE`), plus the
//! per-registry directories Docker and podman use, `<root>/<host[:port]>/`:
//!
//! - `*.crt`: extra CAs for that registry only;
//! - `<name>.cert` with `<name>.key`: a client certificate (mutual TLS).
//!
//! The roots are `/etc/containers/certs.d` and `/etc/docker/certs.d` (both searched, in that
//! order, as podman does), or the `:`-separated list in `$STRATA_CERTS_D`, or what
//! [`crate::Options::certs_dirs`] says. A registry that has such a directory is always spoken
//! to over HTTPS, loopback or not: that is how a test or a private registry on `127.0.0.1`
//! gets TLS.

use std::fs;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// What can be wrong with a trust setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read.
    #[error("reading {} failed: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{} is not a PEM {what}: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },
    /// A client certificate without its key (or the other way round).
    #[error("{} has no matching {missing} beside it; a client certificate needs both `NAME.cert` and `NAME.key`", path.display())]
    Unpaired {
        /// The file found.
        path: PathBuf,
        /// The file missing (`.key` or `.cert`).
        missing: &'static str,
    },
}

/// The system bundles tried when `$SSL_CERT_FILE` is not set (Debian/Ubuntu, Fedora/RHEL,
/// openSUSE, Alpine).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The per-registry certificate roots used when none are configured.
pub fn default_certs_dirs() -> Vec<PathBuf> {
    match std::env::var_os("STRATA_CERTS_D") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![
            PathBuf::from("/etc/containers/certs.d"),
            PathBuf::from("/etc/docker/certs.d"),
        ],
    }
}

/// The trust settings of a client.
#[derive(Clone, Debug)]
pub(crate) struct Trust {
    certs_dirs: Vec<PathBuf>,
}

impl Trust {
    pub(crate) fn new(certs_dirs: Vec<PathBuf>) -> Trust {
        Trust { certs_dirs }
    }

    /// The roots searched.
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.certs_dirs
    }

    /// The directories holding files for `registry` (`host:port` as in the reference).
    fn registry_dirs(&self, registry: &str) -> Vec<PathBuf> {
        self.certs_dirs
            .iter()
            .map(|root| root.join(registry))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Whether `registry` has a certificate directory (and so must be spoken to over TLS).
    pub(crate) fn has_dir(&self, registry: &str) -> bool {
        !self.registry_dirs(registry).is_empty()
    }

    /// The TLS config for connections to `registry`.
    pub(crate) fn config(&self, registry: &str) -> Result<TlsConfig, Error> {
        let mut roots = system_roots()?;
        let mut client = None;
        for dir in self.registry_dirs(registry) {
            let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
                .map_err(|source| Error::Read {
                    path: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for path in entries {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("crt") => roots.extend(certificates(&path)?),
                    Some("cert") => {
                        let key = path.with_extension("key");
                        if !key.exists() {
                            return Err(Error::Unpaired {
                                path,
                                missing: ".key",
                            });
                        }
                        client.get_or_insert((certificates(&path)?, private_key(&key)?));
                    }
                    Some("key") if !path.with_extension("cert").exists() => {
                        return Err(Error::Unpaired {
                            path,
                            missing: ".cert",
                        });
                    }
                    _ => {}
                }
            }
        }
        let roots = if roots.is_empty() {
            // No system bundle found and none configured: the CAs built into the binary.
            RootCerts::WebPki
        } else {
            RootCerts::new_with_certs(&roots)
        };
        Ok(TlsConfig::builder()
            .root_certs(roots)
            .client_cert(client.map(|(chain, key)| ClientCert::new_with_certs(&chain, key)))
            .build())
    }
}

/// The CAs of `$SSL_CERT_FILE`, else of the first system bundle found (none: empty).
fn system_roots() -> Result<Vec<Certificate<'static>>, Error> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return certificates(Path::new(&file));
    }
    match SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
        Some(bundle) => certificates(bundle),
        None => Ok(Vec::new()),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file; an error if it has none.
fn certificates(path: &Path) -> Result<Vec<Certificate<'static>>, Error> {
    let bytes = read(path)?;
    let pem = |detail: String| Error::Pem {
        path: path.to_path_buf(),
        what: "certificate",
        detail,
    };
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&bytes) {
        if let PemItem::Certificate(c) = item.map_err(|e| pem(e.to_string()))? {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(pem("it holds no CERTIFICATE block".into()));
    }
    Ok(out)
}

fn private_key(path: &Path) -> Result<PrivateKey<'static>, Error> {
    let bytes = read(path)?;
    PrivateKey::from_pem(&bytes).map_err(|e| Error::Pem {
        path: path.to_path_buf(),
        what: "private key",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_files_are_named() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("reg.example:5000");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("ca.crt"), "not pem").unwrap();
        let trust = Trust::new(vec![root.path().to_path_buf()]);
        assert!(trust.has_dir("reg.example:5000") && !trust.has_dir("other"));
        let err = trust.config("reg.example:5000").unwrap_err().to_string();
        assert!(
            err.contains("ca.crt") && err.contains("no CERTIFICATE"),
            "{err}"
        );
        fs::remove_file(dir.join("ca.crt")).unwrap();
        fs::write(dir.join("client.cert"), "x").unwrap();
        let err = trust.config("reg.example:5000").unwrap_err().to_string();
        assert!(err.contains("client.cert") && err.contains(".key"), "{err}");
    }
}
