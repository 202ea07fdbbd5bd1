//! `ansible:` user stages, built for real with the ansible toolbox (`scripts/ansible-toolbox.sh`,
//! which `scripts/install-deps.sh` runs) on a busybox base without Python and on a Debian
//! root file system made with debootstrap.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::{Env, built_stages};

/// A tiny HTTP server on 127.0.0.1: `/file.txt` answers `body`; `/release` answers once
/// `gate` has been opened (a value sent), so a task waiting on it proves the test saw the
/// output printed before it. Returns the address.
fn serve(body: &'static str, gate: mpsc::Receiver<()>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gate = Arc::new(Mutex::new(gate));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let gate = gate.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let path = request.split(' ').nth(1).unwrap_or_default();
                let answer = match path {
                    "/file.txt" => Some(body.to_string()),
                    "/release" => gate
                        .lock()
                        .unwrap()
                        .recv()
                        .ok()
                        .map(|()| "released\n".to_string()),
                    _ => None,
                };
                let response = match answer {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .into()
                    }
                };
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    addr
}

/// Every path in the layers `image` has on top of `base` (from `strata export`'s
/// docker-archive: its manifest's layers, in order).
fn layer_paths(env: &Env, image: &str, base: &str) -> Vec<String> {
    let layers = |name: &str| -> (Vec<String>, PathBuf) {
        let tar = env
            .work
            .path()
            .join(format!("{}.tar", name.replace([':', '/'], "_")));
        let out = env.strata(&[
            "export",
            name,
            "-o",
            tar.to_str().unwrap(),
            "--format",
            "docker-archive",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
        let manifest = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
            .map(|e| serde_json::from_reader::<_, serde_json::Value>(e).unwrap())
            .expect("a docker-archive has manifest.json");
        let layers = manifest[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        (layers, tar)
    };
    let (base_layers, _) = layers(base);
    let (own, tar) = layers(image);
    assert_eq!(
        own[..base_layers.len()],
        base_layers[..],
        "{image} is built on {base}"
    );
    let added = &own[base_layers.len()..];
    let mut paths = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if added.contains(&name) {
            for e in tar::Archive::new(entry).entries().unwrap() {
                paths.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    paths
}

/// No file of the toolbox, of ansible's own files or of a mountpoint is in `paths` (of the
/// layers ansible stages made); `/tmp` holds nothing new.
fn assert_no_toolbox_trace(paths: &[String]) {
    for p in paths {
        let p = p.trim_start_matches("./");
        let trace = p.starts_with(".strata")
            || p.to_ascii_lowercase().contains("ansible")
            || (p.starts_with("tmp/") && p != "tmp/");
        assert!(!trace, "a layer holds {p}");
    }
}

/// file, copy with `.Files.Get` content (and Jinja escaped from the template), lineinfile,
/// command and get_url on busybox, which has no Python; the output of `shell`, `raw` and
/// `script` streams while the task runs (each task waits for the test to have seen its first
/// line, and fails after ten minutes if it is not seen); task names and results are printed;
/// the layers hold no trace of the toolbox.
#[test]
fn a_playbook_builds_on_busybox_with_live_output() {
    let env = Env::new();
    let (open, gate) = mpsc::channel();
    let addr = serve("fetched over http\n", gate);
    let yaml = format!(
        r#"image: app
from: busybox:latest
ansible:
  install:
  - name: the config dir
    file: {{path: /etc/app, state: directory, mode: 0755}}
  - copy:
      content: |
{{{{ .Files.Get "conf/app.conf" | indent 8 }}}}
      dest: /etc/app/app.conf
  - lineinfile: {{path: /etc/app/app.conf, line: "workers {{{{`{{{{ 1 + 1 }}}}`}}}};"}}
  - get_url: {{url: "http://{addr}/file.txt", dest: /etc/app/fetched.txt}}
  - copy:
      dest: /etc/app/wait.sh
      mode: "0755"
      content: |
        #!/bin/sh
        echo script waits for the $1
        timeout 600 wget -q -O - http://{addr}/release >> /etc/app/released
  setup:
  - name: wait for the test
    shell: echo shell waits for the test; timeout 600 wget -q -O /etc/app/released http://{addr}/release
  - raw: echo raw waits for the test; timeout 600 wget -q -O - http://{addr}/release >> /etc/app/released
  - script: /etc/app/wait.sh test
  - command: cat /etc/app/app.conf
"#
    );
    let dir = env.project("app", &yaml);
    std::fs::create_dir(dir.join("conf")).unwrap();
    std::fs::write(dir.join("conf/app.conf"), "listen 80;\n").unwrap();
    let mut child = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = String::new();
    let mut waiting = vec!["shell", "raw", "script"].into_iter().peekable();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(task) = waiting.peek()
            && line.ends_with(&format!("| {task} waits for the test"))
        {
            // Seen while the task runs: the task ends only after this.
            open.send(()).unwrap();
            waiting.next();
        }
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{output}");
    assert_eq!(
        waiting.next(),
        None,
        "a task's output was not streamed:\n{output}"
    );
    for line in [
        "app/install | TASK [the config dir]",
        "app/install | TASK [copy]",
        "app/install | TASK [get_url]",
        "app/setup | TASK [wait for the test]",
        "app/setup | TASK [raw]",
        "app/setup | TASK [script]",
        "app/setup | listen 80;",
        "app/setup | workers 2;",
    ] {
        assert!(
            output.contains(&format!("{line}\n")),
            "{line} in:\n{output}"
        );
    }
    assert_eq!(
        env.run_sh(
            "app",
            "cat /etc/app/app.conf /etc/app/fetched.txt /etc/app/released"
        ),
        "listen 80;\nworkers 2;\nfetched over http\nreleased\nreleased\nreleased\n"
    );
    // Streamed, so not printed again when the task ends.
    assert_eq!(
        output.matches("raw waits for the test").count(),
        1,
        "{output}"
    );
    assert_eq!(env.run_sh("app", "stat -c %a /etc/app"), "755\n");
    let paths = layer_paths(&env, "app", "busybox:latest");
    assert!(paths.iter().any(|p| p == "etc/app/app.conf"), "{paths:?}");
    assert!(!paths.iter().any(|p| p == "tmp/"), "{paths:?}");
    assert_no_toolbox_trace(&paths);
}

/// A failing task fails the build with a non-zero status, naming the task and its line in
/// strata.yaml; its output is in the report, and then the task's configuration, as werf's
/// callback prints it.
#[test]
fn a_failed_task_names_its_line() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  - file: {path: /a, state: touch}\n  \
                - name: breaks\n    shell: echo about to break; exit 3\n  - file: {path: /never, state: touch}\n";
    let dir = env.project("app", yaml);
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "ansible-playbook's status: {stderr}"
    );
    assert!(stderr.contains("strata.yaml:6:5"), "{stderr}");
    assert!(stderr.contains("name: breaks"), "{stderr}");
    assert!(stderr.contains("  about to break\n"), "{stderr}");
    assert!(stderr.contains("  failed (rc=3)\n"), "{stderr}");
    assert!(
        stderr.contains(
            "app/install | Failed task configuration:\n\
             app/install |   name: breaks\n\
             app/install |   shell: echo about to break; exit 3\n"
        ),
        "{stderr}"
    );
    // The task after it never ran.
    let after = stderr.rsplit("TASK [breaks]").next().unwrap_or_default();
    assert!(!after.contains("TASK ["), "{stderr}");
}

/// The digest of an ansible stage is its tasks (and cache versions): editing one task
/// rebuilds that stage and the later ones, nothing before; the same config rebuilds nothing.
#[test]
fn editing_a_task_rebuilds_its_stage_and_the_later_ones() {
    let env = Env::new();
    let config = |install: &str| {
        format!(
            "image: app\nfrom: busybox:latest\nansible:\n  beforeInstall:\n  - file: {{path: /a, state: touch}}\n  \
             install:\n  - copy: {{content: \"{install}\\n\", dest: /b}}\n  setup:\n  - shell: cat /b > /c\n"
        )
    };
    let dir = env.project("app", &config("one"));
    assert_eq!(
        env.build_ok(&dir),
        ["app/from", "app/beforeInstall", "app/install", "app/setup"]
    );
    assert_eq!(env.build_ok(&dir), Vec::<String>::new());
    std::fs::write(dir.join("strata.yaml"), config("two")).unwrap();
    assert_eq!(env.build_ok(&dir), ["app/install", "app/setup"]);
    assert_eq!(env.run_sh("app", "cat /c"), "two\n");
    // A cache version is part of the digest too.
    std::fs::write(
        dir.join("strata.yaml"),
        config("two") + "  setupCacheVersion: 2\n",
    )
    .unwrap();
    let out = env.build(&dir);
    assert_eq!(
        built_stages(&String::from_utf8_lossy(&out.stderr)),
        ["app/setup"]
    );
}

/// A Debian bookworm root file system (debootstrap's minbase), made once per target dir.
fn debian_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-bookworm.tar");
        if tar.exists() {
            return tar;
        }
        let root = tempfile::Builder::new()
            .prefix("strata-debootstrap-")
            .tempdir()
            .unwrap();
        let status = Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(root.path())
            .arg("http://deb.debian.org/debian")
            .stdout(Stdio::null())
            .status()
            .expect("debootstrap is installed by scripts/install-deps.sh");
        assert!(status.success(), "debootstrap of bookworm failed");
        let partial = tar.with_extension(format!("tar.{}", std::process::id()));
        let status = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(root.path())
            .arg("-cf")
            .arg(&partial)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::rename(&partial, &tar).unwrap();
        tar
    })
}

