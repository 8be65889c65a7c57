//! Maps that can undo every change made since the last commit point.
//!
//! A shard applies a batch's events to its in-memory state as it decides them, so
//! that later commands in the same batch see earlier ones. If the batch's journal
//! write then fails, the state must go back to exactly what was durable: the shard
//! rolls back with these undo logs instead of rebuilding from storage, which may be
//! the very thing that is unreachable. Recording is off during replay and in the
//! simulator's recovery, where there is nothing to undo.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Hasher of every map in the shard state: seeded, so that client-chosen ids
/// cannot be crafted to collide without knowing `engine.hash_seed`, and fixed (no
/// per-process randomness), so that iteration order and therefore replay and
/// simulation are reproducible from a seed. foldhash rather than xxh3's streaming
/// hasher: for short ids the latter's state setup cost a fifth of a payment's CPU.
pub type StateHasher = foldhash::fast::FixedState;

/// A table's undo log: what a shard needs to take batches back or declare them
/// durable, the same for every table (see `State`, which fans each call out to all
/// of its tables).
pub trait UndoLog {
    /// Turns recording on or off; switching forgets the undo log (turning it on
    /// again while it is on keeps what it holds: batches may still be in flight).
    fn set_recording(&mut self, recording: bool);
    /// Forgets the undo log: everything so far is durable.
    fn commit(&mut self);
    /// Entries in the undo log (where a batch ends).
    fn undo_len(&self) -> usize;
    /// Forgets the first `entries` of the undo log: the changes of batches now
    /// durable. Later entries stay, for batches still in flight.
    fn commit_first(&mut self, entries: usize);
    /// Restores the state of the last commit point.
    fn rollback(&mut self);
}

/// The bookkeeping every table's undo log shares: the entries recorded while
/// recording is on, in order, each of which takes back one change.
#[derive(Debug, Clone)]
pub struct Undo<E> {
    entries: Vec<E>,
    recording: bool,
}

impl<E> Default for Undo<E> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            recording: false,
        }
    }
}

impl<E> Undo<E> {
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Keeps `entry` when recording (and drops it otherwise).
    #[inline]
    pub fn record(&mut self, entry: E) {
        if self.recording {
            self.entries.push(entry);
        }
    }
}

/// A table that records how to take back its changes in an [`Undo`]; the
/// [`UndoLog`] every such table has is built on it.
pub trait UndoEntries {
    type Entry;
    fn undo(&self) -> &Undo<Self::Entry>;
    fn undo_mut(&mut self) -> &mut Undo<Self::Entry>;
    /// Takes back the change `entry` records (the newest not yet taken back).
    fn revert(&mut self, entry: Self::Entry);
}

impl<T: UndoEntries> UndoLog for T {
    fn set_recording(&mut self, recording: bool) {
        let undo = self.undo_mut();
        if undo.recording != recording {
            undo.recording = recording;
            undo.entries.clear();
        }
    }

    fn commit(&mut self) {
        self.undo_mut().entries.clear();
    }

    fn undo_len(&self) -> usize {
        self.undo().entries.len()
    }

    fn commit_first(&mut self, entries: usize) {
        let undo = &mut self.undo_mut().entries;
        undo.drain(..entries.min(undo.len()));
    }

    fn rollback(&mut self) {
        while let Some(entry) = self.undo_mut().entries.pop() {
            self.revert(entry);
        }
    }
}

/// A hash map whose changes can be undone back to the last [`UndoLog::commit`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, V: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, V: Deserialize<'de>"
))]
pub struct UndoMap<K, V> {
    map: HashMap<K, V, StateHasher>,
    #[serde(skip)]
    undo: Undo<(K, Option<V>)>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for UndoMap<K, V> {
    fn default() -> Self {
        Self::with_hasher(StateHasher::default())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> UndoMap<K, V> {
    pub fn with_hasher(hasher: StateHasher) -> Self {
        Self {
            map: HashMap::with_hasher(hasher),
            undo: Undo::default(),
        }
    }

    /// The map's hasher (its seed decides where keys land).
    pub fn hasher(&self) -> &StateHasher {
        self.map.hasher()
    }

    /// Moves every entry into a map hashed by `hasher`. Deserialized maps get a
    /// default hasher; recovery re-seeds them with the configured one.
    pub fn rehash(&mut self, hasher: StateHasher) {
        let mut map = HashMap::with_capacity_and_hasher(self.map.len(), hasher);
        map.extend(self.map.drain());
        self.map = map;
    }

    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    #[inline]
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    /// Mutable access; the previous value is saved first when recording.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.undo.is_recording() {
            let previous = self.map.get(key)?.clone();
            self.undo.record((key.clone(), Some(previous)));
        }
        self.map.get_mut(key)
    }

    #[inline]
    pub fn insert(&mut self, key: K, value: V) {
        let previous = self.map.insert(key.clone(), value);
        self.undo.record((key, previous));
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let previous = self.map.remove(key);
        if let (true, Some(previous)) = (self.undo.is_recording(), &previous) {
            self.undo.record((key.clone(), Some(previous.clone())));
        }
        previous
    }
}

impl<K: Eq + Hash + Clone, V: Clone> UndoEntries for UndoMap<K, V> {
    type Entry = (K, Option<V>);

