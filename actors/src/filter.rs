//! The filter of archived keys: a Bloom filter of fixed memory that answers
//! "certainly never archived" or "maybe archived", whose insertions can be undone
//! like every table's, and whose bits a snapshot reads without copying them.
//!
//! Why fixed: a filter that grew with the keys it held grew with history, which is
//! what the archive is there to take out of memory. In a 30-minute soak its
//! doubling layers took the server's resident size from 132 to 570 MiB (each new
//! layer and every snapshot's copy of them). Its memory is set once
//! (`engine.archived_filter_bytes` per shard) and taken up front; past the keys it
//! is sized for, its false positives climb, and a false positive only costs a
//! lookup in the archive, never a wrong answer.
//!
//! Why shared: a snapshot used to copy the state, filter included, on the shard's
//! thread. The filter's words are atomics behind an `Arc`, so a snapshot takes a
//! handle to them ([`UndoFilter::share`]) and reads them while the shard goes on
//! setting bits. What it reads holds every bit set before it was taken, and maybe
//! some set after: a superset, which is all a filter of "maybe" answers needs.
//!
//! Why most snapshots carry only the newest keys: writing the whole filter (64
//! MiB by default) into every snapshot made snapshots wait for a million events
//! to keep that cost per event down, and a restart then replayed up to a million
//! events (2.85 s on PostgreSQL). So the filter remembers the hash of every key
//! inserted since the last snapshot that held it whole (its *base*, at
//! `base_seq`), and a snapshot is either *full* (every bit, no base) or a
//! *delta* (no bits: the base's sequence number and the hashes since). Recovery
//! reads a delta's base beside it and inserts the hashes again
//! ([`UndoFilter::rebase`]); storage keeps a base as long as a snapshot it keeps
//! names it. A snapshot is full when there is no durable base yet or when the
//! hashes since it reach an eighth of the filter's bytes
//! ([`UndoFilter::wants_full`]), so deltas stay small and most snapshots are
//! bounded by the working set, as their cadence is.

use crate::table::{Undo, UndoEntries};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bits per key a layer is sized for, and the probes per key: about 0.2% false
/// positives when it holds that many keys, about 3% at twice as many.
const FILTER_BITS_PER_KEY: u64 = 14;
const FILTER_PROBES: u32 = 9;

/// A layer's size when the state was never given one: what the simulator and
/// the engine's own tests use (about 150k keys). The server sets
/// `engine.archived_filter_bytes`.
pub const FILTER_LAYER_BYTES_DEFAULT: u64 = 256 << 10;

/// The smallest layer a filter takes (one page), whatever it is asked for.
pub const FILTER_LAYER_BYTES_MIN: u64 = 4 << 10;

