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

/// A hash map whose changes can be undone back to the last [`UndoLog::commit`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Eq + Hash, V: Serialize",
    deserialize = "K: Deserialize<'de> + Eq + Hash, V: Deserialize<'de>"
))]
pub struct UndoMap<K, V> {
    map: HashMap<K, V, StateHasher>,
    #[serde(skip)]
    undo: Vec<(K, Option<V>)>,
    #[serde(skip)]
    recording: bool,
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
            undo: Vec::new(),
            recording: false,
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
        if self.recording {
            let previous = self.map.get(key)?.clone();
            self.undo.push((key.clone(), Some(previous)));
        }
        self.map.get_mut(key)
    }

    #[inline]
    pub fn insert(&mut self, key: K, value: V) {
        let previous = self.map.insert(key.clone(), value);
        if self.recording {
            self.undo.push((key, previous));
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let previous = self.map.remove(key);
        if self.recording {
            if let Some(previous) = &previous {
                self.undo.push((key.clone(), Some(previous.clone())));
            }
        }
        previous
    }
}

impl<K: Eq + Hash + Clone, V: Clone> UndoLog for UndoMap<K, V> {
    fn set_recording(&mut self, recording: bool) {
        if self.recording != recording {
            self.recording = recording;
            self.undo.clear();
        }
    }

    fn commit(&mut self) {
        self.undo.clear();
    }

    fn undo_len(&self) -> usize {
        self.undo.len()
    }

    fn commit_first(&mut self, entries: usize) {
        self.undo.drain(..entries.min(self.undo.len()));
    }

    fn rollback(&mut self) {
        while let Some((key, previous)) = self.undo.pop() {
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
    undo: Vec<(K, bool)>,
    #[serde(skip)]
    recording: bool,
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
            undo: Vec::new(),
            recording: false,
        }
    }
}

impl<K: Ord + Clone> UndoSet<K> {
    pub fn insert(&mut self, key: K) {
        if self.set.insert(key.clone()) && self.recording {
            self.undo.push((key, false));
        }
    }

