//! RFC 6962 Merkle trees: each block's transaction root, and the append-only
//! audit log with inclusion and consistency proofs.
//!
//! Rules (RFC 6962 §2.1, verification as in RFC 9162 §2.1.3–2.1.4):
//! 1. A leaf hashes as `H(0x00 ‖ data)`, an inner node as
//!    `H(0x01 ‖ left ‖ right)`; the empty tree's root is `H("")`, where `H`
//!    is the chain's suite's hash function (SHA-256 or SM3), passed to each
//!    function here.
//! 2. A tree of `n > 1` leaves splits at the largest power of two below `n`.
//! 3. [`Frontier`] keeps only the roots of the perfect subtrees along the right
//!    edge — `log2(n)` hashes — which is enough to append and to compute the
//!    root, so the state machine carries the audit log in constant space.
//! 4. Proofs carry at most [`MERKLE_PROOF_HASHES_MAX`] hashes; verification
//!    needs no tree, only roots, sizes and the proof.

use serde::{Deserialize, Serialize};

use crate::constants::MERKLE_PROOF_HASHES_MAX;
use crate::encoding::{BoundedVec, Hash32, HashFunction};

/// Hashes a leaf's data (rule 1).
pub fn leaf_hash(hash: HashFunction, data: &[u8]) -> Hash32 {
    hash.tagged_hash(&[0], &[data])
}

/// Hashes two children (rule 1).
pub fn node_hash(hash: HashFunction, left: &Hash32, right: &Hash32) -> Hash32 {
    hash.tagged_hash(&[1], &[&left.0, &right.0])
}

/// The root of an empty tree.
pub fn empty_root(hash: HashFunction) -> Hash32 {
    hash.digest(&[])
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root over leaf hashes (rule 2).
pub fn root(hash: HashFunction, leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => empty_root(hash),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(hash, &root(hash, &leaves[..k]), &root(hash, &leaves[k..]))
        }
    }
}

/// Hashes in a proof, bounded (rule 4).
pub type ProofHashes = BoundedVec<Hash32, MERKLE_PROOF_HASHES_MAX>;

/// The audit path of leaf `index` among `leaves` (RFC 6962 §2.1.1).
pub fn inclusion_proof(hash: HashFunction, leaves: &[Hash32], index: usize) -> Option<ProofHashes> {
    fn path(hash: HashFunction, leaves: &[Hash32], index: usize, out: &mut Vec<Hash32>) {
        if leaves.len() <= 1 {
            return;
        }
        let k = split_point(leaves.len());
        if index < k {
            path(hash, &leaves[..k], index, out);
            out.push(root(hash, &leaves[k..]));
        } else {
            path(hash, &leaves[k..], index - k, out);
            out.push(root(hash, &leaves[..k]));
        }
    }
    if index >= leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    path(hash, leaves, index, &mut out);
    ProofHashes::new(out).ok()
}

/// The proof that the first `old_size` leaves are a prefix of `leaves` (RFC 6962 §2.1.2).
pub fn consistency_proof(
    hash: HashFunction,
    leaves: &[Hash32],
    old_size: usize,
) -> Option<ProofHashes> {
    fn subproof(
        hash: HashFunction,
        m: usize,
        leaves: &[Hash32],
        complete: bool,
        out: &mut Vec<Hash32>,
    ) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root(hash, leaves));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            subproof(hash, m, &leaves[..k], complete, out);
            out.push(root(hash, &leaves[k..]));
        } else {
            subproof(hash, m - k, &leaves[k..], false, out);
            out.push(root(hash, &leaves[..k]));
        }
    }
    if old_size > leaves.len() {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < leaves.len() {
        subproof(hash, old_size, leaves, true, &mut out);
    }
    ProofHashes::new(out).ok()
}

/// Why a Merkle proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleProofError {
    /// The index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The size.
        size: u64,
    },
    /// The proof has the wrong number of hashes.
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    /// The proof leads to a different root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    /// The sizes are not ordered.
    #[error("old size {old} is larger than new size {new}")]
    SizesOutOfOrder {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    hash: HashFunction,
    root: &Hash32,
    size: u64,
    index: u64,
    leaf: &Hash32,
    proof: &[Hash32],
) -> Result<(), MerkleProofError> {
    if index >= size {
        return Err(MerkleProofError::IndexOutOfRange { index, size });
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(MerkleProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(hash, p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(hash, &r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleProofError::WrongLength);
    }
    if r == *root {
        Ok(())
    } else {
        Err(MerkleProofError::RootMismatch)
    }
}

/// Verifies that the tree of `old_size` leaves with `old_root` is a prefix of
/// the tree of `new_size` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    hash: HashFunction,
    old_size: u64,
    new_size: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), MerkleProofError> {
    if old_size > new_size {
        return Err(MerkleProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleProofError::WrongLength);
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleProofError::RootMismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty tree; nothing to prove.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(MerkleProofError::WrongLength)
        };
    }
    let mut path: Vec<Hash32> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(MerkleProofError::WrongLength);
    };
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if sn == 0 {
            return Err(MerkleProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(hash, c, &fr);
            sr = node_hash(hash, c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(hash, &sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleProofError::WrongLength);
    }
    if fr == *old_root && sr == *new_root {
        Ok(())
    } else {
        Err(MerkleProofError::RootMismatch)
    }
}

/// The compact right edge of an append-only tree (rule 3).
///
/// `subtrees[i]` is the root of a perfect subtree; their sizes are the set bits
/// of `size`, largest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    size: u64,
    subtrees: BoundedVec<Hash32, 64>,
}

