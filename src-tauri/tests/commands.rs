//! The commands through Tauri's mock runtime: real IPC dispatch, no window, no display,
//! no kiosk core (the test plays the core by sending snapshots on the watch channel).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
#[cfg(feature = "demo")]
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cabinet_core::config::{BoardProtocol, ScanApp};
use cabinet_core::screen::{CabinetInfo, Item, Screen, Snapshot};
#[cfg(feature = "demo")]
use cabinet_demo::{Demo, DemoOptions};
use cabinet_kiosk_app::{AppState, run_app};
use serde_json::{Value, json};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};
use tokio::sync::watch;

type Core = watch::Sender<Option<Snapshot>>;

fn app_with(
    context: tauri::Context<MockRuntime>,
) -> (App<MockRuntime>, WebviewWindow<MockRuntime>, Core) {
    app_with_info(context, CabinetInfo::plain())
}

fn app_with_info(
    context: tauri::Context<MockRuntime>,
    info: CabinetInfo,
) -> (App<MockRuntime>, WebviewWindow<MockRuntime>, Core) {
    let (tx, rx) = watch::channel(None);
    let state = AppState::new("CAB-001", rx).with_info(info);
    let app = run_app(mock_builder(), context, state).expect("app builds");
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window builds");
    (app, window, tx)
}

fn app() -> (App<MockRuntime>, WebviewWindow<MockRuntime>, Core) {
    app_with(mock_context(noop_assets()))
}

fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(window, request(cmd, args))
        .map(|body| body.deserialize::<Value>().expect("json body"))
}

/// The page's call of `cmd` with `args`.
fn request(cmd: &str, args: Value) -> InvokeRequest {
    InvokeRequest {
        cmd: cmd.into(),
        callback: tauri::ipc::CallbackFn(0),
        error: tauri::ipc::CallbackFn(1),
        url: "tauri://localhost".parse().expect("url"),
        body: tauri::ipc::InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    }
}

/// A command that answers raw bytes (`tauri::ipc::Response`).
fn invoke_raw(
    window: &WebviewWindow<MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Vec<u8>, Value> {
    match get_ipc_response(window, request(cmd, args))? {
        tauri::ipc::InvokeResponseBody::Raw(bytes) => Ok(bytes),
        other => panic!("{cmd}: not raw bytes: {other:?}"),
    }
}

fn dispensing() -> Snapshot {
    Snapshot {
        machine_code: "CAB-001".into(),
        cabinet_name: "Lobby".into(),
        items: vec![Item {
            slot: 12,
            product: "Umbrella".into(),
            count: 3,
            available: true,
        }],
        screen: Screen::Dispensing {
            slot: 12,
            product: "Umbrella".into(),
            log_id: "c-7f3a".into(),
            since_ms: 1_700_000_000_000,
        },
        link_up: true,
        board_up: true,
        queued: 0,
        qr_nonce: None,
        earlier_failure: None,
        config_version: 0,
        info: std::sync::Arc::new(CabinetInfo::plain()),
        version: 7,
    }
}

#[test]
fn a_failing_command_is_a_code_and_message_error() {
    let (_app, w, _core) = app();
    // Too long for any QR version (the core bounds its nonces; the page must not crash).
    let err = invoke(&w, "qr_svg", json!({"nonce": "x".repeat(5000)}))
        .expect_err("an unencodable QR must fail");
    assert_eq!(err["code"], "qr_failed");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{err}"
    );
    assert_eq!(
        err.as_object().map(|o| o.len()),
        Some(2),
        "only code and message: {err}"
    );
}

/// The config's names get a font of their own characters (the page adds it before it
/// draws them); names in ASCII need none, and the page's own font has those.
#[test]
fn names_font_cuts_a_font_of_the_names_characters() {
    let (_app, w, _core) = app();
    let font =
        invoke_raw(&w, "names_font", json!({"text": "天河地铁站 B 出口 雨伞"})).expect("font");
    assert_eq!(&font[..4], b"OTTO", "an OpenType (CFF) font");
    assert!(font.len() < 64 * 1024, "{} bytes", font.len());
    let none = invoke_raw(&w, "names_font", json!({"text": "Umbrella"})).expect("answer");
    assert!(none.is_empty(), "{} bytes for ASCII", none.len());
    let many: String = ('\u{4e00}'..='\u{9fff}').collect();
    let err = invoke_raw(&w, "names_font", json!({"text": many})).expect_err("too many");
    assert_eq!(err["code"], "names_font_failed", "{err}");
}

#[test]
fn qr_svg_returns_an_svg_document() {
    let (_app, w, _core) = app();
    let svg = invoke(&w, "qr_svg", json!({"nonce": "n-42"})).expect("qr");
    let svg = svg.as_str().expect("a string");
    assert!(svg.contains("<svg"), "{svg}");
    let expected = cabinet_core::qr::svg("cabinet:CAB-001:n-42").expect("qr");
    assert_eq!(svg, expected, "encodes cabinet:{{machine_code}}:{{nonce}}");
}

