//! The C API from C: compiles the programs in `tests/c/` against `src/mllp.h` with
//! `-Wall -Wextra -Werror`, links each one against both `libmllp.a` and `libmllp.so`, and runs
//! them (under AddressSanitizer and UBSan when the compiler supports them).
//!
//! `cargo test` builds only the rlib for integration tests, so this test runs `cargo build --lib`
//! itself (same target directory, profile and features) to get the static and shared
//! libraries, and reads the system libraries the static one needs from cargo's build-script
//! output and `rustc --print native-static-libs`.
//!
//! Environment: `CC` picks the compiler (default `cc`; without one the test is skipped with a
//! notice). `MLLP_TEST_CORPUS` is passed on to the programs. `MLLP_C_TESTS_VALGRIND=1` builds
//! without sanitizers and runs every program under valgrind instead (`.ci/valgrind-c`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The C programs in `tests/c/`, each a `main` that exits 0 when every check passes.
const PROGRAMS: &[&str] = &["decoder_test", "errors_test", "ack_test", "log_test"];

const WARNINGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"];
const SANITIZERS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

/// The library artifacts and what linking the static one needs.
struct Library {
    staticlib: PathBuf,
    cdylib: PathBuf,
    /// Linker arguments for the system libraries of the static library.
    native: Vec<String>,
}

#[test]
fn c_programs() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if !Command::new(&cc)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("no C compiler ({cc}): skipping the C API tests");
        return;
    }
    let valgrind = std::env::var_os("MLLP_C_TESTS_VALGRIND").is_some_and(|v| v == "1");
    if valgrind && !runs("valgrind", &["--version"]) {
        eprintln!("MLLP_C_TESTS_VALGRIND=1 but valgrind is not installed: skipping");
        return;
    }

    let lib = build_library();
    let out = lib.staticlib.parent().unwrap().join("c-tests");
    std::fs::create_dir_all(&out).unwrap();
    let sanitize = !valgrind && sanitizers_work(&cc, &out);
    if !valgrind && !sanitize {
        eprintln!("{cc} cannot build and run with -fsanitize=address,undefined: running without");
    }

    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let jobs: Vec<_> = PROGRAMS
            .iter()
            .map(|program| {
                let (cc, lib, out) = (&cc, &lib, &out);
                s.spawn(move || {
                    let mut failures = Vec::new();
                    for shared in [false, true] {
                        if let Err(e) =
                            build_and_run(cc, lib, out, program, shared, sanitize, valgrind)
                        {
                            failures.push(e);
                        }
                    }
                    failures
                })
            })
            .collect();
        jobs.into_iter().flat_map(|j| j.join().unwrap()).collect()
    });
    eprintln!(
        "C API tests: {} programs x 2 links{} in {:.1?}",
        PROGRAMS.len(),
        if valgrind {
            " under valgrind"
        } else if sanitize {
            " with ASan+UBSan"
        } else {
            ""
        },
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn build_and_run(
    cc: &str,
    lib: &Library,
    out: &Path,
    program: &str,
    shared: bool,
    sanitize: bool,
    valgrind: bool,
) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let link = if shared { "shared" } else { "static" };
    let suffix = if valgrind { "-plain" } else { "" };
    let exe = out.join(format!("{program}-{link}{suffix}"));
    let mut cmd = Command::new(cc);
    cmd.args(WARNINGS);
    if sanitize {
        cmd.args(SANITIZERS);
    }
    cmd.arg("-I")
        .arg(root.join("src"))
        .arg(root.join("tests/c").join(format!("{program}.c")))
        .arg("-o")
        .arg(&exe);
    if shared {
        let dir = lib.cdylib.parent().unwrap();
        cmd.arg(&lib.cdylib)
            .arg(format!("-Wl,-rpath,{}", dir.display()));
    } else {
        cmd.arg(&lib.staticlib).args(&lib.native);
    }
    let output = cmd.output().map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "compiling {program} ({link}) failed: {cmd:?}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let mut run = if valgrind {
        let mut v = Command::new("valgrind");
        v.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--quiet",
        ])
        .arg(&exe);
        v
    } else {
        Command::new(&exe)
    };
    run.env("UBSAN_OPTIONS", "print_stacktrace=1");
    let limit = Duration::from_secs(if valgrind { 600 } else { 60 });
    let (ok, text) = run_with_timeout(run, &out.join(format!("{program}-{link}.log")), limit)?;
    eprintln!(
        "{program} ({link}): {}",
        text.trim_end().replace('\n', " | ")
    );
    if ok {
        Ok(())
    } else {
        Err(format!("{program} ({link}) failed:\n{text}"))
    }
}

