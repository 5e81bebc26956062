//! What an agent sends again: every turn of a conversation resends its history (`messages[0..n]`,
//! the `tools` and `system` blocks) byte for byte, and only the end is new. Masking a resent
//! element again would give the same result, so the result is remembered and used again.
//!
//! An element's result depends on its bytes, the masking policy, and the values its scope had
//! masked before (the [`Known`](super::vault::Known) set, which finds a value again out of its
//! context). An entry is therefore used only for the same bytes (compared whole), at the same
//! place in the body (its findings name that path), in the same scope, under the same compiled
//! policy, and with the same known set: when a later turn masks a new value, the next request
//! masks its whole history again, so an earlier message that held that value bare is masked
//! this time too.
//!
//! An entry keeps all the element's masking did: its edits, its findings (so approvals and
//! records see them on every turn), the attachments it noted, and the placeholders it asked
//! the vault for, which are asked for again so that they stay restorable for as long as the
//! conversation goes on. Entries live in memory only, next to the vault, within a byte budget,
//! and one not used for the vault's time to live is not used again.

use super::engine::Edit;
use super::{Attachment, Finding};
use quick_cache::sync::Cache;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Elements smaller than this are masked again. An agent's tool calls and short results are
/// larger (`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01…` is half of it),
/// and masking one again costs several times a lookup; a `{"role":"user","content":"ok"}` is
/// not worth an entry.
pub const MIN_ELEMENT: usize = 128;
/// Bytes of an element's start that choose its slot; the whole element is compared after. No
/// more than the smallest element remembered: a slot chosen by bytes past an element's end
/// would depend on what follows it, which on the next turn (a new message after the last one)
/// differs.
const SLOT_PREFIX: usize = MIN_ELEMENT;
/// Different elements that share a slot (the same start, the same place) kept at once.
const PER_SLOT: usize = 4;
/// What an entry costs beyond its bytes (bookkeeping), for the budget.
const ENTRY_OVERHEAD: usize = 256;

/// A placeholder an element's masking asked the vault for.
#[derive(Clone)]
pub struct Call {
    /// Whether the value is also to be found out of context ([`super::vault::Vault::placeholder_known`]).
    pub known: bool,
    pub kind: Arc<str>,
    pub category: Arc<str>,
    pub value: super::vault::Secret,
    pub restore: bool,
}

/// One element's masking, for use again.
pub struct Entry {
    scope: Arc<str>,
    policy: u64,
    known: u64,
    /// `messages[3]`: where it sat.
    place: Box<str>,
    /// The element's bytes.
    raw: Box<str>,
    /// Relative to the element's start.
    pub edits: Vec<Edit>,
    pub findings: Vec<Finding>,
    pub attachments: Vec<Attachment>,
    pub calls: Vec<Call>,
    /// The conversation's first message, if this element held it (offset, text).
    pub first_message: Option<(usize, String)>,
    /// When it was made or last used: milliseconds since its [`Recall`] was.
    used: AtomicU64,
    /// What it counts for in the budget.
    weight: u64,
}

impl Entry {
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    fn weigh(&self) -> usize {
        self.raw.len()
            + self.place.len()
            + self.edits.iter().map(|e| e.text.len() + 32).sum::<usize>()
            + self
                .findings
                .iter()
                .map(|f| f.path.len() + 64)
                .sum::<usize>()
            + self
                .calls
                .iter()
                .map(|c| c.value.expose().len() + 48)
                .sum::<usize>()
            + self.first_message.as_ref().map_or(0, |(_, m)| m.len())
            + ENTRY_OVERHEAD
    }
}

/// What an entry is looked up by and must match.
pub struct Place<'a> {
    pub scope: &'a str,
    pub policy: u64,
    pub known: u64,
    /// `messages[3]`.
    pub place: &'a str,
}

