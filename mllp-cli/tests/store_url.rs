//! `mllp listen --store DIR|URL`: a directory or a `file:` URL is a file store; the broker
//! schemes planned for a crate of their own, a MongoDB URL without a database, and any other
//! scheme, stop the listener at startup with exit 2 and one sentence; a URL is never taken for
//! a directory name.

mod common;

use std::path::Path;
use std::time::Duration;

use common::process::{listen, mllp, Proc};
use common::{adt, exchange, scratch_dir};

/// Starts `mllp listen 127.0.0.1:0 --store SPEC --count 1`, sends one message, and checks
/// that it is acknowledged, stored as one file in `dir` and printed with that file's path.
fn stores_in(spec: &str, dir: &Path) {
    let proc = Proc::spawn(
        &["listen", "127.0.0.1:0", "--store", spec, "--count", "1"],
        None,
    );
    let first = proc.line();
    assert!(
        first.ends_with(&format!("(storing in {})", dir.display())),
        "{first}"
    );
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let ack = exchange(&addr, adt("U1").as_bytes(), Duration::from_secs(10)).unwrap();
    assert!(String::from_utf8_lossy(&ack).contains("MSA|AA|U1"));
    let ended = proc.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    let file = dir.join("0000000001-U1.hl7");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), adt("U1"));
    assert!(
        ended.stdout[0].starts_with(&format!("{} U1 ", file.display())),
        "{ended:?}"
    );
}

