//! `COPY` and `ADD`.

use strata_plan::Diagnostic;

use super::super::instructions::*;
use super::super::lines::Reader;
use super::super::words::{self, Json};
use super::{Cx, FlagKind, Parser, Result, not_string};

impl Parser {
    pub(super) fn copy(&mut self, cx: &mut Cx<'_>, reader: &mut Reader<'_>) -> Result<Instruction> {
        let add = cx.kw == "ADD";
        let flags = if add {
            self.flags(
                cx,
                &[
                    ("chown", FlagKind::String),
                    ("chmod", FlagKind::String),
                    ("link", FlagKind::Bool),
                    ("keep-git-dir", FlagKind::Bool),
                    ("checksum", FlagKind::String),
                    ("exclude", FlagKind::Many),
                ],
                &["unpack"],
            )?
        } else {
            self.flags(
                cx,
                &[
                    ("from", FlagKind::String),
                    ("chown", FlagKind::String),
                    ("chmod", FlagKind::String),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::Many),
                    ("parents", FlagKind::Bool),
                ],
                &[],
            )?
        };
        let (args, heredocs, json) = match words::json_array(&cx.line.text, cx.args.clone()) {
            Json::Strings(p) => (p, Vec::new(), true),
            Json::NotString(r) => return Err(not_string(cx, r)),
            Json::Shell => {
                let heredocs = self.heredocs(cx, reader)?;
                (
                    words::blank_words(&cx.line.text, cx.args.clone()),
                    heredocs,
                    false,
                )
            }
        };
        let usage = format!("write `{} <source>... <destination>`", cx.kw);
        let Some((dest, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
            let span = args.first().map_or(cx.kw_span, |a| cx.word(a).span);
            return Err(Box::new(
                Diagnostic::new(
                    format!("{} needs a source and a destination", cx.kw),
                    Some(span),
                )
                .label(if args.is_empty() {
                    "no arguments"
                } else {
                    "only one argument"
                })
                .help(usage),
            ));
        };
        if !json && words::marker(&dest.text).is_some() {
            return Err(Box::new(
                Diagnostic::new(
                    format!("{} cannot take a heredoc as its destination", cx.kw),
                    Some(cx.word(dest).span),
                )
                .help(usage),
            ));
        }
        let sources = sources
            .iter()
            .map(|s| {
                let heredoc = (!json)
                    .then(|| words::marker(&s.text))
                    .flatten()
                    .and_then(|m| heredocs.iter().find(|h| h.name == m.name));
                match heredoc {
                    Some(h) => Source::Heredoc(h.clone()),
                    None => Source::Path(cx.word(s)),
                }
            })
            .collect();
        let dest = cx.word(dest);
        let exclude: Vec<Word> = flags
            .0
            .iter()
            .filter(|f| f.name == "exclude")
            .filter_map(|f| f.value.clone())
            .collect();
        Ok(if add {
            Instruction::Add(Add {
                sources,
                dest,
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link"),
                keep_git_dir: flags.bool("keep-git-dir"),
                checksum: flags.string("checksum"),
                exclude,
                span: cx.span,
            })
        } else {
            Instruction::Copy(Copy {
                sources,
                dest,
                from: flags.string("from"),
                chown: flags.string("chown"),
                chmod: flags.string("chmod"),
                link: flags.bool("link"),
                parents: flags.bool("parents"),
                exclude,
                span: cx.span,
            })
        })
    }
}
