//! The engine's own checks, in process and quick.
use super::*;

/// The byte range of MSH-10 in a message built by [`adt_message`].
fn control_id_range(msg: &str) -> std::ops::Range<usize> {
    field_range(msg.as_bytes(), 10)
}

#[test]
fn adt_messages_have_the_asked_size_and_a_replaceable_control_id() {
    for size in [10, 200, 1024, 100 * 1024] {
        let mut msg = adt_message(size, "0");
        assert!(
            msg.len() >= size.min(100) && msg.len() <= size.max(150) + 4,
            "{size}: {}",
            msg.len()
        );
        msg.replace_range(control_id_range(&msg), "X-42");
        let header = mllp::hl7::Header::parse(msg.as_bytes()).unwrap();
        assert_eq!(header.control_id(), Some(&b"X-42"[..]));
    }
}

#[test]
fn counters_and_params_round_trip() {
    let mut b = *b"xxxx";
    put_counter(&mut b, 42);
    assert_eq!(&b, b"0042");
    let p = Params {
        size: 1,
        messages: 2,
        connections: 3,
        warmup: 4,
        mllp2: true,
        tls: true,
    };
    let q = Params::decode(&p.encode()).unwrap();
    assert_eq!(
        (q.size, q.messages, q.connections, q.warmup, q.mllp2, q.tls),
        (1, 2, 3, 4, true, true)
    );
}

#[cfg(feature = "tls")]
#[test]
fn tls_runs_in_process_next_to_a_plain_baseline() {
    let config = BenchConfig {
        messages: 40,
        warmup: 2,
        tls: true,
        baseline: true,
        ..BenchConfig::default()
    };
    let report = run(&config).unwrap();
    assert_eq!(report.messages, 40);
    assert_eq!(report.baseline.as_ref().map(|b| b.messages), Some(40));

    // The listener really speaks TLS: a plain sender gets no answer, a TLS one does.
    let params = Params::of(&config);
    let served = serve(Side::Mllp, params, config.framing, config.charset).unwrap();
    let msg = adt_message(200, "T1");
    let mut plain = Sender::builder(served.addr.as_str())
        .retry(mllp::RetryPolicy::none())
        .ack_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(plain.send(&msg).is_err());
    let mut tls = Sender::builder(served.addr.as_str())
        .tls(tls::client().unwrap())
        .build()
        .unwrap();
    assert!(tls.send(&msg).unwrap().is_success());
    served.stop();
}

#[test]
fn every_pairing_runs_in_process() {
    let config = BenchConfig {
        messages: 50,
        warmup: 5,
        sides: true,
        ..BenchConfig::default()
    };
    let report = run(&config).unwrap();
    assert_eq!(report.messages, 50);
    let labels: Vec<&str> = report.sides.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "mllp sender ↔ raw listener",
            "raw sender ↔ mllp listener",
            "raw-checked sender ↔ raw listener"
        ]
    );
    assert!(report.ratio().is_some());
    // This crate's sender is also measured against the checked raw sender, and only it.
    assert!(report.sides[0].floor_ratio().is_some());
    assert!(report.sides[1..].iter().all(|s| s.floor.is_none()));
    let mut out = Vec::new();
    print(&report, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        out.lines().nth(2).unwrap().contains("× raw-checked)"),
        "{out}"
    );
}

#[test]
fn the_checked_raw_sender_refuses_a_message_with_the_end_sequence_and_the_plain_one_does_not() {
    let config = BenchConfig {
        messages: 1,
        warmup: 0,
        ..BenchConfig::default()
    };
    let params = Params::of(&config);
    let mut msg = adt_message(200, "E1").into_bytes();
    let at = msg.len() - 10;
    msg[at..at + 2].copy_from_slice(config.framing.end());
    let digits = control_id_range(std::str::from_utf8(&msg[..at]).unwrap());
    for checked in [true, false] {
        let served = serve(Side::Raw, params, config.framing, config.charset).unwrap();
        let raw = RawSender {
            framing: config.framing,
            checked,
        };
        let ready = Barrier::new(1);
        let sent = raw.run(&served.addr, msg.clone(), digits.clone(), params, 1, &ready);
        served.stop();
        match sent {
            Err(e) => {
                assert!(checked, "the plain raw sender checks nothing: {e}");
                assert!(e.to_string().contains("end sequence"), "{e}");
            }
            // The raw listener answers the part before the end sequence.
            Ok(_) => assert!(!checked, "the checked raw sender sent it"),
        }
    }
}
