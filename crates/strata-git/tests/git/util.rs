//! A scratch repository driven by the `git` CLI.

use std::path::Path;
use std::process::Command;

use strata_git::{FileEntry, ObjectId, PathFilter, Repository, Rev, Source};

pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = TestRepo { dir };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.name", "Test"]);
        r.git(&["config", "user.email", "test@example.com"]);
        r.git(&["config", "commit.gpgsign", "false"]);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.path(), args, &[])
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn chmod(&self, path: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path().join(path);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub fn symlink(&self, target: &str, path: &str) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).expect("symlink");
    }

    pub fn rm(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("rm");
    }

    /// `git add -A && git commit`, returning the new HEAD.
    pub fn commit(&self, msg: &str) -> ObjectId {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    pub fn head(&self) -> ObjectId {
        oid(&self.git(&["rev-parse", "HEAD"]))
    }

    pub fn repo(&self) -> Repository {
        Repository::discover(self.path()).expect("discover")
    }

    /// `git hash-object` of a committed path.
    pub fn blob(&self, rev_path: &str) -> ObjectId {
        oid(&self.git(&["rev-parse", rev_path]))
    }
}

pub fn git_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

pub fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.trim().as_bytes()).expect("hex oid")
}

pub fn filter(add: &str, include: &[&str], exclude: &[&str]) -> PathFilter {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PathFilter::new(add, &v(include), &v(exclude)).expect("valid filter")
}

pub fn masks(m: &[&str]) -> Vec<String> {
    m.iter().map(|s| s.to_string()).collect()
}

pub fn paths(files: &[FileEntry]) -> Vec<&str> {
    files.iter().map(|f| f.path.as_str()).collect()
}

/// The listing of HEAD through `f`.
pub fn head_files(r: &TestRepo, f: &PathFilter) -> Vec<FileEntry> {
    let repo = r.repo();
    let head = repo.resolve(&Rev::Head).expect("HEAD");
    let snap = repo.snapshot(Source::Commit(head)).expect("snapshot");
    snap.files(f).expect("files")
}
