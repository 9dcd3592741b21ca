//! The idle screen's QR code, rendered here (not in the page) so the payload format lives
//! next to the session check that consumes it.
//!
//! The code encodes `cabinet:{machine_code}:{nonce}`; the backend reads the cabinet and
//! the nonce from it and puts the nonce in the command's `session`.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR could not be made (the payload is too long for any QR version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the QR payload: {0}")]
pub struct QrError(String);

/// The text the idle screen's QR code encodes.
pub fn payload(machine_code: &str, nonce: &str) -> String {
    format!("cabinet:{machine_code}:{nonce}")
}

/// Renders `data` as a standalone SVG document (black on white, with the quiet zone a
/// phone camera needs). Error correction M: robust against a scratched screen without
/// making the modules too small to scan at arm's length.
pub fn svg(data: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_names_the_cabinet_and_the_nonce() {
        assert_eq!(payload("CAB-001", "n0nce"), "cabinet:CAB-001:n0nce");
    }

    #[test]
    fn renders_an_svg_document_that_depends_on_the_payload() {
        let a = svg(&payload("CAB-001", "aaaa")).unwrap_or_default();
        let b = svg(&payload("CAB-001", "bbbb")).unwrap_or_default();
        assert!(a.contains("<svg"), "{a}");
        assert!(a.trim_end().ends_with("</svg>"), "{a}");
        assert!(a.contains("#000000") && a.contains("#ffffff"));
        assert_ne!(a, b);
        assert_eq!(a, svg(&payload("CAB-001", "aaaa")).unwrap_or_default());
    }

    #[test]
    fn a_payload_too_long_for_any_qr_version_is_an_error() {
        assert!(svg(&"x".repeat(5000)).is_err());
    }
}
