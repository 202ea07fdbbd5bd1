//! werf-style path masks: `includePaths`, `excludePaths` and `stageDependencies`.
//!
//! A mask is a glob over `/`-separated paths relative to a mapping's `add` directory:
//!
//! | syntax   | meaning                                                            |
//! |----------|--------------------------------------------------------------------|
//! | `*`      | any run of characters except `/` (dot files included)              |
//! | `**`     | any number of whole path components (`**/x`, `a/**/x`, `a/**`)     |
//! | `?`      | one character except `/`                                           |
//! | `[set]`  | one character of the set; `[^set]` and `[!set]` negate it          |
//! | `{a,b}`  | either alternative                                                 |
//! | `\c`     | the character `c` literally                                        |
//!
//! **A mask that matches a directory matches everything below it**: `src` and `s*` both match
//! `src/a/b.rs`. This is implemented by testing the path and each of its parent directories,
//! so `matches("a/b/c")` is `glob("a") || glob("a/b") || glob("a/b/c")`.
//!
//! Listings are sorted, so neighbouring paths share their parents: a [`Matcher`] remembers the
//! parents of the previous path and tests each directory once per run of paths instead of
//! once per file (100,000 files in 10,000 directories cost 110,000 glob tests, not 400,000).
//!
//! Leading and trailing `/` are ignored (`/src/` is `src`); a mask that is empty after that
//! (`""`, `/`) matches everything.

use std::fmt;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use strata_digest::{Digest, Hasher};

use crate::FileEntry;

/// Which list a mask came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskList {
    /// `includePaths` of a git mapping.
    Include,
    /// `excludePaths` of a git mapping.
    Exclude,
    /// Any other list given to [`MaskSet::new`], such as `stageDependencies.install`.
    Masks,
}

impl fmt::Display for MaskList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaskList::Include => "includePaths",
            MaskList::Exclude => "excludePaths",
            MaskList::Masks => "masks",
        })
    }
}

/// A mask that is not a valid glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mask `{mask}` ({list} entry {index}{}): {message}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
pub struct Error {
    /// The mask as the user wrote it.
    pub mask: String,
    /// Which list it came from.
    pub list: MaskList,
    /// Its position in that list, from 0.
    pub index: usize,
    /// What is wrong, lower case, with a hint when there is one.
    pub message: String,
    /// 1-based character column in `mask` where the problem is, when known.
    pub column: Option<usize>,
}

/// A compiled list of masks. Matches nothing when the list is empty.
#[derive(Debug, Clone)]
pub struct MaskSet {
    set: GlobSet,
    len: usize,
}

impl MaskSet {
    /// Compiles `masks` (a `stageDependencies` list, for example).
    pub fn new(masks: &[String]) -> Result<MaskSet, Error> {
        MaskSet::with_list(masks, MaskList::Masks)
    }