/// On Debian: apt (update_cache, install) works with the toolbox's python3-apt and installs no
/// Python into the image; user and group; the commands modules run see no variable of the
/// toolbox (LD_LIBRARY_PATH, PYTHONPATH, LOCPATH, OPENSSL_MODULES, ANSIBLE_CONFIG).
#[test]
fn apt_user_and_group_on_debian() {
    let env = Env::new();
    import(&env, debian_tar(), "debian:bookworm");
    let yaml = "image: app\nfrom: debian:bookworm\nansible:\n  install:\n  \
                - apt: {name: hello, update_cache: yes}\n  \
                - group: {name: web, gid: 1500}\n  \
                - user: {name: web, uid: 1500, group: web, shell: /bin/sh}\n  \
                - shell: env > /env.txt\n";
    let dir = env.project("app", yaml);
    env.build_ok(&dir);
    assert_eq!(env.run_sh("app", "hello"), "Hello, world!\n");
    assert_eq!(
        env.run_sh("app", "id web"),
        "uid=1500(web) gid=1500(web) groups=1500(web)\n"
    );
    assert_eq!(
        env.run_sh("app", "ls /usr/bin/python3* 2>/dev/null; echo none"),
        "none\n"
    );
    let seen = env.run_sh("app", "cat /env.txt");
    for name in [
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "LOCPATH",
        "OPENSSL_MODULES",
        "ANSIBLE_CONFIG",
        "ANSIBLE_EXECUTABLE",
    ] {
        assert!(!seen.contains(&format!("{name}=")), "{name} in:\n{seen}");
    }
    let paths = layer_paths(&env, "app", "debian:bookworm");
    assert!(paths.iter().any(|p| p == "usr/bin/hello"), "{paths:?}");
    assert_no_toolbox_trace(&paths);
}

