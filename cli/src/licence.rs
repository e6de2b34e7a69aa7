//! `medledger licence …`: a regulator attests practitioners' licences and
//! member institutions' licences and suspends, reinstates or revokes them
//! (rules R4.12–R4.14, R4.16–R4.17), signed with its admin key through the
//! SDK; anyone may look one up.

use anyhow::{Context, bail};
use clap::Subcommand;
use medledger_client_sdk::{Identity, TxOutcome, api, licence_hash, new_salt};
use medledger_contracts::constants::PRACTICE_SCOPES_MAX;
use medledger_contracts::encoding::{BoundedString, BoundedVec, Hash32};
use medledger_contracts::types::{
    InstitutionLicenceTerms, LicenceKind, LicenceStatus, LicenceTerms, PracticeScope,
    PractitionerId, Timestamp,
};

const DAY_MS: u64 = 86_400_000;

use crate::people::{Connection, Session, day, hash, institution, runtime};

/// What to do.
#[derive(Subcommand, Debug)]
pub enum LicenceCommand {
    /// Attest a practitioner's licence (or renew or amend its attestation).
    /// Prints the licence hash, and the salt when one was made: the salt is
    /// issued with the licence, and each institution registers the
    /// practitioner with the same number and salt.
    Attest {
        /// The licence number (only its salted hash goes on the ledger).
        #[arg(long)]
        number: String,
        /// The licence's salt, 32 hex digits; a new one is made if absent.
        #[arg(long)]
        salt: Option<String>,
        /// physician, nurse, pharmacist, technician, public-health-post or
        /// records-post (public-health and records officers' posts).
        #[arg(long)]
        kind: String,
        /// A member institution where it may be used (repeat for 多点执业).
        #[arg(long = "institution", required = true)]
        institutions: Vec<String>,
        /// A scope of practice code, e.g. internal-medicine (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A registration to bind to the licence (its practitioner id, as
        /// `hospital register-practitioner` printed it; repeat for each
        /// institution). Only bound registrations may act on the licence:
        /// attest again with the full list when the holder registers at a
        /// new institution.
        #[arg(long = "practitioner")]
        practitioners: Vec<String>,
        /// Years it is attested for, from the start of today (UTC).
        #[arg(long, default_value_t = 5)]
        years: u64,
    },
    /// Bind registrations to an attested licence (the practitioner ids a
    /// hospital's `register-practitioner` printed), keeping its terms and
    /// validity as they are on the ledger.
    Bind {
        /// The licence hash.
        licence: String,
        /// A registration to bind (repeat).
        #[arg(long = "practitioner", required = true)]
        practitioners: Vec<String>,
    },
    /// Suspend an active licence (暂停执业): its holder stops at the next block.
    Suspend {
        /// The licence hash.
        licence: String,
    },
    /// Lift a suspension.
    Reinstate {
        /// The licence hash.
        licence: String,
    },
    /// Revoke a licence for good (吊销).
    Revoke {
        /// The licence hash.
        licence: String,
    },
    /// A licence's attestation and status, as the node's state has it.
    Show {
        /// The licence hash.
        licence: String,
    },
    /// Attest a member institution's unified social credit code and
    /// practice licence as checked (or renew or amend the attestation):
    /// both must be the member's on the ledger (as admitted, or as the
    /// consortium last set them, R4.18). From then on its
    /// practitioners act only while the attestation is in force (R4.16).
    AttestInstitution {
        /// The member's id.
        institution: String,
        /// Its unified social credit code (统一社会信用代码), as checked.
        #[arg(long)]
        legal_code: String,
        /// Its practice licence's reference (医疗机构执业许可证), as checked.
        #[arg(long)]
        licence_ref: String,
        /// A licensed department or service code, e.g. internal-medicine
        /// (repeatable). None given: the scopes the ledger has, if it has
        /// an attestation.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Years it is attested for, from the start of today (UTC).
        #[arg(long, default_value_t = 5)]
        years: u64,
    },
    /// Suspend a member institution's licence: its practitioners stop at
    /// the next block.
    SuspendInstitution {
        /// The member's id.
        institution: String,
    },
    /// Lift the suspension of an institution's licence.
    ReinstateInstitution {
        /// The member's id.
        institution: String,
    },
    /// Revoke an institution's licence for good (吊销).
    RevokeInstitution {
        /// The member's id.
        institution: String,
    },
    /// A member institution's codes and its licence's attestation.
    ShowInstitution {
        /// The member's id.
        institution: String,
    },
}

