//! docs/schema/reply.schema.json is the published contract for replies; these tests
//! keep it equal to the code: its enums are `ReplyState::ALL` and `Reason::ALL`, and
//! real `Reply` values validate against it.
//!
//! The `jsonschema` crate is not available offline here, so a small validator below
//! covers exactly the keywords the schema uses (type, const, enum, required,
//! properties, additionalProperties: false, minLength, maxLength, minimum, pattern as
//! the machine-code character class). A schema keyword it does not know fails the test,
//! so the schema cannot silently outgrow the check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cabinet_core::Reason;
use cabinet_core::protocol::{Evidence, PROTOCOL_VERSION, Reply, ReplyState};
use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../../docs/schema/reply.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("reply.schema.json is JSON")
}

fn enum_strings(v: &Value) -> Vec<String> {
    v["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .map(|s| s.as_str().expect("string enum").to_owned())
        .collect()
}

/// Validates `value` against the subset of draft 2020-12 the schema uses; returns the
/// first error as `path: message`.
fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let obj = schema.as_object().expect("schema object");
    for (k, s) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "properties" => {}
            "type" => {
                let ok = match s.as_str().unwrap() {
                    "object" => value.is_object(),
                    "string" => value.is_string(),
                    "integer" => value.is_u64() || value.is_i64(),
                    "boolean" => value.is_boolean(),
                    t => panic!("validator does not know type {t}"),
                };
                if !ok {
                    return Err(format!("{path}: not a {s}"));
                }
            }
            "const" if value != s => return Err(format!("{path}: must be {s}")),
            "const" => {}
            "enum" if !s.as_array().unwrap().contains(value) => {
                return Err(format!("{path}: {value} not in enum"));
            }
            "enum" => {}
            "minLength" | "maxLength" => {
                let n = value.as_str().map_or(0, |t| t.chars().count()) as u64;
                let lim = s.as_u64().unwrap();
                if (k == "minLength" && n < lim) || (k == "maxLength" && n > lim) {
                    return Err(format!("{path}: {k} {lim}"));
                }
            }
            "minimum" if value.as_i64().is_some_and(|n| n < s.as_i64().unwrap()) => {
                return Err(format!("{path}: below minimum {s}"));
            }
            "minimum" => {}
            "pattern" => {
                assert_eq!(s, "^[A-Za-z0-9_-]{1,64}$", "validator knows one pattern");
                let t = value.as_str().unwrap_or("");
                let ok = (1..=64).contains(&t.len())
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return Err(format!("{path}: not a machine code"));
                }
            }
            "required" => {
                for r in s.as_array().unwrap() {
                    if value.get(r.as_str().unwrap()).is_none() {
                        return Err(format!("{path}: missing {r}"));
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(s, &json!(false), "only additionalProperties: false is used");
                let props = obj["properties"].as_object().unwrap();
                if let Some(extra) = value
                    .as_object()
                    .and_then(|o| o.keys().find(|k| !props.contains_key(*k)))
                {
                    return Err(format!("{path}: unexpected field {extra}"));
                }
            }
            other => panic!("validator does not know keyword {other}"),
        }
    }
    if let (Some(props), Some(o)) = (obj.get("properties"), value.as_object()) {
        for (k, v) in o {
            if let Some(s) = props.get(k) {
                validate(s, v, &format!("{path}.{k}"))?;
            }
        }
    }
    Ok(())
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
