//! The example consortium on an in-memory ledger, with its published keys:
//! the context the targets check inputs against (chain, validator set,
//! genesis) and a short real history whose bytes are the seeds.

use std::sync::OnceLock;

use medledger_audit::archive::{ArchiveHeader, ArchivedBlock, write_archive};
use medledger_contracts::Hash32;
use medledger_contracts::certificate::{
    CommitCertificate, CommitSignature, ConsensusAddress, VoteBody, VoteKind, vote_message,
};
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedVec, HashFunction, to_bytes};
use medledger_contracts::light::ProvedValue;
use medledger_contracts::records::{ValidatorSet, ValidatorSetRecord};
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::{
    Category, Chain, GrantTerms, Grantee, Holders, InstitutionId, PatientId, PractitionerId,
    Purpose, Timestamp,
};
use medledger_genesis::Genesis;
use medledger_genesis::example::{city_consortium, published_example_key};

/// The fuzzing chain's id.
pub const CHAIN: &str = "medledger-fuzz";

/// What every target checks against.
pub struct World {
    /// The example consortium's genesis on [`CHAIN`].
    pub genesis: Genesis,
    /// Its chain (id and crypto suite).
    pub chain: Chain,
    /// Its validator set at height 1 and after (it never changes here).
    pub validators: ValidatorSet,
    /// Keys a hostile member (or its patients) could sign with, and as whom.
    pub signers: Vec<(SecretKey, Signer)>,
}

/// The world, made once per process.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| make().unwrap_or_else(|e| panic!("the fuzz world: {e:#}")))
}

/// A patient's key in the fuzz world.
fn patient_key(n: u8) -> SecretKey {
    SecretKey::from_seed(
        HashFunction::Sha256
            .tagged_hash(b"medledger/fuzz-patient", &[&[n]])
            .0,
    )
}

fn make() -> anyhow::Result<World> {
    let genesis = city_consortium(CHAIN, |l| published_example_key(l).public_key()).validate()?;
    let writes = genesis.initial_state()?;
    let bytes = writes
        .0
        .get(&StateKey::ValidatorSet.to_bytes())
        .and_then(|v| v.as_deref())
        .ok_or_else(|| anyhow::anyhow!("genesis has no validator set"))?;
    let record: ValidatorSetRecord = medledger_contracts::encoding::from_bytes(bytes, 1 << 20)?;
    let mut signers = Vec::new();
    for n in 0..2 {
        let key = patient_key(n);
        let signer = Signer::Patient(PatientId::from_key(
            genesis.chain().hash(),
            &key.public_key(),
        ));
        signers.push((key, signer));
    }
    for label in medledger_genesis::example::key_labels() {
        if label.starts_with("practitioner:") {
            let key = published_example_key(&label);
            let signer = Signer::Practitioner(PractitionerId::from_key(
                genesis.chain().hash(),
                &key.public_key(),
            ));
            signers.push((key, signer));
        }
    }
    for institution in &genesis.institutions {
        let admin = published_example_key(&format!("admin:{}", institution.id.as_str()));
        signers.push((admin, Signer::Institution(institution.id.clone())));
        let node = published_example_key(&format!("node:{}", institution.id.as_str()));
        signers.push((node, Signer::InstitutionNode(institution.id.clone())));
    }
    Ok(World {
        validators: record.at(1).clone(),
        chain: genesis.chain(),
        genesis,
        signers,
    })
}

/// A short history on the fuzz chain: registration, a grant, an access
/// request, each in a block certified by every validator.
pub struct History {
    /// The transactions, in order.
    pub transactions: Vec<SignedTransaction>,
    /// The blocks as the node archives them.
    pub blocks: Vec<ArchivedBlock>,
    /// The grant, proved at the last height.
    pub proved_grant: ProvedValue,
    /// The whole archive, uncompressed.
    pub archive: Vec<u8>,
    /// A replay checkpoint at the last height, uncompressed.
    pub checkpoint: Vec<u8>,
}

fn signer_key(world: &World, signer: &Signer) -> anyhow::Result<SecretKey> {
    world
        .signers
        .iter()
        .find(|(_, s)| s == signer)
        .map(|(k, _)| k.clone())
        .ok_or_else(|| anyhow::anyhow!("no key for {signer:?}"))
}

