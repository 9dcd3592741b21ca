use std::path::{Path, PathBuf};
use std::time::Duration;

use super::validate::log_filter_ok;
use super::*;

#[test]
fn every_problem_is_listed_on_its_own_line() {
    let p = |field: &str, message: &str| Problem {
        field: field.into(),
        message: message.into(),
    };
    let one = ConfigError::Invalid(vec![p("board.protocol", "must be vmc or lockboard")]);
    assert_eq!(
        one.to_string(),
        "invalid config (1 problem):\n  - board.protocol: must be vmc or lockboard"
    );
    let two = ConfigError::Invalid(vec![p("a", "x"), p("b", "y")]);
    assert_eq!(
        two.to_string(),
        "invalid config (2 problems):\n  - a: x\n  - b: y"
    );
}

/// The RFC 8037 A.1 example public key: valid, and fine for tests only (its
/// private half is published in the RFC).
const KEY: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn minimal() -> String {
    format!("machine_code = \"GZ-0001\"\n[keys]\nbackend-1 = \"{KEY}\"\n")
}

fn problems(toml: &str) -> Vec<Problem> {
    match Config::from_toml_str(toml) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn fields(toml: &str) -> Vec<String> {
    problems(toml).into_iter().map(|p| p.field).collect()
}

#[test]
fn the_lockout_policy_is_in_milliseconds() {
    let cfg = Config::from_toml_str(&format!(
        "{}[maintenance]\nmax_failures = 4\nlockout_secs = 45\nlockout_max_secs = 7200\n",
        minimal()
    ))
    .unwrap();
    let p = cfg.lockout_policy();
    assert_eq!(
        (p.max_failures, p.first_lockout_ms, p.max_lockout_ms),
        (4, 45_000, 7_200_000)
    );
}

#[test]
fn the_mqtt_username_must_be_1_to_256_characters_without_control_characters() {
    // TOML string literals.
    for (name, ok) in [
        ("\"\"".to_owned(), false),
        (format!("\"{}\"", "u".repeat(256)), true),
        (format!("\"{}\"", "u".repeat(257)), false),
        ("\"a\\u0007b\"".to_owned(), false),
        ("\"cabinet-7\"".to_owned(), true),
    ] {
        let toml = format!("{}[mqtt]\nusername = {name}\n", minimal());
        let bad = Config::from_toml_str(&toml).is_err();
        assert_eq!(bad, !ok, "{name:?}");
        if bad {
            assert_eq!(fields(&toml), ["mqtt.username"], "{name:?}");
        }
    }
}

#[test]
fn reconnect_max_may_equal_min_but_not_be_below_it() {
    let at = |min: u64, max: u64| {
        format!(
            "{}[mqtt]\nreconnect_min_ms = {min}\nreconnect_max_ms = {max}\n",
            minimal()
        )
    };
    assert!(Config::from_toml_str(&at(2000, 2000)).is_ok());
    assert_eq!(fields(&at(3000, 2000)), ["mqtt.reconnect_max_ms"]);
}

#[test]
fn relative_paths_follow_the_config_file_and_absolute_or_empty_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!(
            "{}[journal]\npath = \"data/journal.sqlite3\"\n[logs]\ndir = \"/var/log/x\"\n",
            minimal()
        ),
    )
    .unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.journal.path, dir.path().join("data/journal.sqlite3"));
    assert_eq!(cfg.logs.dir, PathBuf::from("/var/log/x"));
    // An empty path is a mistake to report, not the config's directory.
    std::fs::write(
        &path,
        format!("{}[mqtt]\npassword_file = \"\"\n", minimal()),
    )
    .unwrap();
    match Config::load(&path) {
        Err(ConfigError::Invalid(p)) => {
            assert!(p.iter().any(|p| p.field == "mqtt.password_file"), "{p:?}")
        }
        other => panic!("an empty password_file was accepted: {other:?}"),
    }
}

#[test]
fn lock_board_slots_go_up_to_the_channel_count_and_vmc_slots_are_not_limited_by_it() {
    let with = |protocol: &str, slot: u16| {
        format!(
            "{}[board]\nprotocol = \"{protocol}\"\n[board.lockboard]\nchannels = 16\n\
             [[slots]]\nslot = {slot}\nproduct = \"p\"\ncapacity = 1\ninitial_count = 1\n",
            minimal()
        )
    };
    assert!(Config::from_toml_str(&with("lockboard", 16)).is_ok());
    assert_eq!(fields(&with("lockboard", 17)), ["slots[0].slot"]);
    assert!(Config::from_toml_str(&with("vmc", 17)).is_ok());
}

