//! A referral, as a hospital's system does it with the SDK: check the
//! patient's grant trusting no node, ask for the lab reports under it, and
//! fetch them from the holding hospital, sealed end to end.
//!
//! ```text
//! cargo run -p medledger-client-sdk --example referral -- \
//!     http://127.0.0.1:8645 genesis.json doctor.json <patient id> <holder> <out dir>
//! ```
//!
//! `doctor.json` is a practitioner's key file of the node's institution
//! (`medledger keys new --role practitioner`, registered by the institution);
//! the patient must have granted that institution (or that doctor) their lab
//! reports held at `<holder>`. Against `medledger testnet`'s consortium:
//! the node of `city-second-hospital`, `keys/practitioner.dr-second-1.json`,
//! holder `city-first-hospital`.

use std::path::Path;
use std::time::Duration;

use medledger_client_sdk::records::fetch_records;
use medledger_client_sdk::{
    AccessAnswer, Client, Identity, KeyFile, LightClient, TxBuilder, TxOutcome, api,
};
use medledger_contracts::Hash32;
use medledger_contracts::records::GrantStatus;
use medledger_contracts::types::{Category, Grantee, InstitutionId, PatientId};
use medledger_genesis::GenesisFile;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [node, genesis, key, patient, holder, out] = args.as_slice() else {
        return Err("usage: referral NODE_URL GENESIS KEY_FILE PATIENT_ID HOLDER OUT_DIR".into());
    };
    // Trust starts from the genesis file, not from the node.
    let genesis = GenesisFile::read(Path::new(genesis))?.validate()?;
    let client = Client::new(node, genesis.chain())?;
    let key = KeyFile::load(Path::new(key))?;
    let doctor = Identity::practitioner(&key);
    let patient = PatientId(Hash32::from_hex(patient)?);
    let holder = InstitutionId::new(holder)?;
    // The doctor's institution, as the ledger records it (a public read).
    let record: api::Practitioner = client
        .get_as(&format!(
            "/v1/practitioners/{}",
            key.practitioner_id().0.to_hex()
        ))
        .await?;
    let my_institution = InstitutionId::new(&record.institution)?;

    // 1. Is there an active grant covering lab reports from the holder?
    //    Every candidate is checked against a commit certificate and a state
    //    proof; an answer older than 30 s is refused as stale.
    let light = LightClient::new(client.clone(), &genesis, Duration::from_secs(30))?;
    let grantee = Grantee::Institution(my_institution);
    let grant = match light
        .check_access(&patient, &grantee, Category::LabReports, &holder, &doctor)
        .await?
    {
        AccessAnswer::Allowed(grant) => grant,
        AccessAnswer::NotFound { listed, .. } => {
            println!("no active grant covers lab reports at {holder} ({listed} grants listed)");
            return Ok(());
        }
    };
    assert_eq!(grant.status, GrantStatus::Active);
    println!(
        "grant {} verified active at height {} (certificate and proof checked)",
        grant.id, grant.height
    );

    // 2. Ask for the records: the ledger decides, and records the decision.
    let tx = TxBuilder::new(genesis.chain(), doctor.clone())
        .for_window(genesis.parameters.tx_validity_window_ms);
    let request = tx.access_request(
        grant.id,
        holder.clone(),
        vec![Category::LabReports],
        grant.record.terms.purpose,
    )?;
    let receipt = client.submit_and_wait(&request, None).await?;
    match &receipt.outcome {
        TxOutcome::Authorized => println!(
            "request {} authorised at height {}",
            receipt.tx, receipt.height
        ),
        other => {
            println!("request {} not authorised: {other:?}", receipt.tx);
            return Ok(());
        }
    }

    // 3. Fetch them from the holder: sealed to a one-time key, every item
    //    checked against the hashes the holder records on the ledger.
    let fetched = fetch_records(&client, &doctor, receipt.tx, holder, Path::new(out)).await?;
    for item in &fetched.items {
        println!(
            "  {}  {} bytes  content hash {}",
            item.path, item.size, item.content_hash
        );
    }
    println!(
        "{} records in {}; release recorded at height {}",
        fetched.items.len(),
        fetched.dir.display(),
        fetched.release_height
    );
    Ok(())
}