/// Builds the [`History`] (in a temporary directory, removed after).
pub fn history() -> anyhow::Result<History> {
    let world = world();
    let genesis = &world.genesis;
    let chain = genesis.chain();
    let first = InstitutionId::new("city-first-hospital")?;
    let second = InstitutionId::new("city-second-hospital")?;
    let patient_key = patient_key(0);
    let patient = PatientId::from_key(chain.hash(), &patient_key.public_key());
    let doctor = Signer::Practitioner(PractitionerId::from_key(
        chain.hash(),
        &published_example_key("practitioner:dr-second-1").public_key(),
    ));
    let start = genesis.genesis_time;
    // Blocks come a second apart from genesis: a minute covers all three.
    let valid_until = Timestamp(start.0 + 60_000);
    let sign = |signer: Signer, nonce, payload| -> anyhow::Result<SignedTransaction> {
        let key = signer_key(world, &signer)?;
        Ok(Transaction {
            signer,
            nonce,
            valid_until,
            payload,
        }
        .sign(&chain, &key))
    };
    let register = sign(Signer::Patient(patient), 1, Payload::RegisterPatient)?;
    let grant = sign(
        Signer::Patient(patient),
        2,
        Payload::Grant(GrantTerms {
            patient,
            grantee: Grantee::Institution(second.clone()),
            categories: BoundedVec::new(vec![Category::LabReports])
                .map_err(|_| anyhow::anyhow!("categories"))?,
            holders: Holders::Listed(
                BoundedVec::new(vec![first.clone()]).map_err(|_| anyhow::anyhow!("holders"))?,
            ),
            purpose: Purpose::Treatment,
            not_before: start,
            expires_at: start.plus_days(365),
            records_from: None,
            records_until: None,
            sensitive_included: BoundedVec::default(),
            notice_hash: chain.hash().tagged_hash(b"notice", &[]),
        }),
    )?;
    let grant_id = grant.id(&chain);
    let request = sign(
        doctor,
        3,
        Payload::AccessRequest {
            grant: grant_id,
            holder: first,
            categories: BoundedVec::new(vec![Category::LabReports])
                .map_err(|_| anyhow::anyhow!("categories"))?,
            purpose: Purpose::Treatment,
        },
    )?;
    let transactions = vec![register, grant, request];

    let mut ledger = genesis.memory_ledger()?;
    let proposer = genesis
        .validators()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no validator"))?
        .id
        .clone();
    let mut blocks = Vec::new();
    let mut last = None;
    for tx in &transactions {
        let height = ledger.height() + 1;
        let time = Timestamp(start.0 + height * 1000);
        let (header, execution) = ledger.execute(time, &proposer, vec![tx.clone()])?;
        let block = medledger_contracts::block::Block {
            header: header.clone(),
            transactions: BoundedVec::new(vec![tx.clone()])
                .map_err(|_| anyhow::anyhow!("block"))?,
        };
        let certificate = certify(world, &chain, height, header.hash(chain.hash()))?;
        blocks.push(ArchivedBlock {
            height,
            block: block.to_bytes(),
            certificate: to_bytes(&certificate),
            audit_entries: execution.audit_entries,
        });
        last = Some((header, certificate));
    }
    let (header, certificate) = last.ok_or_else(|| anyhow::anyhow!("no block"))?;
    let key = StateKey::Grant(grant_id);
    let (value, proof) = ledger.prove(&key, header.height)?;
    let proved_grant = ProvedValue {
        header: header.clone(),
        certificate,
        key,
        value,
        proof,
    };

    let dir = std::env::temp_dir().join(format!("medledger-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let made = (|| -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let archive_file = dir.join("archive.gz");
        write_archive(
            &archive_file,
            &ArchiveHeader {
                chain_id: CHAIN.into(),
                genesis_hash: genesis.hash(),
                height: header.height,
            },
            blocks.iter().cloned().map(Ok),
        )?;
        let mut replay = medledger_audit::replay::Replay::new(genesis)?;
        replay.run(
            medledger_audit::archive::ArchiveSource::open(&archive_file)?,
            |_, _, _, _| {},
        )?;
        let checkpoint_file = dir.join("checkpoint.gz");
        replay.save_checkpoint(&checkpoint_file)?;
        Ok((gunzip(&archive_file)?, gunzip(&checkpoint_file)?))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (archive, checkpoint) = made?;
    Ok(History {
        transactions,
        blocks,
        proved_grant,
        archive,
        checkpoint,
    })
}

/// A commit certificate over `block` at `height`, signed by every validator.
fn certify(
    world: &World,
    chain: &Chain,
    height: u64,
    block: Hash32,
) -> anyhow::Result<CommitCertificate> {
    let mut signatures = Vec::new();
    for validator in world.genesis.validators() {
        let key = published_example_key(&format!("node:{}", validator.id.as_str()));
        let address = ConsensusAddress::of_key(chain.hash(), &key.public_key());
        let body = VoteBody {
            kind: VoteKind::Precommit,
            height,
            round: 0,
            block: Some(block),
            validator: address,
        };
        signatures.push(CommitSignature {
            validator: address,
            signature: key.sign(&vote_message(chain, &body)),
        });
    }
    signatures.sort_by_key(|s| s.validator.0);
    Ok(CommitCertificate {
        height,
        round: 0,
        block,
        signatures: BoundedVec::new(signatures).map_err(|_| anyhow::anyhow!("signatures"))?,
    })
}

fn gunzip(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut bytes)?;
    Ok(bytes)
}
