//! Credentials: reading them from a Docker `config.json` (plain `auths`, credential helpers and
//! stores, through `docker_credential`), parsing `WWW-Authenticate` challenges, and
//! [`login`], which checks credentials against the registry before writing them, and
//! [`logout`], which removes them.
//!
//! The config file is `Options::docker_config` if set (and then the only one read). Else the
//! credentials for a registry come from the first of these files that has an entry for it, in
//! podman's order: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json` (podman, buildah and skopeo write these; same format), then
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, which [`login`] writes. A missing
//! file or a registry without an entry means anonymous access, not an error.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use crate::client::{self, Client, Options};

/// What can go wrong with credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the Docker config failed.
    #[error("{op} {} failed: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The Docker config (or a credential helper it names) failed.
    #[error("credentials for {registry} from {}: {detail}", path.display())]
    Config {
        /// The registry asked for.
        registry: String,
        /// The config file.
        path: PathBuf,
        /// What `docker_credential` reported.
        detail: String,
    },
    /// No config path could be determined: neither `$DOCKER_CONFIG` nor `$HOME` is set.
    #[error("cannot locate the docker config: set $DOCKER_CONFIG or $HOME, or pass a config path")]
    NoConfigPath,
    /// The registry refused the credentials, or could not be asked.
    #[error("login to {registry} failed: {source}")]
    Login {
        /// The registry.
        registry: String,
        /// The registry's answer.
        #[source]
        source: Box<client::Error>,
    },
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// User name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth refresh token, exchanged at the token endpoint.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// The `Authorization` header value for Basic auth, if these are basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// The key a registry has in `auths`: Docker Hub keeps its historic URL.
pub(crate) fn config_key(registry: &str) -> &str {
    if registry == crate::reference::DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    }
}

/// The Docker config path to use.
pub(crate) fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// The files credentials are looked up in, first match wins (see the module docs).
pub(crate) fn credential_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    files.extend(env("REGISTRY_AUTH_FILE"));
    files.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    files.extend(env("HOME").map(|h| h.join(".config/containers/auth.json")));
    files.extend(config_path(None));
    files
}

/// The credentials for `registry` in the config at `path`; `None` when there are none.
pub(crate) fn credential(path: &Path, registry: &str) -> Result<Option<Credential>, Error> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                op: "open of docker config",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    match docker_credential::get_credential_from_reader(
        io::BufReader::new(file),
        config_key(registry),
    ) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credential::Basic { username, password }))
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credential::IdentityToken(token))),
        Err(E::NoCredentialConfigured | E::ConfigNotFound) => Ok(None),
        Err(e) => Err(Error::Config {
            registry: registry.to_string(),
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`
    Basic,
    /// `Bearer realm=…,service=…,scope=…`
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value (one challenge; parameters may be quoted).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// Checks `username`/`password` against `registry` (`GET /v2/` through the registry's
/// challenge: Basic or a token exchange), then records them in the Docker config
/// (`auths.<registry>.auth`), creating it with mode 0600 if needed and keeping every other
/// entry. The file is replaced atomically.
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    docker_config: Option<&Path>,
) -> Result<(), Error> {
    let path = config_path(docker_config).ok_or(Error::NoConfigPath)?;
    let credential = Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    };
    let client = Client::new(Options {
        docker_config: Some(path.clone()),
        ..Options::default()
    })
    .map_err(|source| Error::Login {
        registry: registry.to_string(),
        source: Box::new(source),
    })?;
    client
        .check_credentials(registry, &credential)
        .map_err(|source| Error::Login {
            registry: registry.to_string(),
            source: Box::new(source),
        })?;
    write_config(&path, registry, username, password)
}

fn write_config(path: &Path, registry: &str, username: &str, password: &str) -> Result<(), Error> {
    let mut config = read_config(path)?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(serde_json::Map::new());
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    if let Some(auths) = auths.as_object_mut() {
        auths.insert(
            config_key(registry).to_string(),
            serde_json::json!({ "auth": auth }),
        );
    }
    replace_config(path, &config)
}

/// Removes the credentials for `registry` from the Docker config ([`login`]'s file), keeping
/// every other entry, as `docker logout` does. Returns false when there were none (docker
/// then says "Not logged in"). Credentials kept by a credential helper or in podman's auth
/// files are left alone.
pub fn logout(registry: &str, docker_config: Option<&Path>) -> Result<bool, Error> {
    let path = config_path(docker_config).ok_or(Error::NoConfigPath)?;
    if !path.exists() {
        return Ok(false);
    }
    let mut config = read_config(&path)?;
    let removed = config
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|auths| auths.remove(config_key(registry)))
        .is_some();
    if removed {
        replace_config(&path, &config)?;
    }
    Ok(removed)
}

/// The Docker config as a JSON object; empty when the file does not exist.
fn read_config(path: &Path) -> Result<serde_json::Map<String, Value>, Error> {
    match fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Error::Io {
                op: "parse of docker config",
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a JSON object; fix or remove the file",
                ),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
        Err(source) => Err(Error::Io {
            op: "read of docker config",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the Docker config atomically with `config`, mode 0600.
fn replace_config(path: &Path, config: &serde_json::Map<String, Value>) -> Result<(), Error> {
    let io_err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    let bytes = serde_json::to_vec_pretty(config).map_err(|e| Error::Io {
        op: "serialization of docker config",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err("creation of docker config directory"))?;
    let tmp = dir.join(format!(".config.json.strata-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(&bytes)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("atomic write of docker config"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/debian:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge("bearer realm=https://t/x, service=s"),
            Some(Challenge::Bearer {
                realm: "https://t/x".into(),
                service: Some("s".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=s"), None);
    }

    #[test]
    fn reads_and_writes_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        assert_eq!(credential(&path, "r:5000").unwrap(), None);
        write_config(&path, "r:5000", "u", "p:w").unwrap();
        write_config(&path, "docker.io", "hub", "x").unwrap();
        assert_eq!(
            credential(&path, "r:5000").unwrap(),
            Some(Credential::Basic {
                username: "u".into(),
                password: "p:w".into()
            })
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("https://index.docker.io/v1/"), "{text}");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(credential(&path, "other").unwrap(), None);
    }

    #[test]
    fn malformed_config_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, b"{not json").unwrap();
        let err = credential(&path, "r").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