    pub(crate) fn with_list(masks: &[String], list: MaskList) -> Result<MaskSet, Error> {
        let mut builder = GlobSetBuilder::new();
        for (index, mask) in masks.iter().enumerate() {
            let normalized = normalize(mask);
            let pattern = if normalized.is_empty() {
                "**"
            } else {
                normalized
            };
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| glob_error(mask, list, index, &e))?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| Error {
            mask: masks.join(", "),
            list,
            index: 0,
            message: e.to_string(),
            column: None,
        })?;
        Ok(MaskSet {
            set,
            len: masks.len(),
        })
    }

    /// True when no masks were given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `path` (relative to `add`, `/`-separated) or one of its parent directories
    /// matches any mask. To test many paths, [`MaskSet::matcher`] is cheaper.
    pub fn matches(&self, path: &str) -> bool {
        self.matcher().matches(path)
    }

    /// A [`MaskSet::matches`] that remembers the parent directories of the last path, for
    /// testing many paths in sorted order.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            set: self,
            dir: String::new(),
            parents: Vec::new(),
        }
    }

    /// One glob test of exactly `path`. `from_bytes` borrows: `Candidate::new` goes through
    /// `Path` and `GlobSet::is_match` builds a fresh candidate per call.
    fn test(&self, path: &str) -> bool {
        self.set
            .is_match_candidate(&Candidate::from_bytes(path.as_bytes()))
    }

    /// The checksum of the files among `files` that match.
    ///
    /// It is the sha256 of, for each matching file in path order,
    /// `path NUL mode(octal, e.g. 100644) NUL oid(hex) NUL`. Only git object ids are hashed,
    /// never file contents, so it is cheap and identical for a commit and an unchanged worktree.
    /// A single-file mapping (`add` naming a file, so `path` is `""`) is matched by the
    /// file's name. **When nothing matches, the checksum is the sha256 of the empty string**
    /// (`sha256:e3b0c442…b855`), the same as for an empty mask list.
    pub fn checksum(&self, files: &[FileEntry]) -> Digest {
        Self::checksum_of(&self.matched(files))
    }

    /// The files among `files` that match, each with the path the masks saw, in path order
    /// (what [`MaskSet::checksum`] hashes; `--explain` names the ones that changed).
    pub fn matched<'f>(&self, files: &'f [FileEntry]) -> Vec<(&'f str, &'f FileEntry)> {
        let mut matcher = self.matcher();
        let mut matched: Vec<(&str, &FileEntry)> = files
            .iter()
            .map(|f| (mask_path(f), f))
            .filter(|(p, _)| matcher.matches(p))
            .collect();
        if !matched.is_sorted_by(|a, b| a.0 <= b.0) {
            matched.sort_by(|a, b| a.0.cmp(b.0));
        }
        matched
    }

    /// The [`MaskSet::checksum`] of files [`MaskSet::matched`] returned.
    pub fn checksum_of(matched: &[(&str, &FileEntry)]) -> Digest {
        let mut h = Hasher::new();
        // One buffer for every hex id: `to_hex().to_string()` allocated per file.
        let mut hex = gix::hash::Kind::hex_buf();
        for (path, f) in matched {
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(f.mode.as_octal().as_bytes());
            h.update(b"\0");
            h.update(f.oid.hex_to_buf(&mut hex).as_bytes());
            h.update(b"\0");
        }
        h.finish()
    }
}

/// Tests paths against a [`MaskSet`] like [`MaskSet::matches`], remembering which parent
/// directories of the previous path matched. Any order of paths gives the same answers;
/// sorted order (neighbours sharing parents) makes it fast.
#[derive(Debug, Clone)]
pub struct Matcher<'m> {
    set: &'m MaskSet,
    /// The previous path up to (not including) its last `/`.
    dir: String,
    /// For each `/` at byte `i > 0` of `dir`: `(i, whether dir[..i] or a shorter parent
    /// matched)`, in increasing `i`.
    parents: Vec<(usize, bool)>,
}

impl Matcher<'_> {
    /// Whether `path` or one of its parent directories matches any mask.
    pub fn matches(&mut self, path: &str) -> bool {
        if self.set.len == 0 {
            return false;
        }
        let bytes = path.as_bytes();
        let Some(last) = bytes.iter().rposition(|&b| b == b'/') else {
            return self.set.test(path);
        };
        // A remembered parent `dir[..i]` is also a parent of `path` when the two agree on
        // the first `i` bytes and `path` has a `/` at `i`.
        let common = self
            .dir
            .bytes()
            .zip(&bytes[..last])
            .take_while(|(a, b)| a == *b)
            .count();
        while let Some(&(i, _)) = self.parents.last() {
            if i <= common && bytes[i] == b'/' {
                break;
            }
            self.parents.pop();
        }
        let (start, mut any) = self.parents.last().map_or((1, false), |&(i, m)| (i + 1, m));
        for i in start..=last {
            if bytes[i] == b'/' {
                // Below a matching directory everything matches: no more glob tests.
                any = any || self.set.test(&path[..i]);
                self.parents.push((i, any));
            }
        }
        self.dir.clear();
        self.dir.push_str(&path[..last]);
        any || self.set.test(path)
    }
}

