//! The page's text table (`ui/strings.js`) against the core's lists: both languages have
//! every key with the same `{placeholders}`, every reason code the engine can put on the
//! failure screen has a sentence, every out-of-service reason, board kind and scan app
//! has its words. The page words itself from that table alone, so a gap here is a blank
//! on a customer's screen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use cabinet_core::Reason;
use cabinet_core::audit::AuditNote;
use cabinet_core::config::{BoardProtocol, ScanApp};
use cabinet_core::control::Refusal;
use cabinet_core::screen::OutOfService;
use cabinet_core::witness::Loss;
use serde_json::Value;

/// The table: the JSON between `export default` and the final `;`.
fn table() -> Value {
    let text = include_str!("../../ui/strings.js");
    let start = text.find("export default ").expect("export default") + "export default ".len();
    let end = text.rfind(';').expect("the final ;");
    serde_json::from_str(&text[start..end]).expect("strings.js holds JSON after export default")
}

fn lang<'a>(t: &'a Value, tag: &str) -> &'a Value {
    t.get(tag).unwrap_or_else(|| panic!("no {tag} table"))
}

fn placeholders(s: &str) -> BTreeSet<String> {
    s.split('{')
        .skip(1)
        .filter_map(|p| p.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// Every leaf under `v`: (path, text).
fn leaves(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                leaves(v, &format!("{path}.{k}"), out);
            }
        }
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        other => panic!("{path}: {other} is not a string or a table"),
    }
}

#[test]
fn both_languages_have_every_key_with_the_same_placeholders() {
    let t = table();
    let tags: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(tags, ["en", "zh-CN"], "the two screen languages");
    let (mut zh, mut en) = (Vec::new(), Vec::new());
    leaves(lang(&t, "zh-CN"), "", &mut zh);
    leaves(lang(&t, "en"), "", &mut en);
    let keys = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>();
    let (kz, ke) = (keys(&zh), keys(&en));
    assert_eq!(
        kz.difference(&ke).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in zh-CN only"
    );
    assert_eq!(
        ke.difference(&kz).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in en only"
    );
    for ((k, z), (_, e)) in zh.iter().zip(&en) {
        assert!(!z.trim().is_empty() && !e.trim().is_empty(), "{k} is empty");
        assert_eq!(placeholders(z), placeholders(e), "{k}: {z:?} / {e:?}");
    }
    assert!(
        zh.len() > 100,
        "{} strings: the whole table was read",
        zh.len()
    );
}

#[test]
fn every_reason_code_has_a_short_sentence_in_both_languages() {
    let t = table();
    for r in Reason::ALL {
        let zh = lang(&t, "zh-CN")["reasons"][r.code()].as_str();
        let en = lang(&t, "en")["reasons"][r.code()].as_str();
        let (Some(zh), Some(en)) = (zh, en) else {
            panic!("no sentence for {}", r.code());
        };
        assert!(
            zh.chars().count() <= 60 && en.chars().count() <= 60,
            "too long: {en}"
        );
        assert_ne!(zh, en, "{}: not translated", r.code());
    }
    let listed = lang(&t, "en")["reasons"].as_object().unwrap().len();
    assert_eq!(
        listed,
        Reason::ALL.len(),
        "no sentence for a code that does not exist"
    );
}

#[test]
fn every_out_of_service_reason_board_kind_and_scan_app_has_its_words() {
    let t = table();
    for tag in ["zh-CN", "en"] {
        let tx = lang(&t, tag);
        for oos in [
            OutOfService::BrokerDown,
            OutOfService::BoardDown,
            OutOfService::Maintenance,
            OutOfService::JournalUnverified,
            OutOfService::DiskLow,
            OutOfService::Starting,
        ] {
            let code = serde_json::to_value(oos).unwrap();
            let code = code.as_str().unwrap();
            assert!(tx["oos"][code].is_string(), "{tag}: oos.{code}");
        }
        for app in ScanApp::ALLOWED {
            assert!(tx["apps"][app].is_string(), "{tag}: apps.{app}");
        }
        // A per-board entry words both kinds, and only those.
        let boards: BTreeSet<&str> = BoardProtocol::ALLOWED.iter().copied().collect();
        for key in [
            "place",
            "dispensing_title",
            "dispensing_hint",
            "take_title",
            "failed_title",
        ] {
            let kinds: BTreeSet<&str> = tx[key]
                .as_object()
                .unwrap_or_else(|| panic!("{tag}: {key} per board"))
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(kinds, boards, "{tag}: {key}");
        }
        // The technician's health tab names the board.
        for board in &boards {
            assert!(
                tx["diag"]["protocols"][board].is_string(),
                "{tag}: diag.protocols.{board}"
            );
        }
    }
}

