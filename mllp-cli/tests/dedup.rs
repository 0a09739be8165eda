//! `mllp listen --dedup N`: a resend of a message already stored is answered AA again and not
//! stored twice, also after a restart (the keys are in `DIR/.dedup-index`); another message
//! that reuses a control ID is stored; a URL store needs `--dedup-index PATH`.

mod common;

use std::time::Duration;

use common::process::{mllp, Proc};
use common::{adt, exchange, scratch_dir};

/// The `.hl7` files of the store directory.
fn stored(dir: &std::path::Path) -> Vec<String> {
    common::stored_messages(dir)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Runs `mllp listen --store DIR --dedup 100 --count N`, sends `ids` in order (each on a new
/// connection, each answered AA), and returns its output once it has exited.
fn listen_and_send(dir: &std::path::Path, ids: &[String]) -> common::process::Ended {
    let texts: Vec<(&str, String)> = ids.iter().map(|id| (id.as_str(), adt(id))).collect();
    listen_and_send_texts(dir, &texts)
}

/// As [`listen_and_send`], with messages given as (MSH-10, text).
fn listen_and_send_texts(
    dir: &std::path::Path,
    texts: &[(&str, String)],
) -> common::process::Ended {
    let count = texts.len().to_string();
    let proc = Proc::spawn(
        &[
            "listen",
            "127.0.0.1:0",
            "--store",
            dir.to_str().unwrap(),
            "--dedup",
            "100",
            "--count",
            &count,
        ],
        None,
    );
    let first = proc.line();
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    for (id, text) in texts {
        let ack = exchange(&addr, text.as_bytes(), Duration::from_secs(10)).unwrap();
        let ack = String::from_utf8_lossy(&ack);
        assert!(ack.contains(&format!("MSA|AA|{id}")), "{ack}");
    }
    let ended = proc.wait();
    assert_eq!(ended.code, 0, "{ended:?}");
    ended
}

#[test]
fn fifty_messages_sent_twice_are_fifty_files_all_acknowledged() {
    let dir = scratch_dir("cli-dedup");
    let ids: Vec<String> = (0..50).map(|i| format!("DUP{i:03}")).collect();
    let twice: Vec<String> = ids.iter().chain(ids.iter()).cloned().collect();
    let ended = listen_and_send(&dir, &twice);
    assert_eq!(stored(&dir).len(), 50, "{:?}", stored(&dir));
    for (i, id) in ids.iter().enumerate() {
        let file = dir.join(format!("{:010}-{id}.hl7", i + 1));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), adt(id));
    }
    // The second line for a message names the file of the first.
    let first_of = |id: &str| {
        ended
            .stdout
            .iter()
            .filter(|l| l.split(' ').nth(1) == Some(id))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let lines = first_of("DUP007");
    assert_eq!(lines.len(), 2, "{:?}", ended.stdout);
    assert_eq!(lines[0], lines[1]);
    assert_eq!(
        ended.stdout.last().unwrap(),
        "stopped: 100 messages on 100 connections; AA 100, resends not stored again 50"
    );
    assert!(dir.join(".dedup-index").is_file());

    // After a restart the keys are still known: the same 50 again store nothing.
    let ended = listen_and_send(&dir, &ids);
    assert_eq!(stored(&dir).len(), 50);
    assert_eq!(
        ended.stdout.last().unwrap(),
        "stopped: 50 messages on 50 connections; AA 50, resends not stored again 50"
    );
    // A new message is still stored, after the ones there (the index is no message file).
    let ended = listen_and_send(&dir, &["NEW".to_owned()]);
    assert_eq!(
        ended.stdout.last().unwrap(),
        "stopped: 1 message on 1 connection; AA 1"
    );
    assert_eq!(stored(&dir).last().unwrap(), "0000000051-NEW.hl7");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_url_store_needs_an_index_path_and_a_bad_one_is_a_startup_error() {
    let dir = scratch_dir("cli-dedup-url");
    #[cfg(feature = "mongodb")]
    if let Some(server) = common::mongo::MongoServer::start("cli-dedup-url") {
        let url = format!("{}/hl7?serverSelectionTimeoutMS=3000", server.uri());
        let ended = mllp(&["listen", "127.0.0.1:0", "--store", &url, "--dedup", "10"]);
        assert_eq!(ended.code, 2, "{ended:?}");
        assert!(
            ended.stderr.contains("needs --dedup-index PATH"),
            "{ended:?}"
        );
    }
    let missing = dir.join("no/such/dir/index");
    let ended = mllp(&[
        "listen",
        "127.0.0.1:0",
        "--store",
        dir.to_str().unwrap(),
        "--dedup",
        "10",
        "--dedup-index",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(ended.code, 2, "{ended:?}");
    assert!(
        ended
            .stderr
            .starts_with("mllp: error: cannot use the duplicate index: "),
        "{ended:?}"
    );
    for bad in [&["--dedup", "0"][..], &["--dedup-index", "x"]] {
        let mut args = vec!["listen", "127.0.0.1:0", "--store", dir.to_str().unwrap()];
        args.extend_from_slice(bad);
        assert_eq!(mllp(&args).code, 2, "{bad:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_message_with_a_reused_control_id_is_stored_and_counted() {
    let dir = scratch_dir("cli-dedup-reused");
    let a = "MSH|^~\\&|LAB|HOSP|EHR|WARD|20260101120000||ADT^A01|1|P|2.5\rPID|1||7||SMITH\r";
    // The sending system's counter was reset: same MSH-3, MSH-4, MSH-10, another patient.
    let b = "MSH|^~\\&|LAB|HOSP|EHR|WARD|20260102080000||ADT^A01|1|P|2.5\rPID|1||8||JONES\r";
    let texts = [
        ("1", a.to_owned()),
        ("1", b.to_owned()),
        ("1", a.to_owned()),
    ];
    let ended = listen_and_send_texts(&dir, &texts);
    let files = stored(&dir);
    assert_eq!(files, ["0000000001-1.hl7", "0000000002-1.hl7"], "{ended:?}");
    assert_eq!(std::fs::read_to_string(dir.join(&files[0])).unwrap(), a);
    assert_eq!(std::fs::read_to_string(dir.join(&files[1])).unwrap(), b);
    assert_eq!(
        ended.stdout.last().unwrap(),
        "stopped: 3 messages on 3 connections; AA 3, resends not stored again 1, reused control \
         IDs stored as new 1"
    );
    assert!(
        ended.stderr.starts_with("mllp: warning: message 1 from ")
            && ended
                .stderr
                .contains("reuses the control ID of a different message"),
        "{ended:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