/// A set of keys that answers "certainly not in it" or "maybe in it".
///
/// Keys go into its newest layer, however full, as long as that layer has the
/// size the shard is configured for; a filter decoded from a snapshot whose
/// newest layer has another size (an older binary's growing layers, or a changed
/// setting) keeps its layers to answer from and adds one of the configured size
/// for what comes next.
///
/// `Clone` copies the bits (a clone is independent); [`UndoFilter::share`] does
/// not. The encoding (format 3; format 2's is its first two fields): layers of
/// `keys_max`, `keys` and their words as one byte string, `saturated`, then the
/// base's sequence number (nil in a full encoding), the hashes since it as one
/// byte string of little-endian words, and the size of the layer they went to
/// (empty and 0 in a full encoding).
#[derive(Debug, Default)]
pub struct UndoFilter {
    layers: Vec<FilterLayer>,
    /// Every key may be in the set (see [`UndoFilter::saturate`]; also what an
    /// older binary's filter became at its budget).
    saturated: bool,
    /// The durable snapshot whose filter holds every key inserted before it:
    /// `None` until one is written, and in a full encoding.
    base_seq: Option<u64>,
    /// The hash of every key inserted since `base_seq`, in order.
    appended: Vec<u64>,
    /// This is a delta: it has no layers of its own and encodes as one (a
    /// snapshot's copy, or a delta decoded and not yet rebased).
    delta: bool,
    /// The size of a layer for new keys (0: [`FILTER_LAYER_BYTES_DEFAULT`]).
    layer_bytes: u64,
    undo: Undo<FilterUndo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FilterLayer {
    /// Keys it is sized for; it takes more, answering "maybe" more often.
    keys_max: u64,
    keys: u64,
    words: FilterWords,
}

/// A layer's bits: set by the shard's thread only, read by it and by a
/// snapshot's encoder.
#[derive(Debug, Clone)]
struct FilterWords(Arc<Box<[AtomicU64]>>);

#[derive(Debug, Clone, PartialEq)]
/// One change to a filter, as its undo log takes it back.
pub enum FilterUndo {
    Bit { layer: usize, word: usize, bit: u64 },
    Keys { layer: usize, old: u64 },
    Layers { len: usize },
    Appended,
}

/// A full snapshot holds the filter's bits; the others carry the hashes inserted
/// since the last full one, until those reach this share of the bits' bytes.
const APPENDED_BYTES_PER_FILTER_BYTE_MAX: u64 = 8;

impl UndoFilter {
    /// Sets the size of the layer new keys go to, from the shard's configuration.
    pub fn set_layer_bytes(&mut self, bytes: u64) {
        self.layer_bytes = bytes.max(FILTER_LAYER_BYTES_MIN).next_multiple_of(8);
    }

    fn layer_bytes(&self) -> u64 {
        if self.layer_bytes == 0 {
            FILTER_LAYER_BYTES_DEFAULT
        } else {
            self.layer_bytes
        }
    }

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
        self.ensure_layer();
        self.set_bits(hash);
        self.appended.push(hash);
        self.undo.record(FilterUndo::Appended);
    }

    /// Counts `hash` in the newest layer and sets its bits there.
    fn set_bits(&mut self, hash: u64) {
        let index = self.layers.len() - 1;
        let layer = &mut self.layers[index];
        self.undo.record(FilterUndo::Keys {
            layer: index,
            old: layer.keys,
        });
        layer.keys += 1;
        for (word, bit) in layer.probes(hash) {
            let old = layer.words.0[word].fetch_or(bit, Ordering::Relaxed);
            if old & bit == 0 {
                self.undo.record(FilterUndo::Bit {
                    layer: index,
                    word,
                    bit,
                });
            }
        }
    }

    /// Adds a layer of the configured size when the newest has another size.
    fn ensure_layer(&mut self) {
        let wanted = self.layer_bytes();
        if self
            .layers
            .last()
            .is_none_or(|layer| layer.bytes() != wanted)
        {
            self.undo.record(FilterUndo::Layers {
                len: self.layers.len(),
            });
            self.layers.push(FilterLayer::new(wanted));
        }
    }

    /// Memory the layers take.
    pub fn bytes(&self) -> u64 {
        self.layers.iter().map(FilterLayer::bytes).sum()
    }

    /// Keys inserted (each counted once, and a key the filter already seemed to
    /// hold not at all).
    pub fn keys(&self) -> u64 {
        self.layers.iter().map(|layer| layer.keys).sum()
    }

    /// The same bits, not copied: for a snapshot to encode while the shard goes
    /// on inserting (see the module's documentation). It records no undo.
    pub fn share(&self) -> Self {
        Self {
            layers: self
                .layers
                .iter()
                .map(|layer| FilterLayer {
                    keys_max: layer.keys_max,
                    keys: layer.keys,
                    words: layer.words.clone(),
                })
                .collect(),
            saturated: self.saturated,
            base_seq: None,
            appended: Vec::new(),
            delta: false,
            layer_bytes: self.layer_bytes,
            undo: Undo::default(),
        }
    }

    /// Whether the next snapshot should hold the bits whole: there is no durable
    /// base, or the hashes since it have grown to an eighth of the bits.
    pub fn wants_full(&self) -> bool {
        self.base_seq.is_none()
            || (self.appended.len() as u64 * 8).saturating_mul(APPENDED_BYTES_PER_FILTER_BYTE_MAX)
                >= self.bytes()
    }

