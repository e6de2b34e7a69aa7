//! `medledger gov …`: a validator's institution proposes changes to the
//! consortium, votes on them and follows them (rules R4.8–R4.10), signed
//! with its admin key through the SDK.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use medledger_client_sdk::{Identity, api};
use medledger_contracts::encoding::{BoundedString, BoundedVec};
use medledger_contracts::transaction::GovernanceAction;
use medledger_contracts::types::{GroupId, Timestamp, TxHash};
use medledger_genesis::InstitutionEntry;
use serde_json::json;

use crate::people::{Connection, Session, hash, institution, read_bounded, runtime};

/// What to do.
#[derive(Subcommand, Debug)]
pub enum GovCommand {
    /// Propose a change; your own vote counts for it. Prints the proposal id.
    Propose {
        /// The change.
        #[command(subcommand)]
        action: GovAction,
        /// Days the proposal stays open for votes.
        #[arg(long, default_value_t = 7)]
        days: u64,
    },
    /// Vote on an open proposal.
    Vote {
        /// The proposal id.
        proposal: String,
        /// Vote for it.
        #[arg(long, required_unless_present = "reject", conflicts_with = "reject")]
        approve: bool,
        /// Vote against it.
        #[arg(long)]
        reject: bool,
    },
    /// Where a proposal stands: its votes and outcome.
    Status {
        /// The proposal id.
        proposal: String,
    },
    /// The consortium's proposals, open ones first.
    List {
        /// Only those still collecting votes.
        #[arg(long)]
        open: bool,
    },
    /// The groups of members (medical alliances) and their members.
    Groups,
}