/// Which slots had an entry lately, so that a lookup for a slot never filled (most small
/// elements: an agent's short messages and tool calls) costs a few loads rather than a cache
/// lookup. One bit per slot hash, in two generations: a slot is marked in the current one when
/// an entry is made or used; after [`Filled::MARKS`] marks the older generation is cleared and
/// becomes the current one. A slot left unused for that long reads as empty, and its element is
/// masked again (and remembered again), which is what a miss does anyway: the filter can cost a
/// recall, never change a result.
struct Filled {
    generations: [Box<[AtomicU64]>; 2],
    current: AtomicUsize,
    marks: AtomicUsize,
}

impl Filled {
    /// Bits per generation (128 KiB), and marks per generation: few enough that unfilled slots
    /// rarely share a bit with a filled one.
    const BITS: usize = 1 << 20;
    const MARKS: usize = 1 << 16;

    fn new() -> Self {
        let generation = || (0..Self::BITS / 64).map(|_| AtomicU64::new(0)).collect();
        Self {
            generations: [generation(), generation()],
            current: AtomicUsize::new(0),
            marks: AtomicUsize::new(0),
        }
    }

    fn bit(slot: u64) -> (usize, u64) {
        let bit = (slot >> 32) as usize % Self::BITS;
        (bit / 64, 1 << (bit % 64))
    }

    fn contains(&self, slot: u64) -> bool {
        let (word, mask) = Self::bit(slot);
        self.generations
            .iter()
            .any(|g| g[word].load(Ordering::Relaxed) & mask != 0)
    }

    fn mark(&self, slot: u64) {
        let (word, mask) = Self::bit(slot);
        let current = self.current.load(Ordering::Relaxed);
        if self.generations[current][word].fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            return;
        }
        if self.marks.fetch_add(1, Ordering::Relaxed) + 1 == Self::MARKS {
            let older = 1 - current;
            for word in self.generations[older].iter() {
                word.store(0, Ordering::Relaxed);
            }
            self.current.store(older, Ordering::Relaxed);
            self.marks.store(0, Ordering::Relaxed);
        }
    }
}

/// A slot's budget: what its entries count for together.
#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<u64, Arc<[Arc<Entry>]>> for Weigh {
    fn weight(&self, _: &u64, entries: &Arc<[Arc<Entry>]>) -> u64 {
        entries.iter().map(|e| e.weight).sum()
    }
}

/// Bytes of budget per slot the cache is sized for: most remembered elements are tool results
/// and file contents of a few KiB.
const TYPICAL_SLOT: u64 = 4 << 10;
/// The cache's shards, each with its share of the budget (and an element larger than a share
/// is not remembered). A fixed few: by default quick_cache takes four per core, which on a
/// large machine would leave each too small for a long file in a tool result.
const SHARDS: usize = 4;

/// The remembered elements of every scope.
pub struct Recall {
    slots: Cache<u64, Arc<[Arc<Entry>]>, Weigh, foldhash::fast::RandomState>,
    filled: Filled,
    /// What [`Entry::used`] counts from, and how long an entry lasts unused.
    epoch: Instant,
    ttl_ms: u64,
    /// When slots whose entries are all past their time were last let go, and how often.
    swept: AtomicU64,
    sweep_every_ms: u64,
    hasher: foldhash::fast::RandomState,
    /// Bytes of elements found known, and not walked again.
    recalled: AtomicU64,
}