impl Frontier {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; `hash` is the chain's (the frontier is kept in
    /// state, so it does not carry it).
    pub fn push(&mut self, hash: HashFunction, leaf: Hash32) {
        let mut subtrees = std::mem::take(&mut self.subtrees).into_inner();
        let mut carry = leaf;
        // Merge equal-sized subtrees: one merge per trailing one bit of `size`.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = subtrees.pop().unwrap_or_default();
            carry = node_hash(hash, &left, &carry);
            size >>= 1;
        }
        subtrees.push(carry);
        self.size += 1;
        // At most one subtree per bit of a u64 size: the bound cannot be exceeded.
        self.subtrees = BoundedVec::new(subtrees).unwrap_or_default();
    }

    /// The root of the tree of all leaves so far (rules 1–2).
    pub fn root(&self, hash: HashFunction) -> Hash32 {
        let mut iter = self.subtrees.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root(hash);
        };
        iter.fold(*last, |acc, left| node_hash(hash, left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [HashFunction; 2] = [HashFunction::Sha256, HashFunction::Sm3];

    fn leaves(hash: HashFunction, n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| leaf_hash(hash, &(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn frontier_matches_full_tree() {
        for hash in BOTH {
            let all = leaves(hash, 70);
            let mut frontier = Frontier::new();
            assert_eq!(frontier.root(hash), empty_root(hash));
            for n in 1..=all.len() {
                frontier.push(hash, all[n - 1]);
                assert_eq!(frontier.root(hash), root(hash, &all[..n]), "size {n}");
            }
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        for hash in BOTH {
            for n in 1..40 {
                let all = leaves(hash, n);
                let r = root(hash, &all);
                for i in 0..n {
                    let proof = inclusion_proof(hash, &all, i).unwrap();
                    verify_inclusion(hash, &r, n as u64, i as u64, &all[i], &proof).unwrap();
                    let other = leaf_hash(hash, b"other");
                    assert!(
                        verify_inclusion(hash, &r, n as u64, i as u64, &other, &proof).is_err()
                    );
                    if let Some(first) = proof.first() {
                        let mut bad = proof.clone().into_inner();
                        bad[0] = node_hash(hash, first, first);
                        assert!(
                            verify_inclusion(hash, &r, n as u64, i as u64, &all[i], &bad).is_err()
                        );
                    }
                }
                assert!(verify_inclusion(hash, &r, n as u64, n as u64, &all[0], &[]).is_err());
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_rewriting_history_fails() {
        for hash in BOTH {
            for n in 1..34 {
                let all = leaves(hash, n);
                let new_root = root(hash, &all);
                for m in 0..=n {
                    let old_root = root(hash, &all[..m]);
                    let proof = consistency_proof(hash, &all, m).unwrap();
                    verify_consistency(hash, m as u64, n as u64, &old_root, &new_root, &proof)
                        .unwrap();
                    if m > 0 && m < n {
                        let mut rewritten = all.clone();
                        rewritten[m - 1] = leaf_hash(hash, b"rewritten");
                        let forged_old = root(hash, &rewritten[..m]);
                        assert!(
                            verify_consistency(
                                hash,
                                m as u64,
                                n as u64,
                                &forged_old,
                                &new_root,
                                &proof
                            )
                            .is_err()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_two_suites_trees_differ() {
        let (sha, sm3) = (
            leaves(HashFunction::Sha256, 5),
            leaves(HashFunction::Sm3, 5),
        );
        assert_ne!(sha, sm3);
        assert_ne!(
            root(HashFunction::Sha256, &sha),
            root(HashFunction::Sm3, &sm3)
        );
        // SM3 of the empty string (GB/T 32905's function; a published value).
        assert_eq!(
            empty_root(HashFunction::Sm3).to_hex(),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
    }

    #[test]
    fn agrees_with_ct_merkle() {
        use ct_merkle::mem_backed_tree::MemoryBackedTree;
        let hash = HashFunction::Sha256;
        let mut theirs: MemoryBackedTree<sha2_next::Sha256, Vec<u8>> = MemoryBackedTree::new();
        let mut data = Vec::new();
        for i in 0..50u32 {
            let item = format!("entry {i}").into_bytes();
            theirs.push(item.clone());
            data.push(leaf_hash(hash, &item));
            let their_root = theirs.root();
            assert_eq!(
                their_root.as_bytes().as_slice(),
                root(hash, &data).0.as_slice(),
                "size {}",
                i + 1
            );
        }
    }
}
