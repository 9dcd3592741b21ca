//! Inventory: each slot's stock and service state.

use rusqlite::{OptionalExtension, params};

use crate::config::SlotConfig;
use crate::reason::Reason;

use super::Journal;
use super::JournalError;
use super::row::{now_ms, to_u16, to_u32};

/// One slot's stock and service state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotInventory {
    /// Slot number.
    pub slot: u16,
    /// Product name.
    pub product: String,
    /// Items when full.
    pub capacity: u32,
    /// Items left.
    pub count: u32,
    /// Not disabled by a technician.
    pub enabled: bool,
    /// Jammed until cleared by a technician.
    pub jammed: bool,
}

impl SlotInventory {
    /// Why this slot cannot serve a dispense right now, if it cannot.
    pub fn unavailable_reason(&self) -> Option<Reason> {
        if !self.enabled {
            Some(Reason::SlotDisabled)
        } else if self.jammed {
            Some(Reason::SlotJammed)
        } else if self.count == 0 {
            Some(Reason::SlotEmpty)
        } else {
            None
        }
    }
}

impl Journal {
    /// Inserts the configured slots that are not in the journal yet, with their
    /// `initial_count`. Existing slots keep their live count. Returns how many were new.
    /// The tests' shortcut: the kiosk makes the inventory follow its slot map
    /// ([`Journal::apply_slot_map`]).
    #[cfg(test)]
    pub(crate) fn seed_inventory(&mut self, slots: &[SlotConfig]) -> Result<usize, JournalError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO inventory (slot, product, capacity, count, enabled, jammed, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 1, 0, ?5) ON CONFLICT(slot) DO NOTHING",
            )?;
            for s in slots {
                added +=
                    stmt.execute(params![s.slot, s.product, s.capacity, s.initial_count, now])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Makes the inventory follow `slots`, the slot map in force: slots new to it are
    /// added with their `initial_count`; a slot already there takes the map's product
    /// and capacity and keeps its live count (at most the capacity), its enabled and its
    /// jammed state; a slot the map no longer has is removed (commands for it are then
    /// refused `slot_unknown`).
    pub fn apply_slot_map(&mut self, slots: &[SlotConfig]) -> Result<SlotMapChange, JournalError> {
        let tx = self.conn.transaction()?;
        let change = apply_slot_map_in(&tx, slots)?;
        tx.commit()?;
        Ok(change)
    }

    /// Makes each of `doors` a door that holds one item: capacity 1, and a count above
    /// one read as "loaded". A slot seeded from a config that gave a door a spiral's
    /// capacity, or a journal from before the slot was a door, is corrected here. Returns
    /// the slots that changed.
    /// The kiosk reads doors at capacity 1 before the slot map is applied
    /// ([`crate::config::Config::inventory_slot_map`]); this is the tests' check of the rule.
    #[cfg(test)]
    pub(crate) fn doors_hold_one(&mut self, doors: &[u16]) -> Result<Vec<u16>, JournalError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let mut changed = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE inventory SET capacity = 1, count = MIN(count, 1), updated_at = ?2 \
                 WHERE slot = ?1 AND (capacity != 1 OR count > 1)",
            )?;
            for &slot in doors {
                if stmt.execute(params![slot, now])? > 0 {
                    changed.push(slot);
                }
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// All slots, by slot number.
    pub fn inventory(&self) -> Result<Vec<SlotInventory>, JournalError> {
        self.query_slots("ORDER BY slot", [])
    }

    /// One slot.
    pub fn slot(&self, slot: u16) -> Result<Option<SlotInventory>, JournalError> {
        Ok(self.query_slots("WHERE slot = ?1", [slot])?.pop())
    }

    fn query_slots(
        &self,
        where_order: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<SlotInventory>, JournalError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT slot, product, capacity, count, enabled, jammed FROM inventory {where_order}"
        ))?;
        let rows = stmt
            .query_map(p, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(slot, product, capacity, count, enabled, jammed)| {
                Ok(SlotInventory {
                    slot: to_u16(Some(slot), "slot")?.unwrap_or_default(),
                    product,
                    capacity: to_u32(capacity, "capacity")?,
                    count: to_u32(count, "count")?,
                    enabled,
                    jammed,
                })
            })
            .collect()
    }

    /// Takes one item off a slot after the board confirmed a drop (stock goes down only
    /// on a confirmed drop). Never goes below zero. Returns the new count.
    pub fn decrement_on_drop(&mut self, slot: u16) -> Result<u32, JournalError> {
        let count: Option<i64> = self
            .conn
            .prepare_cached(
                "UPDATE inventory SET count = MAX(count - 1, 0), updated_at = ?2 \
                 WHERE slot = ?1 RETURNING count",
            )?
            .query_row(params![slot, now_ms()], |r| r.get(0))
            .optional()?;
        to_u32(count.ok_or(JournalError::UnknownSlot(slot))?, "count")
    }

    /// Sets a slot's count (restock, correction). Refuses counts above capacity.
    pub fn set_count(&mut self, slot: u16, count: u32) -> Result<(), JournalError> {
        let s = self.slot(slot)?.ok_or(JournalError::UnknownSlot(slot))?;
        if count > s.capacity {
            return Err(JournalError::OverCapacity {
                slot,
                count,
                capacity: s.capacity,
            });
        }
        self.update_slot("count", slot, i64::from(count))
    }

    /// Marks a slot jammed (out of service) or clears the jam.
    pub fn set_jammed(&mut self, slot: u16, jammed: bool) -> Result<(), JournalError> {
        self.update_slot("jammed", slot, i64::from(jammed))
    }

    /// Enables or disables a slot.
    pub fn set_enabled(&mut self, slot: u16, enabled: bool) -> Result<(), JournalError> {
        self.update_slot("enabled", slot, i64::from(enabled))
    }

    /// `column` is one of our own constants, never input.
    fn update_slot(
        &mut self,
        column: &'static str,
        slot: u16,
        value: i64,
    ) -> Result<(), JournalError> {
        let n = self
            .conn
            .prepare_cached(&format!(
                "UPDATE inventory SET {column} = ?2, updated_at = ?3 WHERE slot = ?1"
            ))?
            .execute(params![slot, value, now_ms()])?;
        if n == 0 {
            return Err(JournalError::UnknownSlot(slot));
        }
        Ok(())
    }
}

