//! `.dockerignore`: which paths of the build context the `COPY`/`ADD` lowering leaves out,
//! with the semantics of moby's `patternmatcher` (what BuildKit and `docker build` use).
//!
//! Reading the file (`ignorefile.ReadAll`):
//! - a line starting with `#` is a comment (only in column 1); blank lines are skipped;
//!   surrounding whitespace is trimmed;
//! - `!pattern` is an exception: it re-includes what earlier patterns excluded;
//! - patterns are cleaned like Go's `filepath.Clean` (`./a//b/` is `a/b`, `a/../b` is `b`)
//!   and a leading `/` is dropped: every pattern is relative to the context root.
//!
//! Matching a path (`MatchesOrParentMatches`): the patterns are applied in order and the last
//! one that matches decides. A pattern matches a path when it matches the whole path *or any
//! of its parent directories*, so `dir` excludes everything below `dir`.
//!
//! Pattern syntax is Go's `filepath.Match` over the whole relative path plus `**`:
//! - `*` is any run of characters except `/`, `?` one character except `/`;
//! - `[abc]`, `[a-z]`, `[^a-z]` character classes (never matching `/`);
//! - `\c` is a literal `c`;
//! - `**` matches any number of directories (zero included): `**/*.go` matches `a.go` and
//!   `x/y/a.go`; a trailing `**` matches everything below (`dir/**`); a leading `**` followed
//!   by a literal suffix matches any path ending in it (`**.md`).
//!
//! Note that `*.md` only matches at the root (unlike `.gitignore`): use `**/*.md`.

use std::fmt;

/// A syntax error in a `.dockerignore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A line is `!` alone.
    LoneExclamation {
        /// The line number, from 1.
        line: usize,
    },
    /// A pattern is not a valid `filepath.Match` pattern (an unclosed `[`).
    BadPattern {
        /// The line number, from 1.
        line: usize,
        /// The pattern.
        pattern: String,
    },
}

/// What makes a pattern bad, for the errors.
const BAD_PATTERN: &str = "a `[` without its `]`, a class range missing an end, or a trailing `\\` (escape a literal one as `\\[`, `\\-`, `\\\\`)";

/// A syntax error in `COPY --exclude` / `ADD --exclude` patterns (moby's `patternmatcher.New`,
/// which BuildKit's copy gives them to as they are written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExcludeError {
    /// A pattern is `!` alone.
    LoneExclamation,
    /// A pattern is not a valid `filepath.Match` pattern.
    BadPattern(String),
}

impl fmt::Display for ExcludeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExcludeError::LoneExclamation => write!(
                f,
                "illegal exclusion pattern `!` (write `!path` to re-include a path)"
            ),
            ExcludeError::BadPattern(p) => write!(f, "bad pattern `{p}`: {BAD_PATTERN}"),
        }
    }
}

impl std::error::Error for ExcludeError {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LoneExclamation { line } => write!(
                f,
                ".dockerignore:{line}: illegal exclusion pattern `!` (write `!path` to re-include a path)"
            ),
            Error::BadPattern { line, pattern } => write!(
                f,
                ".dockerignore:{line}: bad pattern `{pattern}`: {BAD_PATTERN}"
            ),
        }
    }
}