#[test]
fn products_and_technician_names_have_length_bounds() {
    let product = |name: &str| {
        format!(
            "{}[[slots]]\nslot = 1\nproduct = \"{name}\"\ncapacity = 1\ninitial_count = 1\n",
            minimal()
        )
    };
    assert!(Config::from_toml_str(&product(&"p".repeat(64))).is_ok());
    assert_eq!(fields(&product(&"p".repeat(65))), ["slots[0].product"]);
    assert_eq!(fields(&product(" ")), ["slots[0].product"]);

    let phc = crate::technician::hash_pin("2468").unwrap();
    let tech = |name: &str| format!("{}[technicians]\n\"{name}\" = \"{phc}\"\n", minimal());
    assert!(Config::from_toml_str(&tech(&"t".repeat(32))).is_ok());
    for bad in ["t".repeat(33), String::new(), "a\\u0007b".to_owned()] {
        let p = problems(&tech(&bad));
        assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
        assert!(p[0].field.starts_with("technicians."), "{p:?}");
    }
}

#[test]
fn the_longest_lockout_may_equal_the_first_but_not_be_shorter() {
    let with = |first: u64, max: u64| {
        format!(
            "{}[maintenance]\nlockout_secs = {first}\nlockout_max_secs = {max}\n",
            minimal()
        )
    };
    assert!(Config::from_toml_str(&with(60, 60)).is_ok());
    assert_eq!(fields(&with(60, 59)), ["maintenance.lockout_max_secs"]);
}

#[test]
fn verify_limits_and_keepalive_come_from_the_config() {
    let cfg = Config::from_toml_str(&format!(
        "{}[commands]\nmax_payload_bytes = 2048\nclock_skew_secs = 10\n[mqtt]\nkeepalive_secs = 45\n",
        minimal()
    ))
    .unwrap();
    let v = cfg.verify_options();
    assert_eq!((v.max_token_bytes, v.leeway_secs), (2048, 10));
    assert_eq!(cfg.mqtt.keepalive(), Duration::from_secs(45));
}

#[test]
fn a_password_env_that_is_set_gives_its_value() {
    // PATH is set and not empty in any environment the tests run in; setting a
    // variable of our own would need `unsafe` (forbidden in this workspace).
    let cfg =
        Config::from_toml_str(&format!("{}[mqtt]\npassword_env = \"PATH\"\n", minimal())).unwrap();
    let pw = cfg.mqtt.load_password().unwrap().unwrap();
    assert_eq!(pw.expose(), std::env::var("PATH").unwrap());
}

#[test]
fn the_clock_skew_is_0_to_600_seconds() {
    let skew = |v: i64| format!("{}[commands]\nclock_skew_secs = {v}\n", minimal());
    assert!(Config::from_toml_str(&skew(0)).is_ok());
    assert!(Config::from_toml_str(&skew(600)).is_ok());
    for bad in [-1, 601] {
        assert_eq!(fields(&skew(bad)), ["commands.clock_skew_secs"], "{bad}");
    }
}

#[test]
fn embedded_defaults_cover_every_field() {
    // Only machine_code and one key are added; every other field must come from
    // defaults.toml, or deserialization would fail with "missing field".
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    assert_eq!(cfg.machine_code, "GZ-0001");
    assert_eq!(cfg.commands.max_payload_bytes, 4096);
    assert_eq!(cfg.board.protocol, BoardProtocol::Vmc);
    assert_eq!(cfg.board.baud(), 57600);
    assert_eq!(cfg.board.lockboard.baud, 9600);
    assert_eq!(cfg.mqtt_username(), "GZ-0001");
    assert!(cfg.slots.is_empty());
    assert_eq!(cfg.validate(), vec![]);
}

#[test]
fn the_defaults_alone_parse_and_only_lack_machine_code_and_keys() {
    let f = fields("");
    assert_eq!(f, vec!["machine_code".to_owned(), "keys".to_owned()]);
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config.example.toml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.slots.is_empty());
    assert!(cfg.journal.path.is_absolute());
}

