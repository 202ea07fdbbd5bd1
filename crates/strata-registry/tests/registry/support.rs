//! Fixtures: a real `docker-registry` per test, a fault-injecting TCP proxy, test images.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_registry::{Client, Options, Platform};
use strata_store::{Digest, LayerRecord, LocalStore, StageRecord, Store};

const BINARY: &str = "/usr/bin/docker-registry";

/// A `docker-registry serve` on 127.0.0.1 with its storage in a temp dir; killed on drop.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    /// A registry without auth.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry with htpasswd Basic auth for one user.
    pub fn with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(htpasswd: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: run scripts/install-deps.sh (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
        }
        let mut registry = Registry {
            dir,
            port: 0,
            child: None,
        };
        // A free port can be taken between our probe and the registry's bind: try a few.
        for _ in 0..5 {
            registry.port = free_port();
            registry.write_config(htpasswd.is_some());
            if registry.spawn() {
                return registry;
            }
        }
        panic!(
            "docker-registry did not come up; log:\n{}",
            fs::read_to_string(registry.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn write_config(&self, auth: bool) {
        let root = self.dir.path();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{}\n\
             validation:\n  manifests:\n    urls:\n      allow:\n        - '^http://127\\.0\\.0\\.1:'\n",
            root.join("storage").display(),
            self.port
        );
        if auth {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                root.join("htpasswd").display()
            ));
        }
        fs::write(root.join("config.yml"), config).expect("config");
    }

    /// Starts the process and waits (bounded) until `/v2/` answers; false if it exited.
    fn spawn(&mut self) -> bool {
        let log = fs::File::create(self.dir.path().join("log")).expect("log");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        self.child = Some(child);
        for _ in 0..500 {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().expect("try_wait").is_some()
            {
                self.child = None;
                return false;
            }
            if answers(&self.addr()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "docker-registry on {} did not answer /v2/ in time",
            self.addr()
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id, for killing it from a proxy fault.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the process (if running) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "docker-registry did not restart on {}",
            self.addr()
        );
    }

    /// The storage directory.
    #[allow(dead_code)]
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

fn answers(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

/// A client that sees no docker config of the user's.
pub fn client() -> Client {
    client_with(Options::default())
}

/// A client with `options`, with a docker config path that does not exist unless given.
pub fn client_with(mut options: Options) -> Client {
    if options.docker_config.is_none() {
        options.docker_config = Some(PathBuf::from("/nonexistent/strata-test/config.json"));
    }
    options.platform = Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
    };
    Client::new(options).expect("client")
}

// ---------------------------------------------------------------------------------------------
// Fault-injecting proxy

/// What the proxy does wrong.
pub enum Fault {
    /// Nothing.
    None,
    /// The first GET of this blob gets half its body, then the connection closes.
    CloseMidBlobOnce(Digest),
    /// Every GET of this blob gets half its body, then the connection closes.
    TruncateBlob(Digest),
    /// Every GET of this blob gets its full length with one byte changed.
    CorruptBlob(Digest),
    /// Before forwarding the first blob upload `PUT`, run this (kill the registry).
    OnUpload(Option<Box<dyn FnOnce() + Send>>),
    /// Every `PATCH` (a streamed upload) is cut after 64 KiB of its body.
    CutPatch,
}

/// A TCP proxy on 127.0.0.1 forwarding one request per connection to a registry.
pub struct Proxy {
    addr: String,
    pub fault: Arc<Mutex<Fault>>,
    /// GETs of faulted blobs seen.
    pub blob_gets: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let proxy = Proxy {
            addr,
            fault: Arc::new(Mutex::new(fault)),
            blob_gets: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (fault, gets, stop) = (
            proxy.fault.clone(),
            proxy.blob_gets.clone(),
            proxy.stop.clone(),
        );
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (fault, gets, upstream) = (fault.clone(), gets.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &upstream, &fault, &gets);
                });
            }
        });
        proxy
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn handle(
    conn: TcpStream,
    upstream: &str,
    fault: &Mutex<Fault>,
    gets: &AtomicUsize,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.clone();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let blob = path
        .rsplit_once("/blobs/")
        .and_then(|(_, d)| d.parse::<Digest>().ok());

    // Faults that act before forwarding.
    let mut corrupt = None;
    {
        let mut fault = fault.lock().expect("fault");
        match &mut *fault {
            Fault::OnUpload(action) if method == "PUT" && path.contains("/blobs/uploads/") => {
                if let Some(action) = action.take() {
                    action();
                }
            }
            Fault::CloseMidBlobOnce(d) | Fault::TruncateBlob(d) | Fault::CorruptBlob(d)
                if method == "GET" && blob == Some(*d) =>
            {
                let n = gets.fetch_add(1, Ordering::SeqCst);
                corrupt = Some(match &*fault {
                    Fault::CloseMidBlobOnce(_) if n > 0 => None,
                    Fault::CorruptBlob(_) => Some(true),
                    _ => Some(false),
                })
                .flatten();
            }
            _ => {}
        }
    }

    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&head)?;
    // Forward the request body, streaming.
    let cut = matches!(*fault.lock().expect("fault"), Fault::CutPatch) && method == "PATCH";
    if chunked {
        let forwarded = forward_chunked(&mut reader, &mut up, cut.then_some(64 * 1024))?;
        if !forwarded {
            let _ = up.shutdown(Shutdown::Both);
            return conn.shutdown(Shutdown::Both);
        }
    } else {
        std::io::copy(&mut (&mut reader).take(content_length as u64), &mut up)?;
    }
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let mut out = conn;
    match corrupt {
        None => out.write_all(&response)?,
        Some(flip) => {
            let split = response
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(response.len(), |i| i + 4);
            let (head, body) = response.split_at(split);
            out.write_all(head)?;
            if flip {
                let mut body = body.to_vec();
                if let Some(b) = body.first_mut() {
                    *b ^= 0xff;
                }
                out.write_all(&body)?;
            } else {
                out.write_all(&body[..body.len() / 2])?;
            }
        }
    }
    out.flush()?;
    out.shutdown(Shutdown::Both)
}

