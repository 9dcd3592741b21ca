use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use proptest::prelude::*;

use crate::reason::Reason;

use super::verify::{check_signature, parse_compact};
use super::*;

const ME: &str = "GZ-0001";
const NOW: i64 = 1_750_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn keys() -> TrustedKeys {
    let mut k = TrustedKeys::new();
    k.insert_signing_key_public("k1", &key(1)).unwrap();
    k
}

fn claims() -> CommandClaims {
    CommandClaims {
        aud: ME.into(),
        jti: "cmd-1".into(),
        iat: NOW - 5,
        exp: NOW + 60,
        kind: "dispense".into(),
        slot: 11,
        qty: 1,
        order_id: "order-9".into(),
        log_id: "log-abc".into(),
        session: None,
        count: None,
    }
}

fn verify(token: &str) -> Result<Command, Rejection> {
    verify_command(
        token.as_bytes(),
        &keys(),
        ME,
        NOW,
        &VerifyOptions::default(),
    )
}

fn signed(c: &CommandClaims) -> String {
    sign_command(c, &key(1), "k1").unwrap()
}

/// Builds a token from raw header/payload JSON, signed with key 1.
fn raw_token(header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = key(1).sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn reason(token: &str) -> Reason {
    verify(token).unwrap_err().reason
}

#[test]
fn topics_live_under_the_cabinets_own_versioned_subtree() {
    let t = Topics::new(ME).unwrap();
    assert_eq!(t.cmd, "cabinet/v1/GZ-0001/cmd");
    assert_eq!(t.reply, "cabinet/v1/GZ-0001/reply");
    assert_eq!(t.state, "cabinet/v1/GZ-0001/state");
    assert_eq!(t.telemetry, "cabinet/v1/GZ-0001/telemetry");
}

#[test]
fn machine_codes_with_wildcards_or_slashes_cannot_make_topics() {
    // A '+' or '#' code would subscribe to other cabinets' commands (the incident).
    for bad in ["+", "#", "a/b", "", "a b", "é", &"x".repeat(65)] {
        assert!(Topics::new(bad).is_err(), "{bad:?}");
    }
    assert!(Topics::new(&"x".repeat(64)).is_ok());
    assert!(Topics::new("abc_DEF-123").is_ok());
}

#[test]
fn a_correctly_signed_command_for_this_cabinet_is_accepted() {
    let cmd = verify(&signed(&claims())).unwrap();
    assert_eq!(cmd.cmd_id, "cmd-1");
    assert_eq!(cmd.log_id, "log-abc");
    assert_eq!(cmd.order_id, "order-9");
    assert_eq!(cmd.slot, 11);
    assert_eq!(cmd.qty, 1);
    assert_eq!(cmd.kind, CommandKind::Dispense);
    assert_eq!(cmd.kid, "k1");
    assert_eq!(cmd.expires_at, NOW + 60);
}

#[test]
fn surrounding_whitespace_such_as_a_trailing_newline_is_ignored() {
    let t = format!("  {}\n", signed(&claims()));
    assert!(verify(&t).is_ok());
}

#[test]
fn a_command_for_another_cabinet_is_rejected_with_its_trusted_ids() {
    // Regression for the incident (docs/ARCHITECTURE.md): a command published to a topic
    // several cabinets shared dispensed at the wrong cabinet.
    let mut c = claims();
    c.aud = "XA-0002".into();
    let r = verify(&signed(&c)).unwrap_err();
    assert_eq!(r.reason, Reason::WrongTarget);
    let ids = r.trusted.unwrap();
    assert_eq!(ids.cmd_id, "cmd-1");
    assert_eq!(ids.log_id, "log-abc");
    assert_eq!(ids.aud, "XA-0002");
}

/// Attacker-chosen strings reach the logs only as their first 32 characters.
#[test]
fn a_foreign_aud_is_logged_truncated() {
    let mut c = claims();
    c.aud = format!("{}{}", "A".repeat(30), "B".repeat(60));
    let r = verify(&signed(&c)).unwrap_err();
    assert_eq!(r.reason, Reason::WrongTarget);
    assert!(
        r.detail.contains(&format!("\"{}BB\"", "A".repeat(30))),
        "{}",
        r.detail
    );
    assert!(!r.detail.contains("BBB"), "{}", r.detail);
}

#[test]
fn aud_comparison_is_exact_not_case_insensitive_or_prefix() {
    for aud in ["gz-0001", "GZ-00011", "GZ-000", " GZ-0001"] {
        let mut c = claims();
        c.aud = aud.into();
        assert_eq!(reason(&signed(&c)), Reason::WrongTarget, "{aud:?}");
    }
}

#[test]
fn an_aud_array_is_malformed_not_accepted() {
    let t = raw_token(
        r#"{"alg":"EdDSA","kid":"k1"}"#,
        &format!(
            r#"{{"aud":["{ME}"],"jti":"c","iat":{NOW},"exp":{},"kind":"dispense","slot":1,"qty":1,"order_id":"o","log_id":"l"}}"#,
            NOW + 10
        ),
    );
    assert_eq!(reason(&t), Reason::Malformed);
}

#[test]
fn expiry_is_enforced_with_the_configured_leeway() {
    let mut c = claims();
    c.iat = NOW - 100;
    c.exp = NOW - 30; // exactly at the edge of the 30 s leeway: still valid
    assert!(verify(&signed(&c)).is_ok());
    c.exp = NOW - 31;
    let r = verify(&signed(&c)).unwrap_err();
    assert_eq!(r.reason, Reason::Expired);
    assert_eq!(r.trusted.unwrap().cmd_id, "cmd-1");
}

#[test]
fn a_command_valid_for_one_instant_is_accepted_and_one_ending_before_it_starts_is_not() {
    let mut c = claims();
    c.iat = NOW;
    c.exp = NOW;
    assert!(verify(&signed(&c)).is_ok(), "exp == iat");
    c.exp = NOW - 1;
    assert_eq!(verify(&signed(&c)).unwrap_err().reason, Reason::Malformed);
}

#[test]
fn only_outcomes_are_terminal_replies() {
    let reply = |state: &str| -> Reply {
        serde_json::from_str(&format!(
            "{{\"v\":1,\"cmd_id\":\"c\",\"order_id\":\"o\",\"log_id\":\"l\",\
             \"machine_code\":\"GZ-0001\",\"boot_id\":\"b\",\"state\":\"{state}\",\
             \"evidence\":{{}},\"at\":1}}"
        ))
        .unwrap()
    };
    for (state, terminal) in [
        ("accepted", false),
        ("dispensing", false),
        ("succeeded", true),
        ("failed", true),
        ("rejected", true),
        ("outcome_unknown", true),
    ] {
        assert_eq!(reply(state).is_terminal(), terminal, "{state}");
    }
}

#[test]
fn the_size_limit_is_inclusive() {
    let t = signed(&claims());
    let opts = |max| VerifyOptions {
        max_token_bytes: max,
        ..VerifyOptions::default()
    };
    let check = |max| verify_command(t.as_bytes(), &keys(), ME, NOW, &opts(max));
    assert!(check(t.len()).is_ok(), "exactly at the limit");
    assert_eq!(check(t.len() - 1).unwrap_err().reason, Reason::Oversize);
}

#[test]
fn a_command_issued_in_the_future_beyond_leeway_is_not_yet_valid() {
    let mut c = claims();
    c.iat = NOW + 31;
    c.exp = NOW + 100;
    assert_eq!(reason(&signed(&c)), Reason::NotYetValid);
    c.iat = NOW + 30;
    assert!(verify(&signed(&c)).is_ok());
}

#[test]
fn a_token_may_live_up_to_the_configured_lifetime_and_not_a_second_longer() {
    let opts = VerifyOptions {
        max_lifetime_secs: 120,
        ..VerifyOptions::default()
    };
    for (lifetime, ok) in [(0, true), (120, true), (121, false), (86_400 * 365, false)] {
        let mut c = claims();
        c.iat = NOW - 5;
        c.exp = c.iat + lifetime;
        let got = verify_command(signed(&c).as_bytes(), &keys(), ME, NOW, &opts);
        match got {
            Ok(_) => assert!(ok, "{lifetime} s accepted"),
            Err(r) => {
                assert!(!ok, "{lifetime} s refused: {}", r.detail);
                assert_eq!(r.reason, Reason::LifetimeTooLong);
                // Signed, so the reply carries the command's own ids.
                assert!(r.trusted.is_some());
            }
        }
    }
}

#[test]
fn exp_before_iat_is_malformed() {
    let mut c = claims();
    c.iat = NOW;
    c.exp = NOW - 1;
    assert_eq!(reason(&signed(&c)), Reason::Malformed);
}

/// Regression: a token with `exp` = i64::MAX was accepted, valid forever.
#[test]
fn extreme_timestamps_do_not_overflow_and_live_no_longer_than_allowed() {
    let mut c = claims();
    c.exp = i64::MAX;
    c.iat = i64::MIN;
    assert_eq!(reason(&signed(&c)), Reason::LifetimeTooLong);
    let opts = VerifyOptions {
        leeway_secs: i64::MAX,
        ..VerifyOptions::default()
    };
    assert!(verify_command(signed(&claims()).as_bytes(), &keys(), ME, NOW, &opts).is_ok());
}

#[test]
fn alg_none_is_rejected_even_without_a_signature() {
    let input = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap())
    );
    assert_eq!(reason(&input), Reason::UnsupportedAlgorithm);
}

