use strata_registry::{Error, ManifestFormat, Options, Reference, login};

use crate::support::{self, Registry};

#[test]
fn login_with_basic_auth_writes_a_working_docker_config() {
    let registry = Registry::with_htpasswd("builder", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker/config.json");
    let (_a, a) = support::store();
    let img = support::simple(&a, "auth");
    let to: Reference = format!("{}/team/app:v1", registry.addr()).parse().unwrap();

    // No credentials: a clear error.
    let err = support::client()
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("none are configured") && err.to_string().contains("strata login"),
        "{err}"
    );

    // Wrong password: refused, nothing written.
    let err = login(&registry.addr(), "builder", "wrong", Some(&config)).unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(!config.exists());

    login(&registry.addr(), "builder", "s3cret", Some(&config)).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&registry.addr()) && text.contains("auth"),
        "{text}"
    );

    let client = support::client_with(Options {
        docker_config: Some(config.clone()),
        ..Options::default()
    });
    let pushed = client
        .push(&a, &img.manifest, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(pushed.uploaded, 2);
    let (_b, b) = support::store();
    assert_eq!(client.pull(&to, &b).unwrap().manifest, img.manifest);
    assert_eq!(client.tags(&registry.addr(), "team/app").unwrap(), ["v1"]);

    // A config with a stale password is refused with the registry's word.
    login(&registry.addr(), "builder", "s3cret", Some(&config)).unwrap();
    let stale = dir.path().join("stale.json");
    std::fs::write(
        &stale,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YnVpbGRlcjpvbGQ="}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let err = support::client_with(Options {
        docker_config: Some(stale),
        ..Options::default()
    })
    .resolve(&to)
    .unwrap_err();
    assert!(err.to_string().contains("refused the credentials"), "{err}");
}

/// A fake registry speaking the Bearer token dance (no real registry ships a token server).
#[test]
fn bearer_challenges_are_answered_with_a_token_from_the_realm() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut authorization = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization:") {
                    authorization = v.trim().to_string();
                }
            }
            log.lock()
                .unwrap()
                .push(format!("{target} [{authorization}]"));
            let (status, extra, body) = if target.starts_with("/token?") {
                // "dTpw" is base64("u:p").
                if authorization == "basic dtpw" {
                    ("200 OK", String::new(), r#"{"token":"T0K"}"#.to_string())
                } else {
                    ("401 Unauthorized", String::new(), String::new())
                }
            } else if authorization == "bearer t0k" {
                (
                    "200 OK",
                    String::new(),
                    r#"{"name":"x","tags":["a","b"]}"#.to_string(),
                )
            } else {
                (
                    "401 Unauthorized",
                    format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:team/x:pull\"\r\n"
                    ),
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                        .to_string(),
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{addr}":{{"auth":"dTpw"}}}}}}"#),
    )
    .unwrap();
    let client = support::client_with(Options {
        docker_config: Some(config),
        ..Options::default()
    });
    assert_eq!(client.tags(&addr, "team/x").unwrap(), ["a", "b"]);
    assert_eq!(client.tags(&addr, "team/x").unwrap(), ["a", "b"]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        4,
        "challenge, token, retry, then the cached token: {seen:?}"
    );
    assert!(
        seen[1].starts_with("/token?service=fake&scope=repository%3Ateam%2Fx%3Apull"),
        "{seen:?}"
    );

    // Without credentials the token server says no, and the error says what to do.
    let err = support::client().tags(&addr, "team/x").unwrap_err();
    assert!(
        err.to_string().contains("token server refused")
            && err.to_string().contains("strata login"),
        "{err}"
    );
}

/// A foreign layer's URL gets a plain GET: the registry's credentials, needed for the
/// manifest, never go to that other server.
#[test]
fn foreign_layer_urls_get_no_registry_credentials() {
    use std::io::{BufRead, BufReader, Write};
    use strata_store::Store;
    let registry = Registry::with_htpasswd("builder", "s3cret");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker/config.json");
    login(&registry.addr(), "builder", "s3cret", Some(&config)).unwrap();
    let client = support::client_with(Options {
        docker_config: Some(config.clone()),
        ..Options::default()
    });

    let blob = b"foreign layer bytes".to_vec();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/layer", listener.local_addr().unwrap());
    let served = blob.clone();
    let heads = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut head = String::new();
        let mut reader = BufReader::new(&stream);
        while reader.read_line(&mut head).unwrap() > 0 && !head.ends_with("\r\n\r\n") {}
        let mut out = &stream;
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            served.len()
        )
        .unwrap();
        out.write_all(&served).unwrap();
        head
    });

    let (_a, a) = support::store();
    let layer = strata_digest::Digest::of(&blob);
    let image_config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        strata_digest::Digest::of(b"diff")
    );
    let config_digest = a.write_blob(image_config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{layer}","size":{},"urls":["{url}"]}}]}}"#,
        image_config.len(),
        blob.len()
    );
    // The source store lacks the foreign blob, as a builder that never pulled it would.
    let manifest = a.write_blob(manifest.as_bytes()).unwrap();
    let to: Reference = format!("{}/team/foreign:1", registry.addr())
        .parse()
        .unwrap();
    let pushed = client
        .push(&a, &manifest, &to, ManifestFormat::Oci)
        .unwrap();
    assert_eq!(pushed.uploaded, 1, "only the config is uploaded");

    let (_b, b) = support::store();
    client.pull(&to, &b).unwrap();
    assert_eq!(b.read_blob(&layer).unwrap(), blob);
    let head = heads.join().unwrap().to_ascii_lowercase();
    assert!(!head.contains("\nauthorization:"), "{head}");
}