#[test]
fn site_values_override_defaults_table_by_table() {
    let cfg = Config::from_toml_str(&format!(
        "{}\n[board]\nprotocol = \"lockboard\"\n[board.lockboard]\naddress = 3\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(cfg.board.protocol, BoardProtocol::Lockboard);
    assert_eq!(cfg.board.lockboard.address, 3);
    // untouched siblings keep their defaults
    assert_eq!(cfg.board.lockboard.channels, 8);
    assert_eq!(cfg.board.port, PathBuf::from("/dev/cabinet-board"));
    assert_eq!(cfg.board.baud(), 9600, "lock board default baud");
}

#[test]
fn slots_in_the_site_file_replace_the_default_list() {
    let cfg = Config::from_toml_str(&format!(
        "{}\n[[slots]]\nslot = 1\nproduct = \"Umbrella\"\ncapacity = 5\ninitial_count = 5\n\
         [[slots]]\nslot = 2\nproduct = \"Charger\"\ncapacity = 8\ninitial_count = 0\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(cfg.slots.len(), 2);
    assert_eq!(cfg.slots[1].product, "Charger");
}

#[test]
fn unknown_keys_are_an_error_naming_the_key_and_its_table() {
    let p = problems(&format!("{}\n[board]\nprotocl = \"vmc\"\n", minimal()));
    assert_eq!(p.len(), 1);
    let text = p[0].to_string();
    assert!(text.contains("board"), "{text}");
    assert!(text.contains("protocl"), "{text}");

    let p = problems(&format!("{}\nmachine_cod = \"x\"\n", minimal()));
    assert!(p[0].to_string().contains("machine_cod"), "{}", p[0]);
}

#[test]
fn a_bad_enum_value_names_the_field_and_the_allowed_values() {
    let p = problems(&format!("{}\n[board]\nprotocol = \"modbus\"\n", minimal()));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].field, "board.protocol");
    assert!(
        p[0].message.contains("must be one of: vmc, lockboard"),
        "{}",
        p[0].message
    );
}

#[test]
fn webkit_fallbacks_default_on_and_can_be_blanked_or_extended_per_site() {
    assert_eq!(
        default_webkit_env().get("WEBKIT_DISABLE_DMABUF_RENDERER"),
        Some(&"1".to_owned())
    );
    let cfg = Config::from_toml_str(&format!(
        "{}\n[kiosk.webkit_env]\nWEBKIT_DISABLE_DMABUF_RENDERER = \"\"\nWEBKIT_DISABLE_COMPOSITING_MODE = \"1\"\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(cfg.kiosk.webkit_env["WEBKIT_DISABLE_DMABUF_RENDERER"], "");
    assert_eq!(cfg.kiosk.webkit_env["WEBKIT_DISABLE_COMPOSITING_MODE"], "1");
    // What the site file leaves out keeps its default: the page without a JIT.
    assert_eq!(
        default_webkit_env().get("JSC_useJIT"),
        Some(&"0".to_owned())
    );
    assert_eq!(cfg.kiosk.webkit_env["JSC_useJIT"], "0");
    let p = problems(&format!(
        "{}\n[kiosk.webkit_env]\n\"BAD NAME\" = \"1\"\n",
        minimal()
    ));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].field, "kiosk.webkit_env.BAD NAME");
}

#[test]
fn technician_pin_hashes_are_checked_and_never_printed() {
    let phc = crate::technician::hash_pin("2468").unwrap();
    let cfg = Config::from_toml_str(&format!(
        "{}\n[technicians]\n\"Li Wei\" = \"{phc}\"\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(cfg.technicians["Li Wei"].expose(), phc);
    assert!(!format!("{cfg:?}").contains(&phc), "Debug shows the hash");
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        !json.contains(&phc) && json.contains("[redacted]"),
        "{json}"
    );

    let bad = "$argon2id$not-really";
    let p = problems(&format!(
        "{}\n[technicians]\nzhang = \"{bad}\"\n[maintenance]\nlockout_secs = 0\n",
        minimal()
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].field, "technicians.zhang");
    assert!(!p[0].message.contains(bad), "{}", p[0].message);
    assert_eq!(p[1].field, "maintenance.lockout_secs");
}

#[test]
fn a_wrong_type_names_the_field_path() {
    let p = problems(&format!("{}\n[board.vmc]\nbaud = \"fast\"\n", minimal()));
    assert_eq!(p[0].field, "board.vmc.baud");
}

#[test]
fn toml_syntax_errors_are_reported_as_syntax() {
    assert!(matches!(
        Config::from_toml_str("machine_code = "),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn validate_reports_all_problems_at_once_with_field_paths() {
    let toml = r#"
        machine_code = "GZ/0001"
        [mqtt]
        url = "http://broker"
        keepalive_secs = 1
        reconnect_min_ms = 5000
        reconnect_max_ms = 1000
        [keys]
        short = "AAAA"
        [commands]
        max_payload_bytes = 10
        [board]
        port = "ttyUSB0"
        [board.lockboard]
        address = 0
        channels = 200
        [board.vmc]
        baud = 12345
        [logs]
        retention_days = 0
        level = "loud"
    "#;
    let f = fields(toml);
    for expected in [
        "machine_code",
        "mqtt.url",
        "mqtt.keepalive_secs",
        "mqtt.reconnect_max_ms",
        "keys.short",
        "commands.max_payload_bytes",
        "board.port",
        "board.vmc.baud",
        "board.lockboard.address",
        "board.lockboard.channels",
        "logs.retention_days",
        "logs.level",
    ] {
        assert!(
            f.iter().any(|x| x == expected),
            "missing {expected} in {f:?}"
        );
    }
}

#[test]
fn range_messages_say_what_is_allowed() {
    let p = problems(&format!("{}\n[board.lockboard]\naddress = 32\n", minimal()));
    assert_eq!(
        p[0].to_string(),
        "board.lockboard.address: must be in 1..=31 (got 32)"
    );
}

#[test]
fn journal_min_free_mb_defaults_to_64_and_is_bounded() {
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    assert_eq!(cfg.journal.min_free_mb, 64);
    assert_eq!(cfg.journal.min_free_bytes(), 64 * 1024 * 1024);
    for (value, ok) in [(0, false), (1, true), (100_000, true), (100_001, false)] {
        let toml = format!("{}\n[journal]\nmin_free_mb = {value}\n", minimal());
        if ok {
            let cfg = Config::from_toml_str(&toml).unwrap();
            assert_eq!(cfg.journal.min_free_mb, value);
        } else {
            assert_eq!(
                problems(&toml)[0].to_string(),
                format!("journal.min_free_mb: must be in 1..=100000 (got {value})")
            );
        }
    }
}

#[test]
fn machine_codes_with_mqtt_wildcards_are_refused() {
    for code in ["+", "#", "a/b", "a b", &"x".repeat(65)] {
        let f = fields(&format!(
            "machine_code = \"{code}\"\n[keys]\nk = \"{KEY}\"\n"
        ));
        assert_eq!(f, vec!["machine_code".to_owned()], "{code:?}");
    }
}

#[test]
fn keys_of_the_wrong_length_are_refused() {
    use base64::Engine as _;
    let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 31]);
    let p = problems(&format!("machine_code = \"m\"\n[keys]\nk = \"{short}\"\n"));
    assert_eq!(p[0].field, "keys.k");
    assert!(p[0].message.contains("32 bytes"), "{}", p[0].message);
}

#[test]
fn password_file_and_env_together_are_refused() {
    let f = fields(&format!(
        "{}\n[mqtt]\npassword_file = \"/etc/pw\"\npassword_env = \"PW\"\n",
        minimal()
    ));
    assert_eq!(f, vec!["mqtt.password_env".to_owned()]);
}

#[test]
fn mqtts_requires_a_ca_file_and_mqtt_refuses_one() {
    let f = fields(&format!(
        "{}\n[mqtt]\nurl = \"mqtts://broker\"\n",
        minimal()
    ));
    assert_eq!(f, vec!["mqtt.ca_file".to_owned()]);
    let f = fields(&format!(
        "{}\n[mqtt]\nurl = \"mqtt://broker\"\nca_file = \"/ca.pem\"\n",
        minimal()
    ));
    assert_eq!(f, vec!["mqtt.ca_file".to_owned()]);
    let cfg = Config::from_toml_str(&format!(
        "{}\n[mqtt]\nurl = \"mqtts://broker\"\nca_file = \"/ca.pem\"\n",
        minimal()
    ))
    .unwrap();
    assert_eq!(
        cfg.broker().unwrap(),
        BrokerUrl {
            tls: true,
            host: "broker".into(),
            port: 8883
        }
    );
}

#[test]
fn failover_urls_follow_url_in_order() {
    let cfg = Config::from_toml_str(&format!(
        "{}\n[mqtt]\nurl = \"mqtt://node1\"\nfailover_urls = [\"mqtt://node2:1884\", \"mqtt://[::1]\"]\n",
        minimal()
    ))
    .unwrap();
    let hosts: Vec<(String, u16)> = cfg
        .brokers()
        .unwrap()
        .into_iter()
        .map(|b| (b.host, b.port))
        .collect();
    assert_eq!(
        hosts,
        [
            ("node1".to_owned(), 1883),
            ("node2".to_owned(), 1884),
            ("::1".to_owned(), 1883)
        ]
    );
    // Without failover_urls the list is just `url`.
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    assert_eq!(cfg.brokers().unwrap(), vec![cfg.broker().unwrap()]);
}

#[test]
fn bad_failover_urls_are_named_by_index() {
    let p = problems(&format!(
        "{}\n[mqtt]\nurl = \"mqtt://node1\"\nfailover_urls = [\"mqtt://node2\", \"tcp://node3\", \"mqtt://node1:1883/\", \"mqtts://node4\"]\n",
        minimal()
    ));
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "mqtt.failover_urls[1]",
            "mqtt.failover_urls[2]",
            "mqtt.failover_urls[3]"
        ]
    );
    assert!(
        p[0].message.contains("mqtt://host[:port]"),
        "{}",
        p[0].message
    );
    assert!(p[1].message.contains("repeats"), "{}", p[1].message);
    assert!(p[2].message.contains("same scheme"), "{}", p[2].message);
}

#[test]
fn failover_urls_are_capped() {
    let urls = |n: usize| {
        (0..n)
            .map(|i| format!("\"mqtt://node{i}:1884\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at_cap = format!(
        "{}\n[mqtt]\nfailover_urls = [{}]\n",
        minimal(),
        urls(MAX_FAILOVER_URLS)
    );
    assert!(Config::from_toml_str(&at_cap).is_ok());
    let over = format!(
        "{}\n[mqtt]\nfailover_urls = [{}]\n",
        minimal(),
        urls(MAX_FAILOVER_URLS + 1)
    );
    assert_eq!(fields(&over), vec!["mqtt.failover_urls".to_owned()]);
}

#[test]
fn broker_urls_parse_with_default_and_explicit_ports() {
    let b = parse_broker_url("mqtt://10.0.0.5").unwrap();
    assert_eq!((b.tls, b.host.as_str(), b.port), (false, "10.0.0.5", 1883));
    let b = parse_broker_url("mqtt://broker.example:11883/").unwrap();
    assert_eq!((b.host.as_str(), b.port), ("broker.example", 11883));
    let b = parse_broker_url("mqtts://[::1]:8884").unwrap();
    assert_eq!((b.tls, b.host.as_str(), b.port), (true, "::1", 8884));
    let b = parse_broker_url("mqtt://[fe80::1]").unwrap();
    assert_eq!((b.host.as_str(), b.port), ("fe80::1", 1883));
    for bad in [
        "tcp://broker",
        "mqtt://",
        "mqtt://broker:0",
        "mqtt://broker:70000",
        "mqtt://broker/topic",
        "mqtt://user:pw@broker",
        "mqtt://[::1",
        "broker:1883",
    ] {
        assert!(parse_broker_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn credentials_in_the_url_are_refused_because_urls_are_logged() {
    let e = parse_broker_url("mqtt://u:secret@broker").unwrap_err();
    assert!(
        !e.contains("secret"),
        "the message must not echo the password: {e}"
    );
}

#[test]
fn duplicate_slots_and_counts_over_capacity_are_refused() {
    let f = fields(&format!(
        "{}\n[[slots]]\nslot = 1\nproduct = \"A\"\ncapacity = 5\ninitial_count = 6\n\
         [[slots]]\nslot = 1\nproduct = \"\"\ncapacity = 0\ninitial_count = 0\n",
        minimal()
    ));
    assert_eq!(
        f,
        vec![
            "slots[0].initial_count".to_owned(),
            "slots[1].slot".to_owned(),
            "slots[1].product".to_owned(),
            "slots[1].capacity".to_owned(),
        ]
    );
}

#[test]
fn lockboard_slots_must_fit_the_channel_count() {
    let f = fields(&format!(
        "{}\n[board]\nprotocol = \"lockboard\"\n\
         [[slots]]\nslot = 9\nproduct = \"A\"\ncapacity = 1\ninitial_count = 1\n",
        minimal()
    ));
    assert_eq!(f, vec!["slots[0].slot".to_owned()]);
}

#[test]
fn log_levels_accept_levels_and_directives() {
    for ok in [
        "info",
        "DEBUG",
        "info,cabinet_core=debug",
        "warn,rumqttc::state=trace",
    ] {
        assert!(log_filter_ok(ok), "{ok}");
    }
    for bad in ["", "loud", "info,", "=debug", "a b=info"] {
        assert!(!log_filter_ok(bad), "{bad}");
    }
}

#[test]
fn every_log_level_the_config_accepts_is_one_the_logger_takes() {
    use tracing::Level;
    // Not an environment variable anyone sets, so the fallback (the config's) is used.
    let var = "CABINET_TEST_LOG_NEVER_SET";
    for ok in [
        "info",
        "DEBUG",
        "off",
        "info,cabinet_core=debug",
        "warn,rumqttc::state=trace",
    ] {
        assert!(log_filter_ok(ok), "{ok}");
        assert!(crate::logs::filter_from_env(var, ok).is_ok(), "{ok}");
    }
    // Directives select by target prefix, as the config file's comment says.
    let f = crate::logs::filter_from_env(var, "warn,cabinet_core=debug").unwrap();
    assert!(f.would_enable("cabinet_core::kiosk", &Level::DEBUG));
    assert!(!f.would_enable("cabinet_core::kiosk", &Level::TRACE));
    assert!(!f.would_enable("rumqttc::state", &Level::INFO));
    assert!(f.would_enable("rumqttc::state", &Level::WARN));
}

#[test]
fn password_is_read_from_the_first_line_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let cfg = Config::from_toml_str(&format!(
        "{}\n[mqtt]\npassword_file = \"{}\"\n",
        minimal(),
        pw.display()
    ))
    .unwrap();
    let secret = cfg.mqtt.load_password().unwrap().unwrap();
    assert_eq!(secret.expose(), "s3cret");
    // The config itself never holds the password, so printing it is safe.
    assert!(!format!("{cfg:?}").contains("s3cret"));
}

#[test]
fn an_empty_or_missing_password_file_is_an_error_without_content() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "\n").unwrap();
    let mut m = Config::from_toml_str(&minimal()).unwrap().mqtt;
    m.password_file = Some(pw);
    assert!(matches!(
        m.load_password(),
        Err(ConfigError::PasswordFile { .. })
    ));
    m.password_file = Some(dir.path().join("missing"));
    assert!(matches!(
        m.load_password(),
        Err(ConfigError::PasswordFile { .. })
    ));
}

#[test]
fn an_unset_password_env_is_an_error_and_none_means_no_password() {
    let mut m = Config::from_toml_str(&minimal()).unwrap().mqtt;
    assert_eq!(m.load_password().unwrap(), None);
    m.password_env = Some("CABINET_TEST_SURELY_UNSET_VAR_9F2".into());
    assert!(matches!(
        m.load_password(),
        Err(ConfigError::PasswordEnv { .. })
    ));
}

#[test]
fn load_resolves_relative_paths_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[journal]\npath = \"data/journal.sqlite3\"\n[mqtt]\npassword_file = \"pw\"\n",
            minimal()
        ),
    )
    .unwrap();
    let cfg = Config::load(&file).unwrap();
    assert_eq!(cfg.journal.path, dir.path().join("data/journal.sqlite3"));
    assert_eq!(cfg.mqtt.password_file, Some(dir.path().join("pw")));
    assert_eq!(cfg.logs.dir, PathBuf::from("/var/log/cabinet-kiosk"));
}

#[test]
fn a_missing_site_file_is_a_read_error_naming_the_path() {
    let e = Config::load(Path::new("/nonexistent/site.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/site.toml"));
}

#[test]
fn verify_options_and_trusted_keys_come_from_the_config() {
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    let o = cfg.verify_options();
    assert_eq!(o.max_token_bytes, 4096);
    assert_eq!(o.leeway_secs, 30);
    assert_eq!(o.max_lifetime_secs, 300);
    assert_eq!(cfg.trusted_keys().unwrap().len(), 1);
}

/// A config whose files all live in `dir` and are fine on this machine.
fn host_ok(dir: &Path) -> Config {
    std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
    let mut cfg = Config::from_toml_str(&minimal()).unwrap();
    cfg.mqtt.password_file = Some(dir.join("pw"));
    cfg.journal.path = dir.join("data/journal.sqlite3");
    cfg.logs.dir = dir.join("logs");
    cfg.board.port = dir.join("board-unplugged");
    cfg
}

fn host_fields(cfg: &Config) -> Vec<String> {
    cfg.check_host().into_iter().map(|p| p.field).collect()
}

#[test]
fn host_checks_pass_when_the_kiosk_can_create_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = host_ok(dir.path());
    assert_eq!(
        cfg.check_host(),
        vec![],
        "missing journal, logs and port are fine"
    );
    // /dev/null is a character device: a port may be any such device.
    let mut cfg = cfg;
    cfg.board.port = PathBuf::from("/dev/null");
    assert_eq!(cfg.check_host(), vec![]);
}

