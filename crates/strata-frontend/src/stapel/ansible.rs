//! Ansible tasks of `ansible:` as werf's stapel builder takes them: each task a mapping with
//! exactly one module of werf's supported list (`block`/`rescue`/`always` tasks hold lists
//! of such tasks), checked at its line; kept as werf hashes it (JSON, keys sorted) and as the
//! playbook writes it (block-style YAML).
//!
//! Scalars keep what the config wrote: a plain number or boolean is written as is, so
//! ansible's YAML reader types it as werf's playbook would (`mode: 0644` is octal there);
//! strings are double-quoted, so nothing in them is read as YAML syntax.

use strata_plan::Diagnostic;

use super::config::AnsibleTask;
use super::yaml::{Kind, Node, ScalarType};

type Result<T> = std::result::Result<T, Box<Diagnostic>>;

/// werf's supported modules (`pkg/config/raw_ansible_task.go`, `supportedModules`): modules
/// whose result depends only on their arguments, so the stage digest can stand for them.
pub const SUPPORTED_MODULES: &[&str] = &[
    // Commands.
    "command",
    "shell",
    "raw",
    "script",
    // Crypto.
    "openssl_certificate",
    "openssl_csr",
    "openssl_privatekey",
    "openssl_publickey",
    // Files.
    "acl",
    "archive",
    "assemble",
    "blockinfile",
    "copy",
    "file",
    "replace",
    "find",
    "ini_file",
    "iso_extract",
    "lineinfile",
    "stat",
    "tempfile",
    "unarchive",
    "xattr",
    // Net tools.
    "get_url",
    "slurp",
    "uri",
    // Language packaging.
    "bower",
    "bundler",
    "composer",
    "cpanm",
    "easy_install",
    "gem",
    "maven_artifact",
    "npm",
    "pear",
    "pip",
    "yarn",
    // OS packaging.
    "apk",
    "apt",
    "apt_key",
    "apt_repository",
    "apt_rpm",
    "dnf",
    "dpkg_selections",
    "debconf",
    "homebrew",
    "homebrew_cask",
    "homebrew_tap",
    "layman",
    "macports",
    "openbsd_pkg",
    "opkg",
    "package",
    "pacman",
    "pkg5",
    "pkg5_publisher",
    "pkgin",
    "pkgng",
    "pkgutil",
    "portage",
    "portinstall",
    "pulp_repo",
    "redhat_subscription",
    "rhn_channel",
    "rhn_register",
    "rpm_key",
    "slackpkg",
    "sorcery",
    "svr4pkg",
    "swdepot",
    "swupd",
    "urpmi",
    "xbps",
    "yum",
    "yum_repository",
    "zypper",
    "zypper_repository",
    // System.
    "cron",
    "user",
    "group",
    "getent",
    "locale_gen",
    "timezone",
    // Utilities.
    "meta",
    "assert",
    "debug",
    "fail",
    "set_fact",
    "wait_for",
];

/// The keys of an ansible task that are not a module (ansible's task keywords), so that the
/// key left over names the module a task uses.
const TASK_KEYWORDS: &[&str] = &[
    "name",
    "action",
    "args",
    "async",
    "become",
    "become_exe",
    "become_flags",
    "become_method",
    "become_user",
    "changed_when",
    "check_mode",
    "collections",
    "connection",
    "debugger",
    "delay",
    "delegate_facts",
    "delegate_to",
    "diff",
    "environment",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "local_action",
    "loop",
    "loop_control",
    "module_defaults",
    "no_log",
    "notify",
    "poll",
    "port",
    "register",
    "remote_user",
    "retries",
    "run_once",
    "tags",
    "throttle",
    "timeout",
    "until",
    "vars",
    "when",
    "any_errors_fatal",
];

/// The keys that make a task a block of tasks.
const BLOCK_KEYS: &[&str] = &["block", "rescue", "always"];

/// The tasks of a user stage of `ansible:` (`path`: `ansible.install`, for messages).
pub(crate) fn tasks(value: &Node, path: &str) -> Result<Vec<(AnsibleTask, strata_plan::Span)>> {
    let items = match &value.kind {
        _ if value.is_null() => return Ok(Vec::new()),
        Kind::Seq(items) => items,
        _ => return Err(super::parse::expected(value, "a list of tasks", path)),
    };
    items
        .iter()
        .map(|item| {
            check(item, path)?;
            let mut yaml = String::new();
            mapping(item, 0, &mut yaml);
            Ok((
                AnsibleTask {
                    json: json(item),
                    yaml,
                },
                item.span,
            ))
        })
        .collect()
}

