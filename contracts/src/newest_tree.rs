//! The newest state's tree, for replays: the same root as the Jellyfish
//! Merkle Tree of [`crate::state::JmtStore`], computed without versions.
//!
//! A replay only ever needs the newest root (to compare with each header)
//! and the newest values (to execute the next block). jmt keeps every node
//! under a versioned key in a map, clones it on every visit and writes a new
//! copy for each version, which made its commit four fifths of a replay's
//! execution. This tree is owned nodes that are updated in place, each
//! touched node rehashed once per block (a dense node only in the ranges of
//! its slots that changed), and the sixteen subtrees under the root updated
//! on two threads.
//!
//! Rules (they are jmt's, so the roots are equal; a property test checks it
//! against jmt on random blocks):
//! 1. A leaf sits at the shallowest depth at which its key hash's nibble
//!    prefix is unique; its hash is `H("JMT::LeafNode" ‖ key hash ‖ H(value))`,
//!    `H` the chain's suite's hash function (SHA-256 or SM3), as jmt's hasher.
//! 2. An internal node's hash is a binary Merkle tree over its sixteen
//!    slots: an empty range hashes to the placeholder, a range holding a
//!    single child that is a leaf (or a single slot) is that child's hash,
//!    any other range is `H("JMT::IntrnalNode" ‖ left ‖ right)`.
//! 3. The empty tree's root is the placeholder; a one-leaf tree's root is
//!    that leaf's hash.
//! 4. A deleted leaf leaves no trace: an internal node left with no child
//!    is removed, and one left with a single child that is a leaf is
//!    replaced by that leaf (rule 1 again). Only replay protection is ever
//!    deleted (`state` rule 1).

use crate::encoding::HashFunction;

const PLACEHOLDER: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";
const LEAF_DOMAIN: &[u8] = b"JMT::LeafNode";
const INTERNAL_DOMAIN: &[u8] = b"JMT::IntrnalNode";
/// Below this many keys a block's subtrees are updated on one thread.
const PARALLEL_FROM: usize = 512;

enum Node {
    Leaf { key: [u8; 32], hash: [u8; 32] },
    Internal(Box<Internal>),
}

struct Internal {
    children: [Option<Box<Node>>; 16],
    hash: [u8; 32],
    /// Which children are leaves (rule 2 needs it for every range; kept
    /// here so that ranges are walked without visiting unchanged children).
    leaves: u16,
    /// The hashes of the ranges below the whole node, in heap order (the
    /// two halves, then the four quarters, then the eight pairs), kept for
    /// dense nodes only: a block that changes one child of a full node then
    /// rehashes four ranges instead of fifteen and reads one sibling's hash
    /// instead of sixteen children. Sparse nodes, by far the most numerous,
    /// are cheap to rehash and keep nothing (memory).
    ranges: Option<Box<[[u8; 32]; 14]>>,
}

/// Nodes with at least this many children keep their ranges' hashes.
const DENSE_FROM: u32 = 8;

impl Node {
    fn hash(&self) -> [u8; 32] {
        match self {
            Self::Leaf { hash, .. } => *hash,
            Self::Internal(internal) => internal.hash,
        }
    }
}

/// A key hash and its leaf's content.
type Entry<'a> = ([u8; 32], Leaf<'a>);

/// A leaf to put: a new value, hashed where its subtree is updated (on the
/// subtree's thread), or an existing leaf moving down, already hashed.
#[derive(Clone, Copy)]
pub enum Leaf<'a> {
    /// A value written by the block.
    Value(&'a [u8]),
    /// An existing leaf's hash.
    Hashed([u8; 32]),
}

impl Leaf<'_> {
    fn hash(&self, function: HashFunction, key_hash: &[u8; 32]) -> [u8; 32] {
        match self {
            Self::Value(value) => leaf_hash(function, key_hash, value),
            Self::Hashed(hash) => *hash,
        }
    }
}

/// The newest state tree (module docs).
pub struct NewestTree {
    root: Option<Box<Node>>,
    function: HashFunction,
}

/// The leaf hash of `key_hash` holding `value` (rule 1).
fn leaf_hash(function: HashFunction, key_hash: &[u8; 32], value: &[u8]) -> [u8; 32] {
    let value_hash = function.digest(value);
    function
        .tagged_hash(LEAF_DOMAIN, &[key_hash, &value_hash.0])
        .0
}

fn nibble(key: &[u8; 32], depth: usize) -> usize {
    let byte = key[depth / 2];
    usize::from(if depth % 2 == 0 {
        byte >> 4
    } else {
        byte & 0x0f
    })
}

impl NewestTree {
    /// An empty tree hashing with `function`.
    pub fn new(function: HashFunction) -> Self {
        Self {
            root: None,
            function,
        }
    }