#[test]
fn a_password_file_that_is_missing_a_directory_or_empty_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = host_ok(dir.path());
    cfg.mqtt.password_file = Some(dir.path().join("missing"));
    let p = cfg.check_host();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "mqtt.password_file");
    assert!(p[0].message.contains("does not exist"), "{}", p[0].message);
    assert!(p[0].message.contains("readable file"), "{}", p[0].message);
    cfg.mqtt.password_file = Some(dir.path().to_path_buf());
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["mqtt.password_file"]);
    assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    cfg.mqtt.password_file = Some(dir.path().join("empty"));
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["mqtt.password_file"]);
    assert!(!p[0].message.contains("s3cret"));
}

#[test]
fn an_unset_password_variable_is_named_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = host_ok(dir.path());
    cfg.mqtt.password_file = None;
    cfg.mqtt.password_env = Some("CABINET_TEST_SURELY_UNSET_VAR_7C1".into());
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["mqtt.password_env"]);
    assert!(
        p[0].message.contains("CABINET_TEST_SURELY_UNSET_VAR_7C1"),
        "{}",
        p[0].message
    );
}

#[test]
fn a_journal_that_is_a_directory_a_device_or_under_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = host_ok(dir.path());
    cfg.journal.path = dir.path().to_path_buf();
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["journal.path"]);
    assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
    assert!(p[0].message.contains("regular file"), "{}", p[0].message);
    cfg.journal.path = PathBuf::from("/dev/null");
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["journal.path"]);
    assert!(
        p[0].message.contains("character device"),
        "{}",
        p[0].message
    );
    std::fs::write(dir.path().join("plain"), "").unwrap();
    cfg.journal.path = dir.path().join("plain/deeper/journal.sqlite3");
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["journal.path"]);
    assert!(
        p[0].message.contains("plain is a regular file"),
        "{}",
        p[0].message
    );
    // An existing journal is fine; a directory where its lock file goes is not.
    cfg.journal.path = dir.path().join("j.sqlite3");
    std::fs::write(&cfg.journal.path, "").unwrap();
    assert_eq!(cfg.check_host(), vec![]);
    std::fs::create_dir(dir.path().join("j.sqlite3.lock")).unwrap();
    assert_eq!(host_fields(&cfg), ["journal.path"]);
}