impl std::error::Error for Error {}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `[...]`: ranges (inclusive) and negation.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` (with its `/`) inside a pattern: `(.*/)?`.
    Dirs,
    /// `**` at the end, or a leading `**` before a literal suffix: anything.
    Any,
}

#[derive(Clone, Debug)]
struct Pattern {
    exclusion: bool,
    text: String,
    tokens: Vec<Token>,
}

/// The parsed `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore`.
    ///
    /// # Errors
    /// [`Error`] for a lone `!` or an unclosed `[`.
    ///
    /// ```
    /// use strata_frontend::dockerfile::ignore::DockerIgnore;
    /// let ignore = DockerIgnore::parse("*.md\n!README.md\nnode_modules\n").unwrap();
    /// assert!(ignore.is_excluded("CHANGELOG.md"));
    /// assert!(!ignore.is_excluded("README.md"));
    /// assert!(ignore.is_excluded("node_modules/x/index.js"));
    /// assert!(!ignore.may_include_below("node_modules"));
    /// ```
    pub fn parse(text: &str) -> Result<DockerIgnore, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(Error::LoneExclamation { line: line_no });
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned).ok_or_else(|| Error::BadPattern {
                line: line_no,
                pattern: p.to_string(),
            })?;
            patterns.push(Pattern {
                exclusion,
                text: cleaned,
                tokens,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// The patterns of `COPY --exclude` / `ADD --exclude`, as BuildKit's copy reads them
    /// (`patternmatcher.New`, not `.dockerignore`'s reader): each trimmed and cleaned *with*
    /// its `!` (so `!a/../b` is the pattern `b`), no comments, and a leading `/` kept, which
    /// then matches nothing (the paths matched are relative).
    ///
    /// # Errors
    /// [`ExcludeError`] for a lone `!` or a pattern Go's `filepath.Match` refuses.
    ///
    /// ```
    /// use strata_frontend::dockerfile::ignore::DockerIgnore;
    /// let ex = DockerIgnore::exclude_patterns(&["*.log".into(), "!keep.log".into()]).unwrap();
    /// assert!(ex.is_excluded("a.log") && !ex.is_excluded("keep.log"));
    /// assert!(DockerIgnore::exclude_patterns(&["!".into()]).is_err());
    /// ```
    pub fn exclude_patterns(patterns: &[String]) -> Result<DockerIgnore, ExcludeError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let cleaned = clean(p);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(ExcludeError::LoneExclamation),
                Some(rest) => (true, rest.to_string()),
                None => (false, cleaned),
            };
            let tokens = compile(&text).ok_or_else(|| ExcludeError::BadPattern(p.to_string()))?;
            out.push(Pattern {
                exclusion,
                text,
                tokens,
            });
        }
        Ok(DockerIgnore { patterns: out })
    }

    /// The patterns in order, as `(is_exception, cleaned pattern)`.
    pub fn patterns(&self) -> impl Iterator<Item = (bool, &str)> {
        self.patterns.iter().map(|p| (p.exclusion, p.text.as_str()))
    }

    /// Whether the path (relative to the context root, `/`-separated; a leading `./` or `/`
    /// is ignored) is left out of the context.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|&(_, c)| *c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let hit = matches(&p.tokens, &chars, false)
                || parents
                    .iter()
                    .any(|&end| matches(&p.tokens, &chars[..end], false));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether anything strictly below the directory `dir` may be in the context. When this is
    /// false the walker can skip the directory wholesale; when true it must descend and ask
    /// [`is_excluded`](Self::is_excluded) for every entry.
    ///
    /// True when `dir` itself is not excluded, or when some exception (`!pattern`) could match
    /// a path below it: `dir` + `!dir/keep` must be descended, `dir` + `!other` need not.
    /// Unlike BuildKit (which descends into every excluded directory as soon as an exception
    /// contains a wildcard) this looks at what each exception can match, which is the same
    /// result with fewer directories read.
    pub fn may_include_below(&self, dir: &str) -> bool {
        if !self.is_excluded(dir) {
            return true;
        }
        let dir = clean(dir);
        let prefix: Vec<char> = format!("{}/", dir.trim_start_matches('/'))
            .chars()
            .collect();
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| matches(&p.tokens, &prefix, true))
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Whether Go's `filepath.Match` takes `pattern` (it checks the whole pattern): every `\`
/// escapes a character, every `[` has its `]` and at least one range, whose ends are neither
/// `-` nor `]` unless escaped.
fn valid(pattern: &[char]) -> bool {
    let mut i = 0;
    // One end of a range: a character, maybe escaped, with more of the class after it.
    let end = |i: &mut usize| -> bool {
        match pattern.get(*i) {
            None | Some('-' | ']') => return false,
            Some('\\') => *i += 1,
            Some(_) => {}
        }
        if pattern.get(*i).is_none() {
            return false;
        }
        *i += 1;
        *i < pattern.len()
    };
    while i < pattern.len() {
        match pattern[i] {
            '\\' => {
                if i + 1 >= pattern.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if pattern.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if pattern.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    if !end(&mut i) {
                        return false;
                    }
                    if pattern[i] == '-' {
                        i += 1;
                        if !end(&mut i) {
                            return false;
                        }
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// The tokens of a cleaned pattern, or `None` for a bad pattern.
fn compile(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    if !valid(&chars) {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                let at_start = i == 1;
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                let rest_literal = chars[i..]
                    .iter()
                    .all(|c| !matches!(c, '*' | '?' | '[' | ']' | '\\'));
                if i >= chars.len() {
                    out.push(Token::Any);
                } else if at_start && chars[i - 1] != '/' && rest_literal {
                    // moby's suffix match: `**foo` is any path ending in `foo`.
                    out.push(Token::Any);
                } else {
                    out.push(Token::Dirs);
                }
            }
            '*' => out.push(Token::Star),
            '?' => out.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    out.push(Token::Char(n));
                    i += 1;
                }
                None => out.push(Token::Char('\\')),
            },
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let mut lo = *chars.get(i)?;
                    if lo == ']' && !first {
                        i += 1;
                        break;
                    }
                    first = false;
                    if lo == '\\' {
                        i += 1;
                        lo = *chars.get(i)?;
                    }
                    i += 1;
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i)?;
                            i += 1;
                        }
                    }
                    ranges.push((lo, hi));
                }
                out.push(Token::Class { negated, ranges });
            }
            c => out.push(Token::Char(c)),
        }
    }
    // Runs of wildcards match what their widest one matches (`**/**/` is `**/`, `***` is
    // `**`): one token each, so a pattern of thousands of `*` costs what one does.
    out.dedup_by(|next, prev| {
        let widest = match (&*prev, &*next) {
            (Token::Star, Token::Star) => Token::Star,
            (Token::Dirs, Token::Dirs) => Token::Dirs,
            (Token::Any, Token::Any | Token::Dirs | Token::Star)
            | (Token::Dirs | Token::Star, Token::Any) => Token::Any,
            _ => return false,
        };
        *prev = widest;
        true
    });
    Some(out)
}