/// Runs `cmd` with its output in `log`, killing it after `limit`. Returns (success, output).
fn run_with_timeout(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
) -> Result<(bool, String), String> {
    let file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok((true, text)),
        Some(s) => {
            text.push_str(&format!("\n({s})"));
            Ok((false, text))
        }
        None => {
            text.push_str(&format!("\n(killed after {limit:?})"));
            Ok((false, text))
        }
    }
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a trivial program builds and runs with the sanitizers.
fn sanitizers_work(cc: &str, out: &Path) -> bool {
    let src = out.join("sanitizer-probe.c");
    let exe = out.join("sanitizer-probe");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let built = Command::new(cc)
        .args(SANITIZERS)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    built && runs(exe.to_str().unwrap(), &[])
}

/// Builds the static and shared libraries with `cargo build --lib` into the target directory
/// this test runs from, with the same profile and features.
fn build_library() -> Library {
    let exe = std::env::current_exe().unwrap();
    // target[/<triple>]/<profile>/deps/c_api-<hash>
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let mut target_dir = profile_dir.parent().unwrap();
    let mut triple = None;
    if !target_dir.join("CACHEDIR.TAG").exists()
        && target_dir
            .parent()
            .is_some_and(|p| p.join("CACHEDIR.TAG").exists())
    {
        triple = target_dir.file_name();
        target_dir = target_dir.parent().unwrap();
    }
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--lib", "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--profile", profile]);
    // The same features as this test was built with, so the library is not rebuilt back and
    // forth between the two builds.
    if !cfg!(feature = "default") {
        cmd.arg("--no-default-features");
        if cfg!(feature = "tls") {
            cmd.args(["--features", "tls"]);
        }
    }
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let output = cmd.stderr(Stdio::inherit()).output().unwrap();
    assert!(output.status.success(), "{cmd:?} failed");
    let stdout = String::from_utf8(output.stdout).unwrap();

    let (mut staticlib, mut cdylib) = (None, None);
    let mut native = Vec::new();
    for line in stdout.lines() {
        if line.contains(r#""reason":"compiler-artifact""#) && line.contains(r#""name":"mllp""#) {
            for file in json_strings(line, "filenames") {
                let path = PathBuf::from(&file);
                match path.extension().and_then(|e| e.to_str()) {
                    Some("a" | "lib") => staticlib = Some(path),
                    Some("so" | "dylib") => cdylib = Some(path),
                    _ => {}
                }
            }
        }
        if line.contains(r#""reason":"build-script-executed""#) {
            for dir in json_strings(line, "linked_paths") {
                let dir = dir.split_once('=').map_or(dir.as_str(), |(_, d)| d);
                native.push(format!("-L{dir}"));
            }
            for lib in json_strings(line, "linked_libs") {
                match lib.split_once('=') {
                    Some(("framework", name)) => native.extend(["-framework".into(), name.into()]),
                    Some((_, name)) => native.push(format!("-l{name}")),
                    None => native.push(format!("-l{lib}")),
                }
            }
        }
    }
    native.extend(std_native_libs(&profile_dir.join("c-tests")));
    Library {
        staticlib: staticlib.expect("cargo reported no static library"),
        cdylib: cdylib.expect("cargo reported no shared library"),
        native,
    }
}

/// The system libraries Rust's standard library needs in a static library, as
/// `rustc --print native-static-libs` reports them for an empty crate.
fn std_native_libs(scratch: &Path) -> Vec<String> {
    std::fs::create_dir_all(scratch).unwrap();
    let src = scratch.join("empty.rs");
    std::fs::write(&src, "").unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args(["--crate-type", "staticlib", "--print", "native-static-libs"])
        .arg("-o")
        .arg(scratch.join("libempty.a"))
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("native-static-libs:"))
        .map(|(_, libs)| libs.to_owned())
        .expect("rustc --print native-static-libs printed no list");
    line.split_whitespace().map(str::to_owned).collect()
}

/// The strings of the JSON array `"key":[...]` in `line` (cargo's messages are one object per
/// line; the arrays used here hold plain strings).
fn json_strings(line: &str, key: &str) -> Vec<String> {
    let Some(at) = line.find(&format!("\"{key}\":[")) else {
        return Vec::new();
    };
    let mut rest = line[at + key.len() + 4..].chars();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    while let Some(c) = rest.next() {
        match (&mut current, c) {
            (None, ']') => break,
            (None, '"') => current = Some(String::new()),
            (None, _) => {}
            (Some(s), '\\') => match rest.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some(other) => s.push(other),
                None => break,
            },
            (Some(_), '"') => out.push(current.take().unwrap()),
            (Some(s), c) => s.push(c),
        }
    }
    out
}

#[test]
fn json_strings_reads_cargo_arrays() {
    let line = r#"{"reason":"x","linked_libs":["ssl","dylib=crypto"],"linked_paths":[],"filenames":["/t/a \"b\".so"]}"#;
    assert_eq!(json_strings(line, "linked_libs"), ["ssl", "dylib=crypto"]);
    assert!(json_strings(line, "linked_paths").is_empty());
    assert_eq!(json_strings(line, "filenames"), ["/t/a \"b\".so"]);
    assert!(json_strings(line, "missing").is_empty());
}