impl Recall {
    pub fn new(ttl: Duration, budget_bytes: u64) -> Self {
        let slots = usize::try_from(budget_bytes / TYPICAL_SLOT).unwrap_or(usize::MAX);
        Self {
            slots: Cache::with_options(
                quick_cache::OptionsBuilder::new()
                    .shards(SHARDS)
                    .estimated_items_capacity(slots.clamp(16, 1 << 20))
                    .weight_capacity(budget_bytes)
                    .build()
                    .expect("both capacities are set"),
                Weigh,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
            filled: Filled::new(),
            epoch: Instant::now(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            swept: AtomicU64::new(0),
            sweep_every_ms: u64::try_from((ttl / 4).as_millis())
                .unwrap_or(u64::MAX)
                .clamp(10, 60_000),
            hasher: foldhash::fast::RandomState::default(),
            recalled: AtomicU64::new(0),
        }
    }

    /// Bytes of elements found known so far, and so not masked again.
    pub fn recalled_bytes(&self) -> u64 {
        self.recalled.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn fresh(&self, entry: &Entry, now: u64) -> bool {
        now.saturating_sub(entry.used.load(Ordering::Relaxed)) <= self.ttl_ms
    }

    fn slot(&self, at: &Place<'_>, element: &str) -> u64 {
        let mut end = element.len().min(SLOT_PREFIX);
        while !element.is_char_boundary(end) {
            end -= 1;
        }
        self.hasher
            .hash_one((at.scope, at.policy, at.place, &element[..end]))
    }

    /// The entry for the element `rest` starts with, if one was made at the same place under
    /// the same policy and known set.
    pub fn find(&self, at: &Place<'_>, rest: &str) -> Option<Arc<Entry>> {
        if rest.len() < MIN_ELEMENT {
            return None;
        }
        let slot = self.slot(at, rest);
        if !self.filled.contains(slot) {
            return None;
        }
        let entries = self.slots.get(&slot)?;
        let now = self.now_ms();
        let entry = entries.iter().find(|e| {
            e.policy == at.policy
                && e.known == at.known
                && *e.scope == *at.scope
                && *e.place == *at.place
                && self.fresh(e, now)
                && rest.as_bytes().starts_with(e.raw.as_bytes())
        })?;
        entry.used.store(now, Ordering::Relaxed);
        self.recalled
            .fetch_add(entry.raw.len() as u64, Ordering::Relaxed);
        self.filled.mark(slot);
        Some(entry.clone())
    }

    /// Remembers the masking of `element` at `at`.
    #[allow(clippy::too_many_arguments)]
    pub fn remember(
        &self,
        at: &Place<'_>,
        element: &str,
        edits: Vec<Edit>,
        findings: Vec<Finding>,
        attachments: Vec<Attachment>,
        calls: Vec<Call>,
        first_message: Option<(usize, String)>,
    ) {
        if element.len() < MIN_ELEMENT {
            return;
        }
        let now = self.now_ms();
        let mut entry = Entry {
            scope: at.scope.into(),
            policy: at.policy,
            known: at.known,
            place: at.place.into(),
            raw: element.into(),
            edits,
            findings,
            attachments,
            calls,
            first_message,
            used: AtomicU64::new(now),
            weight: 0,
        };
        entry.weight = entry.weigh() as u64;
        let entry = Arc::new(entry);
        let slot = self.slot(at, element);
        // The newest first; the same bytes under an older known set give way, and so do those
        // past their time.
        let mut entries = vec![entry.clone()];
        if self.filled.contains(slot)
            && let Some(old) = self.slots.get(&slot)
        {
            entries.extend(
                old.iter()
                    .filter(|e| {
                        (e.raw != entry.raw || e.place != entry.place) && self.fresh(e, now)
                    })
                    .take(PER_SLOT - 1)
                    .cloned(),
            );
        }
        self.slots.insert(slot, entries.into());
        self.filled.mark(slot);
        self.sweep(now);
    }

    /// Lets go of the slots whose every entry is past its time (their bytes hold what was
    /// masked), at most once per [`Recall::sweep_every_ms`].
    fn sweep(&self, now: u64) {
        let last = self.swept.load(Ordering::Relaxed);
        if now < last.saturating_add(self.sweep_every_ms)
            || self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.slots
            .retain(|_, entries| entries.iter().any(|e| self.fresh(e, now)));
    }
}

#[cfg(test)]
mod filled_tests {
    use super::Filled;

    fn slot(i: usize) -> u64 {
        // Slots as the hasher spreads them: the filter reads the high half.
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn a_slot_reads_filled_from_its_mark_until_two_generations_pass_it_by() {
        let filled = Filled::new();
        let (a, b) = (slot(0), slot(1));
        // Other slots, none sharing a bit with these two.
        let mut others = (2..)
            .map(slot)
            .filter(|&s| Filled::bit(s) != Filled::bit(a) && Filled::bit(s) != Filled::bit(b));
        assert!(!filled.contains(a));
        filled.mark(a);
        filled.mark(b);
        assert!(filled.contains(a) && filled.contains(b));
        // Marks others until the generation turns.
        let mut turn = || {
            let current = filled.current.load(std::sync::atomic::Ordering::Relaxed);
            while filled.current.load(std::sync::atomic::Ordering::Relaxed) == current {
                filled.mark(others.next().unwrap());
            }
        };
        // One generation later both are still there; `b` is used again in it.
        turn();
        assert!(filled.contains(a) && filled.contains(b));
        filled.mark(b);
        // After another, what was not used since is gone; what was is not.
        turn();
        assert!(!filled.contains(a));
        assert!(filled.contains(b));
    }

    #[test]
    fn few_unfilled_slots_read_filled() {
        let filled = Filled::new();
        (0..Filled::MARKS / 2).for_each(|i| filled.mark(slot(i)));
        let false_hits = (1 << 20..(1 << 20) + 10_000)
            .filter(|&i| filled.contains(slot(i)))
            .count();
        assert!(false_hits < 500, "{false_hits} of 10000");
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn at(place: &str) -> Place<'_> {
        Place {
            scope: "alice",
            policy: 1,
            known: 0,
            place,
        }
    }

    fn element(i: usize) -> String {
        format!("{{\"n\":{i},\"text\":\"{}\"}}", "x".repeat(MIN_ELEMENT))
    }

    fn remember(recall: &Recall, place: &str, element: &str) {
        recall.remember(
            &at(place),
            element,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            None,
        );
    }

    #[test]
    fn an_entry_unused_for_its_time_to_live_is_not_used_again_and_use_keeps_it() {
        let recall = Recall::new(Duration::from_millis(300), 1 << 20);
        let (kept, left) = (element(1), element(2));
        remember(&recall, "messages[0]", &kept);
        remember(&recall, "messages[1]", &left);
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(100));
            assert!(recall.find(&at("messages[0]"), &kept).is_some());
        }
        assert!(recall.find(&at("messages[1]"), &left).is_none());
        // Remembered again, it is used again.
        remember(&recall, "messages[1]", &left);
        assert!(recall.find(&at("messages[1]"), &left).is_some());
        // What is past its time is let go of, not only passed over.
        let one = recall.slots.weight();
        std::thread::sleep(Duration::from_millis(400));
        remember(&recall, "messages[2]", &element(3));
        assert_eq!(recall.slots.len(), 1);
        assert!(recall.slots.weight() < one);
    }

    #[test]
    fn entries_stay_within_the_budget() {
        let budget = 64 << 10;
        let recall = Recall::new(Duration::from_secs(600), budget);
        let elements: Vec<String> = (0..200).map(element).collect();
        for (i, e) in elements.iter().enumerate() {
            remember(&recall, &format!("messages[{i}]"), e);
        }
        assert!(recall.slots.weight() <= budget, "{}", recall.slots.weight());
        let kept = (0..200)
            .filter(|&i| {
                recall
                    .find(&at(&format!("messages[{i}]")), &elements[i])
                    .is_some()
            })
            .count();
        assert!(kept > 0 && kept < 200, "{kept} of 200 kept");
    }

    /// A long file in a tool result is remembered within the default 8 MiB, on a machine of any
    /// size: up to a quarter of the budget.
    #[test]
    fn an_element_of_a_fifth_of_the_budget_is_remembered() {
        let budget = 8 << 20;
        let recall = Recall::new(Duration::from_secs(600), budget);
        let long = format!("{{\"text\":\"{}\"}}", "x".repeat(budget as usize / 5));
        remember(&recall, "messages[0]", &long);
        assert!(recall.find(&at("messages[0]"), &long).is_some());
    }
}