/// With `kiosk.qr_url` the code is the operator's link (what WeChat or Alipay opens),
/// and `cabinet_info` gives the page the board kind, the contact and the help page's code.
#[test]
fn the_qr_code_carries_the_operators_link_and_cabinet_info_the_contact() {
    let info = CabinetInfo {
        board: BoardProtocol::Lockboard,
        support_phone: "400-820-8820".into(),
        help_url: "https://help.example.com/c".into(),
        nearby: "B1".into(),
        scan_with: vec![ScanApp::Wechat, ScanApp::Alipay],
        qr_url: "https://m.example.com/c/{machine_code}?s={nonce}".into(),
    };
    let (_app, w, _core) = app_with_info(mock_context(noop_assets()), info);
    let svg = invoke(&w, "qr_svg", json!({"nonce": "n42"})).expect("qr");
    let expected = cabinet_core::qr::svg("https://m.example.com/c/CAB-001?s=n42").expect("qr");
    assert_eq!(svg.as_str(), Some(expected.as_str()));
    let got = invoke(&w, "cabinet_info", json!({})).expect("info");
    let help = cabinet_core::qr::svg("https://help.example.com/c").expect("qr");
    assert_eq!(
        got,
        json!({
            "board": "lockboard",
            "support_phone": "400-820-8820",
            "help_url": "https://help.example.com/c",
            "nearby": "B1",
            "scan_with": ["wechat", "alipay"],
            "help_qr": help,
        }),
        "the link template stays in the app"
    );
    let (_app, w, _core) = app();
    let plain = invoke(&w, "cabinet_info", json!({})).expect("info");
    assert_eq!(
        plain["help_qr"],
        Value::Null,
        "no help page, no code: {plain}"
    );
    assert_eq!(plain["board"], "vmc");
}

#[test]
fn get_snapshot_is_null_until_the_core_publishes() {
    let (_app, w, core) = app();
    assert_eq!(invoke(&w, "get_snapshot", json!({})), Ok(Value::Null));
    core.send_replace(Some(dispensing()));
    let snap = invoke(&w, "get_snapshot", json!({})).expect("snapshot");
    assert_eq!(snap, serde_json::to_value(dispensing()).expect("json"));
    assert_eq!(snap["screen"], "dispensing");
    assert_eq!(snap["slot"], 12);
}

#[test]
fn next_snapshot_answers_at_once_with_one_the_page_has_not_seen() {
    let (_app, w, core) = app();
    core.send_replace(Some(dispensing()));
    let want = serde_json::to_value(dispensing()).expect("json");
    assert_eq!(
        invoke(&w, "next_snapshot", json!({"after": null})),
        Ok(want.clone())
    );
    assert_eq!(invoke(&w, "next_snapshot", json!({"after": 6})), Ok(want));
}

#[test]
fn next_snapshot_waits_for_the_core_to_publish_another() {
    let (_app, w, core) = app();
    core.send_replace(Some(dispensing()));
    let (done_tx, done_rx) = mpsc::channel();
    let waiting = w.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(invoke(&waiting, "next_snapshot", json!({"after": 7})));
    });
    // Nothing newer than version 7 yet: no answer (a wrong one would come at once).
    assert!(
        done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "next_snapshot answered before the core published"
    );
    let mut next = dispensing();
    next.version = 8;
    next.screen = Screen::Idle;
    core.send_replace(Some(next.clone()));
    let got = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("an answer once the core published");
    assert_eq!(got, Ok(serde_json::to_value(next).expect("json")));
}

/// With the real context (tauri.conf.json + capabilities/default.json + the app
/// manifest from build.rs) the ACL applies: our commands pass, core window commands
/// (closing the kiosk window from the page) are refused.
#[test]
fn the_capability_allows_our_commands_and_nothing_else() {
    let (_app, w, core) = app_with(tauri::generate_context!());
    assert_eq!(invoke(&w, "get_snapshot", json!({})), Ok(Value::Null));
    core.send_replace(Some(dispensing()));
    assert!(invoke(&w, "next_snapshot", json!({"after": null})).is_ok());
    assert!(invoke(&w, "qr_svg", json!({"nonce": "n"})).is_ok());
    assert!(invoke(&w, "cabinet_info", json!({})).is_ok());
    assert!(invoke_raw(&w, "names_font", json!({"text": "雨伞"})).is_ok());
    for (cmd, args) in [
        ("plugin:window|close", json!({"label": "main"})),
        ("plugin:webview|set_webview_zoom", json!({"value": 2.0})),
        // Snapshots are pulled: the page has no use for Tauri's events.
        (
            "plugin:event|listen",
            json!({"event": "screen", "target": {"kind": "Any"}, "handler": 1}),
        ),
    ] {
        let err = invoke(&w, cmd, args).expect_err(cmd);
        assert!(err.to_string().contains("not allowed"), "{cmd}: {err}");
    }
}

