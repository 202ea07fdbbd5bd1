//! `--chmod` values: an octal mode, or (BuildKit's since dockerfile 1.14, moby/buildkit#5734)
//! chmod(1)'s symbolic clauses (`u+x`, `go-w`, `a=rX`), applied to each file's own mode.

/// A parsed `--chmod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chmod {
    /// `--chmod=0755`: every copied entry gets this mode.
    Octal(u32),
    /// `--chmod=u+x,go-w`: the clauses, applied in order to each entry's mode.
    Symbolic(Vec<Clause>),
}

/// One `WHO OP PERMS...` clause (`ug+rw`, several `OP PERMS` pairs allowed: `u+r-w`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// The classes' bits (`u` 0o4700, `g` 0o2070, `o` 0o1007); none given means all.
    who: u32,
    /// Each operation and what it applies.
    ops: Vec<(char, Perms)>,
}

/// What an operation applies.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Perms {
    /// Letters of `rwxXst`.
    Letters(String),
    /// The current bits of another class (`g=u`).
    Copy(char),
}

impl std::str::FromStr for Chmod {
    type Err = String;

    fn from_str(text: &str) -> Result<Chmod, String> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| format!("`{text}` is not an octal mode"));
        }
        let bad = |why: &str| format!("`{text}` is not a mode ({why}): write 0755 or u+x,go-w");
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let ops_at = part.find(['+', '-', '=']).ok_or_else(|| bad("no + - ="))?;
            let mut who = 0;
            for c in part[..ops_at].chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(bad("who is one of u g o a")),
                };
            }
            let mut ops = Vec::new();
            let mut rest = &part[ops_at..];
            while let Some(op) = rest.chars().next() {
                let body = &rest[1..];
                let end = body.find(['+', '-', '=']).unwrap_or(body.len());
                let perms = &body[..end];
                let perms = match perms {
                    "u" | "g" | "o" => Perms::Copy(perms.chars().next().expect("one letter")),
                    p if p.chars().all(|c| "rwxXst".contains(c)) => Perms::Letters(p.into()),
                    _ => return Err(bad("permissions are r w x X s t, or u g o")),
                };
                ops.push((op, perms));
                rest = &body[end..];
            }
            clauses.push(Clause {
                who: if who == 0 { 0o7777 } else { who },
                ops,
            });
        }
        Ok(Chmod::Symbolic(clauses))
    }
}

impl Chmod {
    /// The mode an entry whose mode is `mode` (a directory when `is_dir`) gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            for (op, perms) in &clause.ops {
                let bits = match perms {
                    Perms::Letters(letters) => letters.chars().fold(0, |bits, c| {
                        bits | match c {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            // Execute for directories and files someone may execute already.
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        }
                    }),
                    Perms::Copy(class) => {
                        let rwx = match class {
                            'u' => (mode >> 6) & 7,
                            'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        rwx * 0o111
                    }
                } & clause.who;
                mode = match op {
                    '+' => mode | bits,
                    '-' => mode & !bits,
                    // `=`: the classes' permissions are exactly these (a directory keeps its
                    // set-id bits, as chmod(1) does).
                    _ => {
                        let keep = if is_dir { 0o6000 } else { 0 };
                        (mode & !(clause.who & !keep)) | bits
                    }
                };
            }
        }
        mode
    }

    /// The mode when it is the same for every entry.
    pub fn octal(&self) -> Option<u32> {
        match self {
            Chmod::Octal(m) => Some(*m),
            Chmod::Symbolic(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Chmod;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        spec.parse::<Chmod>().expect("parses").apply(mode, is_dir)
    }

    #[test]
    fn symbolic_modes_change_each_entrys_own_mode() {
        assert_eq!(apply("0755", 0o600, false), 0o755);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=rX", 0o700, true), 0o555);
        assert_eq!(apply("a=rX", 0o600, false), 0o444);
        assert_eq!(apply("a=rX", 0o744, false), 0o555);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o777, false), 0o750);
        assert_eq!(apply("g=u", 0o640, false), 0o660);
        assert_eq!(apply("u+r-w", 0o200, false), 0o400);
        assert_eq!(apply("u+s,o+t", 0o755, true), 0o5755);
    }

    #[test]
    fn bad_modes_are_refused() {
        for bad in ["u*x", "z+x", "u+q", "08", "", "u"] {
            assert!(bad.parse::<Chmod>().is_err(), "{bad}");
        }
    }
}