/// What [`Journal::apply_slot_map`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMapChange {
    /// Slots added.
    pub added: Vec<u16>,
    /// Slots whose product or capacity changed (a count above the new capacity is cut).
    pub changed: Vec<u16>,
    /// Slots removed.
    pub removed: Vec<u16>,
}

impl SlotMapChange {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

pub(super) fn apply_slot_map_in(
    tx: &rusqlite::Transaction<'_>,
    slots: &[SlotConfig],
) -> Result<SlotMapChange, JournalError> {
    let now = now_ms();
    let mut change = SlotMapChange::default();
    let wanted: std::collections::BTreeSet<u16> = slots.iter().map(|s| s.slot).collect();
    let held: Vec<i64> = tx
        .prepare_cached("SELECT slot FROM inventory ORDER BY slot")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for slot in held {
        let slot = to_u16(Some(slot), "slot")?.unwrap_or_default();
        if !wanted.contains(&slot) {
            tx.prepare_cached("DELETE FROM inventory WHERE slot = ?1")?
                .execute([slot])?;
            change.removed.push(slot);
        }
    }
    for s in slots {
        let added = tx
            .prepare_cached(
                "INSERT INTO inventory (slot, product, capacity, count, enabled, jammed, updated_at) \
                 VALUES (?1, ?2, ?3, MIN(?4, ?3), 1, 0, ?5) ON CONFLICT(slot) DO NOTHING",
            )?
            .execute(params![s.slot, s.product, s.capacity, s.initial_count, now])?;
        if added > 0 {
            change.added.push(s.slot);
            continue;
        }
        let updated = tx
            .prepare_cached(
                "UPDATE inventory SET product = ?2, capacity = ?3, count = MIN(count, ?3), \
                 updated_at = ?4 WHERE slot = ?1 AND (product != ?2 OR capacity != ?3)",
            )?
            .execute(params![s.slot, s.product, s.capacity, now])?;
        if updated > 0 {
            change.changed.push(s.slot);
        }
    }
    Ok(change)
}