/// One of each refusal. The match has no wildcard: a new refusal does not compile here
/// until it is listed (and then needs its sentence).
fn every_refusal() -> Vec<Refusal> {
    let all = vec![
        Refusal::SlotTestRunning,
        Refusal::DispenseFinishing,
        Refusal::ExportRunning,
        Refusal::UnknownSlot { slot: 1 },
        Refusal::OverCapacity {
            slot: 1,
            capacity: 8,
        },
        Refusal::NothingToConfirm,
        Refusal::OwnRequest,
    ];
    for r in &all {
        match r {
            Refusal::SlotTestRunning
            | Refusal::DispenseFinishing
            | Refusal::ExportRunning
            | Refusal::UnknownSlot { .. }
            | Refusal::OverCapacity { .. }
            | Refusal::NothingToConfirm
            | Refusal::OwnRequest => {}
        }
    }
    all
}

/// One of each audit note the panel words (`empty` and `text` need no words), listed as
/// [`every_refusal`] is.
fn every_worded_note() -> Vec<AuditNote> {
    let all = vec![
        AuditNote::Slot { slot: 1 },
        AuditNote::Restock {
            slot: 1,
            before: 0,
            after: 8,
        },
        AuditNote::SlotTest {
            slot: 1,
            outcome: "dispensed".into(),
            board: None,
        },
        AuditNote::Lockout { secs: 60 },
        AuditNote::Logout { why: "idle".into() },
    ];
    for n in &all {
        match n {
            AuditNote::Slot { .. }
            | AuditNote::Restock { .. }
            | AuditNote::SlotTest { .. }
            | AuditNote::Lockout { .. }
            | AuditNote::Logout { .. } => {}
            AuditNote::Empty | AuditNote::Text { .. } => unreachable!("shown as they are"),
        }
    }
    all
}

/// One of each way the journal can be lost, listed as [`every_refusal`] is.
fn every_loss() -> Vec<Loss> {
    let all = vec![
        Loss::Missing,
        Loss::Empty,
        Loss::Corrupt {
            set_aside: "/var/lib/cabinet-kiosk/journal.sqlite3.corrupt-1".into(),
            problem: "database disk image is malformed".into(),
        },
        Loss::Replaced {
            expected: "a".into(),
            found: "b".into(),
        },
        Loss::RolledBack {
            expected: 9,
            found: 3,
        },
        Loss::WitnessUnreadable {
            problem: "bad json".into(),
        },
    ];
    for l in &all {
        match l {
            Loss::Missing
            | Loss::Empty
            | Loss::Corrupt { .. }
            | Loss::Replaced { .. }
            | Loss::RolledBack { .. }
            | Loss::WitnessUnreadable { .. } => {}
        }
    }
    all
}

/// `value` (the core's serialized data, tagged by `tag_field`) has words in `table`,
/// which use only the placeholders the value's fields fill.
fn worded(table: &Value, path: &str, value: &Value, tag_field: &str) {
    let kind = value[tag_field].as_str().unwrap();
    let words = table[kind]
        .as_str()
        .unwrap_or_else(|| panic!("{path}.{kind}: no words"));
    for p in placeholders(words) {
        assert!(
            value.get(&p).is_some(),
            "{path}.{kind} uses {{{p}}}: {value}"
        );
    }
}

#[test]
fn every_refusal_audit_detail_and_journal_loss_a_technician_sees_has_its_words() {
    let t = table();
    for tag in ["zh-CN", "en"] {
        let tx = lang(&t, tag);
        for r in every_refusal() {
            let v = serde_json::to_value(&r).unwrap();
            worded(&tx["refusals"], &format!("{tag}: refusals"), &v, "why");
        }
        for n in every_worded_note() {
            let v = serde_json::to_value(&n).unwrap();
            worded(
                &tx["audit_notes"],
                &format!("{tag}: audit_notes"),
                &v,
                "kind",
            );
        }
        for loss in every_loss() {
            let v = serde_json::to_value(&loss).unwrap();
            worded(
                &tx["diag"]["losses"],
                &format!("{tag}: diag.losses"),
                &v,
                "loss",
            );
        }
        // How a technician leaves (the runner's two logouts).
        for why in ["logout", "idle"] {
            assert!(
                tx["logout_whys"][why].is_string(),
                "{tag}: logout_whys.{why}"
            );
        }
    }
}