/// Which files of a mapping are taken: under `add`, passing `includePaths`, not `excludePaths`.
#[derive(Debug, Clone)]
pub struct PathFilter {
    add: String,
    include: MaskSet,
    exclude: MaskSet,
}

impl PathFilter {
    /// `add` is repo-relative (`/` or `""` for the whole repository, `/src` or `src` for a
    /// directory or file); `include` and `exclude` are relative to `add`. An empty `include`
    /// takes everything.
    pub fn new(add: &str, include: &[String], exclude: &[String]) -> Result<PathFilter, Error> {
        Ok(PathFilter {
            add: normalize(add).to_string(),
            include: MaskSet::with_list(include, MaskList::Include)?,
            exclude: MaskSet::with_list(exclude, MaskList::Exclude)?,
        })
    }

    /// A filter taking the whole repository.
    pub fn all() -> PathFilter {
        PathFilter {
            add: String::new(),
            include: MaskSet::empty(),
            exclude: MaskSet::empty(),
        }
    }

    /// The `excludePaths` masks: a directory they match has nothing of the mapping below it.
    pub(crate) fn exclude_set(&self) -> &MaskSet {
        &self.exclude
    }

    /// The normalized `add`: repo-relative, no leading or trailing `/`, `""` for the root.
    pub fn add(&self) -> &str {
        &self.add
    }

    /// Whether a path relative to `add` passes include and exclude. The empty path (the
    /// `add` of a single file) always passes.
    pub fn matches(&self, rel: &str) -> bool {
        self.matcher().matches(rel)
    }

    /// A [`PathFilter::matches`] for many paths in sorted order; see [`Matcher`].
    pub fn matcher(&self) -> FilterMatcher<'_> {
        FilterMatcher {
            include: self.include.matcher(),
            exclude: self.exclude.matcher(),
        }
    }

    /// Maps a repo-relative path to its path relative to `add`, if it is under `add`.
    /// The file `add` itself maps to `""`.
    pub fn relative<'p>(&self, repo_path: &'p str) -> Option<&'p str> {
        if self.add.is_empty() {
            return Some(repo_path);
        }
        let rest = repo_path.strip_prefix(self.add.as_str())?;
        if rest.is_empty() {
            Some(rest)
        } else {
            rest.strip_prefix('/')
        }
    }
}

/// [`PathFilter::matches`] with memory of the previous path's parents; see [`Matcher`].
#[derive(Debug, Clone)]
pub struct FilterMatcher<'f> {
    include: Matcher<'f>,
    exclude: Matcher<'f>,
}

impl FilterMatcher<'_> {
    /// Whether a path relative to `add` passes include and exclude.
    pub fn matches(&mut self, rel: &str) -> bool {
        if rel.is_empty() {
            return true;
        }
        (self.include.set.is_empty() || self.include.matches(rel)) && !self.exclude.matches(rel)
    }
}

impl MaskSet {
    fn empty() -> MaskSet {
        MaskSet {
            set: GlobSet::empty(),
            len: 0,
        }
    }
}

/// The path masks see: relative to `add`, or the file name for a single-file `add`.
fn mask_path(f: &FileEntry) -> &str {
    if f.path.is_empty() {
        f.repo_path.rsplit('/').next().unwrap_or(&f.repo_path)
    } else {
        &f.path
    }
}

fn normalize(mask: &str) -> &str {
    mask.trim_start_matches('/').trim_end_matches('/')
}