/// Whether the tokens match all of `path`; with `prefix`, whether they can match some path
/// that starts with `path` (reaching the end of `path` is then a success).
///
/// The tokens run as an automaton over the set of positions in `path` reached so far, one
/// token at a time: O(tokens × path) time, O(path) memory and no recursion, so a hostile
/// pattern (thousands of `*`) can neither blow the stack nor allocate a table per call.
fn matches(tokens: &[Token], path: &[char], prefix: bool) -> bool {
    let n = path.len();
    let mut at = vec![false; n + 1];
    at[0] = true;
    let mut next = vec![false; n + 1];
    for token in tokens {
        if prefix && at[n] {
            return true;
        }
        next.fill(false);
        // Positions reachable through a `*` run (no `/`) or `**` from the reached ones.
        let mut open = false;
        for p in 0..=n {
            let here = at[p];
            match token {
                Token::Char(c) => {
                    if here && path.get(p) == Some(c) {
                        next[p + 1] = true;
                    }
                }
                Token::One => {
                    if here && path.get(p).is_some_and(|c| *c != '/') {
                        next[p + 1] = true;
                    }
                }
                Token::Class { negated, ranges } => {
                    let hit = path.get(p).is_some_and(|&c| {
                        c != '/' && ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    });
                    if here && hit {
                        next[p + 1] = true;
                    }
                }
                Token::Star => {
                    open |= here;
                    if open {
                        next[p] = true;
                    }
                    if path.get(p) == Some(&'/') {
                        open = false;
                    }
                }
                Token::Dirs => {
                    // Nothing, or anything up to and including a `/`.
                    if here {
                        next[p] = true;
                    }
                    open |= here;
                    if open && path.get(p) == Some(&'/') {
                        next[p + 1] = true;
                    }
                }
                Token::Any => {
                    open |= here;
                    if open {
                        next[p] = true;
                    }
                }
            }
        }
        std::mem::swap(&mut at, &mut next);
        if !at.contains(&true) {
            return false;
        }
    }
    at[n]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `syntax!(name, ".dockerignore text", [excluded paths], [included paths])`.
    macro_rules! syntax {
        ($name:ident, $text:expr, [$($out:expr),* $(,)?], [$($in:expr),* $(,)?]) => {
            #[test]
            fn $name() {
                let ignore = DockerIgnore::parse($text).expect("valid .dockerignore");
                $(assert!(ignore.is_excluded($out), "{:?} should be excluded by {:?}", $out, $text);)*
                $(assert!(!ignore.is_excluded($in), "{:?} should be included by {:?}", $in, $text);)*
            }
        };
    }

    /// Found by fuzzing (docs/fuzzing.md): the recursive matcher overflowed the stack on
    /// thousands of `*` and allocated a tokens × path table per call.
    #[test]
    fn hostile_patterns_end() {
        // `**` pairs: `(.*/)?` ten thousand times, then `a`.
        let stars = format!("{}a", "*".repeat(20000));
        // A component of at least 3000 characters ending in `a`.
        let runs = format!("{}a", "?*".repeat(3000));
        let dirs = format!("{}x", "**/".repeat(5000));
        let ignore = DockerIgnore::parse(&format!("{stars}\n{runs}\n{dirs}\n")).expect("parses");
        let long = "b".repeat(4000);
        assert!(!ignore.is_excluded(&long));
        assert!(ignore.is_excluded(&format!("{long}a")));
        assert!(!ignore.is_excluded("bba"));
        assert!(ignore.is_excluded("b/b/a"));
        assert!(ignore.is_excluded(&format!("{}x", "d/".repeat(1000))));
        assert!(!ignore.may_include_below(&format!("{long}a")));
    }

    syntax!(empty, "", [], ["a", "a/b"]);
    syntax!(comments_and_blanks, "# a\n\n   \n#b\n", [], ["a", "#b"]);
    syntax!(indented_hash_is_a_pattern, " #x", ["#x"], ["x"]);
    syntax!(
        star_md_only_at_root,
        "*.md",
        ["README.md", "a.md"],
        ["docs/a.md", "md"]
    );
    syntax!(
        exception,
        "*.md\n!README.md",
        ["CHANGELOG.md"],
        ["README.md", "src/x.md"]
    );
    syntax!(
        exception_order_matters,
        "!README.md\n*.md",
        ["README.md"],
        []
    );
    syntax!(
        double_star_go,
        "**/*.go",
        ["a.go", "x/y/a.go", "x/a.go"],
        ["a.gox", "x/go"]
    );
    syntax!(
        dir_excludes_below,
        "dir",
        ["dir", "dir/a", "dir/a/b"],
        ["dirx", "a/dir"]
    );
    syntax!(
        dir_with_keep,
        "dir\n!dir/keep",
        ["dir/a", "dir"],
        ["dir/keep", "dir/keep/x"]
    );
    syntax!(
        leading_slash_and_dot,
        "/a\n./b/\nc//d",
        ["a", "b/x", "c/d"],
        ["x/a"]
    );
    syntax!(clean_dotdot, "a/../b", ["b"], ["a"]);
    syntax!(question_mark, "f?o", ["foo", "fao"], ["fo", "f/o", "fooo"]);
    syntax!(star_stops_at_slash, "a*", ["a", "abc", "abc/d"], ["b/a"]);
    syntax!(
        star_in_middle,
        "a/*/c",
        ["a/b/c", "a/b/c/d"],
        ["a/c", "a/b/x/c"]
    );
    syntax!(class, "[a-c]x", ["ax", "cx"], ["dx", "/x"]);
    syntax!(negated_class, "[^a]x", ["bx"], ["ax"]);
    syntax!(escaped_star, "a\\*", ["a*"], ["ab"]);
    syntax!(
        trailing_double_star,
        "dir/**",
        ["dir/a", "dir/a/b"],
        ["dir", "dirx/a"]
    );
    syntax!(
        middle_double_star,
        "a/**/b",
        ["a/b", "a/x/b", "a/x/y/b"],
        ["a/xb", "b"]
    );
    syntax!(all, "**", ["a", "a/b"], []);
    syntax!(
        leading_double_star_suffix,
        "**.md",
        ["a.md", "x/b.md"],
        ["a.mdx"]
    );
    syntax!(
        star_then_exception,
        "*\n!src",
        ["a", "Dockerfile"],
        ["src", "src/main.rs"]
    );
    syntax!(
        exception_with_wildcard,
        "logs\n!logs/**/*.keep",
        ["logs/a.log"],
        ["logs/x/.keep", "logs/a.keep"]
    );
    syntax!(
        exception_then_reexclude,
        "a\n!a/b\na/b/c",
        ["a/x", "a/b/c", "a/b/c/d"],
        ["a/b", "a/b/d"]
    );
    syntax!(paths_are_cleaned, "a/b", ["./a/b", "/a/b/c"], []);

    #[test]
    fn skipping_directories() {
        let i = DockerIgnore::parse("node_modules\n*.log\ndir\n!dir/keep\n").expect("valid");
        assert!(!i.may_include_below("node_modules"));
        assert!(i.may_include_below("dir"));
        assert!(i.may_include_below("src"));
        // A wildcard exception can re-include below any directory.
        let i = DockerIgnore::parse("node_modules\n!**/*.keep\n").expect("valid");
        assert!(i.may_include_below("node_modules"));
        assert!(!i.is_excluded("node_modules/a/.keep"));
        let i = DockerIgnore::parse("dir\n!other/keep").expect("valid");
        assert!(!i.may_include_below("dir"));
        let i = DockerIgnore::parse("a\n!a/b/c").expect("valid");
        assert!(i.may_include_below("a"));
        assert!(i.may_include_below("a/b"));
        assert!(!i.may_include_below("a/x"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            DockerIgnore::parse("a\n!\n").unwrap_err(),
            Error::LoneExclamation { line: 2 }
        );
        let e = DockerIgnore::parse("[a").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(".dockerignore:1: bad pattern `[a`: {BAD_PATTERN}")
        );
    }

    /// Go's `filepath.Match` refuses these, so `patternmatcher.New` does, for .dockerignore
    /// and `--exclude` alike; it takes the others.
    #[test]
    fn bad_patterns_are_gos() {
        for bad in ["[a", "a\\", "[]a]", "[-a]", "[a-]", "[^]", "x[a-\\", "[]"] {
            assert!(DockerIgnore::parse(bad).is_err(), "{bad:?} is bad");
            assert!(
                DockerIgnore::exclude_patterns(&[bad.to_string()]).is_err(),
                "{bad:?} is bad"
            );
        }
        for good in ["a]", "[\\]]", "[a-c]x", "[^a]", "{a,b}", "\\*", "[\\-]"] {
            assert!(DockerIgnore::parse(good).is_ok(), "{good:?} is good");
        }
    }

    /// `--exclude` patterns are read as `patternmatcher.New` reads them: cleaned with their
    /// `!`, no comments, a leading `/` kept (matching no relative path), `{}` literal.
    #[test]
    fn exclude_patterns_are_patternmatchers() {
        let ex = |p: &[&str]| {
            DockerIgnore::exclude_patterns(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("valid")
        };
        let i = ex(&["*.log", "!keep.log", "#x", "/abs", "{a,b}"]);
        assert!(i.is_excluded("x.log") && !i.is_excluded("keep.log"));
        assert!(i.is_excluded("#x") && !i.is_excluded("abs"));
        assert!(i.is_excluded("{a,b}") && !i.is_excluded("a"));
        // `!a/../b` is cleaned to `b`, an exclusion, as Go's `filepath.Clean` gives it.
        let i = ex(&["!a/../b"]);
        assert!(i.is_excluded("b"));
        assert_eq!(
            DockerIgnore::exclude_patterns(&["!".into()]).unwrap_err(),
            ExcludeError::LoneExclamation
        );
    }

    #[test]
    fn patterns_are_listed_cleaned() {
        let i = DockerIgnore::parse("/a/\n! ./b").expect("valid");
        let p: Vec<_> = i.patterns().collect();
        assert_eq!(p, [(false, "a"), (true, "b")]);
    }

    #[test]
    fn many_stars_stay_fast() {
        let i = DockerIgnore::parse(&"*a".repeat(30)).expect("valid");
        assert!(i.is_excluded(&"a".repeat(200)));
        assert!(!i.is_excluded(&format!("{}b", "a".repeat(200))));
    }
}
