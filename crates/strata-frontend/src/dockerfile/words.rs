//! Splitting a logical line into the pieces BuildKit's line parsers see: the keyword, the
//! `--flags`, whitespace- or quote-aware words, JSON arrays, heredoc markers and the CSV of a
//! `--mount`. Every piece comes with its byte range in the logical text.

use std::ops::Range;

/// A piece of the logical text: its (processed) text and its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub text: String,
    pub range: Range<usize>,
}

/// BuildKit's `[\t\v\f\r ]` (what separates words in the simple line parsers).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\u{0b}' | '\u{0c}')
}

/// Offset of the first non-whitespace character at or after `from`.
pub(crate) fn skip_space(s: &str, from: usize) -> usize {
    s[from..]
        .char_indices()
        .find(|&(_, c)| !c.is_whitespace())
        .map_or(s.len(), |(i, _)| from + i)
}

/// End of `s[..end]` without trailing whitespace.
pub(crate) fn trim_end(s: &str, start: usize, end: usize) -> usize {
    start + s[start..end].trim_end().len()
}

/// The keyword at the start of the text and where its arguments start.
pub(crate) fn keyword(s: &str, from: usize) -> (Range<usize>, usize) {
    let start = skip_space(s, from);
    let end = s[start..]
        .char_indices()
        .find(|&(_, c)| c.is_whitespace())
        .map_or(s.len(), |(i, _)| start + i);
    (start..end, skip_space(s, end))
}

/// BuildKit's `extractBuilderFlags`: the leading `--name[=value]` words (quotes removed, `\`
/// escapes the next character) and the offset of the first argument after them. A lone `--`
/// ends the flags.
pub(crate) fn flags(s: &str, from: usize) -> (Vec<Piece>, usize) {
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        pos = skip_space(s, pos);
        if !s[pos..].starts_with("--") {
            return (out, pos);
        }
        let start = pos;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = s[pos..].char_indices().peekable();
        let mut end = s.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = pos + i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        pos = end;
        if word == "--" {
            return (out, skip_space(s, pos));
        }
        out.push(Piece {
            text: word,
            range: start..end,
        });
    }
}

/// BuildKit's `parseWords`: words separated by whitespace, where quotes group (and are kept)
/// and the escape character keeps the next character (both kept).
pub(crate) fn quoted_words(s: &str, range: Range<usize>, escape: char) -> Vec<Piece> {
    let mut out = Vec::new();
    let text = &s[range.clone()];
    let mut word = String::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = range.start + i;
        match quote {
            None => {
                if c.is_whitespace() {
                    if let Some(st) = start.take()
                        && (blank_ok || !word.is_empty())
                    {
                        out.push(Piece {
                            text: std::mem::take(&mut word),
                            range: st..at,
                        });
                    }
                    word.clear();
                    blank_ok = false;
                    continue;
                }
                start.get_or_insert(at);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    match chars.next() {
                        None => continue,
                        Some((_, n)) => {
                            word.push(c);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    match chars.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some((_, n)) => {
                            word.push(c);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(c);
            }
        }
    }
    if let Some(st) = start
        && (blank_ok || !word.is_empty())
    {
        out.push(Piece {
            text: word,
            range: st..range.end,
        });
    }
    out
}

/// BuildKit's `parseStringsWhitespaceDelimited`: split on `[\t\v\f\r ]+`, nothing else.
pub(crate) fn blank_words(s: &str, range: Range<usize>) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s[range.clone()].char_indices() {
        let at = range.start + i;
        if is_blank(c) {
            if let Some(st) = start.take() {
                out.push(Piece {
                    text: s[st..at].to_string(),
                    range: st..at,
                });
            }
        } else if start.is_none() {
            start = Some(at);
        }
    }
    if let Some(st) = start {
        out.push(Piece {
            text: s[st..range.end].to_string(),
            range: st..range.end,
        });
    }
    out
}

/// What `parseJSON` made of the arguments.
pub(crate) enum Json {
    /// Not a JSON array: the shell form applies.
    Shell,
    /// A JSON array of strings.
    Strings(Vec<Piece>),
    /// A JSON array with something other than a string at this range.
    NotString(Range<usize>),
}

/// Whether `s[range]` is a JSON array (of strings). Invalid JSON is [`Json::Shell`], as in
/// Docker, which then takes the shell form.
pub(crate) fn json_array(s: &str, range: Range<usize>) -> Json {
    let text = &s[range.clone()];
    if !text.trim_start().starts_with('[') {
        return Json::Shell;
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return Json::Shell;
    };
    // Valid JSON: walk the tokens to find each element's range.
    let bytes = text.as_bytes();
    let mut i = text.len() - text.trim_start().len() + 1;
    let mut out = Vec::new();
    for value in values {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        let start = i;
        i = json_value_end(bytes, i);
        let r = range.start + start..range.start + i;
        match value {
            serde_json::Value::String(v) => out.push(Piece { text: v, range: r }),
            _ => return Json::NotString(r),
        }
    }
    Json::Strings(out)
}

/// The end of the (valid) JSON value starting at `i`.
fn json_value_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth == 0 => return i,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                c if c.is_ascii_whitespace() && depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    i
}

/// A `<<NAME` marker found on an instruction line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub chomp: bool,
    pub expand: bool,
    pub fd: Option<u32>,
    pub range: Range<usize>,
}

