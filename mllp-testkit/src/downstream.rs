//! A downstream listener for store-and-forward tests: it records the control IDs it accepts,
//! in arrival order, and answers `AE` to chosen ones while told to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mllp::{Listener, Message, Response, RunningListener};

/// A listener that records the MSH-10 of each message it accepts and answers `AE` to those
/// in its reject list while [`rejecting`](Downstream::stop_rejecting) is on (it starts on).
pub struct Downstream {
    running: RunningListener,
    seen: Arc<Mutex<Vec<String>>>,
    rejecting: Arc<AtomicBool>,
}

impl Downstream {
    /// Listens on `addr` (`127.0.0.1:0`: a free port), answering `AE` to the IDs in `reject`.
    pub fn start(addr: &str, reject: &'static [&'static str]) -> Downstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rejecting = Arc::new(AtomicBool::new(true));
        let (seen2, rejecting2) = (Arc::clone(&seen), Arc::clone(&rejecting));
        let running = Listener::builder(addr)
            .bind()
            .unwrap()
            .spawn(move |msg: &Message<'_>| {
                let id = msg.control_id().unwrap_or("-").to_owned();
                if rejecting2.load(Ordering::SeqCst) && reject.contains(&id.as_str()) {
                    return Response::error("downstream refuses this one");
                }
                seen2.lock().unwrap().push(id);
                Response::accept()
            })
            .unwrap();
        Downstream {
            running,
            seen,
            rejecting,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> String {
        self.running.local_addr().to_string()
    }

    /// The control IDs accepted so far, in arrival order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// From now on, accepts the IDs it used to refuse.
    pub fn stop_rejecting(&self) {
        self.rejecting.store(false, Ordering::SeqCst);
    }
}

/// A downstream that accepts connections and reads what is sent, but never answers: every
/// message sent to it ends in an ACK timeout. Stops when dropped.
pub struct Silent {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    /// Listens on a free loopback port.
    pub fn start() -> Silent {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                if let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).unwrap();
                    held.push(stream);
                }
                for s in &mut held {
                    let _ = s.read(&mut buf);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        Silent {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