    /// For a snapshot: the hashes since the base and the base's sequence number,
    /// no bits (`None` when there is no base: the snapshot must be full).
    pub fn delta(&self) -> Option<Self> {
        Some(Self {
            layers: Vec::new(),
            saturated: self.saturated,
            base_seq: Some(self.base_seq?),
            appended: self.appended.clone(),
            delta: true,
            layer_bytes: self.layer_bytes,
            undo: Undo::default(),
        })
    }

    /// What encoding it takes, about: its bits, or a delta's hashes.
    pub fn encoded_bytes(&self) -> u64 {
        if self.delta {
            self.appended.len() as u64 * 8
        } else {
            self.bytes()
        }
    }

    /// The base a delta needs (`None` for a full filter).
    pub fn delta_base(&self) -> Option<u64> {
        self.base_seq.filter(|_| self.delta)
    }

    /// How many hashes were inserted since the base (what a full snapshot taken
    /// now holds in its bits).
    pub fn appended_len(&self) -> usize {
        self.appended.len()
    }

    /// A full snapshot at `seq`, taken when `appended_then` hashes had been
    /// inserted since the base, is durable: it is the base from now on.
    pub fn rebased_at(&mut self, seq: u64, appended_then: usize) {
        self.base_seq = Some(seq);
        self.appended
            .drain(..appended_then.min(self.appended.len()));
    }

    /// A delta decoded from a snapshot takes its base's bits (decoded from the
    /// snapshot at its `base_seq`) and inserts its hashes again, each counted
    /// and set in a layer of the size they first went to (the base's newest,
    /// unless the configured size has changed since).
    pub fn rebase(&mut self, base: UndoFilter) -> Result<(), String> {
        if !self.delta {
            return Err("the filter is whole; it takes no base".into());
        }
        if base.delta {
            return Err("a delta's base is itself a delta".into());
        }
        self.layers = base.layers;
        self.saturated |= base.saturated;
        self.delta = false;
        // Recovery's work, not a batch's: nothing to take back.
        let undo = std::mem::take(&mut self.undo);
        for index in 0..self.appended.len() {
            self.ensure_layer();
            self.set_bits(self.appended[index]);
        }
        self.undo = undo;
        Ok(())
    }

    /// Answers "maybe" for every key from now on (not undoable: for tests that
    /// want every lookup to happen).
    pub fn saturate(&mut self) {
        self.saturated = true;
    }
}

impl Clone for UndoFilter {
    fn clone(&self) -> Self {
        Self {
            layers: self.layers.iter().map(FilterLayer::copy).collect(),
            saturated: self.saturated,
            base_seq: self.base_seq,
            appended: self.appended.clone(),
            delta: self.delta,
            layer_bytes: self.layer_bytes,
            undo: self.undo.clone(),
        }
    }
}

/// Two filters are equal when they hold the same bits, whatever their undo logs
/// and however they would be written (their bases and the hashes since).
impl PartialEq for UndoFilter {
    fn eq(&self, other: &Self) -> bool {
        self.saturated == other.saturated
            && self.delta == other.delta
            && self.layers.len() == other.layers.len()
            && self
                .layers
                .iter()
                .zip(&other.layers)
                .all(|(a, b)| a.same_bits(b))
    }
}

impl FilterLayer {
    fn new(bytes: u64) -> Self {
        let words = bytes / 8;
        Self {
            keys_max: bytes * 8 / FILTER_BITS_PER_KEY,
            keys: 0,
            words: FilterWords(Arc::new((0..words).map(|_| AtomicU64::new(0)).collect())),
        }
    }

    fn copy(&self) -> Self {
        Self {
            keys_max: self.keys_max,
            keys: self.keys,
            words: FilterWords(Arc::new(
                self.words
                    .0
                    .iter()
                    .map(|word| AtomicU64::new(word.load(Ordering::Relaxed)))
                    .collect(),
            )),
        }
    }

