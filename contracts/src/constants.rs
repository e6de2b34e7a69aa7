//! Every limit of the ledger's formats, in one place.
//!
//! Each limit bounds something an outsider controls (a transaction, a proof, a
//! genesis file). Decoders reject a value past its limit before doing any work
//! on it; a limit change is a format change and needs a new domain tag version.

/// Largest encoded signed transaction a node accepts, in bytes.
pub const TRANSACTION_BYTES_MAX: usize = 16 * 1024;
/// Longest chain id, in bytes (ASCII).
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Longest institution id, in bytes (ASCII `[a-z0-9-]`).
pub const INSTITUTION_ID_BYTES_MAX: usize = 32;
/// Longest institution display name, in bytes (UTF-8). Institutions' names are
/// public; no person's name ever goes on the ledger.
pub const INSTITUTION_NAME_BYTES_MAX: usize = 128;
/// Longest institution licence reference or legal code, in bytes (ASCII).
pub const INSTITUTION_CODE_BYTES_MAX: usize = 40;
/// Data categories named in one grant, request or release.
pub const CATEGORIES_PER_GRANT_MAX: usize = 16;
/// Holder institutions listed in one grant.
pub const HOLDERS_PER_GRANT_MAX: usize = 32;
/// Content hashes listed in one `AccessServed`.
pub const CONTENT_HASHES_PER_RELEASE_MAX: usize = 256;
/// Recovery delegates a patient may appoint.
pub const RECOVERY_DELEGATES_MAX: usize = 8;
/// Validators in the set at one height.
pub const VALIDATORS_MAX: usize = 100;
/// Institutions named in a genesis file.
pub const GENESIS_INSTITUTIONS_MAX: usize = 1_000;
/// Practitioners named in a genesis file.
pub const GENESIS_PRACTITIONERS_MAX: usize = 10_000;
/// Largest genesis file, in bytes.
pub const GENESIS_FILE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Siblings in a JMT proof (one per bit of the 256-bit key hash).
pub const STATE_PROOF_SIBLINGS_MAX: usize = 256;
/// Hashes in an RFC 6962 inclusion or consistency proof (a tree of 2^64 leaves
/// needs at most 2 × 64).
pub const MERKLE_PROOF_HASHES_MAX: usize = 128;
/// Nesting depth BCS decoding allows (our types nest at most 4 deep).
pub const BCS_CONTAINER_DEPTH_MAX: usize = 16;
/// Recovery approvals remembered per patient while a recovery is under way.
pub const RECOVERY_APPROVALS_MAX: usize = RECOVERY_DELEGATES_MAX;
/// Votes a proposal can hold (one per validator).
pub const PROPOSAL_VOTES_MAX: usize = VALIDATORS_MAX;
/// Largest voting power of one validator (keeps every total far from overflow).
pub const VOTING_POWER_MAX: u64 = 1_000_000;
/// Most transactions in one block (genesis may set a lower limit).
pub const BLOCK_TRANSACTIONS_MAX: usize = 20_000;
/// Largest encoded block (header and transactions) accepted from anywhere.
pub const BLOCK_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Largest archived block (block, certificate and its audit entries), as
/// export archives and `GET /v1/archive/{height}` carry it.
pub const ARCHIVED_BLOCK_BYTES_MAX: usize =
    BLOCK_BYTES_MAX + CERTIFICATE_BYTES_MAX + 16 * 1024 * 1024;
/// Largest encoded commit certificate.
pub const CERTIFICATE_BYTES_MAX: usize = 64 * 1024;
/// The longest minority a hospital may record [R4.7]: 14 years from the
/// block that records it, counted as 14 × 365 days plus the 4 leap days
/// 14 years can hold. PIPL art. 31 treats under-14s' personal information
/// as needing a guardian's consent; from 14 a patient consents for
/// themselves, so no minority recorded here can outlast a 14th birthday.
pub const MINORITY_MS_MAX: u64 = (14 * 365 + 4) * 24 * 3_600_000;
/// Longest practice-scope code on a licence, in bytes (ASCII `[a-z0-9-]`).
pub const PRACTICE_SCOPE_BYTES_MAX: usize = 32;
/// Practice scopes on one licence.
pub const PRACTICE_SCOPES_MAX: usize = 8;
/// Institutions one licence names as places of practice (多点执业), and
/// registrations it binds.
pub const LICENCE_INSTITUTIONS_MAX: usize = 8;
/// Most member institutions in a group (a medical alliance) [R4.15].
pub const GROUP_MEMBERS_MAX: usize = 32;
/// Licences attested in a genesis file.
pub const GENESIS_LICENCES_MAX: usize = GENESIS_PRACTITIONERS_MAX;
/// Most practitioner roles a genesis may allow to break the glass.
pub const EMERGENCY_ROLES_MAX: usize = 6;

// medledger is built for 64-bit targets only, so every `u64` length, bound
// or index converts to a `usize` exactly (see [`usize_from`]).
const _: () = assert!(usize::BITS >= u64::BITS, "medledger needs a 64-bit target");

/// `n` as a `usize`: exact, because medledger builds only for 64-bit
/// targets (asserted above at compile time), so no conversion here can
/// saturate or fail.
#[allow(clippy::cast_possible_truncation)]
pub const fn usize_from(n: u64) -> usize {
    n as usize
}

// A release's content count is an audit entry's `u32`.
const _: () = assert!(CONTENT_HASHES_PER_RELEASE_MAX <= u32::MAX as usize);