/// A change to the consortium.
#[derive(Subcommand, Debug)]
pub enum GovAction {
    /// Admit a new member, described as in genesis's `institutions` list (a JSON file).
    Admit {
        /// The new member's entry (id, name, kind, codes, keys, voting power).
        entry: PathBuf,
    },
    /// Suspend a member: it may not act until reinstated.
    Suspend {
        /// The member.
        institution: String,
    },
    /// Lift a suspension.
    Reinstate {
        /// The member.
        institution: String,
    },
    /// Remove a member for good.
    Remove {
        /// The member.
        institution: String,
    },
    /// Set a member's voting power (0 makes it an observer).
    SetVotingPower {
        /// The member.
        institution: String,
        /// Its new power.
        power: u64,
    },
    /// Create a group of members (a medical alliance, or an internet
    /// hospital with its physical hospital) or set its members anew; a
    /// grant to the group reaches each member's practitioners.
    SetGroup {
        /// The group's id (a-z, 0-9, '-').
        group: String,
        /// A member institution (repeat; none dissolves the group).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Correct a member's unified social credit code and practice licence
    /// reference (rule R4.18); a regulator then attests them anew.
    SetCodes {
        /// The member.
        institution: String,
        /// Its unified social credit code (统一社会信用代码).
        #[arg(long)]
        legal_code: String,
        /// Its practice licence's reference (医疗机构执业许可证).
        #[arg(long)]
        licence_ref: String,
    },
}

impl GovAction {
    fn ledger(&self, s: &Session) -> anyhow::Result<GovernanceAction> {
        Ok(match self {
            GovAction::Admit { entry } => {
                let text = read_bounded(entry, 64 * 1024)?;
                let entry: InstitutionEntry = serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not an institution entry", entry.display()))?;
                GovernanceAction::Admit(entry.admission_spec(s.genesis.crypto_suite)?)
            }
            GovAction::Suspend { institution: i } => GovernanceAction::Suspend(institution(i)?),
            GovAction::Reinstate { institution: i } => GovernanceAction::Reinstate(institution(i)?),
            GovAction::Remove { institution: i } => GovernanceAction::Remove(institution(i)?),
            GovAction::SetVotingPower {
                institution: i,
                power,
            } => GovernanceAction::SetVotingPower {
                institution: institution(i)?,
                power: *power,
            },
            GovAction::SetGroup { group, members } => {
                let mut members = members
                    .iter()
                    .map(|m| institution(m))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                members.sort();
                members.dedup();
                GovernanceAction::SetGroup {
                    group: GroupId::new(group)?,
                    members: BoundedVec::new(members)
                        .map_err(|m| anyhow::anyhow!("{} members is too many", m.len()))?,
                }
            }
            GovAction::SetCodes {
                institution: i,
                legal_code,
                licence_ref,
            } => GovernanceAction::SetCodes {
                institution: institution(i)?,
                legal_code: BoundedString::new(legal_code.trim())
                    .map_err(|e| anyhow::anyhow!("--legal-code: {e}"))?,
                licence_ref: BoundedString::new(licence_ref.trim())
                    .map_err(|e| anyhow::anyhow!("--licence-ref: {e}"))?,
            },
        })
    }
}

/// Runs `medledger gov …` as `as_institution` (its admin key is `--key`).
pub fn gov(
    connection: Connection,
    as_institution: String,
    command: GovCommand,
) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    let me = Identity::institution(institution(&as_institution)?, &s.key);
    runtime()?.block_on(async {
        match command {
            GovCommand::Propose { action, days } => {
                let action = action.ledger(&s)?;
                let now = Timestamp::from_system_time(std::time::SystemTime::now());
                let expires_at = Timestamp(now.0.saturating_add(days.saturating_mul(86_400_000)));
                let tx = s.builder(&me).propose(action, expires_at);
                let receipt = s.client.submit_and_wait(&tx, None).await?;
                s.receipt("proposed", &receipt);
                if !s.json && receipt.outcome == medledger_client_sdk::TxOutcome::Applied {
                    println!(
                        "proposal id: {} (others vote with `medledger gov vote {}`)",
                        receipt.tx.0.to_hex(),
                        receipt.tx.0.to_hex()
                    );
                }
            }
            GovCommand::Vote {
                proposal,
                approve,
                reject: _,
            } => {
                let proposal = TxHash(hash(&proposal, "the proposal id")?);
                let tx = s.builder(&me).vote(proposal, approve);
                let receipt = s.client.submit_and_wait(&tx, None).await?;
                s.receipt(
                    if approve {
                        "voted for"
                    } else {
                        "voted against"
                    },
                    &receipt,
                );
                print_proposal(&s, &s.client.proposal(&proposal).await?);
            }
            GovCommand::Status { proposal } => {
                let proposal = TxHash(hash(&proposal, "the proposal id")?);
                print_proposal(&s, &s.client.proposal(&proposal).await?);
            }
            GovCommand::List { open } => {
                let list: api::ProposalList = s.client.get_as("/v1/proposals").await?;
                let items = list
                    .items
                    .iter()
                    .filter(|p| !open || p.status == api::ProposalStatus::Open);
                if s.json {
                    println!(
                        "{}",
                        json!({"items": items.collect::<Vec<_>>(), "truncated": list.truncated})
                    );
                } else {
                    for p in items {
                        print_proposal(&s, p);
                    }
                    if list.truncated {
                        println!("(some proposals left out: `gov status <id>` shows any)");
                    }
                }
            }
            GovCommand::Groups => {
                let list: api::GroupList = s.client.get_as("/v1/groups").await?;
                if s.json {
                    println!("{}", json!(list));
                } else {
                    for g in &list.items {
                        println!(
                            "{}: {} (set at block {})",
                            g.id,
                            if g.members.is_empty() {
                                "dissolved".to_string()
                            } else {
                                g.members.join(", ")
                            },
                            g.set_at.height
                        );
                    }
                }
            }
        }
        Ok(())
    })
}

fn print_proposal(s: &Session, p: &api::Proposal) {
    if s.json {
        println!("{}", json!(p));
        return;
    }
    let status = match (p.status, p.carried_at) {
        (api::ProposalStatus::Carried, Some(height)) => format!("carried at block {height}"),
        (status, _) => json!(status).as_str().unwrap_or("?").to_string(),
    };
    let power = p
        .action
        .voting_power
        .map(|v| format!(" (voting power {v})"))
        .unwrap_or_default();
    let subject = match (&p.action.institution, &p.action.group, &p.action.members) {
        (Some(institution), _, _) => match (&p.action.legal_code, &p.action.licence_ref) {
            (Some(code), Some(licence)) => {
                format!("{institution} (credit code {code}, licence {licence})")
            }
            _ => institution.clone(),
        },
        (None, Some(group), Some(members)) => format!("{group} = [{}]", members.join(", ")),
        _ => "?".to_string(),
    };
    println!(
        "proposal {}: {} {subject}{power}, by {}, open until {}: {status}",
        p.id,
        p.action.kind,
        p.proposer,
        crate::people::day(p.expires_at_ms)
    );
    for vote in &p.votes {
        println!(
            "  {:<28} {}",
            vote.institution,
            if vote.approve { "for" } else { "against" }
        );
    }
}
