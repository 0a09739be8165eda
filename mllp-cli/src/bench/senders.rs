//! The senders a measurement drives: this crate's `Sender`, or a raw `std::net` loop.

use super::*;

/// The width of the counter written into each message's control ID.
pub(super) const COUNTER_DIGITS: usize = 10;

/// Writes `n` as zero-padded decimal digits over `out`.
pub(super) fn put_counter(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Runs the senders: `params.connections` threads, each warming up and then sending its share
/// of the messages. The clock runs from when every thread has warmed up to when the last one
/// is done.
pub(super) fn drive(
    addr: &str,
    side: Side,
    params: Params,
    framing: Framing,
) -> Result<Sample, mllp::Error> {
    let conns = params.connections.max(1);
    let per_conn = params.messages.div_ceil(conns);
    let ready = Arc::new(Barrier::new(conns + 1));
    let mut threads = Vec::new();
    for c in 0..conns {
        let addr = addr.to_string();
        let ready = Arc::clone(&ready);
        threads.push(std::thread::spawn(move || {
            let id = format!("C{c:03}-{}", "0".repeat(COUNTER_DIGITS));
            let msg = adt_message(params.size, &id).into_bytes();
            let ids = field_range(&msg, 10);
            let digits = ids.end - COUNTER_DIGITS..ids.end;
            let run = match side {
                Side::Mllp => mllp_sender(&addr, msg, digits, params, framing, per_conn, &ready),
                Side::Raw | Side::RawChecked => {
                    let checked = side == Side::RawChecked;
                    let raw = RawSender { framing, checked };
                    raw.run(&addr, msg, digits, params, per_conn, &ready)
                }
            };
            if run.is_err() {
                // Do not leave the other threads waiting at the barrier.
                ready.wait();
            }
            run
        }));
    }
    ready.wait();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(per_conn * conns);
    let mut bytes = 0;
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok((l, b))) => {
                latencies.extend(l);
                bytes += b;
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(bench_error("a sender thread panicked")),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        return Err(e);
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(Sample {
        messages: latencies.len() as u64,
        bytes,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    })
}

pub(super) type SenderRun = Result<(Vec<Duration>, u64), mllp::Error>;

/// One connection of this crate's [`Sender`].
pub(super) fn mllp_sender(
    addr: &str,
    mut msg: Vec<u8>,
    digits: std::ops::Range<usize>,
    params: Params,
    framing: Framing,
    count: usize,
    ready: &Barrier,
) -> SenderRun {
    let mut builder = Sender::builder(addr);
    if params.tls {
        builder = builder.tls(tls::client()?);
    }
    let mut sender = builder
        .framing(framing)
        .reply(super::reply_kind(params.mllp2))
        .build()?;
    let mut latencies = Vec::with_capacity(count);
    let mut n = 0u64;
    let mut one = |msg: &mut Vec<u8>, sender: &mut Sender| -> Result<Duration, mllp::Error> {
        n += 1;
        put_counter(&mut msg[digits.clone()], n);
        let t = Instant::now();
        let ack = sender.send_bytes(msg)?;
        let took = t.elapsed();
        if !ack.is_success() {
            return Err(bench_error(format!(
                "the listener answered {} to a benchmark message",
                ack.code.as_str()
            )));
        }
        Ok(took)
    };
    for _ in 0..params.warmup {
        one(&mut msg, &mut sender)?;
    }
    ready.wait();
    for _ in 0..count {
        latencies.push(one(&mut msg, &mut sender)?);
    }
    Ok((latencies, (msg.len() * count) as u64))
}

/// The raw sender: write the framed bytes, read until the reply ends with the frame end
/// sequence. When `checked`, it also does what every correct sender must: each message is
/// checked for the end sequence before it is written (as [`Framing::check_payload`] does), and
/// the wait for the reply is bounded by a socket read timeout (the sender's default ACK
/// timeout; a write timeout too).
pub(super) struct RawSender {
    pub framing: Framing,
    pub checked: bool,
}

impl RawSender {
    /// One connection.
    pub(super) fn run(
        &self,
        addr: &str,
        msg: Vec<u8>,
        digits: std::ops::Range<usize>,
        params: Params,
        count: usize,
        ready: &Barrier,
    ) -> SenderRun {
        let mut tcp = TcpStream::connect(addr).map_err(io_error)?;
        tcp.set_nodelay(true).map_err(io_error)?;
        if self.checked {
            let defaults = mllp::Timeouts::default();
            tcp.set_read_timeout(Some(defaults.ack)).map_err(io_error)?;
            tcp.set_write_timeout(Some(defaults.write))
                .map_err(io_error)?;
        }
        let framing = self.framing;
        let (start, end) = (framing.start(), framing.end());
        let mut frame = Vec::with_capacity(msg.len() + start.len() + end.len());
        frame.extend_from_slice(start);
        frame.extend_from_slice(&msg);
        frame.extend_from_slice(end);
        let payload = start.len()..frame.len() - end.len();
        let digits = digits.start + start.len()..digits.end + start.len();
        let mut buf = vec![0u8; 64 * 1024];
        let mut latencies = Vec::with_capacity(count);
        let mut n = 0u64;
        let mut one = |frame: &mut Vec<u8>| -> io::Result<Duration> {
            n += 1;
            put_counter(&mut frame[digits.clone()], n);
            let t = Instant::now();
            if self.checked {
                framing
                    .check_payload(&frame[payload.clone()])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            tcp.write_all(frame)?;
            let mut len = 0;
            loop {
                let got = tcp.read(&mut buf[len..])?;
                if got == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                len += got;
                if buf[..len].ends_with(end) {
                    break;
                }
                if len == buf.len() {
                    len = 0; // a reply larger than the buffer: keep only its end
                }
            }
            Ok(t.elapsed())
        };
        for _ in 0..params.warmup {
            one(&mut frame).map_err(io_error)?;
        }
        ready.wait();
        for _ in 0..count {
            latencies.push(one(&mut frame).map_err(io_error)?);
        }
        Ok((latencies, (msg.len() * count) as u64))
    }
}
