//! Generates the Tauri context and the one command's permission, as the app's build.rs
//! does: declaring the command in an app manifest makes the ACL apply to it. Linked as the
//! app is (crates/cabinet-build), so the two are compared like for like.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cabinet_build::pack_relative_relocs();
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(&["ui_ready"])),
    )?;
    Ok(())
}