/// From the start of today (UTC) for `years` of 365¼ days: a regulator's
/// clock a little ahead of the proposers' does not leave an attestation
/// not yet valid.
fn validity(years: u64) -> (Timestamp, Timestamp) {
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let valid_from = Timestamp(now.0 - now.0 % DAY_MS);
    (
        valid_from,
        valid_from.plus_days(years.saturating_mul(1461) / 4),
    )
}

/// Scope codes, canonical (sorted, no duplicates).
fn scope_codes(
    scopes: &[String],
) -> anyhow::Result<BoundedVec<PracticeScope, PRACTICE_SCOPES_MAX>> {
    let mut codes = scopes
        .iter()
        .map(|c| PracticeScope::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    codes.sort();
    codes.dedup();
    BoundedVec::new(codes).map_err(|_| anyhow::anyhow!("too many --scope"))
}

/// The terms of `current` as the ledger has them, with `practitioners`
/// bound as well.
fn bound_terms(current: &api::Licence, practitioners: &[String]) -> anyhow::Result<LicenceTerms> {
    let hex = |h: &api::Hex32| hash(&h.to_string(), "a licence's field");
    let kind = LicenceKind::from_name(current.kind.name())
        .with_context(|| format!("the node names an unknown licence kind {}", current.kind))?;
    let scopes = current
        .scopes
        .iter()
        .map(|c| PracticeScope::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    let institutions = current
        .institutions
        .iter()
        .map(|i| institution(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut bound = current
        .practitioners
        .iter()
        .map(|p| Ok(PractitionerId(hex(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for p in practitioners {
        bound.push(PractitionerId(hash(p, "--practitioner")?));
    }
    bound.sort();
    bound.dedup();
    Ok(LicenceTerms {
        licence_hash: hex(&current.licence_hash)?,
        kind,
        scopes: BoundedVec::new(scopes).map_err(|_| anyhow::anyhow!("too many scopes"))?,
        institutions: BoundedVec::new(institutions)
            .map_err(|_| anyhow::anyhow!("too many institutions"))?,
        practitioners: BoundedVec::new(bound)
            .map_err(|_| anyhow::anyhow!("a licence binds at most eight registrations"))?,
        valid_from: Timestamp(current.valid_from_ms),
        valid_until: Timestamp(current.valid_until_ms),
    })
}

/// Prints the receipt as `what`; an error when the ledger did not apply it
/// (a rejection is not a success for a script that runs this).
fn applied(
    s: &Session,
    what: &str,
    receipt: &medledger_client_sdk::TxReceipt,
) -> anyhow::Result<()> {
    s.receipt(what, receipt);
    if receipt.outcome != TxOutcome::Applied {
        bail!("the ledger did not apply it: {}", receipt.outcome);
    }
    Ok(())
}

/// A 16-byte salt (a licence's, a case reference's, a document's) from
/// its hex text.
pub(crate) fn salt_from_hex(text: &str, what: &str) -> anyhow::Result<[u8; 16]> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .with_context(|| format!("{what} is 16 bytes in hex (32 hex digits)"))
}

/// Runs `medledger licence …`; `as_institution` is the regulator (its admin
/// key is `--key`), needed by all but `show`.
pub fn licence(
    connection: Connection,
    as_institution: Option<String>,
    command: LicenceCommand,
) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    runtime()?.block_on(async {
        let regulator = || -> anyhow::Result<Identity> {
            let Some(id) = &as_institution else {
                bail!("this is signed with a regulator's admin key: add --as-institution <id>");
            };
            Ok(Identity::institution(institution(id)?, &s.key))
        };
        let status_change = |licence: &str, status| -> anyhow::Result<_> {
            let licence = hash(licence, "the licence hash")?;
            Ok(s.builder(&regulator()?).set_licence_status(licence, status))
        };
        let institution_status = |member: &str, status| -> anyhow::Result<_> {
            Ok(s.builder(&regulator()?).set_institution_licence_status(institution(member)?, status))
        };
        match command {
            LicenceCommand::Attest { number, salt, kind, institutions, scopes, practitioners, years } => {
                let (salt, made) = match salt {
                    Some(text) => (salt_from_hex(&text, "--salt")?, false),
                    None => (new_salt()?, true),
                };
                let kind = LicenceKind::from_name(&kind).with_context(|| {
                    let all: Vec<_> = LicenceKind::ALL.iter().map(|k| k.name()).collect();
                    format!("--kind {kind:?} is not one of: {}", all.join(", "))
                })?;
                let mut named = institutions.iter().map(|i| institution(i)).collect::<anyhow::Result<Vec<_>>>()?;
                named.sort();
                named.dedup();
                let mut bound = practitioners
                    .iter()
                    .map(|p| Ok(PractitionerId(hash(p, "--practitioner")?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                bound.sort();
                bound.dedup();
                let (valid_from, valid_until) = validity(years);
                let licence = licence_hash(s.genesis.chain().hash(), &salt, number.trim());
                let terms = LicenceTerms {
                    licence_hash: licence,
                    kind,
                    scopes: scope_codes(&scopes)?,
                    institutions: BoundedVec::new(named)
                        .map_err(|_| anyhow::anyhow!("too many --institution"))?,
                    practitioners: BoundedVec::new(bound)
                        .map_err(|_| anyhow::anyhow!("too many --practitioner"))?,
                    valid_from,
                    valid_until,
                };
                let receipt = s.client.submit_and_wait(&s.builder(&regulator()?).attest_licence(terms), None).await?;
                if receipt.outcome != TxOutcome::Applied {
                    bail!("the ledger did not attest the licence: {}", receipt.outcome);
                }
                s.receipt_with(
                    "attested",
                    &receipt,
                    &[
                        ("licence_hash", Some(licence.to_hex()), "licence hash:"),
                        (
                            "salt",
                            made.then(|| hex::encode(salt)),
                            "salt (issue it with the licence; institutions register the practitioner with it):",
                        ),
                    ],
                );
            }
            LicenceCommand::Bind { licence, practitioners } => {
                let hash = hash(&licence, "the licence hash")?;
                let current: api::Licence =
                    s.client.get_as(&format!("/v1/licences/{}", hash.to_hex())).await?;
                let terms = bound_terms(&current, &practitioners)?;
                let receipt = s.client.submit_and_wait(&s.builder(&regulator()?).attest_licence(terms), None).await?;
                if receipt.outcome != TxOutcome::Applied {
                    bail!("the ledger did not bind them: {}", receipt.outcome);
                }
                s.receipt("bound", &receipt);
            }
            LicenceCommand::Suspend { licence } => {
                let tx = status_change(&licence, LicenceStatus::Suspended)?;
                applied(&s, "suspended", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::Reinstate { licence } => {
                let tx = status_change(&licence, LicenceStatus::Active)?;
                applied(&s, "reinstated", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::Revoke { licence } => {
                let tx = status_change(&licence, LicenceStatus::Revoked)?;
                applied(&s, "revoked", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::AttestInstitution { institution: member, legal_code, licence_ref, scopes, years } => {
                let (valid_from, valid_until) = validity(years);
                let code = |text: &str, what: &str| {
                    BoundedString::new(text.trim()).map_err(|e| anyhow::anyhow!("{what}: {e}"))
                };
                let member = institution(&member)?;
                // A renewal without --scope keeps the scopes attested.
                let scopes = if scopes.is_empty() {
                    let current: api::Institution =
                        s.client.get_as(&format!("/v1/institutions/{}", member.as_str())).await?;
                    current.licence.map(|l| l.scopes).unwrap_or_default()
                } else {
                    scopes
                };
                let terms = InstitutionLicenceTerms {
                    institution: member,
                    legal_code: code(&legal_code, "--legal-code")?,
                    licence_ref: code(&licence_ref, "--licence-ref")?,
                    scopes: scope_codes(&scopes)?,
                    valid_from,
                    valid_until,
                };
                let receipt = s.client.submit_and_wait(&s.builder(&regulator()?).attest_institution(terms), None).await?;
                if receipt.outcome != TxOutcome::Applied {
                    bail!("the ledger did not attest the institution's licence: {}", receipt.outcome);
                }
                s.receipt("attested", &receipt);
            }
            LicenceCommand::SuspendInstitution { institution } => {
                let tx = institution_status(&institution, LicenceStatus::Suspended)?;
                applied(&s, "suspended", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::ReinstateInstitution { institution } => {
                let tx = institution_status(&institution, LicenceStatus::Active)?;
                applied(&s, "reinstated", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::RevokeInstitution { institution } => {
                let tx = institution_status(&institution, LicenceStatus::Revoked)?;
                applied(&s, "revoked", &s.client.submit_and_wait(&tx, None).await?)?;
            }
            LicenceCommand::ShowInstitution { institution: member } => {
                let answer: api::Institution =
                    s.client.get_as(&format!("/v1/institutions/{}", institution(&member)?.as_str())).await?;
                if s.json {
                    println!("{}", serde_json::to_string(&answer)?);
                } else {
                    println!("{} ({}): credit code {}, licence {}", answer.id, answer.name, answer.legal_code, answer.licence_ref);
                    match &answer.licence {
                        None => println!("licence not attested by a regulator (its practitioners act on the consortium's admission alone)"),
                        Some(l) => println!(
                            "licence {}{} (attested by {} at block {}), valid {} to {}; scopes: {}; {}",
                            l.status,
                            match (&l.status_changed_by, l.status_changed_at_height) {
                                (Some(by), Some(at)) => format!(" since block {at}, by {by}"),
                                _ => String::new(),
                            },
                            l.attested_by,
                            l.attested_at_height,
                            day(l.valid_from_ms),
                            day(l.valid_until_ms),
                            if l.scopes.is_empty() { "-".to_string() } else { l.scopes.join(", ") },
                            answer.licence_problem.as_deref().unwrap_or("in force"),
                        ),
                    }
                }
            }
            LicenceCommand::Show { licence } => {
                let licence: Hash32 = hash(&licence, "the licence hash")?;
                let answer: api::Licence = s
                    .client
                    .get_as(&format!("/v1/licences/{}", licence.to_hex()))
                    .await?;
                if s.json {
                    println!("{}", serde_json::to_string(&answer)?);
                } else {
                    println!(
                        "{} licence {}: {} (attested by {} at block {}), valid {} to {}, at {}; scopes: {}; registrations: {}",
                        answer.kind,
                        answer.licence_hash,
                        answer.status,
                        answer.attested_by,
                        answer.attested_at_height,
                        day(answer.valid_from_ms),
                        day(answer.valid_until_ms),
                        answer.institutions.join(", "),
                        if answer.scopes.is_empty() { "-".to_string() } else { answer.scopes.join(", ") },
                        if answer.practitioners.is_empty() {
                            "none yet".to_string()
                        } else {
                            answer.practitioners.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        },
                    );
                }
            }
        }
        anyhow::Ok(())
    })
}