/// Imports the root file system (a directory or a tarball) `root` as `name`.
fn import(env: &Env, root: &Path, name: &str) {
    let out = env.strata(&["import", root.to_str().unwrap(), name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the project in `dir`, asserting that the build succeeds (`ok`) or fails; returns
/// what it printed on stderr.
fn build_expecting(env: &Env, dir: &Path, ok: bool) -> String {
    let out = env.build(dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.success(), ok, "{stderr}");
    stderr
}

/// `become: yes` with `become_user` runs the tasks as that user on Debian and on busybox,
/// neither of which has sudo: files made by `file`, `copy`, `shell` and `raw` are its own, the
/// commands run with its id, groups and HOME, and their output still streams (the user is
/// made by the test's own tasks). `become_method: sudo` runs the image's sudo: busybox has
/// none, so the task fails saying so.
#[test]
fn become_user_works_without_sudo_in_the_image() {
    let env = Env::new();
    import(&env, debian_tar(), "debian:bookworm");
    let yaml = |base: &str| {
        format!(
            "image: app\nfrom: {base}\nansible:\n  install:\n  \
             - lineinfile: {{path: /etc/passwd, line: \"web:x:1500:1500:web:/home/web:/bin/sh\"}}\n  \
             - lineinfile: {{path: /etc/group, line: \"web:x:1500:\"}}\n  \
             - lineinfile: {{path: /etc/group, line: \"staff2:x:1600:web\"}}\n  \
             - file: {{path: /home/web, state: directory, owner: web, group: web}}\n  \
             setup:\n  \
             - become: yes\n    become_user: web\n    block:\n    \
             - file: {{path: /home/web/by-file, state: touch}}\n    \
             - copy: {{content: \"copied\\n\", dest: /home/web/by-copy}}\n    \
             - shell: echo shell as $(id -un); id -G > /home/web/groups; echo $HOME > /home/web/home\n    \
             - raw: echo raw as $(id -un); touch /home/web/by-raw\n"
        )
    };
    for base in ["debian:bookworm", "busybox:latest"] {
        let dir = env.project(&base.replace(':', "-"), &yaml(base));
        let stderr = build_expecting(&env, &dir, true);
        for line in ["app/setup | shell as web\n", "app/setup | raw as web\n"] {
            assert!(stderr.contains(line), "{base}: {line} in {stderr}");
        }
        assert_eq!(
            env.run_sh(
                "app",
                "cd /home/web && stat -c '%n %U:%G' by-file by-copy by-raw groups && cat groups home"
            ),
            "by-file web:web\nby-copy web:web\nby-raw web:web\ngroups web:web\n\
             1500 1600\n/home/web\n",
            "{base}"
        );
        assert_no_toolbox_trace(&layer_paths(&env, "app", base));
    }
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  \
                - file: {path: /x, state: touch}\n    become: yes\n    become_user: app\n    \
                become_method: sudo\n";
    let stderr = build_expecting(&env, &env.project("sudo", yaml), false);
    assert!(stderr.contains("sudo: not found"), "{stderr}");
}

/// An Alpine-shaped root file system, made here for want of an Alpine image offline: musl's
/// loader and libc (Debian's `musl`) as `/lib/ld-musl-x86_64.so.1`, busybox as `/bin/sh` and
/// the rest, Alpine's `/etc/os-release`, no glibc; and for `apk`, a stand-in for apk-tools at
/// `/sbin/apk` that logs how it is called and records what it adds in `/etc/apk/world`.
fn alpine_root(env: &Env) -> PathBuf {
    let root = env.work.path().join("alpine");
    std::fs::create_dir(&root).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(crate::support::busybox_tar())
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(untar.success());
    let musl = std::fs::canonicalize("/lib/ld-musl-x86_64.so.1")
        .expect("musl is installed by scripts/install-deps.sh");
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::copy(musl, root.join("lib/ld-musl-x86_64.so.1")).unwrap();
    std::os::unix::fs::symlink(
        "ld-musl-x86_64.so.1",
        root.join("lib/libc.musl-x86_64.so.1"),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.0\nPRETTY_NAME=\"Alpine Linux v3.19\"\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/alpine-release"), "3.19.0\n").unwrap();
    std::fs::create_dir_all(root.join("etc/apk")).unwrap();
    std::fs::write(root.join("etc/apk/world"), "busybox\n").unwrap();
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    let apk = root.join("sbin/apk");
    std::fs::write(
        &apk,
        "#!/bin/sh\necho \"$*\" >> /var/log/apk.log\ncase \"$1\" in\n\
         update) echo 'OK: 2 distinct packages available' ;;\n\
         add) shift; for p; do echo \"$p\" >> /etc/apk/world; echo \"(1/1) Installing $p (1.0-r0)\"; done ;;\n\
         *) exit 1 ;;\nesac\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&apk, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    root
}

/// On a musl base (Alpine-shaped, no glibc, no Python): command, shell, file, copy with
/// `.Files.Get` content, lineinfile; `apk` (community.general's module, in the toolbox) runs
/// the image's apk: `update` for `update_cache`, then `add` for a package not in the world
/// file, and nothing for one there; without apk in the image the task fails naming it.
#[test]
fn a_musl_base_runs_its_tasks_and_apk_runs_the_images_apk() {
    let env = Env::new();
    import(&env, &alpine_root(&env), "alpine:3.19");
    let yaml = "image: app\nfrom: alpine:3.19\nansible:\n  install:\n  \
                - apk: {name: [curl, busybox], update_cache: yes}\n  \
                - file: {path: /etc/app, state: directory, mode: 0750}\n  \
                - copy:\n      content: |\n{{ .Files.Get \"app.conf\" | indent 8 }}\n      dest: /etc/app/app.conf\n  \
                - lineinfile: {path: /etc/app/app.conf, line: \"port 8080\"}\n  \
                - command: cat /etc/alpine-release\n  \
                - shell: /lib/ld-musl-x86_64.so.1 2>&1 | head -n 1 > /etc/app/libc; . /etc/os-release; echo \"on $ID\"\n";
    let dir = env.project("app", yaml);
    std::fs::write(dir.join("app.conf"), "name app\n").unwrap();
    let stderr = build_expecting(&env, &dir, true);
    for line in ["app/install | 3.19.0\n", "app/install | on alpine\n"] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    assert_eq!(
        env.run_sh(
            "app",
            "cat /etc/app/app.conf /etc/app/libc /var/log/apk.log /etc/apk/world; stat -c %a /etc/app"
        ),
        "name app\nport 8080\nmusl libc (x86_64)\n\
         update\n-v info --description curl\n-v info --description busybox\nadd curl\n\
         busybox\ncurl\n750\n"
    );
    let paths = layer_paths(&env, "app", "alpine:3.19");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("libc.so.6") || p.contains("ld-linux")),
        "{paths:?}"
    );
    assert_no_toolbox_trace(&paths);
    // Without apk in the image (busybox), the task fails saying so.
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  - apk: {name: curl}\n";
    let stderr = build_expecting(&env, &env.project("noapk", yaml), false);
    assert!(
        stderr.contains("Failed to find required executable \"apk\""),
        "{stderr}"
    );
}

/// Every module of werf's list (the one the config is checked against) is in the toolbox:
/// ansible-core's own and those of the collections it ships resolve (`--syntax-check` fails
/// on a module it cannot find). An ansible-playbook run by a task streams its tasks' output
/// through the stage's, and the tasks after it still stream.
#[test]
fn every_module_of_werfs_list_is_in_the_toolbox() {
    let env = Env::new();
    let mut playbook = String::from("- hosts: all\n  gather_facts: no\n  tasks:\n");
    for module in strata_frontend::stapel::ANSIBLE_MODULES {
        playbook.push_str(&format!("  - {module}: {{}}\n"));
    }
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  \
                - copy:\n      content: |\n{{ .Files.Get \"all.yml\" | indent 8 }}\n      dest: /all.yml\n  \
                - shell: /.strata/ansible/bin/ansible-playbook --syntax-check /all.yml\n  \
                - copy: {content: \"- hosts: all\\n  tasks:\\n  - command: echo inner task\\n\", dest: /inner.yml}\n  \
                - shell: /.strata/ansible/bin/ansible-playbook /inner.yml\n  \
                - command: echo after the inner run\n";
    let dir = env.project("app", yaml);
    std::fs::write(dir.join("all.yml"), playbook).unwrap();
    let stderr = build_expecting(&env, &dir, true);
    assert!(
        stderr.contains("app/install | playbook: /all.yml\n"),
        "{stderr}"
    );
    // An ansible-playbook run by a task leaves the live output to the stage's own.
    for line in [
        "app/install | inner task\n",
        "app/install | after the inner run\n",
    ] {
        assert_eq!(stderr.matches(line).count(), 1, "{line} in {stderr}");
    }
}

/// A base without `/bin/sh` (distroless-like): ansible's local connection starts modules
/// through the toolbox's bash there, and so do `shell` tasks; nothing of it lands in the layer.
#[test]
fn a_base_without_a_shell_runs_its_tasks() {
    let env = Env::new();
    let root = env.work.path().join("noshell");
    std::fs::create_dir(&root).unwrap();
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(crate::support::busybox_tar())
        .arg("-C")
        .arg(&root)
        .status()
        .unwrap();
    assert!(untar.success());
    std::fs::remove_file(root.join("bin/sh")).unwrap();
    import(&env, &root, "noshell:latest");
    let yaml = "image: app\nfrom: noshell:latest\nansible:\n  install:\n  \
                - copy: {content: \"hello\\n\", dest: /hello.txt}\n  \
                - shell: readlink /proc/$$/exe > /shell.txt\n";
    let dir = env.project("app", yaml);
    env.build_ok(&dir);
    let cat = |path: &str| {
        let out = env.strata(&["run", "app", "cat", path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cat("/hello.txt"), "hello\n");
    assert_eq!(cat("/shell.txt"), "/.strata/toolbox/bin/bash\n");
    assert_no_toolbox_trace(&layer_paths(&env, "app", "noshell:latest"));
}

/// `--introspect-stage` of an ansible stage: a shell in its result where the toolbox's
/// `ansible-playbook` and the stage's playbook are at hand, one task runs again by its tag
/// and an edited copy of the playbook runs too.
#[test]
fn introspecting_an_ansible_stage_reruns_and_edits_its_tasks() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  - copy: {content: \"one\\n\", dest: /one}\n  \
                - shell: echo again >> /two\n";
    let dir = env.project("app", yaml);
    let script = "ansible-playbook --tags strata_task_1 /.strata/run/ansible/playbook.yml >/dev/null\n\
                  cat /two\n\
                  sed 's/echo again/echo edited/' /.strata/run/ansible/playbook.yml > /tmp/p.yml\n\
                  ansible-playbook /tmp/p.yml >/dev/null\n\
                  cat /two\nexit\n";
    let out = crate::debug::with_input(
        {
            let mut cmd = env.cmd();
            cmd.args([
                "build",
                "--progress",
                "plain",
                "--introspect-stage",
                "app/install",
            ])
            .current_dir(&dir);
            cmd
        },
        script,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("app/install: an ansible stage: `/.strata/ansible/bin/ansible-playbook"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "again\nagain\nagain\nagain\nedited\n"
    );
    // The shell's runs stay out of the image.
    assert_eq!(env.run_sh("app", "cat /two"), "again\n");
}

/// A failed task opens the debugger like a failed shell line: `rerun` runs that task again,
/// not the tasks before it.
#[test]
fn a_failed_task_lands_in_the_debugger_and_rerun_runs_it_again() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  - shell: echo first >> /log\n  \
                - name: breaks\n    shell: echo breaking >> /log; exit 3\n";
    let dir = env.project("app", yaml);
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "plain", "--debugger"])
        .current_dir(&dir);
    let out = crate::debug::with_input(cmd, "rerun\nexec cat /log\nexit\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("strata.yaml:6:5"), "{stdout}");
    let rerun = stdout
        .split("(strata) rerun\n")
        .nth(1)
        .and_then(|s| s.split("(strata)").next())
        .unwrap_or_default();
    assert!(rerun.contains("TASK [breaks]"), "{stdout}");
    assert!(!rerun.contains("TASK [shell]"), "{stdout}");
    assert!(
        stdout.contains("(strata) exec cat /log\nfirst\nbreaking\nbreaking\n"),
        "{stdout}"
    );
}

/// A failure record of an ansible stage keeps its playbook: `strata debug` reruns the
/// failed task with this machine's toolbox.
#[test]
fn a_kept_ansible_failure_reruns_its_task_in_strata_debug() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\nansible:\n  install:\n  - shell: echo first >> /log\n  \
                - name: breaks\n    shell: echo breaking >> /log; exit 3\n";
    let dir = env.project("app", yaml);
    let out = env
        .cmd()
        .args(["build", "--progress", "plain"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .split("failure kept as ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .unwrap_or_else(|| panic!("no failure kept:\n{stderr}"));
    let mut cmd = env.cmd();
    cmd.args(["debug", id]);
    let out = crate::debug::with_input(cmd, "rerun\nexec cat /log\nexit\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TASK [breaks]"), "{stdout}");
    assert!(
        stdout.contains("(strata) exec cat /log\nfirst\nbreaking\nbreaking\n"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An ansible stage gets the git patches first, as a shell stage: a commit matching its
/// `stageDependencies` rebuilds it, and its tasks see the new files; the service variables
/// are set for the commands its modules run.
#[test]
fn an_ansible_stage_sees_the_git_patch_and_the_service_variables() {
    let env = Env::new();
    let yaml = "image: app\nfrom: busybox:latest\ngit:\n- add: /src\n  to: /app\n  stageDependencies:\n    \
                install: [\"*.txt\"]\nansible:\n  install:\n  \
                - shell: cat /app/a.txt > /seen; echo \"$WERF_COMMIT_HASH\" > /commit\n";
    let dir = env.project("repo", yaml);
    let git = |args: &[&str]| crate::support::git(&dir, args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir(dir.join("src")).unwrap();
    for content in ["one\n", "two\n"] {
        std::fs::write(dir.join("src/a.txt"), content).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", content.trim()]);
        let built = env.build_ok(&dir);
        assert!(built.contains(&"app/install".to_string()), "{built:?}");
        assert_eq!(env.run_sh("app", "cat /seen"), content);
        assert_eq!(
            env.run_sh("app", "cat /commit"),
            git(&["rev-parse", "HEAD"]) + "\n"
        );
    }
}
