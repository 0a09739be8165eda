//! The send path through the C ABI against the Rust API: round trips to the same in-process
//! listener with `Sender::send_bytes` and with `mllp_sender_send` (called here as C would call
//! it: from `libmllp.so`, loaded with `dlopen`).
//!
//! `cargo bench --bench ffi_send` prints the round-trip time of each and their ratio (goal:
//! the C ABI within 5 % of the Rust API). Rounds alternate between the two so that drift in
//! the machine's load hits both; the best round of each counts. Under `cargo test` this is a
//! quick smoke check.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::{Duration, Instant};

use mllp_core::{Listener, Response, Sender};

#[path = "../tests/clib/mod.rs"]
mod clib;

// The dynamic loader (in glibc itself since 2.34; on other Unixes in libc or libdl).
extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}
const RTLD_NOW: c_int = 2;

type BuilderNew = unsafe extern "C" fn(*mut *mut c_void) -> u32;
type BuilderBuild = unsafe extern "C" fn(*const c_void, *const c_char, *mut *mut c_void) -> u32;
type SenderSend = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
    *mut u32,
) -> u32;
type SenderFree = unsafe extern "C" fn(*mut c_void);

/// The C API's functions, from `libmllp.so` as a C program would load it. The handles are
/// opaque and the builder keeps its defaults, so untyped pointers suffice.
struct CApi {
    builder_new: BuilderNew,
    builder_build: BuilderBuild,
    builder_free: SenderFree,
    sender_send: SenderSend,
    sender_free: SenderFree,
}

impl CApi {
    fn load() -> CApi {
        let lib = clib::build_library();
        let path = CString::new(lib.cdylib.to_str().expect("a UTF-8 path")).unwrap();
        // SAFETY: a NUL-terminated path; the library stays loaded for the whole process.
        let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
            let why = unsafe { CStr::from_ptr(dlerror()) };
            panic!("cannot load {}: {why:?}", lib.cdylib.display());
        }
        let symbol = |name: &CStr| {
            // SAFETY: a live handle and a NUL-terminated symbol name.
            let p = unsafe { dlsym(handle, name.as_ptr()) };
            assert!(!p.is_null(), "libmllp.so has no {name:?}");
            p
        };
        // SAFETY: each symbol is the exported function of that name, whose C signature (see
        // `mllp.h`) the type spells out.
        unsafe {
            CApi {
                builder_new: std::mem::transmute::<*mut c_void, BuilderNew>(symbol(
                    c"mllp_sender_builder_new",
                )),
                builder_build: std::mem::transmute::<*mut c_void, BuilderBuild>(symbol(
                    c"mllp_sender_builder_build",
                )),
                builder_free: std::mem::transmute::<*mut c_void, SenderFree>(symbol(
                    c"mllp_sender_builder_free",
                )),
                sender_send: std::mem::transmute::<*mut c_void, SenderSend>(symbol(
                    c"mllp_sender_send",
                )),
                sender_free: std::mem::transmute::<*mut c_void, SenderFree>(symbol(
                    c"mllp_sender_free",
                )),
            }
        }
    }
}

const MLLP_OK: u32 = 0;
const MLLP_ACK_AA: u32 = 1;

/// A typical ADT message of about 1 KB.
fn message() -> Vec<u8> {
    let mut m = b"MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r\
EVN|A01|20260101120000\r\
PID|1||123456^^^HOSP^MR||DOE^JANE^Q||19800101|F|||1 MAIN ST^^CITY^ST^12345||555-0100\r\
PV1|1|I|WARD^101^A|||||||MED||||||||V123456\r"
        .to_vec();
    while m.len() < 1000 {
        m.extend_from_slice(b"OBX|1|ST|NOTE||free text observation value for padding|||N|||F\r");
    }
    m
}

/// Time per round trip over `n` messages with the Rust API.
fn rust_round(sender: &mut Sender, msg: &[u8], n: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let ack = sender.send_bytes(msg).expect("an ACK");
        assert!(ack.is_success());
        std::hint::black_box(&ack.raw);
    }
    t.elapsed() / n as u32
}

/// Time per round trip over `n` messages through the C ABI, the ACK copied out as a C caller
/// would.
fn ffi_round(api: &CApi, sender: *mut c_void, msg: &[u8], ack: &mut [u8], n: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let (mut len, mut code) = (0usize, 0u32);
        // SAFETY: a live handle, a readable message and a writable buffer with their lengths,
        // writable outputs.
        let rc = unsafe {
            (api.sender_send)(
                sender,
                msg.as_ptr(),
                msg.len(),
                ack.as_mut_ptr(),
                ack.len(),
                &mut len,
                &mut code,
            )
        };
        assert_eq!((rc, code), (MLLP_OK, MLLP_ACK_AA));
        std::hint::black_box(&ack[..len]);
    }
    t.elapsed() / n as u32
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if bench { (5_000, 7) } else { (50, 1) };

    let running = Listener::builder("127.0.0.1:0")
        .bind()
        .expect("a listener")
        .spawn(|_: &mllp_core::Message<'_>| Response::accept())
        .expect("the listener thread");
    let addr = running.local_addr().to_string();
    let msg = message();

    let api = CApi::load();
    let mut rust = Sender::builder(addr.clone()).build().expect("a sender");
    let c_addr = CString::new(addr).unwrap();
    let mut ffi: *mut c_void = std::ptr::null_mut();
    let mut builder: *mut c_void = std::ptr::null_mut();
    // SAFETY: writable out-pointers, a NUL-terminated address, the builder freed once.
    unsafe {
        assert_eq!((api.builder_new)(&mut builder), MLLP_OK);
        assert_eq!(
            (api.builder_build)(builder, c_addr.as_ptr(), &mut ffi),
            MLLP_OK
        );
        (api.builder_free)(builder);
    }
    let mut ack = vec![0u8; 4096];

    // Warm up both connections.
    rust_round(&mut rust, &msg, n / 10 + 1);
    ffi_round(&api, ffi, &msg, &mut ack, n / 10 + 1);
    let (mut best_rust, mut best_ffi) = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        best_rust = best_rust.min(rust_round(&mut rust, &msg, n));
        best_ffi = best_ffi.min(ffi_round(&api, ffi, &msg, &mut ack, n));
    }
    // SAFETY: the handle from `mllp_sender_builder_build`, freed once.
    unsafe { (api.sender_free)(ffi) };
    running.shutdown();

    println!(
        "send path, {}-byte message, loopback, best of {rounds} rounds of {n} round trips",
        msg.len()
    );
    println!("{:<28} {:>12}", "API", "µs/round trip");
    println!(
        "{:<28} {:>12.2}",
        "Sender::send_bytes (Rust)",
        best_rust.as_secs_f64() * 1e6
    );
    println!(
        "{:<28} {:>12.2}",
        "mllp_sender_send (C ABI)",
        best_ffi.as_secs_f64() * 1e6
    );
    println!(
        "C ABI / Rust: {:.3}",
        best_ffi.as_secs_f64() / best_rust.as_secs_f64()
    );
}
