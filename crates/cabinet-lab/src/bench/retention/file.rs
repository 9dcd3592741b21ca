//! What a journal file weighs and holds, read on a connection of its own: file sizes and
//! pages, `auto_vacuum`, rows per table, the bytes of given B-trees, and a checkpoint that
//! truncates the WAL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub(super) const MIB: f64 = 1024.0 * 1024.0;

/// File sizes and what SQLite says about the file.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct Size {
    db: u64,
    wal: u64,
    page_size: i64,
    pages: i64,
    free_pages: i64,
}

impl Size {
    pub(super) fn total(&self) -> u64 {
        self.db + self.wal
    }

    pub(super) fn mib(&self) -> String {
        format!(
            "{:.1} MiB (db {:.1} + wal {:.1}; {} pages, {} free)",
            self.total() as f64 / MIB,
            self.db as f64 / MIB,
            self.wal as f64 / MIB,
            self.pages,
            self.free_pages
        )
    }
}

pub(super) fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

pub(super) fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn reader(path: &Path) -> anyhow::Result<Connection> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

pub(super) fn size(path: &Path) -> anyhow::Result<Size> {
    let c = reader(path)?;
    let q = |sql: &str| -> anyhow::Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
    Ok(Size {
        page_size: q("PRAGMA page_size")?,
        pages: q("PRAGMA page_count")?,
        free_pages: q("PRAGMA freelist_count")?,
        db: file_len(path),
        wal: file_len(&wal_path(path)),
    })
}

pub(super) fn auto_vacuum(path: &Path) -> anyhow::Result<&'static str> {
    let v: i64 = reader(path)?.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    Ok(match v {
        0 => "NONE",
        1 => "FULL",
        2 => "INCREMENTAL",
        _ => "?",
    })
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(super) struct Rows {
    pub(super) commands: i64,
    pub(super) transitions: i64,
    pub(super) outbox: i64,
    pub(super) rejections: i64,
}

pub(super) fn rows(path: &Path) -> anyhow::Result<Rows> {
    let c = reader(path)?;
    let q = |t: &str| -> anyhow::Result<i64> {
        Ok(c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?)
    };
    Ok(Rows {
        commands: q("commands")?,
        transitions: q("command_transitions")?,
        outbox: q("outbox")?,
        rejections: q("rejections")?,
    })
}

/// Bytes of pages (and of payload in them) held by these B-trees (SQLite's `dbstat`).
pub(super) fn tree_bytes(path: &Path, trees: &[&str]) -> anyhow::Result<(u64, u64)> {
    let c = reader(path)?;
    let mut pages = 0u64;
    let mut payload = 0u64;
    let mut st = c.prepare(
        "SELECT COALESCE(SUM(pgsize), 0), COALESCE(SUM(payload), 0) FROM dbstat WHERE name = ?1",
    )?;
    for t in trees {
        let (p, l): (i64, i64) = st.query_row([t], |r| Ok((r.get(0)?, r.get(1)?)))?;
        pages += u64::try_from(p).unwrap_or(0);
        payload += u64::try_from(l).unwrap_or(0);
    }
    Ok((pages, payload))
}

pub(super) fn checkpoint(path: &Path) -> anyhow::Result<()> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

pub(super) fn count(path: &Path, sql: &str) -> anyhow::Result<i64> {
    Ok(reader(path)?.query_row(sql, [], |r| r.get(0))?)
}