#[test]
fn algorithms_other_than_exactly_eddsa_are_rejected() {
    let payload = serde_json::to_string(&claims()).unwrap();
    for alg in ["HS256", "RS256", "ES256", "eddsa", "EdDSA ", "Ed25519", ""] {
        let t = raw_token(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#), &payload);
        assert_eq!(reason(&t), Reason::UnsupportedAlgorithm, "{alg:?}");
    }
    let t = raw_token(r#"{"alg":null,"kid":"k1"}"#, &payload);
    assert_eq!(reason(&t), Reason::Malformed);
}

#[test]
fn critical_header_extensions_are_refused() {
    let payload = serde_json::to_string(&claims()).unwrap();
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#, &payload);
    assert_eq!(reason(&t), Reason::Malformed);
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","b64":false}"#, &payload);
    assert_eq!(reason(&t), Reason::Malformed);
}

#[test]
fn unknown_or_missing_kid_is_rejected_before_the_signature_is_checked() {
    let t = sign_command(&claims(), &key(1), "other").unwrap();
    let r = verify(&t).unwrap_err();
    assert_eq!(r.reason, Reason::UnknownKey);
    assert!(r.trusted.is_none());
    let t = raw_token(
        r#"{"alg":"EdDSA"}"#,
        &serde_json::to_string(&claims()).unwrap(),
    );
    assert_eq!(reason(&t), Reason::UnknownKey);
}

#[test]
fn a_command_signed_by_an_untrusted_key_under_a_trusted_kid_is_bad_signature() {
    let t = sign_command(&claims(), &key(2), "k1").unwrap();
    let r = verify(&t).unwrap_err();
    assert_eq!(r.reason, Reason::BadSignature);
    assert!(
        r.trusted.is_none(),
        "no claim is trusted before the signature"
    );
}

#[test]
fn changing_any_claim_after_signing_breaks_the_signature() {
    let t = signed(&claims());
    let parts: Vec<&str> = t.split('.').collect();
    let mut c = claims();
    c.slot = 12;
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap()),
        parts[2]
    );
    assert_eq!(reason(&forged), Reason::BadSignature);
}