    fn same_bits(&self, other: &Self) -> bool {
        self.keys_max == other.keys_max
            && self.keys == other.keys
            && self.words.0.len() == other.words.0.len()
            && self
                .words
                .0
                .iter()
                .zip(other.words.0.iter())
                .all(|(a, b)| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed))
    }

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
            .all(|(word, bit)| self.words.0[word].load(Ordering::Relaxed) & bit != 0)
    }
}

impl UndoEntries for UndoFilter {
    type Entry = FilterUndo;

    fn undo(&self) -> &Undo<FilterUndo> {
        &self.undo
    }

    fn undo_mut(&mut self) -> &mut Undo<FilterUndo> {
        &mut self.undo
    }

    fn revert(&mut self, entry: FilterUndo) {
        match entry {
            FilterUndo::Bit { layer, word, bit } => {
                self.layers[layer].words.0[word].fetch_and(!bit, Ordering::Relaxed);
            }
            FilterUndo::Keys { layer, old } => self.layers[layer].keys = old,
            FilterUndo::Layers { len } => self.layers.truncate(len),
            FilterUndo::Appended => {
                self.appended.pop();
            }
        }
    }
}

/// The encoding, borrowed: a full filter's bits, or a delta's base and hashes.
#[derive(Serialize)]
struct EncodedRef<'a> {
    layers: &'a [FilterLayer],
    saturated: bool,
    base_seq: Option<u64>,
    appended: Hashes<'a>,
    appended_layer_bytes: u64,
}

/// The encoding as read; the last two fields are absent in format 2.
#[derive(Deserialize)]
struct Encoded {
    layers: Vec<FilterLayer>,
    saturated: bool,
    #[serde(default)]
    base_seq: Option<u64>,
    #[serde(default)]
    appended: HashesOwned,
    #[serde(default)]
    appended_layer_bytes: u64,
}

impl Serialize for UndoFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = if self.delta {
            EncodedRef {
                layers: &[],
                saturated: self.saturated,
                base_seq: self.base_seq,
                appended: Hashes(&self.appended),
                appended_layer_bytes: self.layer_bytes(),
            }
        } else {
            EncodedRef {
                layers: &self.layers,
                saturated: self.saturated,
                base_seq: None,
                appended: Hashes(&[]),
                appended_layer_bytes: 0,
            }
        };
        encoded.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UndoFilter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let encoded = Encoded::deserialize(deserializer)?;
        let delta = encoded.base_seq.is_some();
        if delta && !encoded.layers.is_empty() {
            return Err(serde::de::Error::custom(
                "a filter names a base and has bits of its own",
            ));
        }
        Ok(Self {
            layers: encoded.layers,
            saturated: encoded.saturated,
            base_seq: encoded.base_seq,
            appended: encoded.appended.0,
            delta,
            layer_bytes: encoded.appended_layer_bytes,
            undo: Undo::default(),
        })
    }
}

/// Hashes as one byte string of little-endian words: a tenth of the bytes and
/// of the decoding work of a MessagePack array of integers.
struct Hashes<'a>(&'a [u64]);

#[derive(Default)]
struct HashesOwned(Vec<u64>);

impl Serialize for Hashes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_words(self.0.iter().copied(), serializer)
    }
}

impl<'de> Deserialize<'de> for HashesOwned {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_words(deserializer, "a filter's hashes", true).map(HashesOwned)
    }
}

impl Serialize for FilterWords {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_words(
            self.0.iter().map(|word| word.load(Ordering::Relaxed)),
            serializer,
        )
    }
}

impl<'de> Deserialize<'de> for FilterWords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let words = deserialize_words(deserializer, "a filter layer's bytes", false)?;
        // Same size and alignment: collected in place, not copied.
        Ok(FilterWords(Arc::new(
            words.into_iter().map(AtomicU64::new).collect(),
        )))
    }
}