/// The same commands from a window the capability does not name are refused: the ACL
/// covers the app's own commands too (build.rs declares them in the app manifest).
#[test]
fn a_window_outside_the_capability_cannot_call_our_commands() {
    let (_core, rx) = watch::channel(None);
    let app = run_app(
        mock_builder(),
        tauri::generate_context!(),
        AppState::new("CAB-001", rx),
    )
    .expect("app builds");
    let other = WebviewWindowBuilder::new(&app, "other", Default::default())
        .build()
        .expect("window builds");
    let err = invoke(&other, "get_snapshot", json!({})).expect_err("denied");
    assert!(err.to_string().contains("not allowed"), "{err}");
}

#[test]
fn outside_the_demo_the_demo_commands_refuse_and_ui_ready_is_harmless() {
    let (_app, w, _core) = app_with(tauri::generate_context!());
    assert_eq!(invoke(&w, "demo_available", json!({})), Ok(json!(false)));
    for cmd in ["demo_scan", "demo_return", "demo_motor_count"] {
        let err = invoke(&w, cmd, json!({})).expect_err(cmd);
        // Built with the demo, the commands exist and refuse; without it (the .deb's
        // app), they do not exist at all.
        if cfg!(feature = "demo") {
            assert_eq!(err["code"], "not_demo", "{cmd}: {err}");
        } else {
            assert!(err.to_string().contains("not found"), "{cmd}: {err}");
        }
    }
    assert_eq!(invoke(&w, "ui_ready", json!({})), Ok(Value::Null));
    assert_eq!(invoke(&w, "ui_ready", json!({})), Ok(Value::Null));
}

/// The demo's commands against a real demo environment (embedded broker and simulated
/// board; one per process, so only this test starts one).
#[cfg(feature = "demo")]
#[test]
fn in_the_demo_a_scan_signs_a_command_for_the_nonce_on_screen() {
    let demo = Arc::new(Demo::start(DemoOptions::default()).expect("demo starts"));
    let backend = Arc::new(OnceLock::new());
    let (core, rx) = watch::channel(None);
    let app = run_app(
        mock_builder(),
        tauri::generate_context!(),
        AppState::new(cabinet_demo::MACHINE_CODE, rx)
            .with_demo(Arc::clone(&demo), Arc::clone(&backend)),
    )
    .expect("app builds");
    let w = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window builds");
    assert_eq!(invoke(&w, "demo_available", json!({})), Ok(json!(true)));
    assert_eq!(invoke(&w, "demo_motor_count", json!({})), Ok(json!(0)));
    let err = invoke(&w, "demo_scan", json!({})).expect_err("not connected yet");
    assert_eq!(err["code"], "demo_not_ready");

    let connected = tauri::async_runtime::block_on(demo.backend()).expect("backend connects");
    backend.set(connected).expect("set once");
    let err = invoke(&w, "demo_scan", json!({})).expect_err("no screen yet");
    assert_eq!(err["code"], "no_screen");

    // Not idle: there is no QR code to scan.
    core.send_replace(Some(dispensing()));
    let err = invoke(&w, "demo_scan", json!({})).expect_err("not idle");
    assert_eq!(err["code"], "scan_failed");

    let idle = Snapshot {
        screen: Screen::Idle,
        qr_nonce: Some("0123456789abcdef".into()),
        ..dispensing()
    };
    core.send_replace(Some(idle));
    let code = invoke(&w, "demo_scan", json!({})).expect("scan sent");
    let code = code.as_str().unwrap_or_default();
    assert_eq!(
        cabinet_core::support::parse(code).as_deref(),
        Some(code),
        "the support code the screen shows if it fails"
    );

    // The demo's controls: its technician, and faults that go on and off.
    let info = invoke(&w, "demo_info", json!({})).expect("demo info");
    assert_eq!(info["pin"], cabinet_demo::TECHNICIAN_PIN);
    assert_eq!(info["technician"], cabinet_demo::TECHNICIAN);
    assert_eq!(
        info["faults"],
        json!({"jam": false, "unplug": false, "broker": false, "power_off": false})
    );
    assert_eq!(info["layout"], "vending");
    // A vending cabinet has no wall board to cut: the fault stays off.
    let cut = invoke(
        &w,
        "demo_set_fault",
        json!({"fault": "power_off", "on": true}),
    )
    .expect("power_off");
    assert_eq!(cut["faults"]["power_off"], false);
    let on = invoke(&w, "demo_set_fault", json!({"fault": "jam", "on": true})).expect("jam");
    assert_eq!(on["faults"]["jam"], true);
    assert!(demo.faults().jam);
    let off = invoke(&w, "demo_set_fault", json!({"fault": "jam", "on": false})).expect("mend");
    assert_eq!(off["faults"]["jam"], false);
    let err = invoke(&w, "demo_set_fault", json!({"fault": "fire", "on": true}))
        .expect_err("no such fault");
    assert!(err.to_string().contains("fire"), "{err}");
}
