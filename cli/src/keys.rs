//! `medledger keys`.

use std::path::Path;

use anyhow::Context;
use medledger_client_sdk::KeyFile;

pub fn new(out: &Path, role: &str) -> anyhow::Result<()> {
    if !matches!(role, "patient" | "practitioner") {
        anyhow::bail!("--role is patient or practitioner, got {role:?}");
    }
    let key = KeyFile::generate()?;
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
}
