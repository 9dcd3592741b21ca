//! docs/schema/reply.schema.json is the published contract for replies; these tests
//! keep it equal to the code: its enums are `ReplyState::ALL` and `Reason::ALL`, and
//! real `Reply` values validate against it.
//!
//! The `jsonschema` crate is not available offline here, so a small validator (cabinet-testkit's `schema`)
//! covers exactly the keywords the schema uses (type, const, enum, required,
//! properties, additionalProperties: false, minLength, maxLength, minimum, pattern as
//! the machine-code character class). A schema keyword it does not know fails the test,
//! so the schema cannot silently outgrow the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cabinet_core::Reason;
use cabinet_core::protocol::{Evidence, PROTOCOL_VERSION, Reply, ReplyState};
use cabinet_testkit::schema::{schema, validate};
use serde_json::{Value, json};

fn enum_strings(v: &Value) -> Vec<String> {
    v["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .map(|s| s.as_str().expect("string enum").to_owned())
        .collect()
}

fn reply(state: ReplyState, reason: Option<Reason>, evidence: Evidence) -> Reply {
    Reply {
        v: PROTOCOL_VERSION,
        cmd_id: "0190c2de-7f1a-7b3e-9a41-5a1f2c3d4e5f".into(),
        order_id: "ORD-20250615-0042".into(),
        log_id: "log-7f3a9c".into(),
        machine_code: "GZ-0001".into(),
        boot_id: "4f1c0a9e5b7d4e21a3c8f0b6d2e9a7c1".into(),
        state,
        reason,
        evidence,
        at: 1_750_000_000_123,
        seq: Some(3),
    }
}

#[test]
fn the_schema_reason_enum_is_exactly_reason_all() {
    let codes: Vec<String> = Reason::ALL.iter().map(|r| r.code().to_owned()).collect();
    assert_eq!(enum_strings(&schema()["properties"]["reason"]), codes);
}

#[test]
fn the_schema_state_enum_is_exactly_reply_state_all() {
    let states: Vec<String> = ReplyState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(enum_strings(&schema()["properties"]["state"]), states);
}

#[test]
fn every_real_reply_validates_against_the_schema() {
    let s = schema();
    let full = Evidence {
        drop_detected: Some(false),
        door_open: Some(true),
        board_status: Some("vmc:03".into()),
        board: Some("wall-3".into()),
        channel: Some(4),
    };
    let mut n = 0;
    for state in ReplyState::ALL {
        for evidence in [Evidence::default(), full.clone()] {
            let mut cases = vec![reply(state, None, evidence.clone())];
            cases.extend(
                Reason::ALL
                    .iter()
                    .map(|r| reply(state, Some(*r), evidence.clone())),
            );
            for r in cases {
                let v: Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
                validate(&s, &v, "$").unwrap_or_else(|e| panic!("{e}\n{v}"));
                let mut no_seq = v.clone();
                no_seq.as_object_mut().unwrap().remove("seq");
                validate(&s, &no_seq, "$").unwrap();
                n += 1;
            }
        }
    }
    assert_eq!(n, ReplyState::ALL.len() * 2 * (Reason::ALL.len() + 1));

    // A forged or unreadable command is answered with empty IDs (they are not known).
    let mut forged = reply(
        ReplyState::Rejected,
        Some(Reason::BadSignature),
        Evidence::default(),
    );
    forged.cmd_id.clear();
    forged.order_id.clear();
    forged.log_id.clear();
    let v: Value = serde_json::from_str(&forged.to_json().unwrap()).unwrap();
    validate(&s, &v, "$").unwrap_or_else(|e| panic!("{e}\n{v}"));
}

#[test]
fn the_schema_refuses_unknown_fields_states_and_reasons() {
    let s = schema();
    let good: Value = serde_json::to_value(reply(
        ReplyState::Failed,
        Some(Reason::Jammed),
        Evidence::default(),
    ))
    .unwrap();
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        validate(&s, &v, "$").is_err()
    };
    assert!(validate(&s, &good, "$").is_ok());
    assert!(bad(&|v| v["extra"] = json!(1)));
    assert!(bad(&|v| v["state"] = json!("done")));
    assert!(bad(&|v| v["reason"] = json!("no_such_reason")));
    assert!(bad(&|v| v["evidence"]["smell"] = json!("burnt")));
    assert!(bad(&|v| v["v"] = json!(2)));
    assert!(bad(&|v| v["machine_code"] = json!("cabinet/v1/+")));
    assert!(bad(&|v| {
        v.as_object_mut().unwrap().remove("cmd_id");
    }));
}
