//! Links `cabinet` as the other binaries a cabinet runs are linked (crates/cabinet-build).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    cabinet_build::pack_relative_relocs();
}