#[test]
fn a_logs_dir_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = host_ok(dir.path());
    std::fs::write(dir.path().join("logfile"), "").unwrap();
    cfg.logs.dir = dir.path().join("logfile");
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["logs.dir"]);
    assert!(
        p[0].message.contains("is a regular file"),
        "{}",
        p[0].message
    );
    cfg.logs.dir = dir.path().join("logfile/sub");
    assert_eq!(host_fields(&cfg), ["logs.dir"]);
}

#[test]
fn a_board_port_that_is_a_directory_or_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = host_ok(dir.path());
    cfg.board.port = dir.path().to_path_buf();
    let p = cfg.check_host();
    assert_eq!(host_fields(&cfg), ["board.port"]);
    assert!(p[0].message.contains("is a directory"), "{}", p[0].message);
    assert!(p[0].message.contains("serial device"), "{}", p[0].message);
    cfg.board.port = dir.path().join("pw");
    assert_eq!(host_fields(&cfg), ["board.port"]);
}

#[test]
fn every_host_problem_is_reported_at_once_by_load_for_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("logs"), "").unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(
        &file,
        format!(
            "{}[mqtt]\npassword_file = \"nope\"\n[board]\nport = \"{}\"\n\
             [board.vmc]\nreport_timeout_secs = 100\n\
             [journal]\npath = \"/dev/null\"\n[logs]\ndir = \"logs\"\n",
            minimal(),
            dir.path().display()
        ),
    )
    .unwrap();
    let Err(ConfigError::Invalid(p)) = Config::load_for_start(&file) else {
        panic!("expected problems");
    };
    let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "board.vmc.report_timeout_secs",
            "mqtt.password_file",
            "journal.path",
            "logs.dir",
            "board.port"
        ]
    );
    // Config::load alone checks only the text (cabinet diag reads broken cabinets).
    assert_eq!(
        problems_of(Config::load(&file)),
        ["board.vmc.report_timeout_secs"]
    );
}