#[test]
fn a_wrong_target_command_that_is_also_forged_reports_bad_signature_not_wrong_target() {
    // The signature is checked before any claim is read: an attacker cannot learn
    // or trigger claim-dependent behaviour with an unsigned token.
    let mut c = claims();
    c.aud = "other".into();
    c.exp = NOW - 1000;
    let t = sign_command(&c, &key(2), "k1").unwrap();
    assert_eq!(reason(&t), Reason::BadSignature);
}

#[test]
fn oversize_payloads_are_rejected_before_parsing() {
    let opts = VerifyOptions {
        max_token_bytes: 10,
        ..VerifyOptions::default()
    };
    let t = signed(&claims());
    let r = verify_command(t.as_bytes(), &keys(), ME, NOW, &opts).unwrap_err();
    assert_eq!(r.reason, Reason::Oversize);
    let big = vec![b'a'; 4097];
    assert_eq!(
        verify_command(&big, &keys(), ME, NOW, &VerifyOptions::default())
            .unwrap_err()
            .reason,
        Reason::Oversize
    );
}

#[test]
fn non_utf8_payload_is_malformed() {
    let r = verify_command(
        &[0xff, 0xfe, b'.'],
        &keys(),
        ME,
        NOW,
        &VerifyOptions::default(),
    );
    assert_eq!(r.unwrap_err().reason, Reason::Malformed);
}

#[test]
fn json_instead_of_a_token_is_malformed() {
    let json = serde_json::to_string(&claims()).unwrap();
    assert_eq!(reason(&json), Reason::Malformed);
    assert_eq!(reason(""), Reason::Malformed);
    assert_eq!(reason("a.b"), Reason::Malformed);
    assert_eq!(reason("a.b.c.d"), Reason::Malformed);
}