    /// The root (rule 3).
    pub fn root(&self) -> [u8; 32] {
        self.root.as_ref().map_or(PLACEHOLDER, |node| node.hash())
    }

    /// Puts `(key hash, value)` entries (the last of a repeated key wins)
    /// and returns the new root.
    pub fn put<'a>(&mut self, entries: impl IntoIterator<Item = ([u8; 32], &'a [u8])>) -> [u8; 32] {
        let mut entries: Vec<Entry<'_>> = entries
            .into_iter()
            .map(|(key, value)| (key, Leaf::Value(value)))
            .collect();
        entries.reverse();
        // Stable, after the reversal: of a repeated key, the last put comes first and stays.
        entries.sort_by_key(|(key, _)| *key);
        entries.dedup_by_key(|(key, _)| *key);
        if !entries.is_empty() {
            put_at(self.function, &mut self.root, &entries, 0, true);
        }
        self.root()
    }
}

impl NewestTree {
    /// Deletes the leaves of `keys` (key hashes; any not in the tree is
    /// ignored) and returns the new root (rule 4).
    pub fn delete(&mut self, keys: &[[u8; 32]]) -> [u8; 32] {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        if !keys.is_empty() {
            delete_at(self.function, &mut self.root, &keys, 0);
        }
        self.root()
    }
}

/// Deletes sorted, distinct `keys` from the subtree in `slot` at `depth`.
fn delete_at(
    function: HashFunction,
    slot: &mut Option<Box<Node>>,
    keys: &[[u8; 32]],
    depth: usize,
) {
    match slot.as_deref_mut() {
        Some(Node::Leaf { key, .. }) if keys.binary_search(key).is_ok() => *slot = None,
        None | Some(Node::Leaf { .. }) => {}
        Some(Node::Internal(internal)) => {
            let mut changed = 0u16;
            let mut rest = keys;
            while let Some(first) = rest.first() {
                let n = nibble(first, depth);
                let end = rest
                    .iter()
                    .position(|key| nibble(key, depth) != n)
                    .unwrap_or(rest.len());
                let (group, tail) = rest.split_at(end);
                delete_at(function, &mut internal.children[n], group, depth + 1);
                changed |= 1 << n;
                rest = tail;
            }
            let mut present = internal.children.iter().flatten();
            match (present.next(), present.next()) {
                (None, _) => *slot = None,
                (Some(only), None) if matches!(**only, Node::Leaf { .. }) => {
                    let only = internal.children.iter_mut().find_map(Option::take);
                    *slot = only;
                }
                _ => internal.rehash(function, changed),
            }
        }
    }
}