/// BuildKit's `heredocsFromLine`: the words of the line (quotes and escapes kept, `\` as the
/// escape whatever the directive says) that are `[n]<<[-]NAME`. An unterminated quote means
/// no heredocs, as in BuildKit.
pub(crate) fn heredoc_markers(s: &str, range: Range<usize>) -> Vec<Marker> {
    let mut words = Vec::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut chars = s[range.clone()].char_indices();
    while let Some((i, c)) = chars.next() {
        let at = range.start + i;
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' {
                    chars.next();
                }
            }
            None if c.is_whitespace() => {
                if let Some(st) = start.take() {
                    words.push(st..at);
                }
            }
            None => {
                start.get_or_insert(at);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '\\' {
                    chars.next();
                }
            }
        }
    }
    if quote.is_some() {
        return Vec::new();
    }
    if let Some(st) = start {
        words.push(st..range.end);
    }
    words
        .into_iter()
        .filter_map(|r| marker(&s[r.clone()]).map(|m| Marker { range: r, ..m }))
        .collect()
}

/// Parses one word as `^(\d*)<<(-?)([^<]*)$` with a non-empty name that is a single shell word.
pub(crate) fn marker(word: &str) -> Option<Marker> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    // Quote removal as a shell would; a quote anywhere disables expansion of the body.
    let mut name = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == '\\' => {
                if let Some(n) = chars.next() {
                    if !matches!(n, '"' | '$' | '\\') {
                        name.push(c);
                    }
                    name.push(n);
                }
            }
            Some(_) => name.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                quoted = true;
            }
            None if c == '\\' => {
                if let Some(n) = chars.next() {
                    name.push(n);
                }
            }
            None if c.is_whitespace() => return None,
            None => name.push(c),
        }
    }
    if quote.is_some() || name.is_empty() {
        return None;
    }
    Some(Marker {
        name,
        chomp,
        expand: !quoted,
        fd: if digits > 0 {
            word[..digits].parse().ok()
        } else {
            None
        },
        range: 0..0,
    })
}

/// Go's `encoding/csv` reading one record: fields split on `,`, a field starting with `"` is
/// quoted (`""` is a quote). Returns the fields with their ranges, or the offset of a bad
/// quote.
pub(crate) fn csv_fields(s: &str, range: Range<usize>) -> Result<Vec<Piece>, usize> {
    let text = &s[range.clone()];
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        if text[i..].starts_with('"') {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                let Some(c) = text[j..].chars().next() else {
                    return Err(range.start + start);
                };
                if c == '"' {
                    if text[j + 1..].starts_with('"') {
                        value.push('"');
                        j += 2;
                        continue;
                    }
                    j += 1;
                    break;
                }
                value.push(c);
                j += c.len_utf8();
            }
            if !(j == text.len() || text[j..].starts_with(',')) {
                return Err(range.start + j);
            }
            out.push(Piece {
                text: value,
                range: range.start + start..range.start + j,
            });
            i = j;
        } else {
            let end = text[i..].find(',').map_or(text.len(), |k| i + k);
            let field = &text[i..end];
            if let Some(k) = field.find('"') {
                return Err(range.start + i + k);
            }
            out.push(Piece {
                text: field.to_string(),
                range: range.start + i..range.start + end,
            });
            i = end;
        }
        if i >= text.len() {
            return Ok(out);
        }
        i += 1; // the comma
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word` if it is close enough to be a typo.
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|&(d, c)| d <= (c.len() / 3).max(1) + 1 && d < c.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(p: &[Piece]) -> Vec<&str> {
        p.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn flags_stop_at_the_first_argument() {
        let s = "RUN --mount=type=cache,target=/x --network=none echo --no";
        let (f, at) = flags(s, 4);
        assert_eq!(
            texts(&f),
            ["--mount=type=cache,target=/x", "--network=none"]
        );
        assert_eq!(&s[at..], "echo --no");
        let (f, at) = flags("COPY --chown=\"a b\" -- --weird /d", 5);
        assert_eq!(texts(&f), ["--chown=a b"]);
        assert_eq!(at, 22);
    }

    #[test]
    fn quoted_words_keep_quotes() {
        let s = r#"a="x y" b=\"c d='e'"#;
        assert_eq!(
            texts(&quoted_words(s, 0..s.len(), '\\')),
            [r#"a="x y""#, r#"b=\"c"#, "d='e'"]
        );
    }

    #[test]
    fn json_arrays() {
        let s = r#"[ "a", "b c" ]"#;
        match json_array(s, 0..s.len()) {
            Json::Strings(p) => {
                assert_eq!(texts(&p), ["a", "b c"]);
                assert_eq!(p[1].range, 7..12);
            }
            _ => panic!("expected strings"),
        }
        assert!(matches!(json_array("[a]", 0..3), Json::Shell));
        assert!(matches!(json_array("[\"a\"] x", 0..7), Json::Shell));
        assert!(matches!(json_array("[1]", 0..3), Json::NotString(r) if r == (1..2)));
    }

    #[test]
    fn heredoc_markers_on_a_line() {
        let s = "RUN <<EOF 3<<-'END' cat \"<<NO\" x<<NO <<\"A\"B";
        let m = heredoc_markers(s, 0..s.len());
        let names: Vec<_> = m
            .iter()
            .map(|m| (m.name.as_str(), m.chomp, m.expand, m.fd))
            .collect();
        assert_eq!(
            names,
            [
                ("EOF", false, true, None),
                ("END", true, false, Some(3)),
                ("AB", false, false, None)
            ]
        );
    }

    #[test]
    fn csv() {
        let s = "type=cache,\"target=/a,b\",id=x";
        assert_eq!(
            texts(&csv_fields(s, 0..s.len()).expect("valid csv")),
            ["type=cache", "target=/a,b", "id=x"]
        );
        assert!(csv_fields("a\"b", 0..3).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("RUNN", &["RUN", "FROM"]), Some("RUN"));
        assert_eq!(suggest("COPPY", &["COPY", "CMD"]), Some("COPY"));
        assert_eq!(suggest("XYZZY", &["RUN", "FROM"]), None);
    }
}
