//! The listeners a measurement sends to: this crate's `Listener`, or a raw `std::net` loop.

use super::*;

/// A listener started for a measurement.
pub(super) struct Served {
    pub(super) addr: String,
    inner: ServedInner,
}

enum ServedInner {
    Mllp(RunningListener),
    Raw {
        stop: Arc<AtomicBool>,
        accept: JoinHandle<()>,
    },
}

impl Served {
    pub(super) fn stop(self) {
        match self.inner {
            ServedInner::Mllp(listener) => {
                listener.shutdown();
                let _ = listener.join();
            }
            ServedInner::Raw { stop, accept } => {
                stop.store(true, Ordering::SeqCst);
                // Wake the accept loop.
                let _ = TcpStream::connect(&self.addr);
                let _ = accept.join();
            }
        }
    }
}

/// Starts a listener of the given side on a free loopback port.
pub(super) fn serve(
    side: Side,
    params: Params,
    framing: Framing,
    charset: Charset,
) -> Result<Served, mllp::Error> {
    match side {
        Side::Mllp => {
            let mut builder = Listener::builder("127.0.0.1:0");
            if params.tls {
                builder = builder.tls(tls::server()?);
            }
            let listener = builder
                .framing(framing)
                .charset(charset)
                .max_connections(params.connections)
                .reply(super::reply_kind(params.mllp2))
                .bind()?;
            let running = listener.spawn(|_: &mllp::Message<'_>| Response::accept())?;
            Ok(Served {
                addr: running.local_addr().to_string(),
                inner: ServedInner::Mllp(running),
            })
        }
        Side::Raw | Side::RawChecked => {
            let tcp = TcpListener::bind("127.0.0.1:0").map_err(io_error)?;
            let addr = tcp.local_addr().map_err(io_error)?.to_string();
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let accept = std::thread::spawn(move || {
                let mut conns = Vec::new();
                for stream in tcp.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        conns.push(std::thread::spawn(move || {
                            let _ = raw_serve(stream, framing, params.mllp2);
                        }));
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            });
            Ok(Served {
                addr,
                inner: ServedInner::Raw { stop, accept },
            })
        }
    }
}

/// The fixed part of the raw listener's ACK, before MSA-2.
pub(super) const RAW_ACK_HEAD: &[u8] =
    b"MSH|^~\\&|RECV|FAC|BENCH|FAC|20260101120000||ACK^A01^ACK|RAW1|P|2.5.1\rMSA|AA|";

/// The raw listener's connection loop: read until the bytes end with the frame end (one
/// message is in flight), answer with a fixed ACK echoing MSH-10.
pub(super) fn raw_serve(mut tcp: TcpStream, framing: Framing, mllp2: bool) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    let (start, end) = (framing.start(), framing.end());
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    let mut ack = Vec::with_capacity(256);
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let n = tcp.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if len < start.len() + end.len() || !buf[..len].ends_with(end) {
            continue;
        }
        ack.clear();
        ack.extend_from_slice(start);
        if mllp2 {
            ack.push(0x06);
        } else {
            ack.extend_from_slice(RAW_ACK_HEAD);
            ack.extend_from_slice(msh10(&buf[start.len()..len]));
            ack.push(b'\r');
        }
        ack.extend_from_slice(end);
        tcp.write_all(&ack)?;
        len = 0;
    }
}

/// MSH-10 of a message: the text between the 9th and the 10th field separator.
pub(super) fn msh10(msg: &[u8]) -> &[u8] {
    let range = field_range(msg, 10);
    &msg[range]
}

/// The byte range of field `n` of the first segment (MSH-1 is the separator itself).
pub(super) fn field_range(msg: &[u8], n: usize) -> std::ops::Range<usize> {
    let sep = msg.get(3).copied().unwrap_or(b'|');
    let mut fields = 0;
    let mut start = 0;
    for (i, &b) in msg.iter().enumerate() {
        if b == sep {
            fields += 1;
            if fields == n - 1 {
                start = i + 1;
            } else if fields == n {
                return start..i;
            }
        } else if b == b'\r' {
            break;
        }
    }
    start..start
}
