//! Shared by the build scripts of the binaries a cabinet runs (`cabinet`, the window app)
//! and of the empty window they are measured against.
//!
//! [`pack_relative_relocs`] links them with packed relative relocations (DT_RELR). A
//! position-independent Rust binary carries one 24-byte relocation for every pointer in
//! its read-only tables (vtables, string slices); the dynamic loader reads all of them
//! at every start, so those pages stay resident: 210 KiB for `cabinet`. DT_RELR encodes
//! the same relocations in ~6 KiB. Idle RSS of `cabinet run` 7,880–7,944 → 7,800–7,808
//! KiB (docs/BENCHMARKS.md, "Footprint").

use std::process::Command;

/// Link this package's binaries with `-z pack-relative-relocs` when the C library
/// they will run on takes it. Call from `build.rs`.
pub fn pack_relative_relocs() {
    if relr_supported() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// glibc loads DT_RELR from 2.36 on (Debian 12, Ubuntu 22.10); a binary linked with it
/// does not start on an older one, and only this machine's C library can be asked, so a
/// cross build (target ≠ host) is linked as before.
fn relr_supported() -> bool {
    let var = |k| std::env::var(k).unwrap_or_default();
    if var("TARGET") != var("HOST") || var("CARGO_CFG_TARGET_ENV") != "gnu" {
        return false;
    }
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    glibc_at_least(&String::from_utf8_lossy(&out.stdout), (2, 36))
}

/// `getconf GNU_LIBC_VERSION` prints `glibc 2.36`.
fn glibc_at_least(getconf: &str, min: (u32, u32)) -> bool {
    let Some(v) = getconf.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::glibc_at_least;

    #[test]
    fn glibc_versions_are_compared_as_numbers() {
        assert!(glibc_at_least("glibc 2.36\n", (2, 36)));
        assert!(glibc_at_least("glibc 2.41", (2, 36)));
        assert!(glibc_at_least("glibc 3.0", (2, 36)));
        assert!(!glibc_at_least("glibc 2.35", (2, 36)));
        assert!(!glibc_at_least("glibc 2.4", (2, 36)));
        assert!(!glibc_at_least("", (2, 36)));
        assert!(!glibc_at_least("musl 1.2", (2, 36)));
    }
}
