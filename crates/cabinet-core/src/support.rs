//! The support code a customer reads off a failure screen: eight characters in two
//! groups (`K7MX-3QP0`), short enough to say on the phone or type on a keypad, derived
//! from the command's `cmd_id` so that the backend, the logs and the technician's panel
//! can all find the command from it without the cabinet sending anything new.
//!
//! The code is Crockford's base32 of the first 40 bits of SHA-256 of the `cmd_id`'s UTF-8
//! bytes. Crockford's alphabet has no look-alikes (no I, L, O or U), and reading a code
//! back forgives the usual confusions: lower case, `O` for `0`, `I` or `L` for `1`,
//! spaces and dashes anywhere. 40 bits make a false match while searching one cabinet's
//! journal of 100,000 commands about one in ten million.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The customer's support code for a command (`XXXX-XXXX`); empty for an empty `cmd_id`
/// (an untrusted command has none).
pub fn code(cmd_id: &str) -> String {
    if cmd_id.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(cmd_id.as_bytes());
    let bits = digest[..5]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            out.push('-');
        }
        let index = (bits >> (35 - 5 * i)) & 0x1f;
        out.push(char::from(ALPHABET[usize::try_from(index).unwrap_or(0)]));
    }
    out
}

/// Reads a support code as typed or spoken (`k7mx 3qpo`) into its canonical form
/// (`K7MX-3QP0`), or `None` when it is not one.
pub fn parse(input: &str) -> Option<String> {
    let mut chars = Vec::with_capacity(8);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || chars.len() == 8 {
            return None;
        }
        chars.push(c);
    }
    if chars.len() != 8 {
        return None;
    }
    let mut out: String = chars[..4].iter().collect();
    out.push('-');
    out.extend(&chars[4..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_crockford_base32_of_the_first_40_bits_of_sha256() {
        // SHA-256("abc") starts ba 78 16 bf 8f: 10111 01001 11100 00001 01101 01111
        // 11100 01111 -> 23 9 28 1 13 15 28 15.
        assert_eq!(code("abc"), "Q9W1-DFWF");
        // The protocol document's second test vector (its example command's jti).
        assert_eq!(code("0190c2de-7f1a-7b3e-9a41-5a1f2c3d4e5f"), "83D3-6MZ7");
        assert_ne!(code("cmd-1"), code("cmd-2"));
        assert_eq!(code(""), "");
    }

    #[test]
    fn codes_use_no_look_alike_characters() {
        for i in 0..2000 {
            let c = code(&format!("cmd-{i}"));
            assert_eq!(c.len(), 9, "{c}");
            assert_eq!(&c[4..5], "-", "{c}");
            assert!(
                !c.chars()
                    .any(|ch| "ILOU".contains(ch) || ch.is_ascii_lowercase()),
                "{c}"
            );
        }
    }

    #[test]
    fn parsing_forgives_case_spaces_dashes_and_look_alikes() {
        let c = code("0190c2de-7f1a-7b3e-9a41-5a1f2c3d4e5f");
        assert_eq!(parse(&c).as_deref(), Some(c.as_str()));
        assert_eq!(parse(&c.to_lowercase()).as_deref(), Some(c.as_str()));
        assert_eq!(parse(&c.replace('-', " ")).as_deref(), Some(c.as_str()));
        assert_eq!(parse("q9w1dfwf").as_deref(), Some("Q9W1-DFWF"));
        assert_eq!(parse("Q9WI-DFWF").as_deref(), Some("Q9W1-DFWF"));
        assert_eq!(parse("Q9Wl-DFWF").as_deref(), Some("Q9W1-DFWF"));
        assert_eq!(parse("O000-0000").as_deref(), Some("0000-0000"));
    }

    #[test]
    fn parsing_refuses_what_is_not_a_code() {
        for bad in [
            "",
            "Q9W1-DFW",
            "Q9W1-DFWFX",
            "Q9W1-DFWU",
            "log-7f3a9c",
            "Q9W1_DFWF",
            "Q9W1-DFWＦ",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
