//! The idle screen's QR code, rendered here (not in the page) so the payload format lives
//! next to the session check that consumes it.
//!
//! By default the code encodes `cabinet:{machine_code}:{nonce}`, which only the
//! operator's own app reads. With `kiosk.qr_url` it encodes the operator's https link
//! with the machine code and the nonce filled in, which WeChat, Alipay or any phone
//! camera opens. Either way the backend reads the cabinet and the nonce from it and puts
//! the nonce in the command's `session`.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR could not be made (the payload is too long for any QR version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode the QR payload: {0}")]
pub struct QrError(String);

const MACHINE_CODE: &str = "{machine_code}";
const NONCE: &str = "{nonce}";

/// The longest `kiosk.qr_url`: the longer the link, the denser the code and the harder to
/// scan off a screen at arm's length.
pub const MAX_URL_TEMPLATE: usize = 200;

/// The text the idle screen's QR code encodes: `template` (`kiosk.qr_url`) with the
/// machine code and the nonce filled in, or `cabinet:{machine_code}:{nonce}` when it is
/// empty. Both values are URL-safe as they stand (machine codes are `[A-Za-z0-9_-]`,
/// nonces hex), so nothing needs escaping.
pub fn payload(template: &str, machine_code: &str, nonce: &str) -> String {
    if template.is_empty() {
        format!("cabinet:{machine_code}:{nonce}")
    } else {
        template
            .replace(MACHINE_CODE, machine_code)
            .replace(NONCE, nonce)
    }
}

/// Whether `template` is a usable `kiosk.qr_url`; the reason when it is not.
pub fn check_url_template(template: &str) -> Result<(), String> {
    let rest = template.strip_prefix("https://").unwrap_or_default();
    let bare = rest.replace(MACHINE_CODE, "").replace(NONCE, "");
    if rest.is_empty()
        || template.chars().count() > MAX_URL_TEMPLATE
        || template
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "an https:// link of at most {MAX_URL_TEMPLATE} characters, without spaces"
        ));
    }
    if rest.matches(NONCE).count() != 1 || !rest.contains(MACHINE_CODE) {
        return Err(
            "must contain {nonce} once and {machine_code} (https://m.example.com/c/{machine_code}?s={nonce})"
                .into(),
        );
    }
    if bare.contains(['{', '}']) {
        return Err("the only placeholders are {machine_code} and {nonce}".into());
    }
    Ok(())
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
        assert_eq!(payload("", "CAB-001", "n0nce"), "cabinet:CAB-001:n0nce");
        assert_eq!(
            payload(
                "https://m.example.com/c/{machine_code}?s={nonce}",
                "CAB-001",
                "ab12"
            ),
            "https://m.example.com/c/CAB-001?s=ab12"
        );
    }

    #[test]
    fn a_url_template_needs_https_the_machine_code_and_one_nonce() {
        assert_eq!(
            check_url_template("https://m.example.com/c/{machine_code}?s={nonce}"),
            Ok(())
        );
        for bad in [
            "http://m.example.com/c/{machine_code}?s={nonce}",
            "https://",
            "https://m.example.com/c/{machine_code}",
            "https://m.example.com/c?s={nonce}",
            "https://m.example.com/{machine_code}/{nonce}/{nonce}",
            "https://m.example.com/{machine_code}?s={nonce}&t={time}",
            "https://m.example.com/{machine_code}? s={nonce}",
        ] {
            assert!(check_url_template(bad).is_err(), "{bad}");
        }
        let long = format!(
            "https://m.example.com/{machine}?s={{nonce}}&p={}",
            "x".repeat(200),
            machine = MACHINE_CODE
        );
        assert!(check_url_template(&long).is_err());
    }

    #[test]
    fn renders_an_svg_document_that_depends_on_the_payload() {
        let a = svg(&payload("", "CAB-001", "aaaa")).unwrap_or_default();
        let b = svg(&payload("", "CAB-001", "bbbb")).unwrap_or_default();
        assert!(a.contains("<svg"), "{a}");
        assert!(a.trim_end().ends_with("</svg>"), "{a}");
        assert!(a.contains("#000000") && a.contains("#ffffff"));
        assert_ne!(a, b);
        assert_eq!(a, svg(&payload("", "CAB-001", "aaaa")).unwrap_or_default());
    }

    #[test]
    fn a_payload_too_long_for_any_qr_version_is_an_error() {
        assert!(svg(&"x".repeat(5000)).is_err());
    }
}
