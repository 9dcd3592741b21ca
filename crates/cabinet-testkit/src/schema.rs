//! The published JSON Schemas (docs/schema/: the reply, the key set's and the
//! configuration's claims, the `reported` message) and a validator for exactly the keywords they use; shared by the
//! schema tests and the end-to-end tests, which validate what a running kiosk really
//! publishes.

use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../../docs/schema/reply.schema.json");
const KEYSET: &str = include_str!("../../../docs/schema/keyset.schema.json");
const REPORTED: &str = include_str!("../../../docs/schema/reported.schema.json");
const CONFIG: &str = include_str!("../../../docs/schema/config.schema.json");

/// The reply schema, parsed.
pub fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("reply.schema.json is JSON")
}

/// The key set claims' schema, parsed.
pub fn keyset_schema() -> Value {
    serde_json::from_str(KEYSET).expect("keyset.schema.json is JSON")
}

/// The configuration claims' schema, parsed.
pub fn config_schema() -> Value {
    serde_json::from_str(CONFIG).expect("config.schema.json is JSON")
}

/// The `reported` message's schema, parsed.
pub fn reported_schema() -> Value {
    serde_json::from_str(REPORTED).expect("reported.schema.json is JSON")
}

fn is_type(t: &str, value: &Value) -> bool {
    match t {
        "object" => value.is_object(),
        "string" => value.is_string(),
        "integer" => value.is_u64() || value.is_i64(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        t => panic!("validator does not know type {t}"),
    }
}

/// Validates `value` against the subset of draft 2020-12 the schemas use; returns the
/// first error as `path: message`.
pub fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let obj = schema.as_object().expect("schema object");
    // `"type": [..., "null"]` and a null: nothing else about it to check.
    if value.is_null()
        && obj
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|ts| ts.contains(&json!("null")))
    {
        return Ok(());
    }
    for (k, s) in obj {
        match k.as_str() {
            "$schema" | "$id" | "title" | "description" | "properties" => {}
            "type" => {
                let ok = match s {
                    Value::Array(ts) => ts.iter().any(|t| is_type(t.as_str().unwrap(), value)),
                    t => is_type(t.as_str().unwrap(), value),
                };
                if !ok {
                    return Err(format!("{path}: not a {s}"));
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    validate(s, item, &format!("{path}[{i}]"))?;
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
            "maximum" if value.as_i64().is_some_and(|n| n > s.as_i64().unwrap()) => {
                return Err(format!("{path}: above maximum {s}"));
            }
            "maximum" => {}
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