    pub fn remove(&mut self, key: &K) {
        if self.set.remove(key) && self.recording {
            self.undo.push((key.clone(), true));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.set.iter()
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

impl<K: Ord + Clone> UndoLog for UndoSet<K> {
    fn set_recording(&mut self, recording: bool) {
        if self.recording != recording {
            self.recording = recording;
            self.undo.clear();
        }
    }

    fn commit(&mut self) {
        self.undo.clear();
    }

    fn undo_len(&self) -> usize {
        self.undo.len()
    }

    fn commit_first(&mut self, entries: usize) {
        self.undo.drain(..entries.min(self.undo.len()));
    }

    fn rollback(&mut self) {
        while let Some((key, was_present)) = self.undo.pop() {
            if was_present {
                self.set.insert(key);
            } else {
                self.set.remove(&key);
            }
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
    undo: Vec<QueueUndo<T>>,
    #[serde(skip)]
    recording: bool,
}

#[derive(Debug, Clone)]
enum QueueUndo<T> {
    PushedBack,
    PoppedFront(T),
}

impl<T> Default for UndoQueue<T> {
    fn default() -> Self {
        Self {
            queue: std::collections::VecDeque::new(),
            undo: Vec::new(),
            recording: false,
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
        if self.recording {
            self.undo.push(QueueUndo::PushedBack);
        }
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let entry = self.queue.pop_front()?;
        if self.recording {
            self.undo.push(QueueUndo::PoppedFront(entry.clone()));
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

impl<T: Clone> UndoLog for UndoQueue<T> {
    fn set_recording(&mut self, recording: bool) {
        if self.recording != recording {
            self.recording = recording;
            self.undo.clear();
        }
    }

    fn commit(&mut self) {
        self.undo.clear();
    }

    fn undo_len(&self) -> usize {
        self.undo.len()
    }

    fn commit_first(&mut self, entries: usize) {
        self.undo.drain(..entries.min(self.undo.len()));
    }

    fn rollback(&mut self) {
        while let Some(entry) = self.undo.pop() {
            match entry {
                QueueUndo::PushedBack => {
                    self.queue.pop_back();
                }
                QueueUndo::PoppedFront(entry) => self.queue.push_front(entry),
            }
        }
    }
}

/// Bits per key a filter layer is sized for, and the probes per key: about 0.2%
/// false positives per layer when full.
const FILTER_BITS_PER_KEY: u64 = 14;
const FILTER_PROBES: u32 = 9;

/// Keys the first layer is sized for; each further layer holds twice as many.
const FILTER_FIRST_LAYER_KEYS: u64 = 1 << 14;

/// The most memory a filter's layers take. A filter that would need more stops
/// growing and answers "maybe" for every key from then on: every lookup it
/// would have skipped goes to the archive instead, which is slower but never
/// wrong.
pub const FILTER_BYTES_MAX: u64 = 256 << 20;

/// A set of keys that answers "certainly not in it" or "maybe in it" (a
/// scalable Bloom filter: layers of growing size, the newest one filled until
/// it holds as many keys as it was sized for), whose insertions can be undone
/// back to the last commit point like every other table's changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UndoFilter {
    layers: Vec<FilterLayer>,
    /// The layers reached `FILTER_BYTES_MAX`: every key may be in the set.
    saturated: bool,
    #[serde(skip)]
    undo: Vec<FilterUndo>,
    #[serde(skip)]
    recording: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FilterLayer {
    keys_max: u64,
    keys: u64,
    words: FilterWords,
}

/// A layer's bits, stored as one byte string (little-endian words).
#[derive(Debug, Clone, PartialEq)]
struct FilterWords(Vec<u64>);

#[derive(Debug, Clone, PartialEq)]
enum FilterUndo {
    Word {
        layer: usize,
        index: usize,
        old: u64,
    },
    Keys {
        layer: usize,
        old: u64,
    },
    Layers {
        len: usize,
    },
    Saturated {
        old: bool,
    },
}

/// Two filters are equal when they hold the same bits, whatever their undo logs.
impl PartialEq for UndoFilter {
    fn eq(&self, other: &Self) -> bool {
        self.layers == other.layers && self.saturated == other.saturated
    }
}

impl UndoFilter {
    /// Whether nothing was ever inserted (and the filter is not saturated).
    pub fn is_empty(&self) -> bool {
        !self.saturated && self.layers.is_empty()
    }

    /// Whether `hash` (of a key: `xxh3` of its bytes) may have been inserted.
    pub fn may_contain(&self, hash: u64) -> bool {
        self.saturated || self.layers.iter().any(|layer| layer.contains(hash))
    }

    pub fn insert(&mut self, hash: u64) {
        if self.saturated || self.may_contain(hash) {
            return;
        }
        let full = self
            .layers
            .last()
            .is_none_or(|layer| layer.keys >= layer.keys_max);
        if full && !self.grow() {
            return;
        }
        let index = self.layers.len() - 1;
        let layer = &mut self.layers[index];
        if self.recording {
            self.undo.push(FilterUndo::Keys {
                layer: index,
                old: layer.keys,
            });
        }
        layer.keys += 1;
        for (word, bit) in layer.probes(hash) {
            let old = layer.words.0[word];
            if old & bit == 0 {
                if self.recording {
                    self.undo.push(FilterUndo::Word {
                        layer: index,
                        index: word,
                        old,
                    });
                }
                layer.words.0[word] = old | bit;
            }
        }
    }

    /// Adds a layer twice the size of the last; false when that would pass
    /// `FILTER_BYTES_MAX` (the filter saturates instead).
    fn grow(&mut self) -> bool {
        let keys_max = self
            .layers
            .last()
            .map_or(FILTER_FIRST_LAYER_KEYS, |layer| layer.keys_max * 2);
        let bytes_now: u64 = self.layers.iter().map(FilterLayer::bytes).sum();
        let words = (keys_max * FILTER_BITS_PER_KEY).div_ceil(64);
        if bytes_now + words * 8 > FILTER_BYTES_MAX {
            if self.recording {
                self.undo.push(FilterUndo::Saturated {
                    old: self.saturated,
                });
            }
            self.saturated = true;
            return false;
        }
        if self.recording {
            self.undo.push(FilterUndo::Layers {
                len: self.layers.len(),
            });
        }
        self.layers.push(FilterLayer {
            keys_max,
            keys: 0,
            words: FilterWords(vec![0; words as usize]),
        });
        true
    }

    /// Memory the layers take.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(FilterLayer::bytes).sum()
    }

    /// Answers "maybe" for every key from now on, as a filter past its budget
    /// does (not undoable: for tests that want every lookup to happen).
    pub fn saturate(&mut self) {
        self.saturated = true;
    }
}

impl FilterLayer {
    fn bytes(&self) -> u64 {
        self.words.0.len() as u64 * 8
    }

    /// The (word, bit) of each probe: double hashing over the layer's bits.
    fn probes(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> {
        let bits = self.words.0.len() as u64 * 64;
        let (first, step) = (hash, hash.rotate_left(32) | 1);
        (0..u64::from(FILTER_PROBES)).map(move |probe| {
            let bit = first.wrapping_add(probe.wrapping_mul(step)) % bits;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn contains(&self, hash: u64) -> bool {
        self.probes(hash)
            .all(|(word, bit)| self.words.0[word] & bit != 0)
    }
}

impl UndoLog for UndoFilter {
    fn set_recording(&mut self, recording: bool) {
        if self.recording != recording {
            self.recording = recording;
            self.undo.clear();
        }
    }

    fn commit(&mut self) {
        self.undo.clear();
    }

    fn undo_len(&self) -> usize {
        self.undo.len()
    }

    fn commit_first(&mut self, entries: usize) {
        self.undo.drain(..entries.min(self.undo.len()));
    }

    fn rollback(&mut self) {
        while let Some(entry) = self.undo.pop() {
            match entry {
                FilterUndo::Word { layer, index, old } => self.layers[layer].words.0[index] = old,
                FilterUndo::Keys { layer, old } => self.layers[layer].keys = old,
                FilterUndo::Layers { len } => self.layers.truncate(len),
                FilterUndo::Saturated { old } => self.saturated = old,
            }
        }
    }
}

impl Serialize for FilterWords {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|word| word.to_le_bytes()).collect();
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for FilterWords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = FilterWords;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a filter layer's bytes, a whole number of 64-bit words")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<FilterWords, E> {
                if !bytes.len().is_multiple_of(8) {
                    return Err(E::invalid_length(bytes.len(), &self));
                }
                Ok(FilterWords(
                    bytes
                        .chunks_exact(8)
                        .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")))
                        .collect(),
                ))
            }
        }
        deserializer.deserialize_bytes(Bytes)
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
    fn a_filter_never_forgets_a_key_and_rarely_claims_one_it_never_saw() {
        let mut filter = UndoFilter::default();
        let hash = |n: u64| xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes());
        for n in 0..100_000 {
            filter.insert(hash(n));
        }
        assert!((0..100_000).all(|n| filter.may_contain(hash(n))));
        let false_positives = (100_000..200_000)
            .filter(|n| filter.may_contain(hash(*n)))
            .count();
        assert!(false_positives < 1_000, "{false_positives} false positives");
        assert!(filter.bytes() < 100_000 * 4, "{} bytes", filter.bytes());
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

    #[test]
    fn a_filter_rolls_back_to_exactly_what_was_committed() {
        let mut filter = UndoFilter::default();
        for n in 0..10u64 {
            filter.insert(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let committed = filter.clone();
        filter.set_recording(true);
        for n in 10..50_000u64 {
            filter.insert(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        assert_ne!(filter, committed);
        filter.rollback();
        filter.set_recording(false);
        assert_eq!(filter, committed);
    }

    #[test]
    fn a_filter_encodes_and_decodes_to_the_same_bits() {
        let mut filter = UndoFilter::default();
        for n in 0..1_000u64 {
            filter.insert(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let bytes = rmp_serde::to_vec(&filter).unwrap();
        let decoded: UndoFilter = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded, filter);
    }
}