fn glob_error(mask: &str, list: MaskList, index: usize, e: &globset::Error) -> Error {
    use globset::ErrorKind as K;
    let chars: Vec<char> = mask.chars().collect();
    let unescaped = |want: char| -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '\\' {
                i += 2;
                continue;
            }
            if chars[i] == want {
                out.push(i + 1);
            }
            i += 1;
        }
        out
    };
    let (message, column) = match e.kind() {
        K::UnclosedClass => (
            "unclosed character class; missing ']' (maybe escape '[' with '\\['?)".to_string(),
            unescaped('[').last().copied(),
        ),
        K::InvalidRange(a, b) => (
            format!("invalid range '{a}-{b}': the start is after the end"),
            mask.find(&format!("{a}-{b}"))
                .map(|byte| mask[..byte].chars().count() + 1),
        ),
        K::UnopenedAlternates => (
            "unopened alternate group; missing '{' (maybe escape '}' with '\\}'?)".to_string(),
            unescaped('}').first().copied(),
        ),
        K::UnclosedAlternates => (
            "unclosed alternate group; missing '}' (maybe escape '{' with '\\{'?)".to_string(),
            unescaped('{').last().copied(),
        ),
        K::DanglingEscape => (
            "dangling '\\' at the end (escape it as '\\\\')".to_string(),
            Some(chars.len()),
        ),
        _ => (e.kind().to_string().to_lowercase(), None),
    };
    Error {
        mask: mask.to_string(),
        list,
        index,
        message,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(masks: &[&str]) -> MaskSet {
        let masks: Vec<String> = masks.iter().map(|s| s.to_string()).collect();
        MaskSet::new(&masks).expect("test masks are valid")
    }

    /// `syntax!(name, mask, [matching paths], [non-matching paths])`
    macro_rules! syntax {
        ($name:ident, $mask:expr, [$($yes:expr),* $(,)?], [$($no:expr),* $(,)?]) => {
            #[test]
            fn $name() {
                let s = set(&[$mask]);
                $(assert!(s.matches($yes), "{:?} should match {:?}", $mask, $yes);)*
                $(assert!(!s.matches($no), "{:?} should not match {:?}", $mask, $no);)*
            }
        };
    }

    syntax!(
        star_stays_in_component,
        "*.rb",
        ["a.rb", ".rb", "x.y.rb"],
        ["d/a.rb", "a.rbx"]
    );
    syntax!(
        star_dir_matches_content,
        "s*",
        ["src", "src/a/b.c", "s"],
        ["x/src"]
    );
    syntax!(star_alone_matches_all, "*", ["a", "a/b/c", ".hidden"], []);
    syntax!(
        double_star_prefix,
        "**/*.js",
        ["a.js", "x/a.js", "x/y/a.js"],
        ["a.jsx", "js"]
    );
    syntax!(
        double_star_middle,
        "src/**/*.js",
        ["src/a.js", "src/x/y/a.js"],
        ["a.js", "lib/a.js"]
    );
    syntax!(
        double_star_suffix,
        "src/**",
        ["src/a", "src/a/b"],
        ["srcx/a", "lib/src/a"]
    );
    syntax!(
        double_star_inline_is_star,
        "src/**.js",
        ["src/a.js"],
        ["src/x/a.js"]
    );
    syntax!(
        question,
        "a?c",
        ["abc", "a.c", "abc/d"],
        ["ac", "a/c", "abbc"]
    );
    syntax!(
        set_chars,
        "[ab].txt",
        ["a.txt", "b.txt"],
        ["c.txt", "ab.txt"]
    );
    syntax!(set_range, "f[0-9]", ["f0", "f9/x"], ["fa", "f10"]);
    syntax!(
        negated_caret,
        "[^ab].txt",
        ["c.txt", "..txt"],
        ["a.txt", "b.txt"]
    );
    syntax!(negated_bang, "[!ab].txt", ["c.txt"], ["a.txt"]);
    syntax!(escape_star, "a\\*b", ["a*b"], ["axb", "ab"]);
    syntax!(escape_bracket, "\\[x\\]", ["[x]"], ["x"]);
    syntax!(
        literal_dir,
        "src/lib",
        ["src/lib", "src/lib/a.rs", "src/lib/x/y"],
        ["src/library", "src/li"]
    );
    syntax!(leading_trailing_slash, "/src/", ["src/a"], ["a/src"]);
    syntax!(empty_matches_all, "", ["a", "b/c"], []);
    syntax!(alternates, "{a,b}.c", ["a.c", "b.c"], ["c.c"]);
    syntax!(spaces, "my file.txt", ["my file.txt"], ["my_file.txt"]);

    /// The memoizing matcher must agree with testing every parent afresh, whatever the order
    /// of paths (sorted, reversed, interleaved siblings and odd slashes).
    #[test]
    fn matcher_agrees_with_fresh_tests() {
        let paths = [
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/d.rs",
            "a/b/cd/e",
            "a/bc/d",
            "ab/c",
            "src",
            "src/a.rs",
            "src/lib/a.rs",
            "src/lib/x/y",
            "src/library/z",
            "src/m1/p1/f.go",
            "src/m10/p1/f.go",
            "src/m1/p2/f.md",
            "x/src/a",
            "/a/b",
            "a//b",
            "a/b/",
            "//",
            "d/a.rb",
            "a.rb",
        ];
        let masks: &[&[&str]] = &[
            &["src/lib"],
            &["s*"],
            &["**/*.go"],
            &["src/m1*/**"],
            &["*.rb", "a/b"],
            &["a/b/c"],
            &[""],
            &["**/c"],
        ];
        let fresh = |s: &MaskSet, p: &str| {
            p.bytes()
                .enumerate()
                .any(|(i, b)| b == b'/' && i > 0 && s.set.is_match(&p[..i]))
                || s.set.is_match(p)
        };
        let mut sorted = paths.to_vec();
        sorted.sort();
        let mut reversed = sorted.clone();
        reversed.reverse();
        for m in masks {
            let s = set(m);
            for order in [&paths[..], &sorted, &reversed] {
                let mut matcher = s.matcher();
                for p in order {
                    assert_eq!(matcher.matches(p), fresh(&s, p), "{m:?} on {p:?}");
                }
            }
        }
    }

    #[test]
    fn no_masks_match_nothing() {
        let s = MaskSet::new(&[]).expect("empty is valid");
        assert!(s.is_empty());
        assert!(!s.matches("a"));
    }

    #[test]
    fn include_exclude_relative_to_add() {
        let f = PathFilter::new(
            "/src/",
            &["app".into(), "*.md".into()],
            &["app/tmp".into(), "**/*.log".into()],
        )
        .expect("valid masks");
        assert_eq!(f.add(), "src");
        assert_eq!(f.relative("src/app/x"), Some("app/x"));
        assert_eq!(f.relative("src"), Some(""));
        assert_eq!(f.relative("srcx/a"), None);
        assert_eq!(f.relative("lib/src/a"), None);
        assert!(f.matches("app/main.go"));
        assert!(f.matches("README.md"));
        assert!(!f.matches("docs/README.md"));
        assert!(!f.matches("app/tmp/x"));
        assert!(!f.matches("app/x/run.log"));
        assert!(!f.matches("other.txt"));

        let all = PathFilter::new("/", &[], &["vendor".into()]).expect("valid masks");
        assert_eq!(all.relative("a/b"), Some("a/b"));
        assert!(all.matches("a/b"));
        assert!(!all.matches("vendor/x/y"));
    }

    #[test]
    fn bad_globs_name_the_mask() {
        let masks = vec!["ok/*".to_string(), "src/[abc".to_string()];
        let e = MaskSet::new(&masks).expect_err("unclosed class");
        assert_eq!(e.mask, "src/[abc");
        assert_eq!(e.index, 1);
        assert_eq!(e.column, Some(5));
        assert!(e.message.contains("unclosed character class"), "{e}");

        let e = PathFilter::new("/", &[], &["a{b".into()]).expect_err("unclosed alternates");
        assert_eq!((e.list, e.index, e.column), (MaskList::Exclude, 0, Some(2)));
        assert!(e.to_string().contains("excludePaths"), "{e}");

        let e = MaskSet::new(&["x/[z-a]".into()]).expect_err("bad range");
        assert_eq!(e.column, Some(4));
        let e = MaskSet::new(&["abc\\".into()]).expect_err("dangling escape");
        assert_eq!(e.column, Some(4));
        let e = MaskSet::new(&["a}".into()]).expect_err("unopened alternates");
        assert_eq!(e.column, Some(2));
    }
}
