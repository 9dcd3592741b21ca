//! docs/schema/keyset.schema.json and reported.schema.json are the published contract for
//! the operator's key sets and the cabinet's `reported`; these tests keep them equal to
//! the code: real values validate, the refusal reasons are exactly `DocumentReason::ALL`,
//! and what the code refuses the schema refuses too (with cabinet-testkit's validator,
//! which fails on a keyword it does not know).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cabinet_core::config::{
    ConfigClaims, RemoteConfig, RemoteKiosk, RemoteMaintenance, RemoteSupport, ScanApp, SlotConfig,
};
use cabinet_core::protocol::{
    ConfigReport, DocumentReason, DocumentSource, InForceReport, KeyEntry, KeyRole, KeySetClaims,
    KeysReport, PROTOCOL_VERSION, RefusedReport, Reported, SigningKey, public_key_base64url,
};
use cabinet_testkit::schema::{config_schema, keyset_schema, reported_schema, validate};
use serde_json::{Value, json};

fn claims() -> KeySetClaims {
    let x = |seed| public_key_base64url(&SigningKey::from_bytes(&[seed; 32]));
    KeySetClaims {
        kind: "keys".into(),
        aud: "GZ-0001".into(),
        iat: 1_750_000_000,
        version: 7,
        keys: vec![
            KeyEntry {
                kid: "backend-2026-12".into(),
                x: x(1),
                roles: vec![KeyRole::Dispense],
            },
            KeyEntry {
                kid: "ops-1".into(),
                x: x(2),
                roles: vec![KeyRole::Operator, KeyRole::Dispense],
            },
        ],
    }
}

fn report(refused: Option<RefusedReport>) -> Reported {
    Reported {
        v: PROTOCOL_VERSION,
        machine_code: "GZ-0001".into(),
        boot_id: "4f1c0a9e5b7d4e21a3c8f0b6d2e9a7c1".into(),
        at: 1_750_000_000_123,
        keys: KeysReport {
            in_force: InForceReport {
                version: 7,
                source: DocumentSource::Signed,
                sha256: Some("ab".repeat(32)),
                signed_by: Some("ops-1".into()),
                applied_at: Some(1_750_000_000_000),
            },
            dispense: vec!["backend-2026-12".into()],
            operator: vec!["ops-1".into()],
        },
        config: ConfigReport {
            in_force: InForceReport {
                version: 3,
                source: DocumentSource::Signed,
                sha256: Some("ef".repeat(32)),
                signed_by: Some("ops-1".into()),
                applied_at: Some(1_750_000_000_001),
            },
            pending: Some(4),
            problems: vec!["slots[0].capacity: must be 1..=1000".into()],
        },
        refused,
    }
}

fn refusal(reason: DocumentReason) -> RefusedReport {
    RefusedReport {
        document: "keys".into(),
        reason,
        detail: "version 3 is not above the version in force, 7".into(),
        problems: vec!["keys[1].x: not base64url".into()],
        version: Some(3),
        signed_by: Some("ops-1".into()),
        sha256: "cd".repeat(32),
        at: 1_750_000_000_456,
    }
}

#[test]
fn a_real_key_set_validates_and_what_the_cabinet_refuses_the_schema_refuses() {
    let s = keyset_schema();
    let v = serde_json::to_value(claims()).unwrap();
    validate(&s, &v, "$").unwrap();
    let mut root = v.clone();
    root["keys"][0]["roles"] = json!(["root"]);
    assert!(validate(&s, &root, "$").is_err(), "an unknown role");
    let mut other = v.clone();
    other["kind"] = json!("config");
    assert!(validate(&s, &other, "$").is_err(), "another kind");
    let mut extra = v;
    extra["keys"][0]["use"] = json!("sig");
    assert!(
        validate(&s, &extra, "$").is_err(),
        "a key with a field the cabinet refuses"
    );
}

