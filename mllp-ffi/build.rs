//! Gives the shared library a SONAME of its major version, `libmllp.so.<major>`, so that a
//! program linked against one major version never loads another (see the ABI policy in
//! mllp.h).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "android" || os.ends_with("bsd") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmllp.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