#[test]
fn padded_or_standard_base64_parts_are_malformed() {
    let t = signed(&claims());
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    parts[0].push('=');
    assert_eq!(reason(&parts.join(".")), Reason::Malformed);
}

#[test]
fn a_truncated_signature_is_bad_signature() {
    let t = signed(&claims());
    let (head, sig) = t.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let short = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&raw[..63]));
    assert_eq!(reason(&short), Reason::BadSignature);
}

#[test]
fn unknown_kind_is_rejected_but_unknown_extra_claims_are_allowed() {
    let mut c = claims();
    c.kind = "refund".into();
    assert_eq!(reason(&signed(&c)), Reason::UnsupportedKind);
    // The two kinds there are: a sale, and a rental put back.
    c.kind = "return".into();
    assert_eq!(verify(&signed(&c)).unwrap().kind, CommandKind::Return);
    c.kind = "Return".into();
    assert_eq!(reason(&signed(&c)), Reason::UnsupportedKind);

    let mut v = serde_json::to_value(claims()).unwrap();
    v["iss"] = "backend".into();
    v["nbf"] = NOW.into();
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1","typ":"JWT"}"#, &v.to_string());
    assert!(verify(&t).is_ok());
}

#[test]
fn slot_zero_and_qty_other_than_one_are_refused() {
    let mut c = claims();
    c.slot = 0;
    assert_eq!(reason(&signed(&c)), Reason::SlotUnknown);
    let mut c = claims();
    c.qty = 2;
    assert_eq!(reason(&signed(&c)), Reason::UnsupportedQuantity);
    let mut c = claims();
    c.qty = 0;
    assert_eq!(reason(&signed(&c)), Reason::UnsupportedQuantity);
}

#[test]
fn out_of_range_numbers_are_malformed_but_keep_the_trusted_ids() {
    let mut v = serde_json::to_value(claims()).unwrap();
    v["qty"] = 300.into();
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &v.to_string());
    let r = verify(&t).unwrap_err();
    assert_eq!(r.reason, Reason::Malformed);
    let ids = r.trusted.unwrap();
    assert_eq!(ids.cmd_id, "cmd-1");
    assert_eq!(ids.log_id, "log-abc");
}

#[test]
fn signed_garbage_claims_are_malformed_without_trusted_ids() {
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, "not json");
    let r = verify(&t).unwrap_err();
    assert_eq!(r.reason, Reason::Malformed);
    assert!(r.trusted.is_none());
}

#[test]
fn duplicate_claim_keys_are_malformed() {
    let payload = format!(
        r#"{{"aud":"{ME}","aud":"other","jti":"c","iat":{NOW},"exp":{},"kind":"dispense","slot":1,"qty":1,"order_id":"o","log_id":"l"}}"#,
        NOW + 10
    );
    let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &payload);
    assert_eq!(reason(&t), Reason::Malformed);
}

#[test]
fn empty_or_overlong_ids_are_malformed() {
    let mut c = claims();
    c.log_id = String::new();
    assert_eq!(reason(&signed(&c)), Reason::Malformed);
    let mut c = claims();
    c.order_id = "x".repeat(129);
    assert_eq!(reason(&signed(&c)), Reason::Malformed);
    let mut c = claims();
    c.jti = "a\nb".into();
    let r = verify(&signed(&c)).unwrap_err();
    assert_eq!(r.reason, Reason::Malformed);
    assert!(
        r.trusted.is_none(),
        "a jti with control chars must not reach logs"
    );
    let mut c = claims();
    c.session = Some(String::new());
    assert_eq!(reason(&signed(&c)), Reason::Malformed);
}

#[test]
fn id_lengths_are_counted_in_characters_not_bytes() {
    // 50 CJK characters are 150 bytes of UTF-8: within the documented 128 characters.
    let mut c = claims();
    c.jti = "订".repeat(50);
    c.order_id = "单".repeat(MAX_ID_LEN);
    c.log_id = "🧾".repeat(MAX_ID_LEN); // 4 bytes each
    c.session = Some("码".repeat(MAX_ID_LEN));
    let cmd = verify(&signed(&c)).expect("128 characters of any width are accepted");
    assert_eq!(cmd.cmd_id, "订".repeat(50));
    assert_eq!(cmd.order_id.chars().count(), MAX_ID_LEN);
    let mut c = claims();
    c.order_id = "单".repeat(MAX_ID_LEN + 1);
    assert_eq!(reason(&signed(&c)), Reason::Malformed, "129 characters");
    let mut c = claims();
    c.jti = "订".repeat(MAX_ID_LEN + 1);
    let r = verify(&signed(&c)).unwrap_err();
    assert_eq!(r.reason, Reason::Malformed);
    assert!(r.trusted.is_none(), "an overlong jti is not echoed");
}

