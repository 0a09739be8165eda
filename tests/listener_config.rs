//! `ListenerConfig`: one value with the defaults of the builder, bound directly or handed to
//! the builder, checked when bound.

use mllp_testkit as common;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mllp::hl7::{Ack, AckCode, AckMode, ReplyKind, COMMIT_ACK};
use mllp::{
    Connection, Error, Framing, Listener, ListenerConfig, SenderConfig, DEFAULT_STACK_SIZE,
    MIN_STACK_SIZE,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn round_trip(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut conn = Connection::new(tcp, Framing::default());
    conn.write_frame(message).unwrap();
    conn.read_frame()
        .unwrap()
        .expect("an acknowledgement")
        .to_vec()
}

fn msg(id: &str) -> String {
    format!(
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|{id}|P|2.5\rPID|1||{}\r",
        "7".repeat(100)
    )
}

#[test]
fn the_builder_starts_from_the_one_default() {
    let builder = Listener::builder("127.0.0.1:0");
    assert_eq!(
        format!("{:?}", builder.current_config()),
        format!("{:?}", ListenerConfig::default())
    );
    let d = ListenerConfig::default();
    assert_eq!(d.stack_size, DEFAULT_STACK_SIZE);
    assert_eq!((d.reply, d.ack_mode), (ReplyKind::Hl7, AckMode::Original));
    assert!(d.tls.is_none() && d.detect_msh18 && d.idle_timeout.is_none());
    // Setters fill the same fields.
    let builder = Listener::builder("127.0.0.1:0")
        .max_connections(3)
        .stack_size(MIN_STACK_SIZE)
        .idle_timeout(Some(Duration::from_secs(9)));
    let c = builder.current_config();
    assert_eq!(
        (c.max_connections, c.stack_size, c.idle_timeout),
        (3, MIN_STACK_SIZE, Some(Duration::from_secs(9)))
    );
}

#[test]
fn a_config_value_binds_through_the_builder() {
    let mut config = ListenerConfig::default();
    config.reply = ReplyKind::Mllp2;
    let running = Listener::builder("127.0.0.1:0")
        .config(config.clone())
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    assert_eq!(
        round_trip(running.local_addr(), msg("C1").as_bytes()),
        COMMIT_ACK
    );
    drop(running);

    // A setter after config() changes it further.
    let running = Listener::builder("127.0.0.1:0")
        .config(config)
        .reply(ReplyKind::Hl7)
        .ack_mode(AckMode::Original)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let ack = Ack::parse(&round_trip(running.local_addr(), msg("C3").as_bytes())).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept);
}

#[test]
fn one_reply_kind_configures_sender_and_listener() {
    for kind in [ReplyKind::Mllp2, ReplyKind::Hl7] {
        let mut listener = ListenerConfig::default();
        listener.reply = kind;
        let running = Listener::builder("127.0.0.1:0")
            .config(listener)
            .bind()
            .unwrap()
            .spawn(common::accept_all)
            .unwrap();
        let mut sender = SenderConfig::default();
        sender.reply = kind;
        sender.timeouts.ack = IO_TIMEOUT;
        let mut sender = mllp::Sender::builder(running.local_addr().to_string())
            .config(sender)
            .build()
            .unwrap();
        let ack = sender.send(&msg("R1")).unwrap();
        let code = match kind {
            ReplyKind::Mllp2 => AckCode::CommitAccept,
            ReplyKind::Hl7 => AckCode::ApplicationAccept,
        };
        assert_eq!((ack.kind, ack.code), (kind, code));
        drop(sender);
        running.shutdown();
        running.join().unwrap();
    }
}

#[test]
fn config_replaces_what_was_set_before() {
    // A maximum size set before config() is forgotten: the message is accepted.
    let running = Listener::builder("127.0.0.1:0")
        .max_message_size(50)
        .config(ListenerConfig::default())
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let ack = Ack::parse(&round_trip(running.local_addr(), msg("M1").as_bytes())).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept, "{ack:?}");
    drop(running);
    // Set after it, it applies.
    let running = Listener::builder("127.0.0.1:0")
        .config(ListenerConfig::default())
        .max_message_size(50)
        .bind()
        .unwrap()
        .spawn(common::accept_all)
        .unwrap();
    let ack = Ack::parse(&round_trip(running.local_addr(), msg("M2").as_bytes())).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationReject, "{ack:?}");
}

#[test]
fn invalid_values_fail_at_bind() {
    type Change = fn(&mut ListenerConfig);
    let cases: [(&str, Change); 4] = [
        ("at least 1", |c| c.max_connections = 0),
        ("stack size", |c| c.stack_size = MIN_STACK_SIZE - 1),
        ("frame timeout", |c| c.frame_timeout = Some(Duration::ZERO)),
        ("eviction threshold", |c| {
            c.evict_after = Some(Duration::ZERO)
        }),
    ];
    for (text, change) in cases {
        let mut config = ListenerConfig::default();
        change(&mut config);
        match Listener::builder("127.0.0.1:0").config(config).bind() {
            Err(Error::Config(msg)) => assert!(msg.contains(text), "{msg}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}
