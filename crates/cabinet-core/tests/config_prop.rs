//! The config loader on hostile input: arbitrary text, and the shipped example with one
//! line replaced by junk or removed. It never panics, and when it refuses a file every
//! problem names a field and says what is allowed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cabinet_core::config::{Config, ConfigError};
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../deploy/config.example.toml");

fn check(text: &str) {
    match Config::from_toml_str(text) {
        Ok(_) => {}
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(!p.field.is_empty(), "a problem without a field: {p}");
                assert!(!p.message.is_empty(), "a problem without a message: {p}");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fn lines() -> Vec<&'static str> {
    EXAMPLE.lines().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check(&text);
    }

    #[test]
    fn arbitrary_toml_shaped_text_never_panics(
        text in "([a-z_.\\[\\]]{1,20} = (\"[^\"]{0,10}\"|-?[0-9]{1,20}|true|\\[\\]|\\{\\})\n){0,12}"
    ) {
        check(&text);
    }

    #[test]
    fn one_value_of_the_example_replaced_never_panics(
        idx in 0usize..200,
        junk in prop_oneof![
            Just("-1".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("\"\"".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("true".to_owned()),
            "\"\\PC{0,40}\"",
            "-?[0-9]{1,25}",
        ],
    ) {
        let mut ls = lines();
        let i = idx % ls.len();
        let owned;
        if let Some((key, _)) = ls[i].split_once(" = ") {
            owned = format!("{key} = {junk}");
            ls[i] = &owned;
        }
        check(&ls.join("\n"));
    }

    #[test]
    fn one_line_of_the_example_removed_never_panics(idx in 0usize..200) {
        let mut ls = lines();
        ls.remove(idx % ls.len());
        check(&ls.join("\n"));
    }
}

#[test]
fn the_shipped_example_is_valid() {
    Config::from_toml_str(EXAMPLE).expect("deploy/config.example.toml");
}