    fn undo(&self) -> &Undo<Self::Entry> {
        &self.undo
    }

    fn undo_mut(&mut self) -> &mut Undo<Self::Entry> {
        &mut self.undo
    }

    fn revert(&mut self, (key, previous): Self::Entry) {
        match previous {
            Some(value) => {
                self.map.insert(key, value);
            }
            None => {
                self.map.remove(&key);
            }
        }
    }
}

impl<K: Eq + Hash, V: PartialEq> PartialEq for UndoMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Ord",
    deserialize = "K: Deserialize<'de> + Ord"
))]
pub struct UndoSet<K: Ord> {
    set: BTreeSet<K>,
    #[serde(skip)]
    undo: Undo<(K, bool)>,
}

impl<K: Ord> PartialEq for UndoSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl<K: Ord> Default for UndoSet<K> {
    fn default() -> Self {
        Self {
            set: BTreeSet::new(),
            undo: Undo::default(),
        }
    }
}

impl<K: Ord + Clone> UndoSet<K> {
    pub fn insert(&mut self, key: K) {
        if self.undo.is_recording() {
            if self.set.insert(key.clone()) {
                self.undo.record((key, false));
            }
        } else {
            self.set.insert(key);
        }
    }

    pub fn remove(&mut self, key: &K) {
        if self.set.remove(key) {
            self.undo.record((key.clone(), true));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.set.iter()
    }

    /// The keys in `range`, in order.
    pub fn range<R: std::ops::RangeBounds<K>>(&self, range: R) -> impl Iterator<Item = &K> {
        self.set.range(range)
    }

    pub fn contains(&self, key: &K) -> bool {
        self.set.contains(key)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl<K: Ord + Clone> UndoEntries for UndoSet<K> {
    type Entry = (K, bool);

    fn undo(&self) -> &Undo<Self::Entry> {
        &self.undo
    }

    fn undo_mut(&mut self) -> &mut Undo<Self::Entry> {
        &mut self.undo
    }

    fn revert(&mut self, (key, was_present): Self::Entry) {
        if was_present {
            self.set.insert(key);
        } else {
            self.set.remove(&key);
        }
    }
}

/// A first-in-first-out queue whose pushes and pops can be undone back to the
/// last commit point: entries go in at the back and leave at the front, in
/// order, each in O(1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct UndoQueue<T> {
    queue: std::collections::VecDeque<T>,
    #[serde(skip)]
    undo: Undo<QueueUndo<T>>,
}

/// One change to a queue, as its undo log takes it back.
#[derive(Debug, Clone)]
pub enum QueueUndo<T> {
    PushedBack,
    PoppedFront(T),
}

impl<T> Default for UndoQueue<T> {
    fn default() -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            undo: Undo::default(),
        }
    }
}

/// Two queues are equal when they hold the same entries, whatever their undo logs.
impl<T: PartialEq> PartialEq for UndoQueue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.queue == other.queue
    }
}

impl<T: Clone> UndoQueue<T> {
    pub fn push_back(&mut self, entry: T) {
        self.queue.push_back(entry);
        self.undo.record(QueueUndo::PushedBack);
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let entry = self.queue.pop_front()?;
        if self.undo.is_recording() {
            self.undo.record(QueueUndo::PoppedFront(entry.clone()));
        }
        Some(entry)
    }

    pub fn front(&self) -> Option<&T> {
        self.queue.front()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queue.iter()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

impl<T: Clone> UndoEntries for UndoQueue<T> {
    type Entry = QueueUndo<T>;

    fn undo(&self) -> &Undo<Self::Entry> {
        &self.undo
    }

    fn undo_mut(&mut self) -> &mut Undo<Self::Entry> {
        &mut self.undo
    }

    fn revert(&mut self, entry: Self::Entry) {
        match entry {
            QueueUndo::PushedBack => {
                self.queue.pop_back();
            }
            QueueUndo::PoppedFront(entry) => self.queue.push_front(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_inserts_updates_and_removals() {
        let mut map: UndoMap<u32, &str> = UndoMap::default();
        map.insert(1, "one");
        map.insert(2, "two");
        map.set_recording(true);
        map.insert(3, "three");
        *map.get_mut(&1).unwrap() = "uno";
        map.remove(&2);
        map.insert(1, "eins");
        map.rollback();
        assert_eq!(map.get(&1), Some(&"one"));
        assert_eq!(map.get(&2), Some(&"two"));
        assert_eq!(map.get(&3), None);

        let mut set: UndoSet<u32> = UndoSet::default();
        set.insert(1);
        set.set_recording(true);
        set.insert(2);
        set.remove(&1);
        set.rollback();
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_queue_rolls_back_its_pushes_and_pops() {
        let mut queue = UndoQueue::default();
        queue.push_back(1);
        queue.push_back(2);
        let committed = queue.clone();
        queue.set_recording(true);
        queue.push_back(3);
        assert_eq!(queue.pop_front(), Some(1));
        assert_eq!(queue.pop_front(), Some(2));
        queue.push_back(4);
        queue.rollback();
        assert_eq!(queue, committed);
        assert_eq!(queue.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    }
}