#[test]
fn every_real_report_validates() {
    let s = reported_schema();
    let v = serde_json::to_value(report(None)).unwrap();
    assert_eq!(
        v["refused"],
        Value::Null,
        "refused is always present, null when none"
    );
    validate(&s, &v, "$").unwrap();
    for reason in DocumentReason::ALL {
        for document in ["keys", "config"] {
            let mut r = refusal(reason);
            r.document = document.into();
            let v = serde_json::to_value(report(Some(r))).unwrap();
            validate(&s, &v, "$").unwrap_or_else(|e| panic!("{reason}: {e}"));
        }
    }
    let mut file = report(None);
    file.keys = KeysReport {
        in_force: InForceReport::default(),
        dispense: vec!["k1".into()],
        operator: vec![],
    };
    file.config = ConfigReport {
        in_force: InForceReport::default(),
        pending: None,
        problems: vec![],
    };
    validate(&s, &serde_json::to_value(file).unwrap(), "$").unwrap();
}

#[test]
fn the_schema_refusal_reasons_are_exactly_document_reason_all() {
    let s = reported_schema();
    let listed: Vec<&str> = s["properties"]["refused"]["properties"]["reason"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let codes: Vec<&str> = DocumentReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(listed, codes);
    for r in DocumentReason::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), json!(r.code()));
    }
}

/// Every field a configuration document may set, set.
fn remote() -> RemoteConfig {
    RemoteConfig {
        slots: Some(vec![SlotConfig {
            slot: 3,
            board: Some("wall-1".into()),
            channel: Some(4),
            product: "Juice".into(),
            capacity: 8,
            initial_count: 8,
        }]),
        kiosk: Some(RemoteKiosk {
            name: Some("Gate B".into()),
            take_item_secs: Some(20),
            failed_secs: Some(30),
            out_of_service_grace_secs: Some(10),
            qr_url: Some("https://m.example.com/c/{machine_code}?s={nonce}".into()),
            scan_with: Some(vec![ScanApp::Wechat, ScanApp::Alipay, ScanApp::Unionpay]),
        }),
        support: Some(RemoteSupport {
            phone: Some("400-123-4567".into()),
            help_url: Some("https://help.example.com".into()),
            nearby: Some("B1, by the lifts".into()),
        }),
        maintenance: Some(RemoteMaintenance {
            idle_logout_secs: Some(300),
        }),
    }
}

#[test]
fn a_real_configuration_validates_and_the_schema_lists_exactly_what_a_document_may_set() {
    let s = config_schema();
    let claims = ConfigClaims {
        kind: "config".into(),
        aud: "GZ-0001".into(),
        iat: 1_750_000_000,
        version: 12,
        config: serde_json::to_value(remote()).unwrap(),
    };
    let v = serde_json::to_value(&claims).unwrap();
    validate(&s, &v, "$").unwrap();
    // The schema's fields are the code's: every field of every section, nothing more.
    let props = &s["properties"]["config"]["properties"];
    let code = &v["config"];
    let names = |o: &Value| -> Vec<String> {
        let mut k: Vec<String> = o.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(names(props), names(code));
    for section in ["kiosk", "support", "maintenance"] {
        assert_eq!(
            names(&props[section]["properties"]),
            names(&code[section]),
            "{section}"
        );
    }
    assert_eq!(
        names(&props["slots"]["items"]["properties"]),
        names(&code["slots"][0]),
        "slots"
    );
    // What the cabinet refuses, the schema refuses.
    let mut mqtt = v.clone();
    mqtt["config"]["mqtt"] = json!({"url": "mqtt://elsewhere"});
    assert!(validate(&s, &mqtt, "$").is_err());
    assert!(RemoteConfig::parse(&mqtt["config"]).is_err());
    let mut heartbeat = v;
    heartbeat["config"]["kiosk"]["heartbeat_secs"] = json!(5);
    assert!(validate(&s, &heartbeat, "$").is_err());
    assert!(RemoteConfig::parse(&heartbeat["config"]).is_err());
}