/// Characters that break a log line or reorder how it displays.
const LINE_FORGING: [char; 16] = [
    '\n', '\r', '\u{1b}', '\u{85}', '\u{2028}', '\u{2029}', '\u{061C}', '\u{200E}', '\u{200F}',
    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2069}',
];

#[test]
fn ids_with_line_separators_or_bidi_controls_are_malformed() {
    for bad in LINE_FORGING.into_iter().chain(['\u{2067}', '\u{2068}']) {
        let id = format!("ok{bad}forged");
        let mut c = claims();
        c.jti = id.clone();
        let r = verify(&signed(&c)).unwrap_err();
        assert_eq!(r.reason, Reason::Malformed, "jti with U+{:04X}", bad as u32);
        assert!(r.trusted.is_none(), "jti with U+{:04X} echoed", bad as u32);
        for field in ["order_id", "log_id", "session"] {
            let mut c = claims();
            match field {
                "order_id" => c.order_id = id.clone(),
                "log_id" => c.log_id = id.clone(),
                _ => c.session = Some(id.clone()),
            }
            assert_eq!(
                reason(&signed(&c)),
                Reason::Malformed,
                "{field} with U+{:04X}",
                bad as u32
            );
        }
    }
    // Ordinary non-ASCII text, including right-to-left scripts, is fine: only the
    // invisible controls are refused.
    let mut c = claims();
    c.log_id = "طلب-٤٢ / 订单 / заказ".into();
    assert!(verify(&signed(&c)).is_ok());
}

#[test]
fn session_is_carried_through() {
    let mut c = claims();
    c.session = Some("nonce-42".into());
    assert_eq!(
        verify(&signed(&c)).unwrap().session.as_deref(),
        Some("nonce-42")
    );
}

#[test]
fn rfc8037_ed25519_jws_example_verifies() {
    // RFC 8037 Appendix A.1 (key) and A.4 (JWS): proves interoperability with
    // any standard EdDSA JWS producer, independent of our own signer.
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    let jws = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
               hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let pk = decode_public_key(x).unwrap();
    assert_eq!(public_key_base64url(&decode_signing_key(d).unwrap()), x);
    let c = parse_compact(jws).unwrap_or_else(|r| panic!("{r}"));
    assert!(check_signature(&c, &pk).is_ok());
    assert_eq!(
        URL_SAFE_NO_PAD.decode(c.payload_b64).unwrap(),
        b"Example of Ed25519 signing"
    );
    // And a one-bit change of the signature fails.
    let tampered = jws.replace("hgyY", "hgyZ");
    let c = parse_compact(&tampered).unwrap_or_else(|r| panic!("{r}"));
    assert!(check_signature(&c, &pk).is_err());
}

