//! Re-embeds migrations when a new one is added, and has the binary's
//! relocations packed where the C library it will run on can read them so.
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    if packed_relocations_supported() {
        // The binary has about 21,000 relative relocations, which the loader
        // reads at every start: 500 KB as RELA entries (and so 500 KB
        // resident), a few KB as RELR.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Packed (RELR) relocations need glibc 2.36 or later where the binary runs,
/// so only a native Linux build on such a glibc gets them; the binary is
/// built where it runs (`cargo run --release`, or a build stage on the
/// runtime image's distribution).
fn packed_relocations_supported() -> bool {
    let var = |name| env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
        || var("HOST") != var("TARGET")
    {
        return false;
    }
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    (major, minor) >= (2, 36)
}
