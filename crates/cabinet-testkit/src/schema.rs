//! The reply JSON Schema (docs/schema/reply.schema.json) and a validator for exactly the
//! keywords it uses; shared by the schema tests and the end-to-end tests, which validate
//! the replies a running kiosk really publishes.

use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../../docs/schema/reply.schema.json");

/// The reply schema, parsed.
pub fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("reply.schema.json is JSON")
}

/// Validates `value` against the subset of draft 2020-12 the schema uses; returns the
/// first error as `path: message`.
pub fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
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