#[test]
fn a_token_signed_by_an_independent_jws_implementation_verifies_end_to_end() {
    // Produced once with Node.js `crypto.sign` (not our signer) and the RFC 8037
    // A.1 key, with an extra `iss` claim as backend JWT libraries add. Ed25519 is
    // deterministic, so this vector is stable.
    const TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6InJmYzgwMzcifQ.\
        eyJhdWQiOiJHWi0wMDAxIiwianRpIjoiMDE5MGMyZGUtN2YxYS03YjNlLTlhNDEtNWExZjJjM2Q0ZTVmIiwi\
        aWF0IjoxNzUwMDAwMDAwLCJleHAiOjE3NTAwMDAwNjAsImtpbmQiOiJkaXNwZW5zZSIsInNsb3QiOjExLCJx\
        dHkiOjEsIm9yZGVyX2lkIjoiT1JELTIwMjUwNjE1LTAwNDIiLCJsb2dfaWQiOiJsb2ctN2YzYTljIiwiaXNz\
        IjoiYmFja2VuZC5leGFtcGxlIn0.\
        JUMZclhBr0TEz1bK5bJzh9vH7gEQjhXNOsIQQ96UMvMXDVzhqf0EXd-mN2mL6w8ZBjdZqfRaWT_qgtJZtfuVCA";
    let mut trusted = TrustedKeys::new();
    trusted
        .insert_base64url("rfc8037", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap();
    let cmd = verify_command(
        TOKEN.as_bytes(),
        &trusted,
        ME,
        NOW + 10,
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(cmd.cmd_id, "0190c2de-7f1a-7b3e-9a41-5a1f2c3d4e5f");
    assert_eq!(cmd.order_id, "ORD-20250615-0042");
    assert_eq!(cmd.log_id, "log-7f3a9c");
    assert_eq!(cmd.slot, 11);
    assert_eq!(cmd.kid, "rfc8037");
    // The same token at another cabinet is refused.
    let r = verify_command(
        TOKEN.as_bytes(),
        &trusted,
        "XA-0002",
        NOW,
        &VerifyOptions::default(),
    );
    assert_eq!(r.unwrap_err().reason, Reason::WrongTarget);
}

#[test]
fn public_keys_of_the_wrong_length_or_encoding_are_refused() {
    assert_eq!(
        decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 31])),
        Err(KeyError::WrongLength(31))
    );
    assert_eq!(
        decode_public_key(&URL_SAFE_NO_PAD.encode([1u8; 33])),
        Err(KeyError::WrongLength(33))
    );
    assert_eq!(
        decode_public_key("not base64!"),
        Err(KeyError::NotBase64Url)
    );
    // Standard base64 with padding is not the JWK encoding.
    assert_eq!(
        decode_public_key("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
        Err(KeyError::NotBase64Url)
    );
}

#[test]
fn weak_public_keys_are_refused() {
    // The identity point (y = 1) has small order: any signature would be
    // suspicious under non-strict verification.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        decode_public_key(&URL_SAFE_NO_PAD.encode(identity)),
        Err(KeyError::WeakKey)
    );
}

#[test]
fn generated_keypairs_sign_commands_that_verify_with_the_public_half() {
    let (sk, public) = generate_keypair().unwrap();
    let (sk2, _) = generate_keypair().unwrap();
    assert_ne!(sk.to_bytes(), sk2.to_bytes(), "the RNG must not repeat");
    let mut trusted = TrustedKeys::new();
    trusted.insert_base64url("gen", &public).unwrap();
    let t = sign_command(&claims(), &sk, "gen").unwrap();
    assert!(verify_command(t.as_bytes(), &trusted, ME, NOW, &VerifyOptions::default()).is_ok());
    let round = decode_signing_key(&encode_signing_key(&sk)).unwrap();
    assert_eq!(round.to_bytes(), sk.to_bytes());
}

#[test]
fn kids_with_unsafe_characters_are_refused() {
    let mut k = TrustedKeys::new();
    assert!(k.is_empty());
    let x = public_key_base64url(&key(1));
    assert_eq!(k.insert_base64url("", &x), Err(KeyError::InvalidKid));
    assert_eq!(k.insert_base64url("a b", &x), Err(KeyError::InvalidKid));
    assert_eq!(k.insert_base64url("a\n", &x), Err(KeyError::InvalidKid));
    assert!(k.insert_base64url("backend-2026.01_a", &x).is_ok());
    assert_eq!(
        k.insert_base64url(&"k".repeat(MAX_ID_LEN + 1), &x),
        Err(KeyError::InvalidKid)
    );
    assert!(k.insert_base64url(&"k".repeat(MAX_ID_LEN), &x).is_ok());
    assert!(
        k.insert_base64url(&"k".repeat(MAX_ID_LEN), &x).is_ok(),
        "replaces, not adds"
    );
    assert_eq!(k.len(), 2);
    assert!(!k.is_empty());
    assert_eq!(
        k.kids().collect::<Vec<_>>(),
        ["backend-2026.01_a", "k".repeat(MAX_ID_LEN).as_str()]
    );
    assert!(
        k.insert_base64url("backend-2", &public_key_base64url(&key(2)))
            .is_ok()
    );
    assert_eq!(k.len(), 3, "a rotation keeps several keys");
}

