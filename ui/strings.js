// Every string the screens show, in both languages: the one table the page words
// itself from and the Rust tests read (src-tauri/tests/strings.rs: both languages have
// every key and the same {placeholders}, every reason code has a customer sentence).
// Between `export default` and the final `;` this file is JSON, so that Rust reads it
// as it is: double quotes, no comments, no trailing commas. `{name}` is filled in by
// text.js's fmt; an object keyed `vmc` / `lockboard` words a screen per board kind.
export default {
  "zh-CN": {
    "lang_button": "English",
    "starting_title": "正在启动…",
    "idle_title": "扫码取货",
    "scan_any": "请用手机扫描二维码",
    "scan_with": "请用{apps}扫码",
    "apps": {
      "wechat": "微信",
      "alipay": "支付宝",
      "unionpay": "云闪付"
    },
    "list_sep": "、",
    "list_or": "或",
    "items_title": "本柜商品",
    "item_left": "剩余 {n} 件",
    "item_out": "已售罄",
    "accepted_title": "已收到您的订单",
    "place": {
      "vmc": "货道 {n}",
      "lockboard": "{n} 号柜门"
    },
    "dispensing_title": {
      "vmc": "正在出货",
      "lockboard": "正在开门"
    },
    "dispensing_hint": {
      "vmc": "请稍候，出货时请勿伸手进取货口",
      "lockboard": "请稍候，柜门马上打开"
    },
    "take_title": {
      "vmc": "请从取货口取走商品",
      "lockboard": "{n} 号柜门已打开，请取物后关门"
    },
    "put_back_title": "{n} 号柜门已打开，请放回物品后关门",
    "back_in": "{n} 秒后返回首页",
    "failed_title": {
      "vmc": "未能出货",
      "lockboard": "柜门未能打开"
    },
    "failed_charge": "本次购买未完成。如已付款，款项将自动原路退回。",
    "uncertain_title": {
      "vmc": "正在核实出货结果",
      "lockboard": "正在核实柜门状态"
    },
    "uncertain_charge": "如您没有拿到商品，款项将自动原路退回。",
    "support_code": "如需帮助，请向客服提供此编号",
    "phone": "客服电话 {p}",
    "help_scan": "扫码获取帮助",
    "nearby": "附近的柜机：{where}",
    "earlier_failed": "上一笔订单未能完成 · 编号 {code}",
    "earlier_uncertain": "上一笔订单正在核实 · 编号 {code}",
    "oos_title": "暂停服务",
    "oos_hint": "给您带来不便，敬请谅解。",
    "oos": {
      "broker_down": "柜机暂时无法连接网络。",
      "board_down": "柜机设备暂时无响应。",
      "maintenance": "工作人员正在维护本柜机。",
      "journal_unverified": "柜机记录需要工作人员核对。",
      "starting": "柜机正在启动。",
      "disk_low": "柜机暂时无法接单，工作人员正在处理。"
    },
    "reasons": {
      "wrong_target": "该请求属于其他柜机。",
      "expired": "请求已超时，请重新扫码。",
      "not_yet_valid": "柜机时间不准，请联系工作人员。",
      "lifetime_too_long": "该请求无法受理，请重新扫码。",
      "bad_signature": "请求无法校验。",
      "unknown_key": "请求无法校验。",
      "key_not_allowed": "请求无法校验。",
      "unsupported_algorithm": "请求无法校验。",
      "malformed": "请求无法校验。",
      "oversize": "请求无法校验。",
      "unsupported_kind": "本柜机不支持该请求。",
      "unsupported_quantity": "本柜机不支持该请求。",
      "duplicate": "该请求已处理过。",
      "session_mismatch": "二维码已更新，请重新扫码。",
      "slot_unknown": "本柜机没有该商品。",
      "slot_disabled": "该商品暂不可用。",
      "slot_empty": "该商品已售罄。",
      "not_a_door": "该货道不能归还物品，请选择柜门。",
      "door_occupied": "该柜门不是空的，请换一个柜门。",
      "slot_jammed": "商品卡住了，已通知工作人员。",
      "jammed": "商品卡住了，已通知工作人员。",
      "motor_not_stopped": "商品卡住了，已通知工作人员。",
      "maintenance": "工作人员正在维护本柜机，请稍后再试。",
      "journal_unverified": "本柜机暂停服务，已通知工作人员。",
      "disk_low": "本柜机暂时无法接单，请稍后再试。",
      "no_drop_detected": "未检测到商品掉落。",
      "door_never_opened": "柜门未在规定时间内打开。",
      "board_unreachable": "柜机无响应，请稍后再试。",
      "board_no_reply": "柜机无响应，请稍后再试。",
      "terminated": "柜机已终止出货。",
      "interrupted": "出货过程中柜机重启。"
    },
    "demo_scan": "演示：模拟扫码",
    "demo_return": "演示：模拟归还",
    "demo_count": "模拟板电机动作：{n} 次",
    "demo_count_wall": "模拟锁控板开门：{n} 次",
    "demo_controls": "演示控制",
    "demo_tech": "技术员「{name}」，密码 {pin}：按住屏幕左上角 3 秒进入维护",
    "demo_faults": {
      "jam": {
        "off": "让电机卡住",
        "on": "修好电机"
      },
      "unplug": {
        "off": "拔掉主板",
        "on": "插回主板"
      },
      "broker": {
        "off": "断开消息服务器",
        "on": "恢复消息服务器"
      },
      "jam_wall": {
        "off": "让 wall-1 的门卡住",
        "on": "修好 wall-1 的门"
      },
      "unplug_wall": {
        "off": "拔掉总线（所有锁控板）",
        "on": "插回总线"
      },
      "power_off": {
        "off": "给 wall-2 断电",
        "on": "恢复 wall-2 供电"
      }
    },
    "demo_close": "关闭",
    "tech_title": "技术人员登录",
    "tech_cancel": "取消",
    "pin_clear": "清除",
    "pin_ok": "确定",
    "tech_in": "维护中：",
    "tech_maint_hint": "柜机已暂停服务，顾客订单将被拒绝。长时间无操作将自动退出。",
    "tech_logout": "退出维护",
    "wrong_pin": "密码错误，还可尝试 {n} 次",
    "locked_out": "尝试次数过多，请 {s} 秒后再试",
    "pick_name": "请选择姓名",
    "tab_health": "状态",
    "tab_slots": "货道",
    "tab_commands": "订单",
    "tab_frames": "串口帧",
    "tab_audit": "审计",
    "tab_export": "导出",
    "search": "查找客服编号",
    "export": "导出诊断包",
    "tech_exit": "关闭程序",
    "tech_exit_again": "再按一次关闭程序：重新启动前顾客无法使用本柜",
    "slot_test": "测试出货",
    "clear_jam": "清除卡货",
    "enable": "启用",
    "disable": "停用",
    "save": "保存",
    "fill": "补满",
    "slot_states": {
      "ok": "正常",
      "jammed": "卡货",
      "disabled": "已停用",
      "unreachable": "主板无应答"
    },
    "test_result": "货道 {slot}：{outcome}",
    "all_boards": "全部主板",
    "exported": "已导出 {n} 个文件到 {path}",
    "cmd_states": {
      "accepted": "已接单",
      "dispensing": "出货中",
      "succeeded": "已完成",
      "failed": "失败",
      "rejected": "已拒绝",
      "outcome_unknown": "结果未知"
    },
    "outcomes": {
      "dispensed": "已出货",
      "door_opened": "柜门已打开",
      "door_never_opened": "柜门未被打开",
      "jammed": "卡货",
      "motor_not_stopped": "电机未归位",
      "no_such_slot": "主板无此货道",
      "terminated": "主板终止出货",
      "unknown_status": "主板状态未知",
      "no_reply": "主板无应答",
      "bad_frame": "主板应答损坏",
      "port_gone": "串口已断开"
    },
    "audit_actions": {
      "login": "登录",
      "logout": "退出",
      "failed_pin": "密码错误",
      "locked_out": "锁定",
      "slot_test": "测试出货",
      "clear_jam": "清除卡货",
      "enable_slot": "启用货道",
      "disable_slot": "停用货道",
      "restock": "补货",
      "export": "导出诊断包",
      "exit": "关闭程序",
      "journal_fresh_start": "日志库重新开始",
      "keys_applied": "启用新密钥",
      "keys_reset": "密钥恢复为配置文件",
      "config_applied": "启用新配置"
    },
    "audit_notes": {
      "slot": "货道 {slot}",
      "restock": "货道 {slot}：{before} → {after}",
      "slot_test": "货道 {slot}：{outcome}",
      "lockout": "{secs} 秒",
      "logout": "{why}"
    },
    "logout_whys": {
      "logout": "点了退出维护",
      "idle": "长时间无操作，自动退出"
    },
    "refusals": {
      "slot_test_running": "正在测试货道，请等测试结束",
      "dispense_finishing": "顾客的商品正在出货，请稍候",
      "export_running": "正在导出，请等导出结束",
      "unknown_slot": "货道 {slot} 不在货道表中",
      "over_capacity": "货道 {slot} 最多放 {capacity} 件",
      "nothing_to_confirm": "日志库完好，无需确认",
      "own_request": "无法执行"
    },
    "errors": {
      "not_logged_in": "未登录或已自动退出",
      "busy": "柜机正忙，请稍后再试",
      "invalid": "无法执行",
      "failed": "操作失败"
    },
    "diag": {
      "broker": "消息服务器",
      "link": "连接",
      "since": "连接时间",
      "last_msg": "最近指令",
      "outbox": "待确认回执",
      "board": "主板",
      "board_state": "主板状态",
      "address": "地址",
      "slots": "货道",
      "protocols": {
        "vmc": "售货机主板（VMC）",
        "lockboard": "锁控板"
      },
      "last_rx": "最近收到帧",
      "frames": "收/发/错帧",
      "timeouts": "超时/重发/重连",
      "poll": "POLL 最慢应答",
      "journal": "日志库",
      "disk": "剩余磁盘",
      "dropped": "已丢弃的拒收记录",
      "unverified": "日志库未核实",
      "losses": {
        "missing": "日志库文件不见了",
        "empty": "日志库文件是空的",
        "corrupt": "日志库未通过完整性检查（{problem}），已另存为 {set_aside}",
        "replaced": "原日志库 {expected} 被另一个日志库 {found} 取代",
        "rolled_back": "日志库被换成了较旧的副本（有 {found} 条记录，应有 {expected} 条）",
        "witness_unreadable": "无法读取日志库的见证文件：{problem}"
      },
      "confirm_fresh": "确认重新开始日志库…",
      "confirm_fresh_again": "再按一次确认：丢失的记录无法恢复",
      "version": "版本",
      "boot": "启动 ID",
      "clock": "时钟",
      "clock_ok": "时钟最近经后台校验",
      "yes": "正常",
      "no": "异常",
      "never": "无",
      "disk_low": "空间不足：暂停接单（journal.min_free_mb）"
    }
  },
  "en": {
    "lang_button": "中文",
    "starting_title": "Starting…",
    "idle_title": "Scan to get your item",
    "scan_any": "Scan the QR code with your phone",
    "scan_with": "Scan with {apps}",
    "apps": {
      "wechat": "WeChat",
      "alipay": "Alipay",
      "unionpay": "UnionPay"
    },
    "list_sep": ", ",
    "list_or": " or ",
    "items_title": "In this cabinet",
    "item_left": "{n} left",
    "item_out": "Sold out",
    "accepted_title": "Order received",
    "place": {
      "vmc": "Slot {n}",
      "lockboard": "Door {n}"
    },
    "dispensing_title": {
      "vmc": "Dispensing",
      "lockboard": "Opening the door"
    },
    "dispensing_hint": {
      "vmc": "Please wait, and keep your hands out of the tray",
      "lockboard": "Please wait: the door opens in a moment"
    },
    "take_title": {
      "vmc": "Take your item from the tray",
      "lockboard": "Door {n} is open: take your item and close the door"
    },
    "put_back_title": "Door {n} is open: put the item back and close the door",
    "back_in": "Back to the start in {n} s",
    "failed_title": {
      "vmc": "Not dispensed",
      "lockboard": "The door did not open"
    },
    "failed_charge": "Your purchase did not go through. Any payment will be refunded automatically.",
    "uncertain_title": {
      "vmc": "Checking your order",
      "lockboard": "Checking the door"
    },
    "uncertain_charge": "If you did not get your item, your payment will be refunded automatically.",
    "support_code": "Need help? Give customer service this code",
    "phone": "Customer service {p}",
    "help_scan": "Scan for help",
    "nearby": "Nearest other cabinet: {where}",
    "earlier_failed": "Previous order not completed · code {code}",
    "earlier_uncertain": "Previous order being checked · code {code}",
    "oos_title": "Out of service",
    "oos_hint": "Sorry for the inconvenience.",
    "oos": {
      "broker_down": "The cabinet cannot reach the network right now.",
      "board_down": "The cabinet's machinery is not responding.",
      "maintenance": "Staff are servicing this cabinet.",
      "journal_unverified": "The cabinet's records need a check by staff.",
      "starting": "The cabinet is starting.",
      "disk_low": "The cabinet cannot take orders right now; staff are on it."
    },
    "reasons": {
      "wrong_target": "This request was for another cabinet.",
      "expired": "The request took too long. Please scan again.",
      "not_yet_valid": "The cabinet clock is out of step. Please ask staff.",
      "lifetime_too_long": "This request could not be accepted. Please scan again.",
      "bad_signature": "The request could not be checked.",
      "unknown_key": "The request could not be checked.",
      "key_not_allowed": "The request could not be checked.",
      "unsupported_algorithm": "The request could not be checked.",
      "malformed": "The request could not be checked.",
      "oversize": "The request could not be checked.",
      "unsupported_kind": "This cabinet cannot do that request.",
      "unsupported_quantity": "This cabinet cannot do that request.",
      "duplicate": "This request was already handled.",
      "session_mismatch": "The code you scanned has changed. Please scan again.",
      "slot_unknown": "This item is not in this cabinet.",
      "slot_disabled": "This item is not available right now.",
      "slot_empty": "This item is sold out.",
      "not_a_door": "Items can only be returned to a locker door.",
      "door_occupied": "That door is not empty: try another door.",
      "slot_jammed": "The item got stuck. Staff have been told.",
      "jammed": "The item got stuck. Staff have been told.",
      "motor_not_stopped": "The item got stuck. Staff have been told.",
      "maintenance": "Staff are servicing this cabinet. Please try again shortly.",
      "journal_unverified": "This cabinet is out of service. Staff have been told.",
      "disk_low": "This cabinet cannot take orders right now. Please try later.",
      "no_drop_detected": "We could not see the item drop.",
      "door_never_opened": "The door was not opened in time.",
      "board_unreachable": "The cabinet is not responding. Please try later.",
      "board_no_reply": "The cabinet is not responding. Please try later.",
      "terminated": "The cabinet stopped the delivery.",
      "interrupted": "The cabinet restarted during delivery."
    },
    "demo_scan": "Demo: simulate a scan",
    "demo_return": "Demo: return a rental",
    "demo_count": "Simulated board motor runs: {n}",
    "demo_count_wall": "Doors opened by the simulated wall: {n}",
    "demo_controls": "Demo controls",
    "demo_tech": "Technician “{name}”, PIN {pin}: hold the top-left corner for 3 s",
    "demo_faults": {
      "jam": {
        "off": "Jam the motors",
        "on": "Mend the motors"
      },
      "unplug": {
        "off": "Unplug the board",
        "on": "Plug the board back in"
      },
      "broker": {
        "off": "Drop the broker",
        "on": "Bring the broker back"
      },
      "jam_wall": {
        "off": "Stick wall-1's doors",
        "on": "Free wall-1's doors"
      },
      "unplug_wall": {
        "off": "Unplug the bus (every board)",
        "on": "Plug the bus back in"
      },
      "power_off": {
        "off": "Cut wall-2's power",
        "on": "Restore wall-2's power"
      }
    },
    "demo_close": "Close",
    "tech_title": "Technician login",
    "tech_cancel": "Cancel",
    "pin_clear": "Clear",
    "pin_ok": "OK",
    "tech_in": "Maintenance:",
    "tech_maint_hint": "The cabinet is out of service; customer orders are refused. You are logged out when idle.",
    "tech_logout": "End maintenance",
    "wrong_pin": "Wrong PIN, {n} tries left",
    "locked_out": "Too many tries; try again in {s} s",
    "pick_name": "Choose your name",
    "tab_health": "Health",
    "tab_slots": "Slots",
    "tab_commands": "Commands",
    "tab_frames": "Frames",
    "tab_audit": "Audit",
    "tab_export": "Export",
    "search": "Find support code",
    "export": "Export bundle",
    "tech_exit": "Close the app",
    "tech_exit_again": "Tap again to close the app: customers cannot use the cabinet until it starts again",
    "slot_test": "Test",
    "clear_jam": "Clear jam",
    "enable": "Enable",
    "disable": "Disable",
    "save": "Save",
    "fill": "Fill up",
    "slot_states": {
      "ok": "OK",
      "jammed": "Jammed",
      "disabled": "Disabled",
      "unreachable": "Board not answering"
    },
    "test_result": "Slot {slot}: {outcome}",
    "all_boards": "All boards",
    "exported": "{n} files written to {path}",
    "cmd_states": {
      "accepted": "Accepted",
      "dispensing": "Dispensing",
      "succeeded": "Succeeded",
      "failed": "Failed",
      "rejected": "Rejected",
      "outcome_unknown": "Outcome unknown"
    },
    "outcomes": {
      "dispensed": "Dispensed",
      "door_opened": "Door opened",
      "door_never_opened": "Door never opened",
      "jammed": "Jammed",
      "motor_not_stopped": "Motor not at home",
      "no_such_slot": "No such slot on the board",
      "terminated": "Board stopped it",
      "unknown_status": "Unknown board status",
      "no_reply": "No reply from the board",
      "bad_frame": "Broken reply from the board",
      "port_gone": "Serial port gone"
    },
    "audit_actions": {
      "login": "Log in",
      "logout": "Log out",
      "failed_pin": "Wrong PIN",
      "locked_out": "Locked out",
      "slot_test": "Slot test",
      "clear_jam": "Clear jam",
      "enable_slot": "Enable slot",
      "disable_slot": "Disable slot",
      "restock": "Restock",
      "export": "Export",
      "exit": "Close the app",
      "journal_fresh_start": "Journal fresh start",
      "keys_applied": "New keys in force",
      "keys_reset": "Keys reset to the config file",
      "config_applied": "New configuration in force"
    },
    "audit_notes": {
      "slot": "Slot {slot}",
      "restock": "Slot {slot}: {before} → {after}",
      "slot_test": "Slot {slot}: {outcome}",
      "lockout": "{secs} s",
      "logout": "{why}"
    },
    "logout_whys": {
      "logout": "with the exit button",
      "idle": "automatically, after no touch"
    },
    "refusals": {
      "slot_test_running": "A slot test is running; wait for it to end",
      "dispense_finishing": "A customer's item is being dispensed; wait a moment",
      "export_running": "An export is being written; wait for it to end",
      "unknown_slot": "Slot {slot} is not in the slot map",
      "over_capacity": "Slot {slot} holds at most {capacity}",
      "nothing_to_confirm": "The journal is intact; there is nothing to confirm",
      "own_request": "Cannot do that"
    },
    "errors": {
      "not_logged_in": "Not logged in (or logged out when idle)",
      "busy": "The cabinet is busy; try again shortly",
      "invalid": "Cannot do that",
      "failed": "It failed"
    },
    "diag": {
      "broker": "Broker",
      "link": "Link",
      "since": "Connected since",
      "last_msg": "Last command",
      "outbox": "Replies pending",
      "board": "Board",
      "board_state": "Board state",
      "address": "address",
      "slots": "Slots",
      "protocols": {
        "vmc": "vending board (VMC)",
        "lockboard": "lock board"
      },
      "last_rx": "Last frame received",
      "frames": "Frames rx/tx/bad",
      "timeouts": "Timeouts/resends/reconnects",
      "poll": "Slowest POLL reply",
      "journal": "Journal",
      "disk": "Disk free",
      "dropped": "Refused payloads dropped",
      "unverified": "Journal not verified",
      "losses": {
        "missing": "the journal file was missing",
        "empty": "the journal file was empty",
        "corrupt": "the journal failed its integrity check ({problem}) and was kept as {set_aside}",
        "replaced": "another journal ({found}) is in place of journal {expected}",
        "rolled_back": "an older copy of the journal is in place ({found} transitions, the witness saw {expected})",
        "witness_unreadable": "the journal's witness file cannot be read: {problem}"
      },
      "confirm_fresh": "Confirm a fresh start of the journal…",
      "confirm_fresh_again": "Tap again to confirm: the lost records cannot be recovered",
      "version": "Version",
      "boot": "Boot id",
      "clock": "Clock",
      "clock_ok": "Clock last vouched by a command",
      "yes": "OK",
      "no": "DOWN",
      "never": "never",
      "disk_low": "LOW: orders refused (journal.min_free_mb)"
    }
  }
};
