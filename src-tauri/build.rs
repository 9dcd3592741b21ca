//! Generates the Tauri context and the app's command permissions. Declaring the commands
//! in an app manifest makes the ACL apply to them too: the window may call only what
//! `capabilities/default.json` grants. Links the app as `cabinet` is (crates/cabinet-build).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    cabinet_build::pack_relative_relocs();
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "get_snapshot",
            "next_snapshot",
            "qr_svg",
            "cabinet_info",
            "names_font",
            "ui_ready",
            "demo_available",
            "demo_motor_count",
            "demo_scan",
            "demo_return",
            "demo_info",
            "demo_set_fault",
            "tech_status",
            "tech_login",
            "tech_logout",
            "tech_activity",
            "tech_diag",
            "tech_do",
        ]),
    ))?;
    Ok(())
}
