//! Key files: a secret seed made from OS entropy, stored readable by its owner only.
//!
//! The file is JSON: `{"scheme": "ed25519", "secret_seed": hex, "public_key": "ed25519:hex"}`.
//! It is created with mode 0600 and refused when group or others can read it,
//! as ssh does with private keys.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use medledger_contracts::crypto::{CryptoSuite, PublicKey, SecretKey};
use medledger_contracts::types::{PatientId, PractitionerId};
use serde::{Deserialize, Serialize};

/// Largest key file read, in bytes.
const KEY_FILE_BYTES_MAX: u64 = 4 * 1024;

/// A key file's problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The file's permissions let others read the secret.
    #[error("{path}: mode {mode:o} lets others read this secret key; run `chmod 600 {path}`")]
    TooOpen {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// The content is not a key file.
    #[error("{path}: not a medledger key file: {problem}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The OS gave no entropy.
    #[error("no OS entropy for a new key: {0}")]
    Entropy(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    scheme: String,
    secret_seed: String,
    public_key: String,
}

/// A secret key with its file form.
#[derive(Debug, Clone)]
pub struct KeyFile {
    secret: SecretKey,
}

impl KeyFile {
    /// A new Ed25519 key from OS entropy.
    pub fn generate() -> Result<Self, KeyFileError> {
        Self::generate_for(CryptoSuite::Ed25519Sha256)
    }

    /// A new key of `suite`'s scheme from OS entropy.
    pub fn generate_for(suite: CryptoSuite) -> Result<Self, KeyFileError> {
        loop {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| KeyFileError::Entropy(e.to_string()))?;
            // An SM2 draw outside [1, n-2] (about 2^-224) is drawn again.
            if let Ok(secret) = SecretKey::from_seed_of(suite, seed) {
                return Ok(Self { secret });
            }
        }
    }

    /// Wraps an existing secret key.
    pub fn from_secret(secret: SecretKey) -> Self {
        Self { secret }
    }

    /// The secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// The patient id this key would register as (on a chain of the one
    /// suite its scheme belongs to).
    pub fn patient_id(&self) -> PatientId {
        let key = self.public_key();
        PatientId::from_key(CryptoSuite::of_key(&key).hash_function(), &key)
    }

    /// The practitioner id this key would be registered as.
    pub fn practitioner_id(&self) -> PractitionerId {
        let key = self.public_key();
        PractitionerId::from_key(CryptoSuite::of_key(&key).hash_function(), &key)
    }

    /// Writes the key to a new file with mode 0600; refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |error| KeyFileError::Io {
            path: path.display().to_string(),
            error,
        };
        let json = KeyFileJson {
            scheme: self.public_key().scheme().into(),
            secret_seed: hex::encode(self.secret.seed()),
            public_key: self.public_key().to_text(),
        };
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| io(std::io::Error::other(e)))? + "\n";
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads a key file, refusing files others can read and files whose public key does not match.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let name = path.display().to_string();
        let io = |error| KeyFileError::Io {
            path: name.clone(),
            error,
        };
        let malformed = |problem: String| KeyFileError::Malformed {
            path: name.clone(),
            problem,
        };
        let metadata = std::fs::metadata(path).map_err(io)?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: name.clone(),
                mode,
            });
        }
        if metadata.len() > KEY_FILE_BYTES_MAX {
            return Err(malformed(format!("larger than {KEY_FILE_BYTES_MAX} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let json: KeyFileJson =
            serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
        let seed: [u8; 32] = hex::decode(&json.secret_seed)
            .map_err(|e| malformed(format!("secret_seed: {e}")))?
            .try_into()
            .map_err(|_| malformed("secret_seed must be 32 bytes".into()))?;
        let secret = match json.scheme.as_str() {
            "ed25519" => SecretKey::from_seed(seed),
            // SM2's secret scalar (a chain does not accept SM2 keys yet).
            "sm2" => SecretKey::sm2_from_bytes(seed)
                .map_err(|e| malformed(format!("secret_seed: {e}")))?,
            other => return Err(malformed(format!("unknown scheme {other:?}"))),
        };
        let key = Self { secret };
        if key.public_key().to_text() != json.public_key {
            return Err(malformed("public_key does not match secret_seed".into()));
        }
        Ok(key)
    }
}

/// The example consortium's genesis file and its key files by label.
pub type ExampleConsortium = (
    medledger_genesis::GenesisFile,
    std::collections::BTreeMap<String, KeyFile>,
);

/// The genesis crate's example city consortium with a key for every label
/// it needs: fresh ones from OS entropy, or the published deterministic
/// example keys (for documentation and tests only: anyone can sign with them).
pub fn example_consortium(
    chain_id: &str,
    published_example_keys: bool,
) -> Result<ExampleConsortium, KeyFileError> {
    example_consortium_on(CryptoSuite::Ed25519Sha256, chain_id, published_example_keys)
}

/// [`example_consortium`] on `suite`: its keys of that suite's scheme.
pub fn example_consortium_on(
    suite: CryptoSuite,
    chain_id: &str,
    published_example_keys: bool,
) -> Result<ExampleConsortium, KeyFileError> {
    use medledger_genesis::example::{
        city_consortium_on, key_labels_on, key_suite, published_example_key_on,
    };
    let mut keys = std::collections::BTreeMap::new();
    for label in key_labels_on(suite) {
        let key = if published_example_keys {
            KeyFile::from_secret(published_example_key_on(suite, &label))
        } else {
            KeyFile::generate_for(key_suite(suite, &label))?
        };
        keys.insert(label, key);
    }
    let file = city_consortium_on(suite, chain_id, |label| match keys.get(label) {
        Some(key) => key.public_key(),
        None => unreachable!("key_labels_on() lists every label the template asks for"),
    });
    Ok((file, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let key = KeyFile::generate().unwrap();
        key.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(KeyFile::load(&path).unwrap().public_key(), key.public_key());
        assert!(key.save(&path).is_err(), "never overwrites a key");
    }

    #[test]
    fn open_files_and_mismatched_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        KeyFile::generate().unwrap().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            KeyFile::load(&path),
            Err(KeyFileError::TooOpen { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let other = KeyFile::generate().unwrap().public_key().to_text();
        let tampered: String = text
            .lines()
            .map(|l| {
                if l.contains("public_key") {
                    format!("  \"public_key\": \"{other}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, tampered).unwrap();
        assert!(matches!(
            KeyFile::load(&path),
            Err(KeyFileError::Malformed { .. })
        ));
    }

    /// A key file says its key's scheme: an SM2 key is written and read
    /// back as SM2, never read as an Ed25519 seed (its public key would not
    /// match).
    #[test]
    fn an_sm2_key_file_round_trips_as_sm2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sm2.json");
        let key = KeyFile::from_secret(SecretKey::sm2_from_bytes([7; 32]).unwrap());
        key.save(&path).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("\"scheme\": \"sm2\"")
        );
        let loaded = KeyFile::load(&path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(loaded.secret().ed25519_seed(), None);
        // Relabelled as Ed25519, the file no longer matches its public key.
        let relabelled = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"sm2\"", "\"ed25519\"");
        let other = dir.path().join("relabelled.json");
        std::fs::write(&other, relabelled).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            KeyFile::load(&other),
            Err(KeyFileError::Malformed { .. })
        ));
    }

    #[test]
    fn two_generated_keys_differ() {
        assert_ne!(
            KeyFile::generate().unwrap().public_key(),
            KeyFile::generate().unwrap().public_key()
        );
    }
}
