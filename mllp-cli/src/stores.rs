//! `--store DIR|URL`: which [`Store`] keeps the messages, chosen by the URL's scheme.
//!
//! A plain path or a `file:` URL is a [`FileStore`]. Anything that starts like a URL (a
//! letter, then letters, digits, `+`, `-` or `.`, then `://`) is never taken for a directory:
//! its scheme must be one of [`BACKENDS`], else the listener does not start. A store in
//! another crate plugs in with one line in [`BACKENDS`], behind a cargo feature of this crate.

use std::path::PathBuf;

use mllp::{FileStore, Store};

/// What `--store` URLs may need besides the URL (`--tls-ca`), as every store crate takes it.
pub use mllp::store::UrlOptions as StoreOptions;

/// Opens the store a `--store` value names; `Err` holds one sentence for the operator.
type Open = fn(&str, &StoreOptions) -> Result<Box<dyn Store>, String>;

/// The stores of this build: URL schemes, and how to open a store from the whole value.
const BACKENDS: &[(&[&str], Open)] = &[
    (&["file"], open_file),
    #[cfg(feature = "amqp")]
    (&["amqp", "amqps"], open_amqp),
    #[cfg(feature = "mongodb")]
    (&["mongodb", "mongodb+srv"], open_mongodb),
];

/// Schemes with a store in a crate of its own left out of this build, and the cargo feature
/// that brings it: named in the error, so that an operator knows the build, not the URL, is the problem.
const PLANNED: &[(&str, &str)] = &[
    #[cfg(not(feature = "amqp"))]
    ("amqp", "amqp"),
    #[cfg(not(feature = "amqp"))]
    ("amqps", "amqp"),
    #[cfg(not(feature = "mongodb"))]
    ("mongodb", "mongodb"),
    #[cfg(not(feature = "mongodb"))]
    ("mongodb+srv", "mongodb"),
];

/// Opens the store `spec` names: a directory, or a URL.
pub fn open(spec: &str, options: &StoreOptions) -> Result<Box<dyn Store>, String> {
    let Some(scheme) = scheme(spec) else {
        return open_dir(spec);
    };
    let lower = scheme.to_ascii_lowercase();
    if let Some((_, open)) = BACKENDS.iter().find(|(s, _)| s.contains(&lower.as_str())) {
        return open(spec, options);
    }
    if let Some((_, feature)) = PLANNED.iter().find(|(s, _)| *s == lower) {
        return Err(format!(
            "this build of mllp has no {feature} store; --store {lower}://... needs mllp built \
             with the cargo feature {feature} (a default one): use a directory, or that build"
        ));
    }
    let known: Vec<String> = BACKENDS
        .iter()
        .flat_map(|(s, _)| s.iter().map(|s| format!("{s}://")))
        .collect();
    Err(format!(
        "--store {scheme}://... names no store this mllp knows: give a directory or a URL \
         starting with {}",
        known.join(", ")
    ))
}