#[test]
fn boot_ids_are_random_hex() {
    let a = new_boot_id().unwrap();
    let b = new_boot_id().unwrap();
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn reply_json_has_the_documented_shape() {
    let r = Reply {
        v: PROTOCOL_VERSION,
        cmd_id: "cmd-1".into(),
        order_id: "order-9".into(),
        log_id: "log-abc".into(),
        machine_code: ME.into(),
        boot_id: "b".into(),
        state: ReplyState::Failed,
        reason: Some(Reason::NoDropDetected),
        evidence: Evidence {
            drop_detected: Some(false),
            door_open: None,
            board_status: Some("vmc:02".into()),
            ..Evidence::default()
        },
        at: 1_750_000_000_123,
        seq: Some(7),
    };
    let v: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "v": 1, "cmd_id": "cmd-1", "order_id": "order-9", "log_id": "log-abc",
            "machine_code": ME, "boot_id": "b", "state": "failed",
            "reason": "no_drop_detected",
            "evidence": {"drop_detected": false, "board_status": "vmc:02"},
            "at": 1_750_000_000_123u64, "seq": 7
        })
    );
    let back: Reply = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
    assert!(back.is_terminal());
}

#[test]
fn only_outcomes_are_terminal() {
    use ReplyState::*;
    assert!(!Accepted.is_terminal());
    assert!(!Dispensing.is_terminal());
    for s in [Succeeded, Failed, Rejected, OutcomeUnknown] {
        assert!(s.is_terminal());
    }
}

#[test]
fn nothing_leaves_a_terminal_state_and_dispensing_never_becomes_rejected() {
    use ReplyState::*;
    for from in ReplyState::ALL.into_iter().filter(|s| s.is_terminal()) {
        for to in ReplyState::ALL {
            assert!(!from.can_transition_to(to), "{from} -> {to}");
        }
    }
    assert!(Accepted.can_transition_to(Dispensing));
    assert!(Accepted.can_transition_to(Rejected));
    assert!(Accepted.can_transition_to(Failed));
    assert!(!Accepted.can_transition_to(Accepted));
    assert!(Dispensing.can_transition_to(Succeeded));
    assert!(Dispensing.can_transition_to(OutcomeUnknown));
    assert!(!Dispensing.can_transition_to(Rejected));
    assert!(!Dispensing.can_transition_to(Accepted));
    assert!(!Dispensing.can_transition_to(Dispensing));
}

#[test]
fn reply_states_use_snake_case_on_the_wire() {
    for s in ReplyState::ALL {
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        assert_eq!(ReplyState::parse(s.as_str()), Some(s));
    }
    assert_eq!(ReplyState::parse("done"), None);
}