/// Checks one task: a mapping with unique string keys and exactly one supported module, or a
/// block whose `block`/`rescue`/`always` lists hold such tasks.
fn check(task: &Node, path: &str) -> Result<()> {
    let Kind::Map(pairs) = &task.kind else {
        return Err(Box::new(
            Diagnostic::new(
                format!(
                    "expected a mapping for each task of `{path}`, found {}",
                    task.type_name()
                ),
                Some(task.span),
            )
            .help("a task is a mapping such as `- shell: make install`"),
        ));
    };
    let mut keys: Vec<(&str, &Node)> = Vec::new();
    for (key, _) in pairs {
        let Some(name) = key.as_str() else {
            return Err(Box::new(Diagnostic::new(
                format!(
                    "expected a string key in an ansible task, found {}",
                    key.type_name()
                ),
                Some(key.span),
            )));
        };
        if let Some((_, first)) = keys.iter().find(|(n, _)| *n == name) {
            return Err(Box::new(
                Diagnostic::new(
                    format!("duplicate key `{name}` in an ansible task"),
                    Some(key.span),
                )
                .note(first.span, "first defined here"),
            ));
        }
        keys.push((name, key));
    }
    let blocks: Vec<_> = pairs
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|n| BLOCK_KEYS.contains(&n)))
        .collect();
    if !blocks.is_empty() {
        for (key, list) in blocks {
            let inner = format!("{path}.{}", key.as_str().unwrap_or_default());
            match &list.kind {
                Kind::Seq(items) => items.iter().try_for_each(|t| check(t, &inner))?,
                _ => return Err(super::parse::expected(list, "a list of tasks", &inner)),
            }
        }
        return Ok(());
    }
    let modules: Vec<&(&str, &Node)> = keys
        .iter()
        .filter(|(n, _)| SUPPORTED_MODULES.contains(n))
        .collect();
    match modules.as_slice() {
        [_] => Ok(()),
        [] => {
            let other = keys
                .iter()
                .find(|(n, _)| !TASK_KEYWORDS.contains(n) && !n.starts_with("with_"));
            Err(Box::new(match other {
                Some((name, key)) => {
                    let d = Diagnostic::new(
                        format!("ansible module `{name}` is not supported"),
                        Some(key.span),
                    )
                    .label("not in werf's list of supported modules");
                    let short = name.rsplit('.').next().unwrap_or(name);
                    if short != *name && SUPPORTED_MODULES.contains(&short) {
                        d.help(format!(
                            "werf's list names modules without their collection: write `{short}`"
                        ))
                    } else {
                        d.help(format!(
                            "werf runs only modules whose result its digest can stand for: {}",
                            SUPPORTED_MODULES.join(", ")
                        ))
                    }
                }
                None => Diagnostic::new("this ansible task names no module", Some(task.span))
                    .help("add one module, for example `shell: make install`"),
            }))
        }
        [(first, _), (second, key), ..] => Err(Box::new(
            Diagnostic::new(
                format!("an ansible task runs one module, this one has `{first}` and `{second}`"),
                Some(key.span),
            )
            .help("split it into two tasks"),
        )),
    }
}

/// werf's digest form of a node: JSON with the keys of every mapping sorted; numbers and
/// booleans as written.
fn json(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar { text, ty } => scalar(text, *ty),
        Kind::Seq(items) => format!("[{}]", items.iter().map(json).collect::<Vec<_>>().join(",")),
        Kind::Map(pairs) => {
            let mut entries: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (key_text(k).to_string(), json(v)))
                .collect();
            entries.sort();
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", quote(&k)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
    }
}

/// A scalar as the playbook and the digest write it.
fn scalar(text: &str, ty: ScalarType) -> String {
    match ty {
        ScalarType::Null => "null".into(),
        ScalarType::Bool => text.to_ascii_lowercase(),
        ScalarType::Number => text.to_string(),
        ScalarType::String => quote(text),
    }
}

fn key_text(key: &Node) -> &str {
    match &key.kind {
        Kind::Scalar { text, .. } => text,
        _ => "",
    }
}

/// A double-quoted string, JSON's escapes (which YAML's double-quoted style shares).
fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("strings always serialize")
}

