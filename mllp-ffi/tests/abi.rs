//! The promises of the ABI policy that a test can check: the header's version macros are the
//! crate's version, and the shared library carries the SONAME of its major version.

mod clib;

use std::path::Path;

/// The value of `#define <name> <value>` in the header.
fn define(header: &str, name: &str) -> Option<u32> {
    header.lines().find_map(|line| {
        let rest = line.strip_prefix("#define ")?.strip_prefix(name)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[test]
fn header_version_macros_are_the_crate_version() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("mllp.h"))
        .expect("mllp.h");
    let got = [
        "MLLP_VERSION_MAJOR",
        "MLLP_VERSION_MINOR",
        "MLLP_VERSION_PATCH",
    ]
    .map(|name| define(&header, name).unwrap_or_else(|| panic!("no {name} in mllp.h")));
    let want = [
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ]
    .map(|v| v.parse::<u32>().unwrap());
    assert_eq!(
        got, want,
        "mllp.h's version macros against Cargo.toml's version"
    );
    // The ABI policy is stated where C programmers read it.
    assert!(header.contains("ABI policy"), "mllp.h states no ABI policy");
}

#[cfg(target_os = "linux")]
#[test]
fn shared_library_has_the_soname_of_its_major_version() {
    let lib = clib::build_library();
    let soname = match std::process::Command::new("readelf")
        .arg("-d")
        .arg(&lib.cdylib)
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| l.contains("(SONAME)"))
                .and_then(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_owned()))
        }
        _ => elf_soname(&std::fs::read(&lib.cdylib).unwrap()),
    };
    assert_eq!(soname.as_deref(), Some(clib::SONAME));
}

/// The DT_SONAME of a 64-bit little-endian ELF file, read from its dynamic section (for
/// machines without readelf).
#[cfg(target_os = "linux")]
fn elf_soname(elf: &[u8]) -> Option<String> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28)? as usize, u16_at(0x3A)?, u16_at(0x3C)?);
    let section = |i: usize| {
        let at = shoff + i * shentsize as usize;
        // (type, offset, size, link)
        Some((
            u32_at(at + 4)?,
            u64_at(at + 0x18)? as usize,
            u64_at(at + 0x20)? as usize,
            u32_at(at + 0x28)?,
        ))
    };
    for i in 0..shnum as usize {
        let (kind, offset, size, link) = section(i)?;
        if kind != 6 {
            continue; // not SHT_DYNAMIC
        }
        let (_, strtab, _, _) = section(link as usize)?;
        for entry in (offset..offset + size).step_by(16) {
            if u64_at(entry)? == 14 {
                // DT_SONAME: an offset into the dynamic string table.
                let start = strtab + u64_at(entry + 8)? as usize;
                let end = start + elf.get(start..)?.iter().position(|&b| b == 0)?;
                return Some(String::from_utf8_lossy(&elf[start..end]).into_owned());
            }
        }
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn elf_reader_finds_the_soname_readelf_finds() {
    let lib = clib::build_library();
    assert_eq!(
        elf_soname(&std::fs::read(&lib.cdylib).unwrap()).as_deref(),
        Some(clib::SONAME)
    );
}
