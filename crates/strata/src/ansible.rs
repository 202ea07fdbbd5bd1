//! werf's ansible stages: the ansible toolbox and each stage's playbook.
//!
//! The toolbox is a relocated Python and ansible-core tree made by `scripts/ansible-toolbox.sh`
//! (from Debian's packages; `scripts/install-deps.sh` runs it) into [`DEFAULT_DIR`], or the
//! directory `STRATA_ANSIBLE_TOOLBOX` names. It runs only from [`MOUNT_POINT`], where the
//! worker mounts it read-only in the containers of ansible stages, with a tmpfs at
//! [`TMP_DIR`] for everything ansible writes; both are mountpoints of the sandbox's skeleton,
//! so no trace of them reaches a layer. The tree holds its `ansible.cfg` (local connection,
//! the tree's python, strata's stdout callback) and inventory.
//!
//! A stage's tasks become one playbook (`hosts: all`, `gather_facts: no`) in the run's control
//! dir; each task is wrapped in a block tagged `strata_task_N`, so a failure inside it (or
//! inside its own block) names the werf.yaml task: the callback writes `N` to the state dir's
//! `step`, which the worker reads as for a stage script, and `--tags strata_task_N` runs that
//! task again.

use std::path::{Path, PathBuf};

use anyhow::bail;
use strata_plan::Run;

/// Where the toolbox appears inside containers (fixed: the tree is relocated to it).
pub const MOUNT_POINT: &str = "/.strata/ansible";
/// The tmpfs of ansible's own files (its home, local and remote tmp dirs, the live output
/// link).
pub const TMP_DIR: &str = "/.strata/tmp";
/// Where `scripts/ansible-toolbox.sh` makes the toolbox and strata looks for it.
pub const DEFAULT_DIR: &str = "/usr/local/lib/strata/ansible";
/// The variable naming another toolbox directory.
pub const ENV_VAR: &str = "STRATA_ANSIBLE_TOOLBOX";
/// The tag of a stage's `N`-th task (with `N` appended).
pub const TASK_TAG: &str = "strata_task_";
/// The playbook, inside containers (in the read-only control dir).
pub const PLAYBOOK: &str = "/.strata/run/ansible/playbook.yml";
/// The playbook, relative to the control dir.
pub(crate) const PLAYBOOK_FILE: &str = "ansible/playbook.yml";

/// The toolbox directory to mount.
pub fn toolbox() -> anyhow::Result<PathBuf> {
    let (dir, named) = match std::env::var_os(ENV_VAR) {
        Some(dir) => (PathBuf::from(dir), true),
        None => (PathBuf::from(DEFAULT_DIR), false),
    };
    if !dir.join("bin/ansible-playbook").is_file() {
        let hint = if named {
            format!("{ENV_VAR}={} has no bin/ansible-playbook", dir.display())
        } else {
            format!("the ansible toolbox is not in {}", dir.display())
        };
        bail!(
            "{hint}: ansible stages run with it; make it with scripts/ansible-toolbox.sh \
             (scripts/install-deps.sh does)"
        );
    }
    Ok(dir)
}

/// Writes the stage's playbook into the control dir `control`.
pub(crate) fn write_playbook(control: &Path, run: &Run) -> anyhow::Result<()> {
    // The control dir is strata's own (read-only in containers): nothing in it is a link.
    std::fs::create_dir_all(control.join("ansible"))?;
    Ok(crate::beneath::write(
        control,
        PLAYBOOK_FILE,
        playbook(run).as_bytes(),
    )?)
}

/// The playbook of a stage: its tasks, each in a block with its tag.
fn playbook(run: &Run) -> String {
    let mut s = String::from(
        "# strata: the tasks of this stage, each in a block tagged strata_task_N (N: its\n\
         # place in the stage). `ansible-playbook --tags strata_task_N` runs one again.\n\
         - hosts: all\n  gather_facts: no\n  tasks:\n",
    );
    for (i, task) in run.commands.iter().enumerate() {
        s.push_str("  - block:\n");
        for (j, line) in task.text.lines().enumerate() {
            let lead = if j == 0 { "    - " } else { "      " };
            s.push_str(lead);
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("    tags: [{TASK_TAG}{i}]\n"));
    }
    s
}

/// The shell line that runs the playbook (only task `only` with it set).
pub(crate) fn command(only: Option<usize>) -> String {
    let tags = only.map_or(String::new(), |i| format!(" --tags {TASK_TAG}{i}"));
    format!("exec {MOUNT_POINT}/bin/ansible-playbook{tags} {PLAYBOOK}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::{Command, RunShell};

    #[test]
    fn each_task_is_a_tagged_block() {
        let task = |text: &str| Command {
            text: text.into(),
            span: None,
        };
        let run = Run {
            commands: vec![
                task("\"shell\": \"make\"\n"),
                task("\"copy\":\n  \"dest\": \"/x\"\n\"name\": \"c\"\n"),
            ],
            shell: RunShell::Ansible,
            user: None,
            workdir: None,
            env: Vec::new(),
            mounts: Vec::new(),
            no_network: false,
            insecure: false,
        };
        let text = playbook(&run);
        assert!(
            text.ends_with(
                "- hosts: all\n  gather_facts: no\n  tasks:\n  - block:\n    - \"shell\": \"make\"\n    \
                 tags: [strata_task_0]\n  - block:\n    - \"copy\":\n        \"dest\": \"/x\"\n      \
                 \"name\": \"c\"\n    tags: [strata_task_1]\n"
            ),
            "{text}"
        );
        assert_eq!(
            command(Some(1)),
            "exec /.strata/ansible/bin/ansible-playbook --tags strata_task_1 \
             /.strata/run/ansible/playbook.yml\n"
        );
    }
}
