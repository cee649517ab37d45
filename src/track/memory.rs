//! What recent lines said about each thread. The tracer prints one event as
//! several lines (DEV, PID/TGID, COMM), so a later line completes an earlier
//! one. Direct-mapped and fixed-size: bounded memory, no allocation per line,
//! and a collision only forgets the older thread.

use super::Comm;
use std::time::Instant;

const SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub struct Recent {
    pub tid: u32,
    /// 0 when no line has said yet.
    pub tgid: u32,
    pub name: Option<Comm>,
    /// When /proc was last asked about this thread.
    pub proc_checked: Option<Instant>,
}

#[derive(Debug)]
pub struct Memory {
    slots: Box<[Recent]>,
}

impl Default for Memory {
    fn default() -> Self {
        Memory { slots: vec![Recent::default(); SLOTS].into_boxed_slice() }
    }
}

impl Memory {
    /// The entry for `tid`, emptied first if it held another thread.
    pub fn entry(&mut self, tid: u32) -> &mut Recent {
        let slot = &mut self.slots[tid as usize % SLOTS];
        if slot.tid != tid {
            *slot = Recent { tid, ..Recent::default() };
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets_on_collision() {
        let mut m = Memory::default();
        m.entry(7).tgid = 5;
        assert_eq!(m.entry(7).tgid, 5);
        m.entry(7 + SLOTS as u32).tgid = 9;
        assert_eq!(m.entry(7).tgid, 0, "older thread forgotten");
    }
}
