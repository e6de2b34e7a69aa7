//! The state a chain starts from: the writes genesis makes.

use super::*;

/// A practitioner present at genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisPractitioner {
    /// Their institution.
    pub institution: InstitutionId,
    /// Their key.
    pub key: PublicKey,
    /// Their role.
    pub role: PractitionerRole,
    /// Hash of their licence number.
    pub licence_hash: crate::encoding::Hash32,
}

/// A licence a regulator attests in genesis [R4.12].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GenesisLicence {
    /// The attesting regulator (a regulator in genesis).
    pub attested_by: InstitutionId,
    /// What it attests.
    pub terms: LicenceTerms,
    /// The genesis time.
    pub attested_at: Timestamp,
}

/// Why a genesis state could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisStateError {
    /// Two entries share an id.
    #[error("duplicate {0}")]
    Duplicate(String),
    /// An entry refers to something missing or unsuitable.
    #[error("{0}")]
    Invalid(String),
}

/// The state at height 0: parameters, founding institutions, validator set,
/// initial practitioners and the licences attested for them.
pub fn genesis_writes(
    function: crate::encoding::HashFunction,
    parameters: &LedgerParameters,
    institutions: &[InstitutionSpec],
    practitioners: &[GenesisPractitioner],
    licences: &[GenesisLicence],
) -> Result<WriteSet, GenesisStateError> {
    let empty = crate::state::MemoryStore::default();
    let mut st = Overlay::new(&empty);
    let invalid = |why: String| GenesisStateError::Invalid(why);
    let mut seen = std::collections::BTreeSet::new();
    let mut transports = std::collections::BTreeSet::new();
    for spec in institutions {
        if !seen.insert(spec.id.clone()) {
            return Err(GenesisStateError::Duplicate(format!(
                "institution id {}",
                spec.id
            )));
        }
    }
    for spec in institutions {
        if let InstitutionKind::InternetHospital { parent } = &spec.kind
            && !institutions
                .iter()
                .any(|p| &p.id == parent && p.kind == InstitutionKind::Hospital)
        {
            return Err(invalid(format!(
                "internet hospital {} names parent {parent}, which is not a hospital here",
                spec.id
            )));
        }
        if spec.voting_power > crate::constants::VOTING_POWER_MAX {
            return Err(invalid(format!(
                "institution {} has voting power above {}",
                spec.id,
                crate::constants::VOTING_POWER_MAX
            )));
        }
        if let Some(key) = spec.transport_key {
            if !transports.insert(key) {
                return Err(GenesisStateError::Duplicate(format!(
                    "transport key (institution {})",
                    spec.id
                )));
            }
            st.put(&StateKey::TransportKey(key), &spec.id);
        }
        st.put(
            &StateKey::Institution(spec.id.clone()),
            &InstitutionRecord {
                spec: spec.clone(),
                status: MemberStatus::Active,
                admitted_at: 0,
            },
        );
    }
    let mut validators: Vec<Validator> = institutions
        .iter()
        .filter(|s| s.voting_power > 0)
        .map(|s| Validator {
            institution: s.id.clone(),
            node_key: s.node_key,
            power: s.voting_power,
        })
        .collect();
    validators.sort_by(|a, b| a.institution.cmp(&b.institution));
    let validators = BoundedVec::new(validators).map_err(|v| {
        invalid(format!(
            "{} validators, more than {}",
            v.len(),
            crate::constants::VALIDATORS_MAX
        ))
    })?;
    let set = ValidatorSet { validators };
    if set.total_power() == 0 {
        return Err(invalid(
            "no institution has voting power: a chain needs validators".into(),
        ));
    }
    st.put(
        &StateKey::ValidatorSet,
        &ValidatorSetRecord {
            current: set,
            scheduled: None,
        },
    );
    let mut seen_practitioners = std::collections::BTreeSet::new();
    for p in practitioners {
        let id = PractitionerId::from_key(function, &p.key);
        if !seen_practitioners.insert(id) {
            return Err(GenesisStateError::Duplicate(format!(
                "practitioner key {:?}",
                p.key
            )));
        }
        if !institutions.iter().any(|i| i.id == p.institution) {
            return Err(invalid(format!(
                "practitioner {id} names unknown institution {}",
                p.institution
            )));
        }
        st.put(
            &StateKey::Practitioner(id),
            &PractitionerRecord {
                institution: p.institution.clone(),
                key: p.key,
                role: p.role,
                licence_hash: p.licence_hash,
                status: MemberStatus::Active,
            },
        );
    }
    for licence in licences {
        let hash = licence.terms.licence_hash;
        crate::transaction::check_licence_terms(&licence.terms)
            .map_err(|e| invalid(format!("licence {hash}: {e}")))?;
        if !institutions
            .iter()
            .any(|i| i.id == licence.attested_by && i.kind == InstitutionKind::Regulator)
        {
            return Err(invalid(format!(
                "licence {hash} is attested by {}, which is not a regulator here",
                licence.attested_by
            )));
        }
        if let Some(unknown) = licence
            .terms
            .institutions
            .iter()
            .find(|named| !institutions.iter().any(|i| &i.id == *named))
        {
            return Err(invalid(format!(
                "licence {hash} names unknown institution {unknown}"
            )));
        }
        for bound in licence.terms.practitioners.iter() {
            let named = practitioners
                .iter()
                .find(|p| PractitionerId::from_key(function, &p.key) == *bound);
            let Some(p) = named else {
                return Err(invalid(format!(
                    "licence {hash} binds practitioner {bound}, who is not in genesis"
                )));
            };
            if p.licence_hash != hash
                || !licence
                    .terms
                    .institutions
                    .iter()
                    .any(|i| *i == p.institution)
            {
                return Err(invalid(format!(
                    "licence {hash} binds practitioner {bound}, who is not registered under it by an institution it names"
                )));
            }
        }
        let key = StateKey::Licence(hash);
        if st.get::<LicenceRecord>(&key).ok().flatten().is_some() {
            return Err(GenesisStateError::Duplicate(format!("licence {hash}")));
        }
        st.put(
            &key,
            &LicenceRecord {
                terms: licence.terms.clone(),
                attested_by: licence.attested_by.clone(),
                attested_at: BlockRef {
                    height: 0,
                    time: licence.attested_at,
                },
                status: LicenceStatus::Active,
                status_changed: None,
            },
        );
    }
    st.put(&StateKey::Parameters, parameters);
    Ok(st.into_writes())
}