/// Puts sorted, distinct `entries` into the subtree in `slot` at `depth`.
fn put_at(
    function: HashFunction,
    slot: &mut Option<Box<Node>>,
    entries: &[Entry<'_>],
    depth: usize,
    may_split: bool,
) {
    match slot.as_deref_mut() {
        None => *slot = Some(build(function, entries, depth)),
        Some(Node::Leaf { key, hash }) => {
            if let [(new_key, new_leaf)] = entries
                && new_key == key
            {
                *hash = new_leaf.hash(function, key);
                return;
            }
            // The leaf moves down beside the new keys unless one replaces it.
            let existing = (*key, Leaf::Hashed(*hash));
            let mut merged = entries.to_vec();
            if let Err(at) = merged.binary_search_by_key(&existing.0, |(k, _)| *k) {
                merged.insert(at, existing);
            }
            *slot = Some(build(function, &merged, depth));
        }
        Some(Node::Internal(internal)) => {
            let groups = split_by_nibble(entries, depth);
            let changed = groups
                .iter()
                .enumerate()
                .filter(|(_, group)| !group.is_empty())
                .fold(0u16, |bits, (i, _)| bits | 1 << i);
            if may_split && entries.len() >= PARALLEL_FROM {
                let (low, high) = internal.children.split_at_mut(8);
                std::thread::scope(|scope| {
                    scope.spawn(|| put_children(function, low, &groups[..8], depth));
                    put_children(function, high, &groups[8..], depth);
                });
            } else {
                put_children(function, &mut internal.children, &groups, depth);
            }
            internal.rehash(function, changed);
        }
    }
}

fn put_children(
    function: HashFunction,
    children: &mut [Option<Box<Node>>],
    groups: &[&[Entry<'_>]],
    depth: usize,
) {
    for (child, group) in children.iter_mut().zip(groups) {
        if !group.is_empty() {
            put_at(function, child, group, depth + 1, false);
        }
    }
}

/// The entries under each of the sixteen nibbles at `depth`.
fn split_by_nibble<'e, 'a>(entries: &'e [Entry<'a>], depth: usize) -> [&'e [Entry<'a>]; 16] {
    let mut groups: [&[Entry<'a>]; 16] = [&[]; 16];
    let mut rest = entries;
    while let Some((first, _)) = rest.first() {
        let n = nibble(first, depth);
        let end = rest
            .iter()
            .position(|(key, _)| nibble(key, depth) != n)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        groups[n] = group;
        rest = tail;
    }
    groups
}

/// A new subtree holding exactly `entries` (non-empty, sorted, distinct).
fn build(function: HashFunction, entries: &[Entry<'_>], depth: usize) -> Box<Node> {
    if let [(key, leaf)] = entries {
        return Box::new(Node::Leaf {
            key: *key,
            hash: leaf.hash(function, key),
        });
    }
    let mut children: [Option<Box<Node>>; 16] = Default::default();
    for (child, group) in children.iter_mut().zip(split_by_nibble(entries, depth)) {
        if !group.is_empty() {
            *child = Some(build(function, group, depth + 1));
        }
    }
    let mut internal = Box::new(Internal {
        children,
        hash: PLACEHOLDER,
        leaves: 0,
        ranges: None,
    });
    internal.rehash(function, u16::MAX);
    Box::new(Node::Internal(internal))
}

impl Internal {
    /// Recomputes the node's hash (rule 2) after the children in `changed`
    /// (a bitmap of slots) were replaced or updated.
    fn rehash(&mut self, function: HashFunction, mut changed: u16) {
        // A changed slot may now be empty (a deletion): its bit goes too.
        self.leaves &= !changed;
        let mut present = 0u16;
        for (i, child) in self.children.iter().enumerate() {
            let bit = 1 << i;
            if let Some(child) = child {
                present |= bit;
                if changed & bit != 0 && matches!(**child, Node::Leaf { .. }) {
                    self.leaves |= bit;
                }
            }
        }
        if self.ranges.is_none() && present.count_ones() >= DENSE_FROM {
            self.ranges = Some(Box::new([PLACEHOLDER; 14]));
            changed = u16::MAX;
        }
        let mut walk = RangeWalk {
            function,
            children: &self.children,
            present,
            leaves: self.leaves,
            changed,
            ranges: self.ranges.as_deref_mut(),
        };
        self.hash = walk.hash(1, 0, 16);
    }
}

/// One internal node's binary Merkle tree over its sixteen slots, walked on
/// bitmaps; ranges with no changed child come from the node's kept hashes.
struct RangeWalk<'n> {
    function: HashFunction,
    children: &'n [Option<Box<Node>>; 16],
    present: u16,
    leaves: u16,
    changed: u16,
    ranges: Option<&'n mut [[u8; 32]; 14]>,
}

impl RangeWalk<'_> {
    /// The hash of range number `heap` (1 is the whole node, 2 and 3 its
    /// halves, …): `width` slots (1, 2, 4, 8 or 16) from `start`.
    fn hash(&mut self, heap: usize, start: u32, width: u32) -> [u8; 32] {
        let mask = (u16::MAX >> (16 - width)) << start;
        let in_range = self.present & mask;
        if in_range == 0 {
            return PLACEHOLDER;
        }
        if width == 1 || (in_range.count_ones() == 1 && self.leaves & mask != 0) {
            let slot = in_range.trailing_zeros() as usize;
            return self.children[slot]
                .as_ref()
                .map_or(PLACEHOLDER, |c| c.hash());
        }
        let kept = heap.checked_sub(2);
        if let (Some(kept), Some(ranges)) = (kept, self.ranges.as_deref())
            && self.changed & mask == 0
        {
            return ranges[kept];
        }
        let half = width / 2;
        let left = self.hash(2 * heap, start, half);
        let right = self.hash(2 * heap + 1, start + half, half);
        let hash = self
            .function
            .tagged_hash(INTERNAL_DOMAIN, &[&left, &right])
            .0;
        if let (Some(kept), Some(ranges)) = (kept, self.ranges.as_deref_mut()) {
            ranges[kept] = hash;
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_put_of_a_repeated_key_wins_and_the_empty_tree_has_the_placeholder_root() {
        for function in [HashFunction::Sha256, HashFunction::Sm3] {
            let mut twice = NewestTree::new(function);
            assert_eq!(twice.root(), PLACEHOLDER);
            let key = [7u8; 32];
            let root = twice.put([(key, &b"first"[..]), (key, &b"second"[..])]);
            let mut once = NewestTree::new(function);
            assert_eq!(once.put([(key, &b"second"[..])]), root);
            assert_eq!(root, leaf_hash(function, &key, b"second"));
        }
    }
}