#[test]
fn state_and_telemetry_messages_serialize() {
    let s = StateMessage {
        v: 1,
        status: Presence::Offline,
        machine_code: ME.into(),
        boot_id: "b".into(),
        version: "0.1.0".into(),
        at: 5,
    };
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["status"], "offline");
    let t = Telemetry {
        v: 1,
        machine_code: ME.into(),
        boot_id: "b".into(),
        at: 5,
        uptime_secs: 9,
        board: BoardHealth {
            ok: true,
            status: None,
            unreachable_slots: vec![],
        },
        outbox_pending: 0,
        disk_free_bytes: Some(1 << 30),
        disk_low: false,
        journal: Some(JournalFigures {
            size_bytes: 1 << 20,
            commands: 12,
            rejections: 3,
            rejections_dropped: 0,
            commands_pruned: 7,
            unverified: None,
        }),
        inventory: vec![SlotLevel {
            slot: 1,
            count: 3,
            capacity: 10,
            enabled: true,
            jammed: false,
        }],
        audit: vec![],
    };
    let json = serde_json::to_string(&t).unwrap();
    assert!(
        !json.contains("audit"),
        "no audit key without actions: {json}"
    );
    let back: Telemetry = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
    // The disk fields came later: a message without them still parses.
    let mut older: serde_json::Value = serde_json::from_str(&json).unwrap();
    let o = older.as_object_mut().unwrap();
    assert_eq!(
        o.remove("disk_free_bytes"),
        Some(serde_json::json!(1u64 << 30))
    );
    assert_eq!(o.remove("disk_low"), Some(serde_json::json!(false)));
    let back: Telemetry = serde_json::from_value(older).unwrap();
    assert_eq!((back.disk_free_bytes, back.disk_low), (None, false));
    let with = Telemetry {
        audit: vec![AuditEvent {
            at: 6,
            technician: "Li".into(),
            action: "restock".into(),
            detail: "slot 1: 0 -> 10".into(),
        }],
        ..t
    };
    let back: Telemetry = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
    assert_eq!(back, with);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_verify_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let r = verify_command(&bytes, &keys(), ME, NOW, &VerifyOptions::default());
        prop_assert!(r.is_err());
        prop_assert!(r.unwrap_err().trusted.is_none());
    }

    #[test]
    fn arbitrary_three_part_base64_tokens_never_verify(
        h in proptest::collection::vec(any::<u8>(), 0..80),
        p in proptest::collection::vec(any::<u8>(), 0..200),
        s in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let t = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(p),
            URL_SAFE_NO_PAD.encode(s)
        );
        prop_assert!(verify(&t).is_err());
    }

    #[test]
    fn any_single_byte_change_to_a_valid_token_is_rejected(idx in 0usize..10_000, byte in any::<u8>()) {
        let t = signed(&claims()).into_bytes();
        let i = idx % t.len();
        prop_assume!(t[i] != byte);
        let mut m = t.clone();
        m[i] = byte;
        // Whitespace at the very ends is trimmed by design; that is not a change
        // to the token itself.
        let trimmed_same = m.trim_ascii() == t.as_slice();
        let r = verify_command(&m, &keys(), ME, NOW, &VerifyOptions::default());
        prop_assert!(r.is_err() || trimmed_same, "accepted a modified token");
    }

    #[test]
    fn an_id_is_accepted_exactly_when_it_has_1_to_128_characters_none_line_forging(
        id in proptest::collection::vec(
            prop_oneof![
                4 => any::<char>(),
                2 => proptest::char::range('\u{4E00}', '\u{9FFF}'),
                1 => proptest::sample::select(LINE_FORGING.to_vec()),
            ],
            0..140,
        ).prop_map(|v| v.into_iter().collect::<String>()),
    ) {
        let mut c = claims();
        c.log_id = id.clone();
        let n = id.chars().count();
        let expect_ok = (1..=MAX_ID_LEN).contains(&n)
            && !id.chars().any(|ch| {
                ch.is_control()
                    || LINE_FORGING.contains(&ch)
                    || ('\u{2066}'..='\u{2069}').contains(&ch)
            });
        let r = verify(&signed(&c));
        prop_assert_eq!(r.is_ok(), expect_ok, "log_id {:?} ({} chars)", id, n);
        if let Ok(cmd) = r {
            // What reaches a log line stays one line.
            prop_assert_eq!(cmd.log_id.lines().count(), 1);
        }
    }

    #[test]
    fn arbitrary_signed_claims_json_never_panics(payload in "\\PC{0,300}") {
        let t = raw_token(r#"{"alg":"EdDSA","kid":"k1"}"#, &payload);
        let _ = verify(&t);
    }
}

#[test]
fn each_control_kind_takes_exactly_its_own_claims() {
    let control = |kind: &str, slot: u16, qty: u8, count: Option<u32>| CommandClaims {
        kind: kind.into(),
        slot,
        qty,
        count,
        ..claims()
    };
    let ok = [
        control("slot_enable", 3, 0, None),
        control("slot_disable", 3, 0, None),
        control("slot_set_count", 3, 0, Some(7)),
        control("telemetry", 0, 0, None),
    ];
    for c in &ok {
        let cmd = verify(&signed(c)).unwrap_or_else(|r| panic!("{}: {r}", c.kind));
        assert_eq!(cmd.kind.code(), c.kind);
        assert!(cmd.kind.is_control());
    }
    assert_eq!(verify(&signed(&ok[2])).unwrap().count, Some(7));
    let bad = [
        (control("slot_set_count", 3, 0, None), Reason::Malformed),
        (control("slot_enable", 3, 0, Some(7)), Reason::Malformed),
        (control("dispense", 3, 1, Some(7)), Reason::Malformed),
        (control("telemetry", 3, 0, None), Reason::Malformed),
        (control("slot_disable", 0, 0, None), Reason::SlotUnknown),
        (
            control("slot_enable", 3, 1, None),
            Reason::UnsupportedQuantity,
        ),
        (control("reboot", 0, 0, None), Reason::UnsupportedKind),
    ];
    for (c, want) in &bad {
        assert_eq!(reason(&signed(c)), *want, "{c:?}");
    }
    // The signed JSON leaves `count` out when there is none; a backend may leave `slot`
    // and `qty` out of a telemetry request.
    let t = raw_token(
        r#"{"alg":"EdDSA","kid":"k1"}"#,
        &format!(
            r#"{{"aud":"{ME}","jti":"t","iat":{NOW},"exp":{},"kind":"telemetry","order_id":"o","log_id":"l"}}"#,
            NOW + 60
        ),
    );
    assert_eq!(verify(&t).unwrap().kind, CommandKind::Telemetry);
}
