//! `MLLP_REQUIRE_ALL=1` turns every skip for something missing into a failure: CI must never
//! pass by skipping a test it could not run.

use std::process::Command;

use mllp_testkit as common;

/// Set in the child run of this test binary: the child is the test that would skip.
const CHILD: &str = "MLLP_REQUIRE_ALL_CHILD";

/// In the child: asks for each thing a test may find missing, with all of them missing.
#[test]
fn child_asks_for_what_is_missing() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let what = std::env::var(CHILD).unwrap();
    match what.as_str() {
        "corpus" => assert!(common::corpus_dir().is_none()),
        "python" => assert!(common::python().is_none()),
        other => panic!("unknown child case {other}"),
    }
}

fn child(what: &str, require_all: bool) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_asks_for_what_is_missing",
        "--test-threads=1",
    ])
    .env(CHILD, what)
    .env_remove("MLLP_TEST_CORPUS")
    .env_remove("MLLP_TEST_PYTHON");
    if require_all {
        cmd.env("MLLP_REQUIRE_ALL", "1");
    } else {
        cmd.env_remove("MLLP_REQUIRE_ALL");
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_corpus_or_python_fails_only_when_everything_is_required() {
    for what in ["corpus", "python"] {
        let relaxed = child(what, false);
        let stderr = String::from_utf8_lossy(&relaxed.stderr);
        assert!(relaxed.status.success(), "{what}: {stderr}");
        // Visible without --nocapture: a skip is not hidden by the harness.
        assert!(
            stderr.contains("SKIPPED at tests/require_all.rs"),
            "{what}: {stderr}"
        );

        let strict = child(what, true);
        // The harness reports a failing test's panic on standard output.
        let out = String::from_utf8_lossy(&strict.stdout).into_owned()
            + &String::from_utf8_lossy(&strict.stderr);
        assert!(
            !strict.status.success(),
            "{what} skipped under MLLP_REQUIRE_ALL=1: {out}"
        );
        assert!(out.contains("MLLP_REQUIRE_ALL=1"), "{what}: {out}");
    }
}