/// The scheme of a value that looks like a URL: `letter (letter | digit | + | - | .)* ://`.
fn scheme(spec: &str) -> Option<&str> {
    let (scheme, _) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

fn open_dir(dir: &str) -> Result<Box<dyn Store>, String> {
    match FileStore::open(dir) {
        Ok(store) => Ok(Box::new(store)),
        Err(e) => Err(format!(
            "cannot use {dir} as the store directory: {}",
            innermost(&e)
        )),
    }
}

/// `amqp://...` and `amqps://...`: a RabbitMQ queue or exchange.
#[cfg(feature = "amqp")]
fn open_amqp(url: &str, options: &StoreOptions) -> Result<Box<dyn Store>, String> {
    mllp_amqp::open_url(url, options).map_err(|e| format!("--store: {e}"))
}

/// `mongodb://...` and `mongodb+srv://...`: a MongoDB collection.
#[cfg(feature = "mongodb")]
fn open_mongodb(url: &str, options: &StoreOptions) -> Result<Box<dyn Store>, String> {
    mllp_mongodb::open_url(url, options).map_err(|e| format!("--store mongodb: {e}"))
}

/// `file:///abs/path` or `file://localhost/abs/path`, percent-escapes decoded.
fn open_file(url: &str, _options: &StoreOptions) -> Result<Box<dyn Store>, String> {
    open_dir(&file_url_path(url)?)
}

/// The path of a `file:` URL.
fn file_url_path(url: &str) -> Result<String, String> {
    let rest = &url["file://".len()..];
    let path = match rest.find('/') {
        Some(0) => rest,
        Some(at) if rest[..at].eq_ignore_ascii_case("localhost") => &rest[at..],
        _ => {
            return Err(format!(
                "--store {url}: a file URL is file:///absolute/path (a host other than \
                 localhost is not supported); or give the directory itself"
            ))
        }
    };
    if path.contains(['?', '#']) {
        return Err(format!(
            "--store {url}: a file URL takes no query or fragment"
        ));
    }
    mllp::store::percent_decode(path)
        .ok_or_else(|| format!("--store {url}: the path has a bad percent escape, or is not UTF-8"))
}

/// The directory of a store in the local file system (a path or a `file:` URL), or `None` for
/// a store elsewhere.
pub fn local_dir(spec: &str) -> Option<PathBuf> {
    match scheme(spec) {
        None => Some(PathBuf::from(spec)),
        Some(s) if s.eq_ignore_ascii_case("file") => file_url_path(spec).ok().map(PathBuf::from),
        Some(_) => None,
    }
}

/// The file `--dedup` keeps its keys in inside a directory store (the file store ignores
/// names that start with a dot and do not end in `.tmp`).
pub const DEDUP_INDEX_FILE: &str = ".dedup-index";

/// The innermost cause of an error (no phases).
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_looks_like_a_url() {
        assert_eq!(scheme("amqp://h"), Some("amqp"));
        assert_eq!(scheme("mongodb+srv://h/db"), Some("mongodb+srv"));
        assert_eq!(scheme("S3://b"), Some("S3"));
        assert_eq!(scheme("./inbox"), None);
        assert_eq!(scheme("/var/x://y"), None);
        assert_eq!(scheme("1abc://x"), None);
        assert_eq!(scheme("://x"), None);
        assert_eq!(scheme("C:\\inbox"), None);
    }

    fn open_default(spec: &str) -> Result<Box<dyn Store>, String> {
        open(spec, &StoreOptions::default())
    }

    #[test]
    fn unknown_and_planned_schemes_are_errors() {
        let mut planned = vec![];
        if cfg!(not(feature = "amqp")) {
            planned.extend(["amqp://h", "AMQPS://h"]);
        }
        if cfg!(not(feature = "mongodb")) {
            planned.extend(["mongodb://h", "mongodb+srv://h"]);
        }
        for url in planned {
            let e = open_default(url).err().unwrap();
            assert!(e.starts_with("this build of mllp has no "), "{e}");
        }
        // A MongoDB URL reaches the MongoDB store, which finds what is wrong with it (here:
        // no database) without contacting a server.
        #[cfg(feature = "mongodb")]
        for url in [
            "mongodb://127.0.0.1:1",
            "MONGODB://127.0.0.1:1/?collection=x",
        ] {
            let e = open_default(url).err().unwrap();
            assert!(e.contains("names no database"), "{e}");
        }
        let e = open_default("s3://bucket").err().unwrap();
        assert!(e.contains("s3://") && e.contains("file://"), "{e}");
        for url in ["file://inbox", "file://", "file:///x?y"] {
            assert!(open_default(url).is_err(), "{url}");
        }
        assert_eq!(local_dir("./in"), Some(PathBuf::from("./in")));
        assert_eq!(local_dir("file:///a%20b"), Some(PathBuf::from("/a b")));
        assert_eq!(local_dir("mongodb://h/db"), None);
    }

    #[cfg(feature = "amqp")]
    #[test]
    fn amqp_urls_open_an_amqp_store_without_connecting() {
        // Port 1 on loopback: nothing is connected until the first check or save.
        let store = open_default("AMQP://u:secret@127.0.0.1:1,127.0.0.1:2/%2f?queue=q").unwrap();
        assert_eq!(store.name(), "amqp://127.0.0.1:1,127.0.0.1:2/%2f?queue=q");
        for bad in ["amqp://h", "amqps://u:secret@h?queue=q&x=1"] {
            let e = open_default(bad).err().unwrap();
            assert!(
                e.starts_with("--store: bad AMQP URL") && !e.contains("secret"),
                "{e}"
            );
        }
        let options = StoreOptions::new().tls_ca("/nonexistent/ca.pem");
        let e = open("amqps://h?queue=q", &options).err().unwrap();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