fn problems_of(r: Result<Config, ConfigError>) -> Vec<String> {
    match r {
        Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_board_timeout_that_outlasts_the_units_stop_timeout_is_refused() {
    // The defaults fit, with the stop budget they give.
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    assert_eq!(cfg.stop_budget(), Duration::from_secs(30 + 10 + 5));
    let max = UNIT_STOP_TIMEOUT_SECS - STOP_MARGIN_SECS - LINK_GOODBYE_SECS - 2 * STOP_GRACE_SECS;
    let vmc = |secs: u64| format!("{}[board.vmc]\nreport_timeout_secs = {secs}\n", minimal());
    assert!(Config::from_toml_str(&vmc(max)).is_ok(), "{max} fits");
    let p = problems(&vmc(max + 1));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "board.vmc.report_timeout_secs");
    assert!(
        p[0].message.contains(&format!("at most {max}")),
        "{}",
        p[0].message
    );
    assert!(p[0].message.contains("TimeoutStopSec"), "{}", p[0].message);
    // Out of range altogether: one problem, the range.
    assert_eq!(fields(&vmc(301)), ["board.vmc.report_timeout_secs"]);
    // A lock board's dispense is its door wait and two replies; the VMC timeout
    // does not matter there.
    let lock = |door: u64| {
        format!(
            "{}[board]\nprotocol = \"lockboard\"\n[board.vmc]\nreport_timeout_secs = 300\n\
             [board.lockboard]\ndoor_open_timeout_secs = {door}\nreply_timeout_ms = 1500\n",
            minimal()
        )
    };
    assert!(Config::from_toml_str(&lock(max - 3)).is_ok());
    let p = problems(&lock(max - 2));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].field, "board.lockboard.door_open_timeout_secs");
    assert!(
        p[0].message.contains(&format!("at most {}", max - 3)),
        "{}",
        p[0].message
    );
}