#[test]
fn a_directory_and_a_file_url_are_file_stores() {
    let dir = scratch_dir("store-url-file");
    let plain = dir.join("plain");
    stores_in(plain.to_str().unwrap(), &plain);
    let url_dir = dir.join("by url");
    let url = format!("file://{}", url_dir.to_str().unwrap().replace(' ', "%20"));
    stores_in(&url, &url_dir);
    let local = dir.join("local");
    stores_in(
        &format!("file://localhost{}", local.to_str().unwrap()),
        &local,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `mllp listen` with `--store spec` in `cwd`, which must fail at startup.
fn refused(spec: &str, cwd: &Path) -> String {
    let mut args = vec!["listen", "127.0.0.1:0", "--store", spec];
    args.push("-q");
    let ended = Proc::spawn_in(&args, cwd).wait();
    assert_eq!(ended.code, 2, "{spec}: {ended:?}");
    assert!(ended.stdout.is_empty(), "{spec}: {ended:?}");
    let lines: Vec<&str> = ended.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{spec}: {ended:?}");
    lines[0].to_owned()
}

#[test]
fn broker_urls_are_not_in_this_build() {
    let cwd = scratch_dir("store-url-planned");
    let mut planned = vec![];
    if cfg!(not(feature = "mongodb")) {
        planned.extend([
            ("mongodb://localhost:27017/hl7", "mongodb"),
            ("mongodb+srv://cluster.example/hl7", "mongodb"),
        ]);
    }
    if cfg!(not(feature = "amqp")) {
        planned.extend([
            ("amqp://guest:secret@localhost:5672/%2f", "amqp"),
            ("amqps://broker.example/vhost", "amqp"),
            ("AMQP://localhost", "amqp"),
        ]);
    }
    for (url, store) in planned {
        let reason = refused(url, &cwd);
        assert!(
            reason.starts_with(&format!(
                "mllp: error: this build of mllp has no {store} store; "
            )),
            "{reason}"
        );
        assert!(!reason.contains("secret"), "{reason}");
    }
    // With the amqp feature (a default one), an AMQP URL is read, and one that says nowhere to
    // publish is refused before anything is connected, without its password.
    #[cfg(feature = "amqp")]
    for url in [
        "amqp://guest:secret@localhost:5672/%2f",
        "amqps://broker.example/vhost",
        "AMQP://localhost",
    ] {
        let reason = refused(url, &cwd);
        assert!(
            reason.starts_with("mllp: error: --store: bad AMQP URL: say where messages go"),
            "{reason}"
        );
        assert!(!reason.contains("secret"), "{reason}");
    }
    // Nothing was taken for a directory name.
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    std::fs::remove_dir_all(&cwd).unwrap();
}

/// A MongoDB URL goes to the MongoDB store, which says what is wrong with it before it
/// contacts any server, and never shows the password.
#[test]
fn a_mongodb_url_without_a_database_is_refused_without_credentials() {
    let cwd = scratch_dir("store-url-mongodb");
    for url in [
        "mongodb://hl7:secret@127.0.0.1:1",
        "mongodb://hl7:secret@127.0.0.1:1/?collection=adt",
    ] {
        let reason = refused(url, &cwd);
        assert!(
            reason.starts_with("mllp: error: --store mongodb: the URL names no database"),
            "{reason}"
        );
        assert!(!reason.contains("secret"), "{reason}");
    }
    let reason = refused("mongodb://127.0.0.1:1/hl7?dedup=maybe", &cwd);
    assert!(reason.contains("dedup is true or false"), "{reason}");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn other_schemes_are_named_and_never_a_directory() {
    let cwd = scratch_dir("store-url-other");
    for (url, scheme) in [
        ("s3://bucket/inbox", "s3"),
        ("redis://localhost", "redis"),
        ("x-y.z+w://h", "x-y.z+w"),
        ("inbox://", "inbox"),
    ] {
        let reason = refused(url, &cwd);
        assert!(
            reason.contains(&format!("--store {scheme}://... names no store")),
            "{reason}"
        );
        assert!(reason.contains("file://"), "{reason}");
    }
    for url in [
        "file://inbox/x",
        "file://",
        "file:///tmp/x?y=1",
        "file:///%zz",
    ] {
        let reason = refused(url, &cwd);
        assert!(
            reason.starts_with("mllp: error: --store file://"),
            "{reason}"
        );
    }
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
    std::fs::remove_dir_all(&cwd).unwrap();
}

#[test]
fn a_relative_directory_that_only_contains_a_colon_is_still_a_directory() {
    let cwd = scratch_dir("store-url-colon");
    let dir = cwd.join("in:box");
    let (proc, _addr) = listen(&dir, &["-q"]);
    drop(proc);
    assert!(dir.is_dir());
    let ended = mllp(&["listen", "--help"]);
    assert!(ended.stdout.iter().any(|l| l.contains("--store DIR|URL")));
    std::fs::remove_dir_all(&cwd).unwrap();
}

/// The address in a `listening on ADDR ...` line.
fn address(first: &str) -> String {
    first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned()
}

#[test]
fn a_store_named_in_a_file_or_the_environment_is_not_on_the_command_line() {
    let dir = scratch_dir("store-url-secret");
    // The store's name stands in for a URL with a password: it must not reach the command
    // line that every user of the host can read in /proc/PID/cmdline or `ps`.
    let secret_dir = dir.join("s3cret-store");
    let spec_file = dir.join("store-url");
    std::fs::write(&spec_file, format!("{}\n", secret_dir.display())).unwrap();
    let by_file = Proc::spawn(
        &[
            "listen",
            "127.0.0.1:0",
            "--store-file",
            spec_file.to_str().unwrap(),
            "--count",
            "1",
        ],
        None,
    );
    let by_env = Proc::spawn_env(
        &["listen", "127.0.0.1:0", "--count", "1"],
        None,
        &[("MLLP_STORE", &secret_dir)],
    );
    for (proc, id) in [(by_file, "F1"), (by_env, "E1")] {
        let addr = address(&proc.line());
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", proc.child.id())).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains("s3cret"),
            "{}",
            String::from_utf8_lossy(&cmdline)
        );
        let ack = exchange(&addr, adt(id).as_bytes(), Duration::from_secs(10)).unwrap();
        assert!(String::from_utf8_lossy(&ack).contains(&format!("MSA|AA|{id}")));
        assert_eq!(proc.wait().code, 0);
    }
    let mut stored: Vec<String> = std::fs::read_dir(&secret_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".hl7"))
        .collect();
    stored.sort();
    assert_eq!(stored.len(), 2, "{stored:?}");
    // Both at once is a usage error that does not echo the file's contents.
    let ended = mllp(&[
        "listen",
        "127.0.0.1:0",
        "--store",
        "x",
        "--store-file",
        spec_file.to_str().unwrap(),
    ]);
    assert_eq!(ended.code, 2);
    assert!(!ended.stderr.contains("s3cret"), "{}", ended.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}
