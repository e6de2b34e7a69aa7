//! `medledger genesis`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use medledger_genesis::{Genesis, GenesisFile, kind_name};

pub fn new(
    out: &Path,
    chain_id: &str,
    published_example_keys: bool,
    crypto_suite: &str,
) -> anyhow::Result<()> {
    let suite = medledger_contracts::crypto::CryptoSuite::from_name(crypto_suite)
        .context("--crypto-suite")?;
    let genesis_path = out.join("genesis.json");
    if genesis_path.exists() {
        bail!(
            "{} exists; choose another --out directory",
            genesis_path.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (file, keys) =
        medledger_client_sdk::keys::example_consortium_on(suite, chain_id, published_example_keys)?;
    let genesis = file
        .validate()
        .context("the generated genesis does not validate")?;
    if !published_example_keys {
        let key_dir = out.join("keys");
        std::fs::create_dir_all(&key_dir)
            .with_context(|| format!("creating {}", key_dir.display()))?;
        // Only the owner may list or open the secret keys.
        std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", key_dir.display()))?;
        for (label, key) in &keys {
            let path = key_dir.join(format!("{}.json", label.replace(':', ".")));
            key.save(&path)?;
        }
        println!(
            "wrote {} key files (mode 0600) to {}",
            keys.len(),
            key_dir.display()
        );
    }
    std::fs::write(&genesis_path, file.to_json())
        .with_context(|| format!("writing {}", genesis_path.display()))?;
    println!("wrote {}", genesis_path.display());
    print_summary(&genesis);
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<Genesis> {
    let file = GenesisFile::read(path)?;
    file.validate()
        .with_context(|| format!("{} is not a valid genesis", path.display()))
}

pub fn check(path: &Path) -> anyhow::Result<()> {
    let genesis = load(path)?;
    genesis
        .initial_state()
        .with_context(|| format!("{}: initial state", path.display()))?;
    println!("{}: valid", path.display());
    print_summary(&genesis);
    Ok(())
}

fn print_summary(genesis: &Genesis) {
    let validators = genesis.validators().count();
    println!("chain id:       {}", genesis.chain_id.as_str());
    println!("crypto suite:   {}", genesis.crypto_suite.name());
    println!("genesis hash:   {}", genesis.hash());
    println!(
        "members:        {} institutions, {} validators (tolerates {} faulty), {} practitioners",
        genesis.institutions.len(),
        validators,
        genesis.fault_tolerance(),
        genesis.practitioners.len()
    );
}

pub fn show(path: &Path) -> anyhow::Result<()> {
    let genesis = load(path)?;
    print_summary(&genesis);
    println!();
    println!(
        "{:<22} {:<18} {:<7} {:<6} name",
        "institution", "kind", "region", "power"
    );
    for spec in &genesis.institutions {
        println!(
            "{:<22} {:<18} {:<7} {:<6} {}",
            spec.id.as_str(),
            kind_name(&spec.kind),
            spec.region_code,
            spec.voting_power,
            spec.name
        );
    }
    println!();
    println!("{:<22} {:<22} practitioner id", "institution", "role");
    for (institution, key, role, _) in &genesis.practitioners {
        let id = medledger_contracts::types::PractitionerId::from_key(genesis.chain().hash(), key);
        println!(
            "{:<22} {:<22} {}",
            institution.as_str(),
            format!("{role:?}"),
            id
        );
    }
    Ok(())
}
