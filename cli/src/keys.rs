//! `medledger keys`.

use std::path::Path;

use anyhow::Context;
use medledger_client_sdk::{Identity, KeyFile};
use medledger_contracts::transaction::{KeyRole, Signer};
use medledger_contracts::types::{PatientId, PractitionerId};

use crate::people::{Connection, Session, hash, institution, runtime};

pub fn new(out: &Path, role: &str, crypto_suite: &str) -> anyhow::Result<()> {
    if !matches!(role, "patient" | "practitioner") {
        anyhow::bail!("--role is patient or practitioner, got {role:?}");
    }
    let suite = medledger_contracts::crypto::CryptoSuite::from_name(crypto_suite)
        .context("--crypto-suite")?;
    let key = KeyFile::generate_for(suite)?;
    key.save(out)?;
    println!("wrote {} (mode 0600)", out.display());
    if role == "practitioner" {
        println!(
            "practitioner id: {} (give it to your institution to register)",
            key.practitioner_id()
        );
    } else {
        println!(
            "patient id: {} (register with `medledger patient register`)",
            key.patient_id()
        );
    }
    print_ids(&key);
    Ok(())
}

pub fn show(file: &Path) -> anyhow::Result<()> {
    let key =
        KeyFile::load(file).with_context(|| format!("reading key file {}", file.display()))?;
    print_ids(&key);
    Ok(())
}

fn print_ids(key: &KeyFile) {
    println!("public key:               {}", key.public_key().to_text());
    println!("as a patient, id:         {}", key.patient_id());
    println!("as a practitioner, id:    {}", key.practitioner_id());
    // What other members put in `p2p.peers` for a node using this key as
    // its network identity (its node key on ed25519-sha256, its transport
    // key on sm2-sm3; an SM2 key is never one).
    if let Ok(peer) = medledger_consensus::peer_id_of(key.secret()) {
        println!("as a node's identity, peer id: {peer}");
    }
}

/// Whose key `medledger keys rotate` replaces.
pub struct Signing {
    /// An institution's (admin key signs).
    pub as_institution: Option<String>,
    /// Its node key rather than its admin key.
    pub node_key: bool,
    /// Its transport key rather than its admin key.
    pub transport_key: bool,
    /// A practitioner's, by id.
    pub as_practitioner: Option<String>,
    /// A patient's, by id.
    pub as_patient: Option<String>,
}

/// `medledger keys rotate`: signs a `RotateKey` with the current key and
/// the new key's proof of possession, and waits for its commit.
pub fn rotate(connection: Connection, who: Signing, new_key: &Path) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    let new = KeyFile::load(new_key)?;
    anyhow::ensure!(
        new.public_key() != s.key.public_key(),
        "the new key is the current key"
    );
    let signer = match (&who.as_institution, &who.as_practitioner, &who.as_patient) {
        (Some(id), ..) => Signer::Institution(institution(id)?),
        (None, Some(id), _) => Signer::Practitioner(PractitionerId(hash(id, "--as-practitioner")?)),
        (None, None, Some(id)) => Signer::Patient(PatientId(hash(id, "--as-patient")?)),
        (None, None, None) => Signer::Patient(s.key.patient_id()),
    };
    let role = match (who.node_key, who.transport_key) {
        (true, _) => KeyRole::InstitutionNode,
        (false, true) => KeyRole::InstitutionTransport,
        (false, false) => KeyRole::Own,
    };
    let me = Identity::new(signer, s.key.secret().clone());
    runtime()?.block_on(async {
        let tx = s.builder(&me).rotate_key(role, &new);
        let receipt = s.client.submit_and_wait(&tx, None).await?;
        s.receipt("key rotated", &receipt);
        if !s.json && receipt.outcome == medledger_client_sdk::TxOutcome::Applied {
            println!(
                "from now on sign with {}; {}",
                new_key.display(),
                if who.transport_key {
                    "restart the node with it as transport_key_file, and tell the other members its new peer id (docs/operations.md, drill C)"
                } else if who.node_key {
                    "restart the node with it as node_key_file (on ed25519-sha256 it is also the node's peer id: tell the other members; docs/operations.md, drill C)"
                } else {
                    "the old key no longer signs"
                }
            );
        }
        anyhow::Ok(())
    })
}
