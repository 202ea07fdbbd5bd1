//! werf's `.Files`: `Get`, `Glob`, `Exists` and `IsDir` on the project directory.
//!
//! Paths are relative to the project directory and may not leave it: absolute paths, `..`
//! that climbs above it and symlinks that point out of it are errors (werf reads only the
//! project's files, and a config that reads `/etc/passwd` would make a build depend on the
//! machine). Unlike werf, which reads committed files only (giterminism), this reads the
//! working tree; `.git` is never visited by `Glob`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::value::Value;

/// The checked absolute path of `rel` under `dir`.
fn resolve(dir: &Path, method: &str, rel: &str) -> Result<PathBuf, String> {
    let outside = || format!(".Files.{method}: {rel:?} is outside the project directory");
    let mut clean = PathBuf::new();
    for component in Path::new(rel).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !clean.pop() {
                    return Err(outside());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    ".Files.{method}: {rel:?} is absolute; paths are relative to the project directory"
                ));
            }
        }
    }
    let path = dir.join(&clean);
    if let (Ok(real), Ok(root)) = (path.canonicalize(), dir.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(format!(
            ".Files.{method}: {rel:?} is a symlink to outside the project directory"
        ));
    }
    Ok(path)
}

/// Calls a `.Files` method.
pub(super) fn call(dir: &Path, method: &str, args: &[Value]) -> Result<Value, String> {
    let want_one = || {
        if args.len() == 1 {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {method}: want 1 got {}",
                args.len()
            ))
        }
    };
    let arg = || match args.first() {
        Some(Value::Str(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
        None => Err(format!("wrong number of args for {method}: want 1 got 0")),
    };
    match method {
        "Get" => {
            want_one()?;
            let rel = arg()?;
            let path = resolve(dir, method, rel)?;
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Value::Str(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                    ".Files.Get: file {rel:?} not found in the project directory"
                )),
                Err(e) => Err(format!(".Files.Get: cannot read {rel:?}: {e}")),
            }
        }
        "Exists" => {
            want_one()?;
            Ok(Value::Bool(resolve(dir, method, arg()?)?.exists()))
        }
        "IsDir" => {
            want_one()?;
            Ok(Value::Bool(resolve(dir, method, arg()?)?.is_dir()))
        }
        "Glob" => {
            want_one()?;
            glob(dir, arg()?)
        }
        other => Err(format!("can't evaluate field {other} in type werf.Files")),
    }
}

fn glob(dir: &Path, pattern: &str) -> Result<Value, String> {
    if Path::new(pattern).is_absolute()
        || Path::new(pattern)
            .components()
            .any(|c| c == Component::ParentDir)
    {
        return Err(format!(
            ".Files.Glob: {pattern:?} is outside the project directory"
        ));
    }
    let matcher = globset::GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!(".Files.Glob: bad pattern {pattern:?}: {e}"))?
        .compile_matcher();
    let mut found = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = std::fs::read_dir(dir.join(&rel))
            .map_err(|e| format!(".Files.Glob: cannot list {}: {e}", dir.join(&rel).display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| format!(".Files.Glob: cannot list {}: {e}", rel.display()))?;
            let name = entry.file_name();
            if rel.as_os_str().is_empty() && name == ".git" {
                continue;
            }
            let child = rel.join(&name);
            let file_type = entry
                .file_type()
                .map_err(|e| format!(".Files.Glob: cannot stat {}: {e}", child.display()))?;
            if file_type.is_dir() {
                stack.push(child);
            } else if matcher.is_match(&child) {
                let key = child.to_string_lossy().replace('\\', "/");
                // Symlinks out of the project are refused like Get refuses them.
                let path = resolve(dir, "Glob", &key)?;
                if path.is_file() {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| format!(".Files.Glob: cannot read {key:?}: {e}"))?;
                    found.insert(
                        key,
                        Value::Str(String::from_utf8_lossy(&bytes).into_owned()),
                    );
                }
            }
        }
    }
    if found.is_empty() {
        // werf refuses an empty match too: a typo in a pattern would otherwise go unnoticed.
        return Err(format!(".Files.Glob: no files match {pattern:?}"));
    }
    Ok(Value::map(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wfile(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn get_exists_glob_and_escapes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("project");
        wfile(&dir, "a.txt", "A");
        wfile(&dir, "conf/x.yaml", "X");
        wfile(&dir, "conf/deep/y.yaml", "Y");
        wfile(&dir, ".git/config", "G");
        wfile(tmp.path(), "secret", "S");
        let s = |x: &str| vec![Value::from(x)];
        let get = |x: &str| call(&dir, "Get", &s(x)).map(|v| v.to_go_string());
        assert_eq!(get("a.txt"), Ok("A".into()));
        assert_eq!(get("./conf/../a.txt"), Ok("A".into()));
        assert_eq!(
            get("../secret"),
            Err(".Files.Get: \"../secret\" is outside the project directory".into())
        );
        assert!(get("/etc/hostname").is_err_and(|e| e.contains("is absolute")));
        assert!(get("nope").is_err_and(|e| e.contains("not found")));
        let glob = |p: &str| call(&dir, "Glob", &s(p)).map(|v| v.to_go_string());
        assert_eq!(glob("conf/*.yaml"), Ok("map[conf/x.yaml:X]".into()));
        assert_eq!(
            glob("conf/**/*.yaml"),
            Ok("map[conf/deep/y.yaml:Y conf/x.yaml:X]".into())
        );
        assert_eq!(
            glob("**/config"),
            Err(".Files.Glob: no files match \"**/config\"".into())
        );
        assert!(glob("../*").is_err());
        assert!(matches!(
            call(&dir, "IsDir", &s("conf")),
            Ok(Value::Bool(true))
        ));
        assert!(matches!(
            call(&dir, "Exists", &s("zzz")),
            Ok(Value::Bool(false))
        ));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("link"))
                .expect("symlink");
            assert!(get("link").is_err_and(|e| e.contains("symlink")));
        }
    }
}
