//! `cabinet-lab bench retention`: the journal over a cabinet's life. In one run, side by side:
//!
//! 1. a journal filled with N finished commands (default 1,000,000): received over the
//!    last 60 days, tokens long expired, every reply acknowledged — as the kiosk writes
//!    them (accepted → dispensing → succeeded, each with its reply), filled with
//!    synchronous=NORMAL because it is set-up, then backdated in one statement; its size;
//! 2. the journal work of a dispense on it (insert `accepted` + `dispensing` +
//!    `succeeded`, each with its reply, each a synchronous=FULL commit), before retention;
//! 3. retention ([`Retention::default`](cabinet_core::retention::Retention::default)) run to completion on a second connection: on one
//!    copy alone (throughput), and on an identical copy as the kiosk runs it
//!    ([`Journal::prune`](cabinet_core::journal::Journal::prune) from another thread, giving way to the engine's connection,
//!    a 5 ms pause between batches as `cabinet_core::upkeep` makes) while dispenses are
//!    journaled on the engine's connection (their latency with and without a prune
//!    running);
//! 4. the size after retention: as is, after
//!    [`Journal::release_free_pages`](cabinet_core::journal::Journal::release_free_pages),
//!    after [`Journal::compact`](cabinet_core::journal::Journal::compact); the dispense's journal work on the pruned journal;
//! 5. bytes per command and per refused payload, a journal after 100,000 untrusted
//!    payloads through
//!    [`Journal::record_rejection`](cabinet_core::journal::Journal::record_rejection) with the default ring, and the size
//!    ceiling of the defaults.
//!
//! Everything runs on the same disk as a cabinet's journal would be (a temp dir, not
//! tmpfs): fsyncs are real.
//!
//! The parts: [`run`] (the arguments, the run in that order, its text and JSON),
//! [`dispense`] (a dispense's journal work and its latency), [`fill`] (the journals of a
//! long life: finished commands, untrusted junk), [`prune`] (retention alone and beside
//! dispenses) and [`file`] (what a journal file weighs and holds).

mod dispense;
mod file;
mod fill;
mod prune;
mod run;

pub use run::{RetentionArgs, bench_retention};