/// 64-bit words as one byte string, little-endian.
fn serialize_words<S: serde::Serializer>(
    words: impl Iterator<Item = u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let bytes: Vec<u8> = words.flat_map(u64::to_le_bytes).collect();
    serializer.serialize_bytes(&bytes)
}

/// The words of [`serialize_words`]; a length that is not a whole number of
/// words (or nothing, unless `empty_ok`) is refused.
fn deserialize_words<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    what: &'static str,
    empty_ok: bool,
) -> Result<Vec<u64>, D::Error> {
    struct Words {
        what: &'static str,
        empty_ok: bool,
    }
    impl serde::de::Visitor<'_> for Words {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}, a whole number of 64-bit words", self.what)
        }
        fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u64>, E> {
            if (bytes.is_empty() && !self.empty_ok) || !bytes.len().is_multiple_of(8) {
                return Err(E::invalid_length(bytes.len(), &self));
            }
            Ok(bytes
                .chunks_exact(8)
                // chunks_exact(8) yields 8-byte slices only.
                .map(|word| u64::from_le_bytes(word.try_into().expect("8 bytes")))
                .collect())
        }
    }
    deserializer.deserialize_bytes(Words { what, empty_ok })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::UndoLog;

    fn key(n: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes())
    }

    #[test]
    fn a_filter_never_forgets_a_key_and_rarely_claims_one_it_never_saw() {
        let mut filter = UndoFilter::default();
        filter.set_layer_bytes(100_000 * FILTER_BITS_PER_KEY / 8);
        for n in 0..100_000 {
            filter.insert(key(n));
        }
        assert!((0..100_000).all(|n| filter.may_contain(key(n))));
        let false_positives = (100_000..200_000)
            .filter(|n| filter.may_contain(key(*n)))
            .count();
        assert!(false_positives < 1_000, "{false_positives} false positives");
        assert_eq!(filter.bytes(), 175_000);
    }

    #[test]
    fn a_filter_past_its_keys_keeps_its_memory_and_every_key() {
        let mut filter = UndoFilter::default();
        filter.set_layer_bytes(8 << 10);
        for n in 0..200_000 {
            filter.insert(key(n));
        }
        assert_eq!(filter.bytes(), 8 << 10);
        assert!((0..200_000).all(|n| filter.may_contain(key(n))));
    }

    #[test]
    fn a_filter_of_another_size_keeps_its_layers_and_adds_one_for_new_keys() {
        let mut filter = UndoFilter::default();
        filter.set_layer_bytes(8 << 10);
        for n in 0..1_000 {
            filter.insert(key(n));
        }
        filter.set_layer_bytes(16 << 10);
        for n in 1_000..2_000 {
            filter.insert(key(n));
        }
        assert_eq!(filter.bytes(), 24 << 10);
        assert!((0..2_000).all(|n| filter.may_contain(key(n))));
    }

    #[test]
    fn a_filter_rolls_back_to_exactly_what_was_committed() {
        let mut filter = UndoFilter::default();
        for n in 0..10u64 {
            filter.insert(key(n));
        }
        let committed = filter.clone();
        filter.set_recording(true);
        for n in 10..50_000u64 {
            filter.insert(key(n));
        }
        assert_ne!(filter, committed);
        filter.rollback();
        filter.set_recording(false);
        assert_eq!(filter, committed);
    }

    #[test]
    fn a_clone_is_independent_and_a_share_sees_later_keys() {
        let mut filter = UndoFilter::default();
        filter.insert(key(1));
        let clone = filter.clone();
        let shared = filter.share();
        filter.insert(key(2));
        assert!(shared.may_contain(key(2)));
        assert!(!clone.may_contain(key(2)));
        assert!(clone.may_contain(key(1)));
    }

    #[test]
    fn a_filter_encodes_and_decodes_to_the_same_bits() {
        let mut filter = UndoFilter::default();
        for n in 0..1_000u64 {
            filter.insert(key(n));
        }
        let bytes = rmp_serde::to_vec(&filter).unwrap();
        let decoded: UndoFilter = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(decoded, filter);
    }

    #[test]
    fn a_delta_on_its_base_holds_every_key_and_the_same_bits() {
        let mut live = UndoFilter::default();
        live.set_layer_bytes(64 << 10);
        for n in 0..1_000u64 {
            live.insert(key(n));
        }
        assert!(live.wants_full(), "no base yet");
        assert!(live.delta().is_none());
        let base_bytes = rmp_serde::to_vec(&live.share()).unwrap();
        live.rebased_at(7, live.appended_len());
        assert_eq!(live.appended_len(), 0);
        for n in 1_000..1_500u64 {
            live.insert(key(n));
        }
        assert!(!live.wants_full());
        let delta = live.delta().unwrap();
        assert_eq!(delta.delta_base(), Some(7));
        let delta_bytes = rmp_serde::to_vec(&delta).unwrap();
        assert!(
            delta_bytes.len() < 500 * 8 + 64,
            "{} bytes",
            delta_bytes.len()
        );

        let mut recovered: UndoFilter = rmp_serde::from_slice(&delta_bytes).unwrap();
        assert_eq!(recovered.delta_base(), Some(7));
        let base: UndoFilter = rmp_serde::from_slice(&base_bytes).unwrap();
        assert_eq!(base.delta_base(), None);
        recovered.rebase(base).unwrap();
        assert_eq!(recovered, live);
        assert!((0..1_500).all(|n| recovered.may_contain(key(n))));
        assert_eq!(
            recovered.bytes(),
            64 << 10,
            "the hashes went to the base's layer"
        );
        assert_eq!(
            recovered.appended_len(),
            500,
            "the next delta still has them"
        );
    }

    #[test]
    fn a_full_snapshot_becomes_the_base_only_of_what_it_held() {
        let mut filter = UndoFilter::default();
        for n in 0..10u64 {
            filter.insert(key(n));
        }
        let held = filter.appended_len();
        // Inserted while the full snapshot was being written.
        for n in 10..15u64 {
            filter.insert(key(n));
        }
        filter.rebased_at(3, held);
        assert_eq!(filter.appended_len(), 5);
        assert_eq!(filter.delta().unwrap().delta_base(), Some(3));
    }

    #[test]
    fn a_delta_is_due_to_become_full_at_an_eighth_of_the_bits() {
        let mut filter = UndoFilter::default();
        filter.set_layer_bytes(8 << 10);
        filter.insert(key(0));
        filter.rebased_at(1, 1);
        let mut n = 1;
        while !filter.wants_full() {
            filter.insert(key(n));
            n += 1;
        }
        assert_eq!(filter.appended_len() as u64 * 8, (8 << 10) / 8);
    }

    #[test]
    fn a_rolled_back_insert_leaves_the_delta_too() {
        let mut filter = UndoFilter::default();
        filter.insert(key(1));
        filter.rebased_at(1, 1);
        filter.set_recording(true);
        filter.insert(key(2));
        assert_eq!(filter.appended_len(), 1);
        filter.rollback();
        filter.set_recording(false);
        assert_eq!(filter.appended_len(), 0);
    }

    #[test]
    fn a_format_2_filter_decodes_whole_and_a_delta_refuses_another_delta() {
        let mut filter = UndoFilter::default();
        for n in 0..100u64 {
            filter.insert(key(n));
        }
        // Format 2 wrote the layers and `saturated` only.
        #[derive(Serialize)]
        struct Format2<'a> {
            layers: &'a [FilterLayer],
            saturated: bool,
        }
        let format_2 = rmp_serde::to_vec(&Format2 {
            layers: &filter.layers,
            saturated: false,
        })
        .unwrap();
        let decoded: UndoFilter = rmp_serde::from_slice(&format_2).unwrap();
        assert_eq!(decoded, filter);
        assert_eq!(decoded.delta_base(), None);

        filter.rebased_at(9, filter.appended_len());
        let mut delta = filter.delta().unwrap();
        let other = filter.delta().unwrap();
        assert!(delta.rebase(other).is_err());
        assert!(filter.share().rebase(UndoFilter::default()).is_err());
    }
}
