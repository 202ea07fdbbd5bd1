//! Bad input and failing commands: clear errors pointing at the user's file, a non-zero exit,
//! and nothing half-done in the store.

use crate::support::{Env, leftovers, store_listing};

#[test]
fn a_failing_command_names_image_stage_command_line_and_output() {
    let env = Env::new();
    let dir = env.project(
        "fail",
        r#"image: app
from: busybox:latest
shell:
  install:
  - echo preparing
  - echo "something broke" >&2; exit 3
  - echo never
"#,
    );
    let before = env.stage_records().len();
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the build exits with the command's code:\n{stderr}"
    );
    assert!(
        stderr.contains("image `app`, stage `install`: command exited with code 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> strata.yaml:6:5"),
        "points at the failing list item:\n{stderr}"
    );
    assert!(
        stderr.contains("6 |   - echo \"something broke\" >&2; exit 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("last output lines:\n  + echo preparing\n  preparing\n"),
        "{stderr}"
    );
    assert!(stderr.contains("  something broke\n"), "{stderr}");
    assert!(!stderr.contains("never\n"), "{stderr}");
    // The from stage is a valid result and stays cached; the failed stage left nothing.
    let records = env.stage_records();
    assert_eq!(records.len(), before + 1);
    assert!(records.iter().all(|r| r["stage"] != "install"));
    assert_eq!(leftovers(env.store.path()), Vec::<String>::new());
}

#[test]
fn config_errors_point_at_the_line_and_leave_the_store_as_it_was() {
    let env = Env::new();
    let before = store_listing(env.store.path());
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "image: a\nfrom: busybox\nshell:\n  instal:\n  - x\n",
            "strata.yaml:4:3",
            &["unknown key `instal`", "install"],
        ),
        (
            "image: a\nfrom: busybox\nshell:\n  install: [\n",
            "strata.yaml:",
            &[],
        ),
        (
            "image: a\nfrom: busybox\nansible:\n  install:\n  - template: {src: a, dest: b}\n",
            "strata.yaml:5:5",
            &["ansible module `template` is not supported"],
        ),
        (
            "image: a\nfrom: nosuchimage:1\nshell:\n  install: [\"true\"]\n",
            "strata.yaml:2:7",
            &["nosuchimage:1", "strata import"],
        ),
    ];
    for (i, (yaml, location, words)) in cases.iter().enumerate() {
        let dir = env.project(&format!("bad{i}"), yaml);
        let out = env.build(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} must fail");
        assert!(
            stderr.contains(location),
            "case {i}: expected {location} in:\n{stderr}"
        );
        for w in *words {
            assert!(stderr.contains(w), "case {i}: expected {w} in:\n{stderr}");
        }
    }
    assert_eq!(store_listing(env.store.path()), before);
    assert_eq!(leftovers(env.store.path()), Vec::<String>::new());
}

#[test]
fn missing_config_and_unknown_image_are_clear() {
    let env = Env::new();
    let out = env.build(env.work.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no strata.yaml or werf.yaml"));
    let out = env.strata(&["run", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no image `nope`"));
}

#[test]
fn template_errors_point_at_the_template() {
    let env = Env::new();
    // A template error: the unknown function, at its line and column.
    let dir = env.project(
        "tpl",
        "image: a\nfrom: busybox:latest\nshell:\n  install:\n  - echo {{ nosuchfunc \"x\" }}\n",
    );
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("nosuchfunc") && stderr.contains("strata.yaml:5:"),
        "{stderr}"
    );
    // A YAML error in rendered text points back at the template line that produced it.
    let dir = env.project(
        "tpl2",
        "{{ $x := \"a\" }}image: {{ $x }}\nfrom: busybox:latest\nshel:\n  install: [\"true\"]\n",
    );
    let out = env.build(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown key `shel`") && stderr.contains("--> strata.yaml:3:1"),
        "{stderr}"
    );
    // `strata config render` shows the rendered text.
    let out = env
        .cmd()
        .args(["config", "render"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "image: a\nfrom: busybox:latest\nshel:\n  install: [\"true\"]\n"
    );
}