/// One budget for both binaries, from the config: the core waits for a dispense in
/// progress as long as the board may take, the binaries wait for the core a little
/// longer, and systemd longer still; for every valid board timeout.
#[test]
fn the_stop_waits_nest_inside_each_other_and_inside_the_units_timeout() {
    let unit = Duration::from_secs(UNIT_STOP_TIMEOUT_SECS);
    for protocol in ["vmc", "lockboard"] {
        for secs in [1, 10, 30, 32, 35, 36, 100, 300] {
            let text = format!(
                "{}[board]\nprotocol = \"{protocol}\"\n[board.vmc]\nreport_timeout_secs = {secs}\n\
                 [board.lockboard]\ndoor_open_timeout_secs = {secs}\n",
                minimal()
            );
            let Ok(cfg) = Config::from_toml_str(&text) else {
                continue;
            };
            let dispense = cfg.dispense_bound();
            assert!(dispense >= Duration::from_secs(secs), "{protocol} {secs}");
            assert!(cfg.stop_dispense_wait() > dispense);
            assert!(cfg.stop_budget() > cfg.stop_dispense_wait());
            assert!(cfg.stop_timeout() > cfg.stop_budget());
            assert!(
                cfg.stop_timeout() < unit,
                "{protocol} {secs}: {:?}",
                cfg.stop_timeout()
            );
        }
    }
    // The defaults: a 30 s report timeout, 50 s for the binaries, 60 s for systemd.
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    assert_eq!(cfg.stop_timeout(), Duration::from_secs(50));
}

