//! The journal's schema: the migrations, applied in order and recorded in
//! `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::JournalError;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released step: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    r#"
    CREATE TABLE commands (
        cmd_id      TEXT PRIMARY KEY NOT NULL,
        log_id      TEXT NOT NULL,
        order_id    TEXT NOT NULL,
        slot        INTEGER,            -- NULL when rejected before the slot was read
        qty         INTEGER,
        session     TEXT,
        state       TEXT NOT NULL,
        reason      TEXT,
        evidence    TEXT NOT NULL DEFAULT '{}',
        last_reply  TEXT,               -- the latest reply payload, re-sent to duplicates
        received_at INTEGER NOT NULL,   -- unix ms
        updated_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX commands_by_log_id ON commands(log_id);
    CREATE INDEX commands_by_state ON commands(state);
    CREATE INDEX commands_by_received ON commands(received_at);

    CREATE TABLE command_transitions (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        cmd_id TEXT NOT NULL REFERENCES commands(cmd_id),
        state  TEXT NOT NULL,
        reason TEXT,
        at     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX transitions_by_cmd ON command_transitions(cmd_id);

    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        cmd_id     TEXT,
        topic      TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE inventory (
        slot       INTEGER PRIMARY KEY NOT NULL,
        product    TEXT NOT NULL,
        capacity   INTEGER NOT NULL CHECK (capacity >= 0),
        count      INTEGER NOT NULL CHECK (count >= 0),
        enabled    INTEGER NOT NULL DEFAULT 1,
        jammed     INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         INTEGER NOT NULL,
        technician TEXT NOT NULL,
        action     TEXT NOT NULL,
        detail     TEXT NOT NULL
    ) STRICT;

    CREATE TABLE rejections (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        reason         TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        payload_len    INTEGER NOT NULL,
        cmd_id         TEXT,            -- only when the signature verified
        log_id         TEXT,
        detail         TEXT NOT NULL
    ) STRICT;
    "#,
    // 2: small named values that must survive restarts (the technician PIN lockout).
    r#"
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY NOT NULL,
        value  TEXT NOT NULL
    ) STRICT;
    "#,
    // 3: retention and identity. A command's token `exp` bounds how long a redelivery
    // could be accepted (NULL for commands journaled before this step: retention then
    // assumes the longest lifetime any cabinet accepts). The outbox index lets retention
    // skip commands whose reply the broker has not acknowledged. The journal gets an
    // identity, which the witness file outside it remembers (crate::witness).
    r#"
    ALTER TABLE commands ADD COLUMN expires_at INTEGER;
    CREATE INDEX outbox_by_cmd ON outbox(cmd_id);
    INSERT INTO settings (key, value) VALUES ('journal_id', lower(hex(randomblob(16))))
        ON CONFLICT(key) DO NOTHING;
    INSERT INTO settings (key, value)
        VALUES ('journal_created_at', CAST(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS TEXT))
        ON CONFLICT(key) DO NOTHING;
    "#,
    // 4: the operator's signed documents in force, one row per kind (`keys`). `token`
    // NULL: a technician reset it on site and the config file's keys are in force again,
    // but `version` stays as the floor a new document must climb above, so a replay of
    // the reset document (still retained on the broker) is refused.
    r#"
    CREATE TABLE documents (
        kind       TEXT PRIMARY KEY NOT NULL,
        version    INTEGER NOT NULL CHECK (version >= 0),
        sha256     TEXT,
        token      TEXT,
        signed_by  TEXT,
        applied_at INTEGER NOT NULL
    ) STRICT;
    "#,
];

/// Applies the migrations not yet recorded in `user_version`, each in its own
/// transaction together with the version bump, so a crash mid-migration leaves the
/// previous version intact.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > supported {
        return Err(JournalError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