/// Forwards a chunked request body to its end (false: cut after `limit` bytes of chunks).
fn forward_chunked(
    reader: &mut impl BufRead,
    up: &mut TcpStream,
    limit: Option<u64>,
) -> std::io::Result<bool> {
    let mut sent = 0u64;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        up.write_all(line.as_bytes())?;
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut trailer = String::new();
                reader.read_line(&mut trailer)?;
                up.write_all(trailer.as_bytes())?;
                if trailer == "\r\n" || trailer.is_empty() {
                    return Ok(true);
                }
            }
        }
        std::io::copy(&mut (&mut *reader).take(size + 2), up)?;
        sent += size;
        if limit.is_some_and(|limit| sent >= limit) {
            return Ok(false);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test images

/// An image written into a store.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub manifest: Digest,
    pub config: Digest,
    pub layers: Vec<LayerRecord>,
}

/// Deterministic, incompressible bytes.
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = seed.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    }) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tar_of(seed: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let data = noise(seed, 300 * 1024);
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, format!("{seed}.bin"), data.as_slice())
        .expect("tar");
    builder.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Writes an image with one gzip layer per seed (or one "zstd"-typed layer) into `store`.
pub fn image(store: &LocalStore, seeds: &[&str], arch: &str, layer_type: &str) -> TestImage {
    let mut layers = Vec::new();
    for seed in seeds {
        let tar = tar_of(seed);
        let blob = gzip(&tar);
        // Through an ingest, as a builder would.
        let mut ingest = store.ingest().expect("ingest");
        ingest.write_all(&blob).expect("write");
        let digest = ingest.commit(None).expect("commit");
        layers.push(LayerRecord {
            digest,
            diff_id: Digest::of(&tar),
            size: blob.len() as u64,
            media_type: layer_type.to_string(),
            urls: Vec::new(),
        });
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", l.diff_id))
        .collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Env":["SEEDS={}"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        seeds.join(","),
        diff_ids.join(",")
    );
    let config_digest = store.write_blob(config.as_bytes()).expect("config");
    let layer_json: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                l.media_type, l.digest, l.size
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layer_json.join(",")
    );
    let manifest = store.write_blob(manifest.as_bytes()).expect("manifest");
    TestImage {
        manifest,
        config: config_digest,
        layers,
    }
}

pub const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A one-layer gzip image for `seed`.
pub fn simple(store: &LocalStore, seed: &str) -> TestImage {
    image(store, &[seed], "amd64", GZIP)
}

/// A stage record for `image`.
pub fn record(image: &TestImage, digest: Digest, builder: &str) -> StageRecord {
    StageRecord {
        digest,
        parent: Some(Digest::of(b"parent")),
        manifest: image.manifest,
        config: image.config,
        layers: image.layers.clone(),
        inputs: vec![
            serde_json::json!({"kind": "instructions", "lines": ["apt-get install -y curl"]}),
        ],
        image: "app".into(),
        stage: "install".into(),
        created_unix: 1_700_000_000,
        build_millis: 1234,
        meta: BTreeMap::from([
            ("git.commit".to_string(), "0123abcd".to_string()),
            ("builder".to_string(), builder.to_string()),
        ]),
    }
}

/// A fresh store in a temp dir.
pub fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("store");
    (dir, store)
}

/// Files under `blobs/sha256` and `ingest` of a store.
pub fn store_files(store: &LocalStore) -> (Vec<String>, usize) {
    let names = |p: PathBuf| -> Vec<String> {
        fs::read_dir(p)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    (
        names(store.root().join("blobs/sha256")),
        names(store.root().join("ingest")).len(),
    )
}

/// Asserts two stores hold identical bytes for `digests`.
pub fn same_blobs(a: &LocalStore, b: &LocalStore, digests: &[Digest]) {
    for d in digests {
        assert_eq!(
            a.read_blob(d).expect("blob in a"),
            b.read_blob(d).expect("blob in b"),
            "{d}"
        );
    }
}
