//! Interned response texts: the last temporary response of each deferred message,
//! shared by every message that got the same one.
//!
//! A million messages deferred by one dead next hop all keep "451 4.4.1 connection to …
//! refused" as their last response (for `impulsectl message` and the domain's last
//! error). Kept in each packed envelope that is ~80 bytes a message; here it is one
//! string and a reference count, and the envelope holds its slot number. Slots are
//! reference-counted ([`intern`] and [`retain`] add one, [`release`] takes one away) and
//! reused once free, so the table holds only texts some queued message still refers to.
//! One mutex: it is taken once per deferral and per drop of a deferred record, never
//! per delivered message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use impulse_runtime::alloc;
use impulse_runtime::ActorClass;

#[derive(Default)]
struct Table {
    ids: HashMap<Arc<str>, u32>,
    /// Text and reference count per slot; `None`: free.
    slots: Vec<Option<(Arc<str>, u32)>>,
    free: Vec<u32>,
}

fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The slot of `text`, with one more reference (created if new).
pub fn intern(text: &str) -> u32 {
    let _g = alloc::enter(ActorClass::Message);
    let mut t = table();
    if let Some(&id) = t.ids.get(text) {
        if let Some((_, n)) = t.slots[id as usize].as_mut() {
            *n += 1;
        }
        return id;
    }
    let text: Arc<str> = Arc::from(text);
    let id = match t.free.pop() {
        Some(id) => id,
        None => {
            t.slots.push(None);
            (t.slots.len() - 1) as u32
        }
    };
    t.slots[id as usize] = Some((text.clone(), 1));
    t.ids.insert(text, id);
    id
}

/// One more reference to slot `id` (a copy of an envelope that refers to it).
pub fn retain(id: u32) {
    if let Some(Some((_, n))) = table().slots.get_mut(id as usize) {
        *n += 1;
    }
}

/// One reference to slot `id` fewer; the text goes when none is left.
pub fn release(id: u32) {
    let mut t = table();
    let gone = match t.slots.get_mut(id as usize) {
        Some(Some((text, n))) => {
            *n = n.saturating_sub(1);
            (*n == 0).then(|| text.clone())
        }
        _ => None,
    };
    if let Some(text) = gone {
        t.ids.remove(&text);
        t.slots[id as usize] = None;
        t.free.push(id);
    }
}

/// The text of slot `id`.
pub fn get(id: u32) -> Option<Arc<str>> {
    table()
        .slots
        .get(id as usize)
        .and_then(|s| s.as_ref().map(|(text, _)| text.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_shared_counted_and_freed() {
        // Texts of their own: other tests may intern at the same time.
        let a = intern("451 4.4.1 responses test a");
        let a2 = intern("451 4.4.1 responses test a");
        let b = intern("451 4.4.1 responses test b");
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(get(a).as_deref(), Some("451 4.4.1 responses test a"));
        retain(a);
        release(a);
        release(a);
        assert_eq!(
            get(a).as_deref(),
            Some("451 4.4.1 responses test a"),
            "one left"
        );
        release(a);
        // Freed (the slot may already serve another test's text).
        assert_ne!(get(a).as_deref(), Some("451 4.4.1 responses test a"));
        let c = intern("451 4.4.1 responses test c");
        assert_eq!(get(c).as_deref(), Some("451 4.4.1 responses test c"));
        assert_eq!(get(b).as_deref(), Some("451 4.4.1 responses test b"));
        release(b);
        release(c);
        assert_ne!(get(b).as_deref(), Some("451 4.4.1 responses test b"));
        assert_ne!(get(c).as_deref(), Some("451 4.4.1 responses test c"));
    }
}