#[test]
fn the_shipped_units_allow_the_stop_timeout_the_budget_is_checked_against() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
    let mut units = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "service") {
            continue;
        }
        units += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let values: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("TimeoutStopSec="))
            .collect();
        assert_eq!(
            values,
            [UNIT_STOP_TIMEOUT_SECS.to_string().as_str()],
            "{}",
            path.display()
        );
    }
    assert_eq!(units, 2, "both shipped units checked");
}

#[test]
fn the_config_round_trips_through_toml() {
    // Diagnostics can show the effective config; it must read back identically.
    let cfg = Config::from_toml_str(&minimal()).unwrap();
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), cfg);
}

#[test]
fn the_customer_contact_and_the_qr_link_are_checked_field_by_field() {
    let good = format!(
        "{}\n[kiosk]\nqr_url = \"https://m.example.com/c/{{machine_code}}?s={{nonce}}\"\n\
         scan_with = [\"wechat\", \"alipay\"]\n\
         [support]\nphone = \"+86 (20) 8820-8820\"\nhelp_url = \"https://help.example.com/x\"\n\
         nearby = \"B1 电梯旁 · B1, by the lifts\"\n",
        minimal()
    );
    let cfg = Config::from_toml_str(&good).expect("valid");
    assert_eq!(cfg.kiosk.scan_with, vec![ScanApp::Wechat, ScanApp::Alipay]);
    assert_eq!(cfg.support.phone, "+86 (20) 8820-8820");

    let bad = format!(
        "{}\n[kiosk]\nqr_url = \"https://m.example.com/c?s={{nonce}}\"\n\
         scan_with = [\"alipay\", \"alipay\"]\n\
         [support]\nphone = \"call us\"\nhelp_url = \"http://help.example.com\"\n\
         nearby = \"{}\"\n",
        minimal(),
        "x".repeat(81)
    );
    let p = problems(&bad);
    let named: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        named,
        [
            "kiosk.qr_url",
            "kiosk.scan_with",
            "support.phone",
            "support.help_url",
            "support.nearby"
        ],
        "{p:?}"
    );
    assert!(p[0].message.contains("{machine_code}"), "{}", p[0].message);

    let p = problems(&format!(
        "{}\n[kiosk]\nscan_with = [\"paypal\"]\n",
        minimal()
    ));
    assert!(
        p[0].field.starts_with("kiosk.scan_with")
            && p[0].message.contains("wechat, alipay, unionpay"),
        "{p:?}"
    );
}