/// The entries of a mapping node as block YAML, each line at `indent` spaces.
fn mapping(node: &Node, indent: usize, out: &mut String) {
    let Kind::Map(pairs) = &node.kind else {
        return;
    };
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&quote(key_text(key)));
        out.push(':');
        nested(value, indent, out);
    }
}

/// The value of a mapping entry or list item: a scalar or empty collection on its line, a
/// mapping or list on the lines below, indented.
fn nested(value: &Node, indent: usize, out: &mut String) {
    match &value.kind {
        Kind::Map(pairs) if !pairs.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            mapping(value, indent + 2, out);
        }
        Kind::Seq(items) if !items.is_empty() => {
            out.push('\n');
            sequence(items, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(value));
            out.push('\n');
        }
    }
}

fn sequence(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        match &item.kind {
            Kind::Map(pairs) if !pairs.is_empty() => mapping(item, indent + 2, out),
            Kind::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(inner, indent + 2, out);
            }
            _ => {
                out.push_str(&inline(item));
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection on one line.
fn inline(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar { text, ty } => scalar(text, *ty),
        Kind::Seq(_) => "[]".into(),
        Kind::Map(_) => "{}".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::FileId;

    fn parse(text: &str) -> Result<Vec<AnsibleTask>> {
        let docs = super::super::yaml::parse(FileId(0), text).expect("valid YAML");
        let root = docs[0].root.as_ref().expect("a document");
        Ok(tasks(root, "ansible.install")?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    #[test]
    fn tasks_keep_their_types_for_the_playbook_and_sort_keys_for_the_digest() {
        let tasks = parse(
            "- name: conf\n  file: {path: /etc/x, state: directory, mode: 0755}\n  become: yes\n\
             - copy:\n    content: |\n      a \"b\"\n      {{ item }}\n    dest: /x\n  tags: [one]\n",
        )
        .unwrap();
        assert_eq!(
            tasks[0].yaml,
            "\"name\": \"conf\"\n\"file\":\n  \"path\": \"/etc/x\"\n  \"state\": \"directory\"\n  \
             \"mode\": 0755\n\"become\": \"yes\"\n"
        );
        assert_eq!(
            tasks[0].json,
            r#"{"become":"yes","file":{"mode":0755,"path":"/etc/x","state":"directory"},"name":"conf"}"#
        );
        assert_eq!(
            tasks[1].yaml,
            "\"copy\":\n  \"content\": \"a \\\"b\\\"\\n{{ item }}\\n\"\n  \"dest\": \"/x\"\n\
             \"tags\":\n  - \"one\"\n"
        );
    }

    #[test]
    fn blocks_and_lists_of_mappings_nest() {
        let tasks = parse(
            "- block:\n  - shell: a\n  - command: b\n  rescue:\n  - debug: {msg: x}\n  when: true\n",
        )
        .unwrap();
        assert_eq!(
            tasks[0].yaml,
            "\"block\":\n  - \"shell\": \"a\"\n  - \"command\": \"b\"\n\"rescue\":\n  - \"debug\":\n      \
             \"msg\": \"x\"\n\"when\": true\n"
        );
    }

    #[test]
    fn modules_are_checked_against_werfs_list() {
        let err = |text: &str| parse(text).unwrap_err().message;
        assert_eq!(
            err("- name: t\n  template: {src: a, dest: b}\n"),
            "ansible module `template` is not supported"
        );
        assert!(
            parse("- ansible.builtin.copy: {content: a, dest: b}\n")
                .unwrap_err()
                .help
                .unwrap()
                .contains("write `copy`")
        );
        assert_eq!(
            err("- name: nothing\n"),
            "this ansible task names no module"
        );
        assert_eq!(
            err("- shell: a\n  command: b\n"),
            "an ansible task runs one module, this one has `shell` and `command`"
        );
        assert_eq!(
            err("- block:\n  - fetch: {src: a, dest: b}\n"),
            "ansible module `fetch` is not supported"
        );
        assert_eq!(
            err("- echo hi\n"),
            "expected a mapping for each task of `ansible.install`, found a string"
        );
        assert_eq!(
            err("- shell: a\n  shell: b\n"),
            "duplicate key `shell` in an ansible task"
        );
        assert!(parse("- shell: a\n  with_items: [1]\n  register: r\n").is_ok());
    }
}
