//! The C library as the tests and benchmarks of this crate link it: `cargo build --lib` run
//! into the same target directory, with the same profile and features, reporting where
//! `libmllp.a` and `libmllp.so` are and which system libraries the static one needs (from
//! cargo's build-script output and `rustc --print native-static-libs`). Cargo gives
//! integration tests only an rlib, which this crate does not build: its library is C's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The library artifacts and what linking the static one needs.
pub struct Library {
    pub staticlib: PathBuf,
    pub cdylib: PathBuf,
    /// Linker arguments for the system libraries of the static library.
    pub native: Vec<String>,
}

/// Builds the static and shared libraries with `cargo build --lib` into the target directory
/// this test runs from, with the same profile and features.
pub fn build_library() -> &'static Library {
    // Once per process: the tests of one binary run in parallel and would otherwise build,
    // and write the same scratch files, at the same time.
    static LIBRARY: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(build)
}

fn build() -> Library {
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
    let cdylib = cdylib.expect("cargo reported no shared library");
    link_soname(&cdylib);
    Library {
        staticlib: staticlib.expect("cargo reported no static library"),
        cdylib,
        native,
    }
}

/// The SONAME of the shared library (`build.rs`): what programs linked against it look for.
pub const SONAME: &str = concat!("libmllp.so.", env!("CARGO_PKG_VERSION_MAJOR"));

/// Programs linked against `libmllp.so` load it by its SONAME, so that name must exist beside
/// it (as an installed library's symlink would).
fn link_soname(cdylib: &Path) {
    #[cfg(target_os = "linux")]
    {
        let link = cdylib.with_file_name(SONAME);
        if std::fs::read_link(&link).is_err() {
            // Another test process may make the same link at the same time: either one wins.
            let _ = std::fs::remove_file(&link);
            let _ = std::os::unix::fs::symlink(cdylib.file_name().unwrap(), &link);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cdylib;
}

/// The system libraries Rust's standard library needs in a static library, as
/// `rustc --print native-static-libs` reports them for an empty crate.
fn std_native_libs(scratch: &Path) -> Vec<String> {
    std::fs::create_dir_all(scratch).unwrap();
    // Named for this process, so that two test binaries never share the files.
    let src = scratch.join(format!("empty-{}.rs", std::process::id()));
    std::fs::write(&src, "").unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args(["--crate-type", "staticlib", "--print", "native-static-libs"])
        .arg("-o")
        .arg(scratch.join(format!("libempty-{}.a", std::process::id())))
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
