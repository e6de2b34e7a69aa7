//! `medledger patient …` and `medledger hospital …`: the people's commands,
//! built on the SDK against any node's HTTP API. Output is for a person;
//! `--json` prints one JSON document for scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use medledger_client_sdk::api;
use medledger_client_sdk::{
    AccessAnswer, Client, Identity, KeyFile, LightClient, TermsBuilder, TxBuilder, TxReceipt,
};
use medledger_contracts::Hash32;
use medledger_contracts::encoding::HashFunction;
use medledger_contracts::transaction::Signer;
use medledger_contracts::types::{
    Category, DelegateRole, EmergencyReason, Grantee, GroupId, InstitutionId, LegalBasis,
    LicencePolicy, PatientId, PractitionerId, Purpose, ReviewFinding, SensitiveClass, Timestamp,
    TxHash,
};
use medledger_genesis::{Genesis, GenesisFile};
use serde_json::json;

/// Where and as whom.
#[derive(Args, Debug)]
pub struct Connection {
    /// A node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8645")]
    node: String,
    /// The consortium's genesis file (the light client trusts nothing else).
    #[arg(long)]
    genesis: PathBuf,
    /// Your key file.
    #[arg(long)]
    key: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Whose records an access without a grant reads, and from whom.
#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// The patient's id.
    #[arg(long)]
    patient: String,
    /// Who holds the records.
    #[arg(long)]
    holder: String,
    /// A category (repeat).
    #[arg(long = "category", required = true)]
    categories: Vec<String>,
}

impl RecordsArgs {
    /// The patient, the holder and the categories (sorted, once each).
    fn parse(&self) -> anyhow::Result<(PatientId, InstitutionId, Vec<Category>)> {
        let mut categories = self
            .categories
            .iter()
            .map(|c| category(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        categories.sort();
        categories.dedup();
        Ok((
            PatientId(hash(&self.patient, "--patient")?),
            institution(&self.holder)?,
            categories,
        ))
    }
}

/// What a grant or consent request covers.
#[derive(Args, Debug)]
pub struct TermsArgs {
    /// Grant to this institution (any of its practitioners).
    #[arg(long, conflicts_with = "to_practitioner")]
    to_institution: Option<String>,
    /// Grant to this practitioner only (their id, 64 hex).
    #[arg(long, conflicts_with = "to_group")]
    to_practitioner: Option<String>,
    /// Grant to a group of members (a medical alliance, `gov groups`):
    /// each member's practitioners, as the group stands at each request.
    #[arg(long, conflicts_with = "to_institution")]
    to_group: Option<String>,
    /// A category (repeat): lab-reports, imaging, prescriptions,
    /// discharge-summaries, diagnoses, procedures, allergies, immunizations,
    /// clinical-notes, full-record.
    #[arg(long = "category", required = true)]
    categories: Vec<String>,
    /// An institution that may release (repeat; default: any holder).
    #[arg(long = "holder")]
    holders: Vec<String>,
    /// treatment, referral, continuity-of-care, consultation, insurance-claim, research.
    #[arg(long, default_value = "treatment")]
    purpose: String,
    /// Days the grant lasts.
    #[arg(long, default_value_t = 30)]
    days: u64,
    /// The notice shown to the patient (its SHA-256 goes on the ledger).
    #[arg(long, default_value = "")]
    notice: String,
    /// Only records dated on or after this day (YYYY-MM-DD, UTC; default:
    /// from the first).
    #[arg(long)]
    records_from: Option<String>,
    /// Only records dated before this day (YYYY-MM-DD, UTC; default: up to
    /// the grant's end).
    #[arg(long)]
    records_until: Option<String>,
    /// Include records of a sensitive class (repeat): hiv, mental-health,
    /// reproductive-health, genetic. Every class not named is left out.
    #[arg(long = "include-sensitive")]
    include_sensitive: Vec<String>,
}

/// A patient's commands.
#[derive(Subcommand, Debug)]
pub enum PatientCommand {
    /// Register your key as a patient.
    Register,
    /// Grant access to your records.
    Grant {
        /// The terms.
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Revoke a grant.
    Revoke {
        /// The grant id.
        grant: String,
    },
    /// Your grants.
    Grants,
    /// Consent requests addressed to you.
    Requests,
    /// Answer a consent request.
    Answer {
        /// The request id.
        request: String,
        /// Approve (creates a grant with the requested terms).
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        approve: bool,
        /// Deny.
        #[arg(long)]
        deny: bool,
    },
    /// Appoint a guardian or proxy (a registered patient).
    Delegate {
        /// The delegate's patient id.
        #[arg(long)]
        to: String,
        /// guardian or proxy.
        #[arg(long, default_value = "proxy")]
        role: String,
        /// Days it lasts.
        #[arg(long, default_value_t = 365)]
        days: u64,
    },
    /// Everything that happened to your records and consent.
    History,
    /// Your guardians and proxies (or, with --of, those of a patient you
    /// are a guardian or proxy of), with the hash of a guardianship's
    /// evidence and the hospital that recorded it.
    Delegations {
        /// Another patient's id (you must be their guardian or proxy).
        #[arg(long)]
        of: Option<String>,
    },
    /// Fetch your own records from a member that holds them (R7.8): asks
    /// on the ledger (the request and the release show in your history),
    /// then fetches them sealed to a one-time key made here, every item
    /// checked, through the node given by --node.
    FetchOwn {
        /// Who holds them.
        #[arg(long)]
        holder: String,
        /// A category (repeat; see `grant --help`).
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
    },
}

/// A hospital's commands (signed by a practitioner, or by the institution's admin key).
#[derive(Subcommand, Debug)]
pub enum HospitalCommand {
    /// Register a practitioner (signed with the institution's admin key).
    RegisterPractitioner {
        /// The practitioner's key file (they sign their consent to it).
        #[arg(long)]
        practitioner_key: PathBuf,
        /// physician, nurse, pharmacist, technician, public-health-officer, records-officer.
        #[arg(long)]
        role: String,
        /// Their licence number (only its salted hash goes on the ledger).
        #[arg(long)]
        licence: String,
        /// The salt issued with their licence (32 hex digits; `medledger
        /// licence attest` prints it), so the hash matches the regulator's.
        /// Needed where genesis asks for attested licences; elsewhere a new
        /// one is made (and printed) if absent.
        #[arg(long)]
        licence_salt: Option<String>,
    },
    /// Ask a patient for consent.
    RequestConsent {
        /// The patient's id.
        #[arg(long)]
        patient: String,
        /// The terms asked for.
        #[command(flatten)]
        terms: TermsArgs,
    },
    /// Check, with proofs, whether a grantee may read a category from a holder now.
    Check {
        /// The patient's id.
        #[arg(long)]
        patient: String,
        /// The grantee institution (default: yours).
        #[arg(long, conflicts_with = "grantee_practitioner")]
        grantee_institution: Option<String>,
        /// The grantee practitioner id.
        #[arg(long, conflicts_with = "grantee_group")]
        grantee_practitioner: Option<String>,
        /// The grantee group (a medical alliance your institution belongs to).
        #[arg(long, conflicts_with = "grantee_institution")]
        grantee_group: Option<String>,
        /// The category.
        #[arg(long)]
        category: String,
        /// The holder.
        #[arg(long)]
        holder: String,
    },
    /// Verify one grant with its proof and certificate.
    VerifyGrant {
        /// The grant id.
        grant: String,
    },
    /// Fetch the records released under a committed, authorised request
    /// (a practitioner): sealed end to end, every item checked.
    Fetch {
        /// The access request id.
        #[arg(long)]
        request: String,
        /// Who holds the records.
        #[arg(long)]
        holder: String,
        /// Where to write them.
        #[arg(long)]
        out: PathBuf,
        /// Then hand the FHIR resources to this FHIR R4 server (your
        /// hospital's), in one transaction Bundle.
        #[arg(long, requires = "fhir_patient")]
        fhir_upload: Option<String>,
        /// Your hospital's patient the resources belong to, as a FHIR
        /// reference (e.g. `Patient?identifier=<system>|<record number>`).
        #[arg(long, requires = "fhir_upload")]
        fhir_patient: Option<String>,
    },
    /// Break the glass (a practitioner whose role genesis allows, R7.3):
    /// an audited access with no grant, flagged until a regulator reviews it.
    EmergencyAccess {
        /// Whose records, from whom.
        #[command(flatten)]
        records: RecordsArgs,
        /// patient-unconscious, life-threatening or mass-casualty.
        #[arg(long)]
        reason: String,
    },
    /// Record a patient as a minor under a guardian (a hospital's admin key,
    /// R4.7), with the consent of the patient's key, which the guardian
    /// holds for a child, and the salted hash of the evidence seen.
    RecordGuardianship {
        /// The child's key file (the guardian brings it; it signs its
        /// consent to exactly these terms).
        #[arg(long)]
        patient_key: PathBuf,
        /// The guardian's patient id.
        #[arg(long)]
        guardian: String,
        /// The day the patient comes of age (YYYY-MM-DD, UTC), at most 14
        /// years ahead.
        #[arg(long)]
        minor_until: String,
        /// The evidence's number (e.g. the birth certificate's, 出生医学证明);
        /// only its salted hash goes on the ledger.
        #[arg(long)]
        evidence: String,
        /// 16 bytes in hex, kept with the hospital's copy of the evidence; a
        /// new one is made (and printed) if absent.
        #[arg(long)]
        evidence_salt: Option<String>,
    },
    /// Read records under a legal mandate (a public-health officer, R7.5).
    PublicHealthAccess {
        /// Whose records, from whom.
        #[command(flatten)]
        records: RecordsArgs,
        /// infectious-disease-reporting, public-health-emergency,
        /// vaccine-adverse-event or occupational-disease-reporting.
        #[arg(long)]
        legal_basis: String,
        /// The case reference (only its salted hash goes on the ledger).
        #[arg(long)]
        case_reference: String,
        /// 16 bytes in hex, kept with the case report: the salt of the
        /// reference's hash (a short reference could be guessed unsalted).
        #[arg(long)]
        case_salt: String,
    },
    /// Ask to read records under a grant (a practitioner).
    RequestAccess {
        /// The grant relied on.
        #[arg(long)]
        grant: String,
        /// Who holds the records.
        #[arg(long)]
        holder: String,
        /// A category (repeat).
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
        /// Why.
        #[arg(long, default_value = "treatment")]
        purpose: String,
    },
}

pub(crate) struct Session {
    pub(crate) genesis: Genesis,
    pub(crate) client: Client,
    pub(crate) key: KeyFile,
    pub(crate) json: bool,
}

impl Session {
    pub(crate) fn open(c: &Connection) -> anyhow::Result<Self> {
        let genesis = GenesisFile::read(&c.genesis)?
            .validate()
            .with_context(|| format!("{} is not a valid genesis", c.genesis.display()))?;
        let key = KeyFile::load(&c.key)?;
        let client = Client::new(&c.node, genesis.chain())?;
        Ok(Self {
            genesis,
            client,
            key,
            json: c.json,
        })
    }

    pub(crate) fn builder(&self, who: &Identity) -> TxBuilder {
        TxBuilder::new(self.genesis.chain(), who.clone())
            .for_window(self.genesis.parameters.tx_validity_window_ms)
    }

    pub(crate) fn receipt(&self, what: &str, receipt: &TxReceipt) {
        self.receipt_with(what, receipt, &[]);
    }

    /// The receipt, with `extra` (name, value when there is one, and the
    /// words before it in text): extra fields of the JSON document, or
    /// extra lines of text.
    pub(crate) fn receipt_with(
        &self,
        what: &str,
        receipt: &TxReceipt,
        extra: &[(&str, Option<String>, &str)],
    ) {
        if self.json {
            let mut document = json!({
                "tx": receipt.tx.0.to_hex(),
                "height": receipt.height,
                "outcome": &receipt.outcome,
            });
            for (name, value, _) in extra {
                document[*name] = json!(value);
            }
            println!("{document}");
            return;
        }
        println!(
            "{what}: {} at block {} (id {})",
            receipt.outcome,
            receipt.height,
            receipt.tx.0.to_hex()
        );
        for (_, value, words) in extra {
            if let Some(value) = value {
                println!("{words} {value}");
            }
        }
    }

    fn list<T: serde::Serialize>(&self, title: &str, items: &[T], line: impl Fn(&T) -> String) {
        if self.json {
            match serde_json::to_string(items) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("the list does not serialize: {e}"),
            }
            return;
        }
        println!("{title}: {}", items.len());
        for item in items {
            println!("  {}", line(item));
        }
    }
}

/// A time as a UTC date and time, to the second (in ms past year 9999,
/// which RFC 3339 cannot write).
pub(crate) fn day(ms: u64) -> String {
    const RFC3339_MS_MAX: u64 = 253_402_300_799_999;
    if ms > RFC3339_MS_MAX {
        return format!("{ms} ms after 1970");
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// An id shortened for a line of text (`--json` has them whole).
fn short(id: &api::Hex32) -> String {
    format!("{}…", &id.to_string()[..12])
}

/// One audit entry of a patient's history, in words: when, in which block,
/// what happened and who did it (ids shortened; `--json` has them whole).
fn history_line(entry: &api::AuditEntry) -> String {
    use api::AuditEvent as E;
    let what = match &entry.event {
        E::Granted { grant } => format!("granted (grant {})", short(grant)),
        E::Revoked { grant } => format!("revoked grant {}", short(grant)),
        E::Relinquished { grant } => format!("grant {} given up by its grantee", short(grant)),
        E::ConsentRequested { request } => {
            format!("consent requested (request {})", short(request))
        }
        E::ConsentAnswered { request, approved } => format!(
            "consent request {} {}",
            short(request),
            if *approved { "approved" } else { "refused" }
        ),
        E::DelegationStarted { role, .. } => format!("{role} appointed"),
        E::DelegationEnded { .. } => "guardian or proxy ended".into(),
        E::ControlChanged { change, .. } => format!("key control: {change}"),
        E::AccessDecided {
            requester,
            holder,
            kind,
            decision,
            ..
        } => {
            let decision = match decision {
                api::Decision::Authorized => "authorised".to_string(),
                api::Decision::Denied(why) => format!("denied: {why}"),
            };
            let kind = match kind {
                api::AccessKind::Emergency => "EMERGENCY access",
                api::AccessKind::PublicHealth => "public-health access",
                api::AccessKind::Grant => "access request",
            };
            format!(
                "{kind} by practitioner {} for records at {holder}: {decision}",
                short(requester)
            )
        }
        E::Released {
            holder,
            content_count,
            grant_active,
            ..
        } => format!(
            "{holder} released {content_count} resources{}",
            if *grant_active {
                ""
            } else {
                " AFTER THE GRANT HAD ENDED"
            }
        ),
        E::EmergencyReviewOverdue { .. } => "emergency access review overdue".into(),
        E::EmergencyReviewed { finding, .. } => {
            format!("emergency access reviewed: {finding}")
        }
        E::FetchRefused {
            holder,
            practitioner,
            reason,
            ..
        } => format!(
            "{holder} refused a fetch by practitioner {}: {reason}",
            short(practitioner)
        ),
        E::OwnRecordsRequested { holder, .. } => {
            format!("you asked {holder} for your own records")
        }
    };
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(entry.time_ms),
    );
    format!("{when}  block {:>6}  {what}", entry.height)
}

/// What a fetch delivered: one JSON document, or a line per resource.
fn print_fetched(
    json: bool,
    fetched: &medledger_client_sdk::records::FetchedRecords,
    handed: Option<usize>,
    fhir_upload: Option<&str>,
) {
    if json {
        let mut doc = json!({
            "dir": fetched.dir,
            "release_height": fetched.release_height,
            "items": fetched.items.iter().map(|i| json!({"path": i.path, "size": i.size, "content_hash": i.content_hash.to_hex()})).collect::<Vec<_>>(),
        });
        if fhir_upload.is_some() {
            doc["handed_to_fhir"] = json!(handed);
        }
        println!("{doc}");
        return;
    }
    println!(
        "fetched {} resources into {} (each checked against its hash; the holder's release at block {} lists the same hashes)",
        fetched.items.len(),
        fetched.dir.display(),
        fetched.release_height
    );
    for item in &fetched.items {
        println!(
            "  {:<40} {:>10} bytes  {}",
            item.path,
            item.size,
            &item.content_hash.to_hex()[..16]
        );
    }
    if let (Some(count), Some(base)) = (handed, fhir_upload) {
        println!("handed {count} FHIR resources to {base} in one transaction");
    }
}

pub(crate) fn hash(text: &str, what: &str) -> anyhow::Result<Hash32> {
    Hash32::from_hex(text.trim())
        .map_err(|_| anyhow::anyhow!("{what} must be 64 hex characters, got {text:?}"))
}

pub(crate) fn institution(text: &str) -> anyhow::Result<InstitutionId> {
    Ok(InstitutionId::new(text)?)
}

fn category(name: &str) -> anyhow::Result<Category> {
    Category::from_name(name).with_context(|| {
        format!(
            "unknown category {name:?}; one of: {}",
            Category::ALL.map(Category::name).join(", ")
        )
    })
}

/// A day given as `YYYY-MM-DD`, as its first instant (UTC).
pub(crate) fn parse_day(text: &str, flag: &str) -> anyhow::Result<Timestamp> {
    humantime::parse_rfc3339(&format!("{}T00:00:00Z", text.trim()))
        .map(Timestamp::from_system_time)
        .map_err(|_| anyhow::anyhow!("{flag} is a date, YYYY-MM-DD, got {text:?}"))
}

fn purpose(name: &str) -> anyhow::Result<Purpose> {
    Purpose::from_name(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown purpose {name:?}; one of: {}",
            Purpose::ALL.map(Purpose::name).join(", ")
        )
    })
}

fn terms(
    function: HashFunction,
    patient: PatientId,
    args: &TermsArgs,
    default_grantee: Option<Grantee>,
) -> anyhow::Result<medledger_contracts::types::GrantTerms> {
    let grantee = match (&args.to_institution, &args.to_practitioner, &args.to_group) {
        (Some(i), _, _) => Grantee::Institution(institution(i)?),
        (None, Some(p), _) => Grantee::Practitioner(PractitionerId(hash(p, "--to-practitioner")?)),
        (None, None, Some(g)) => Grantee::Group(GroupId::new(g)?),
        (None, None, None) => {
            default_grantee.context("say who: --to-institution, --to-practitioner or --to-group")?
        }
    };
    let mut builder = TermsBuilder::new(patient, grantee)
        .purpose(purpose(&args.purpose)?)
        .days(args.days)
        .notice(function, &args.notice);
    for c in &args.categories {
        builder = builder.category(category(c)?);
    }
    if let Some(from) = &args.records_from {
        builder = builder.records_from(parse_day(from, "--records-from")?);
    }
    if let Some(until) = &args.records_until {
        builder = builder.records_until(parse_day(until, "--records-until")?);
    }
    for name in &args.include_sensitive {
        builder =
            builder.include_sensitive(SensitiveClass::from_name(name).with_context(|| {
                format!(
                    "unknown sensitive class {name:?}; one of: {}",
                    SensitiveClass::ALL.map(SensitiveClass::name).join(", ")
                )
            })?);
    }
    if !args.holders.is_empty() {
        builder = builder.holders(
            args.holders
                .iter()
                .map(|h| institution(h))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
    }
    Ok(builder.build()?)
}

/// A value as its JSON, inside a line of text.
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("<{e}>"))
}

fn grant_line(g: &api::Grant) -> String {
    let t = &g.terms;
    let mut scope = String::new();
    if t.records_from_ms.is_some() || t.records_until_ms.is_some() {
        let show = |ms: Option<u64>| ms.map_or("…".to_string(), |ms| ms.to_string());
        scope += &format!(
            "  records dated {}..{}",
            show(t.records_from_ms),
            show(t.records_until_ms)
        );
    }
    if !t.sensitive_included.is_empty() {
        scope += &format!("  sensitive {}", json_text(&t.sensitive_included));
    }
    format!(
        "{}  {:<9} to {}  {}  holders {}  until {}{scope}",
        g.id,
        g.status,
        json_text(&t.grantee),
        json_text(&t.categories),
        json_text(&t.holders),
        t.expires_at_ms
    )
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `medledger patient …`.
pub fn patient(connection: Connection, command: PatientCommand) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    let me = Identity::patient(&s.key);
    let patient = s.key.patient_id();
    runtime()?.block_on(async {
        let tx = s.builder(&me);
        match command {
            PatientCommand::Register => {
                s.receipt(
                    "registered",
                    &s.client
                        .submit_and_wait(&tx.register_patient(), None)
                        .await?,
                );
                if !s.json {
                    println!("your patient id: {}", patient.0.to_hex());
                }
            }
            PatientCommand::Grant { terms: args } => {
                let terms = terms(s.genesis.chain().hash(), patient, &args, None)?;
                s.receipt(
                    "granted",
                    &s.client.submit_and_wait(&tx.grant(terms), None).await?,
                );
            }
            PatientCommand::Revoke { grant } => {
                let grant = TxHash(hash(&grant, "the grant id")?);
                s.receipt(
                    "revoked",
                    &s.client.submit_and_wait(&tx.revoke(grant), None).await?,
                );
            }
            PatientCommand::Grants => {
                let items = s.client.patient_grants(&patient, &me).await?;
                s.list("grants", &items, grant_line);
            }
            PatientCommand::Requests => {
                let items = s.client.patient_consent_requests(&patient, &me).await?;
                s.list("consent requests", &items, |r| {
                    format!(
                        "{}  from {}  {}  {}",
                        r.id,
                        json_text(&r.requested_by),
                        json_text(&r.terms.categories),
                        match &r.answer {
                            None => "unanswered".to_string(),
                            Some(answer) => format!("answered {}", answer.approved),
                        }
                    )
                });
            }
            PatientCommand::Answer {
                request,
                approve,
                deny,
            } => {
                let request = TxHash(hash(&request, "the request id")?);
                let approve = approve && !deny;
                s.receipt(
                    if approve { "approved" } else { "denied" },
                    &s.client
                        .submit_and_wait(&tx.answer_consent(request, approve), None)
                        .await?,
                );
            }
            PatientCommand::Delegate { to, role, days } => {
                let role = match role.as_str() {
                    "guardian" => DelegateRole::Guardian,
                    "proxy" => DelegateRole::Proxy,
                    other => bail!("--role is guardian or proxy, got {other:?}"),
                };
                let until = medledger_client_sdk::client::now().plus_days(days);
                let delegate = PatientId(hash(&to, "--to")?);
                s.receipt(
                    "delegated",
                    &s.client
                        .submit_and_wait(&tx.delegate(delegate, role, until), None)
                        .await?,
                );
            }
            PatientCommand::FetchOwn {
                holder,
                categories,
                out,
            } => {
                let holder = institution(&holder)?;
                let categories = categories
                    .iter()
                    .map(|c| category(c))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let receipt = s
                    .client
                    .submit_and_wait(&tx.own_records_request(holder.clone(), categories)?, None)
                    .await?;
                if !matches!(receipt.outcome, api::Outcome::Authorized) {
                    s.receipt("asked", &receipt);
                    bail!("the request was not recorded");
                }
                // The release is checked on a proof against the genesis
                // file's validators, not on this node's word.
                let light =
                    LightClient::new(s.client.clone(), &s.genesis, Duration::from_secs(60))?;
                let fetched = medledger_client_sdk::records::fetch_own_records(
                    &light, &me, receipt.tx, holder, &out,
                )
                .await?;
                print_fetched(s.json, &fetched, None, None);
            }
            PatientCommand::History => {
                let items = s.client.patient_history(&patient, &me).await?;
                s.list("history", &items, history_line);
            }
            PatientCommand::Delegations { of } => {
                let whose = match of {
                    Some(id) => PatientId(hash(&id, "--of")?),
                    None => patient,
                };
                let items = s.client.patient_delegations(&whose, &me).await?;
                s.list("guardians and proxies", &items, |d| {
                    format!(
                        "{}  {} {}  {} until {}{}{}",
                        d.id,
                        d.role,
                        d.delegate,
                        if d.active { "active" } else { "ended" },
                        day(d.expires_at_ms),
                        d.recorded_by
                            .as_ref()
                            .map(|h| format!("  recorded by {h}"))
                            .unwrap_or_default(),
                        d.evidence_hash
                            .as_ref()
                            .map(|e| format!("  evidence {e}"))
                            .unwrap_or_default(),
                    )
                });
            }
        }
        Ok(())
    })
}

/// Runs `medledger hospital …`. `as_institution`: sign with the
/// institution's admin key instead of as a practitioner.
pub fn hospital(
    connection: Connection,
    as_institution: Option<String>,
    command: HospitalCommand,
) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    let me = match &as_institution {
        Some(id) => Identity::institution(institution(id)?, &s.key),
        None => Identity::practitioner(&s.key),
    };
    runtime()?.block_on(async {
        let tx = s.builder(&me);
        match command {
            HospitalCommand::RegisterPractitioner { practitioner_key, role, licence, licence_salt } => {
                if as_institution.is_none() {
                    bail!("registering a practitioner is signed with the institution's admin key: add --as-institution <id>");
                }
                let practitioner = KeyFile::load(Path::new(&practitioner_key))?;
                let role = medledger_genesis::parse_role(&role)?;
                let salt = match licence_salt {
                    Some(text) => crate::licence::salt_from_hex(&text, "--licence-salt")?,
                    None if s.genesis.parameters.practitioner_licences == LicencePolicy::Attested => bail!(
                        "this consortium acts on attested licences: give --licence-salt, the salt issued with the licence"
                    ),
                    None => {
                        let salt = medledger_client_sdk::new_salt()?;
                        eprintln!("licence salt: {} (keep it with the licence)", hex::encode(salt));
                        salt
                    }
                };
                let licence = medledger_client_sdk::licence_hash(s.genesis.chain().hash(), &salt, licence.trim());
                let receipt = s
                    .client
                    .submit_and_wait(&tx.register_practitioner(&practitioner, role, licence), None)
                    .await?;
                s.receipt("registered", &receipt);
                if !s.json {
                    println!("practitioner id: {}", practitioner.practitioner_id().0.to_hex());
                }
            }
            HospitalCommand::RequestConsent { patient, terms: args } => {
                let patient = PatientId(hash(&patient, "--patient")?);
                let default = own_institution(&s, &me).await?.map(Grantee::Institution);
                let terms = terms(s.genesis.chain().hash(), patient, &args, default)?;
                s.receipt("consent requested", &s.client.submit_and_wait(&tx.request_consent(terms), None).await?);
            }
            HospitalCommand::Check { patient, grantee_institution, grantee_practitioner, grantee_group, category: c, holder } => {
                let patient = PatientId(hash(&patient, "--patient")?);
                let grantee = match (grantee_institution, grantee_practitioner, grantee_group) {
                    (Some(i), _, _) => Grantee::Institution(institution(&i)?),
                    (None, Some(p), _) => Grantee::Practitioner(PractitionerId(hash(&p, "--grantee-practitioner")?)),
                    (None, None, Some(g)) => Grantee::Group(GroupId::new(&g)?),
                    (None, None, None) => Grantee::Institution(
                        own_institution(&s, &me).await?.context("say which grantee: --grantee-institution")?,
                    ),
                };
                let light = LightClient::new(s.client.clone(), &s.genesis, Duration::from_secs(60))?;
                let answer = light.check_access(&patient, &grantee, category(&c)?, &institution(&holder)?, &me).await?;
                match answer {
                    AccessAnswer::Allowed(g) => {
                        if s.json {
                            println!("{}", json!({"allowed": true, "grant": g.id.0.to_hex(), "height": g.height}));
                        } else {
                            println!(
                                "ALLOWED under grant {} (verified: certificate and state proof at block {}, expires {} ms)",
                                g.id.0.to_hex(),
                                g.height,
                                g.record.terms.expires_at.0
                            );
                        }
                    }
                    AccessAnswer::NotFound { listed, verified_not_covering } => {
                        if s.json {
                            println!("{}", json!({"allowed": false, "listed": listed, "verified_not_covering": verified_not_covering}));
                        } else {
                            println!(
                                "NOT ALLOWED: no active grant covers it ({listed} grants listed, {verified_not_covering} matching ones verified and found not to cover it now)"
                            );
                        }
                    }
                }
            }
            HospitalCommand::VerifyGrant { grant } => {
                let grant = TxHash(hash(&grant, "the grant id")?);
                let light = LightClient::new(s.client.clone(), &s.genesis, Duration::from_secs(60))?;
                let g = light.verify_grant(&grant, &me).await?;
                if s.json {
                    println!("{}", json!({"grant": g.id.0.to_hex(), "status": g.status.name(), "height": g.height}));
                } else {
                    println!("grant {} is {} (verified at block {})", g.id.0.to_hex(), g.status.name(), g.height);
                }
            }
            HospitalCommand::Fetch {
                request,
                holder,
                out,
                fhir_upload,
                fhir_patient,
            } => {
                let request = TxHash(hash(&request, "--request")?);
                let fetched = medledger_client_sdk::records::fetch_records(&s.client, &me, request, institution(&holder)?, &out).await?;
                let handed = match (&fhir_upload, &fhir_patient) {
                    (Some(base), Some(patient)) => Some(
                        medledger_client_sdk::records::hand_to_fhir(&fetched, &request, base, patient).await?,
                    ),
                    _ => None,
                };
                print_fetched(s.json, &fetched, handed, fhir_upload.as_deref());
            }
            HospitalCommand::EmergencyAccess { records, reason } => {
                let (patient, holder, categories) = records.parse()?;
                let reason = named(&EMERGENCY_REASONS, EmergencyReason::name, &reason, "--reason")?;
                let tx = tx.emergency_access(
                    patient,
                    holder,
                    medledger_contracts::encoding::BoundedVec::new(categories)
                        .map_err(|c| anyhow::anyhow!("{} categories is too many", c.len()))?,
                    reason,
                );
                s.receipt("emergency access", &s.client.submit_and_wait(&tx, None).await?);
            }
            HospitalCommand::PublicHealthAccess { records, legal_basis, case_reference, case_salt } => {
                let salt = crate::licence::salt_from_hex(&case_salt, "--case-salt")?;
                let (patient, holder, categories) = records.parse()?;
                let basis = named(&LEGAL_BASES, LegalBasis::name, &legal_basis, "--legal-basis")?;
                let tx = tx.public_health_access(
                    patient,
                    holder,
                    categories,
                    basis,
                    medledger_client_sdk::case_reference_hash(
                        s.genesis.chain().hash(),
                        &salt,
                        &case_reference,
                    ),
                )?;
                s.receipt("public-health access", &s.client.submit_and_wait(&tx, None).await?);
            }
            HospitalCommand::RecordGuardianship { patient_key, guardian, minor_until, evidence, evidence_salt } => {
                if as_institution.is_none() {
                    bail!("a guardianship is recorded with the hospital's admin key: add --as-institution <id>");
                }
                let child = KeyFile::load(&patient_key)?;
                let guardian = PatientId(hash(&guardian, "--guardian")?);
                let until = parse_day(&minor_until, "--minor-until")?;
                let (salt, made) = match evidence_salt {
                    Some(text) => (crate::licence::salt_from_hex(&text, "--evidence-salt")?, false),
                    None => (medledger_client_sdk::new_salt()?, true),
                };
                let evidence_hash = medledger_client_sdk::tx::guardianship_evidence_hash(
                    s.genesis.chain().hash(),
                    &salt,
                    evidence.trim(),
                );
                let receipt = s
                    .client
                    .submit_and_wait(&tx.record_guardianship(&child, guardian, until, evidence_hash), None)
                    .await?;
                s.receipt_with(
                    "guardianship recorded",
                    &receipt,
                    &[
                        ("evidence_hash", Some(evidence_hash.to_hex()), "evidence hash:"),
                        (
                            "evidence_salt",
                            made.then(|| hex::encode(salt)),
                            "evidence salt (keep it with the hospital's copy of the evidence):",
                        ),
                    ],
                );
            }
            HospitalCommand::RequestAccess { grant, holder, categories, purpose: p } => {
                if !matches!(me.signer, Signer::Practitioner(_)) {
                    bail!("access requests are signed by a practitioner: drop --as-institution");
                }
                let categories = categories.iter().map(|c| category(c)).collect::<anyhow::Result<Vec<_>>>()?;
                let request = tx.access_request(TxHash(hash(&grant, "--grant")?), institution(&holder)?, categories, purpose(&p)?)?;
                s.receipt("access request", &s.client.submit_and_wait(&request, None).await?);
            }
        }
        Ok(())
    })
}

const EMERGENCY_REASONS: [EmergencyReason; 3] = [
    EmergencyReason::PatientUnconscious,
    EmergencyReason::LifeThreatening,
    EmergencyReason::MassCasualty,
];
const LEGAL_BASES: [LegalBasis; 4] = [
    LegalBasis::InfectiousDiseaseReporting,
    LegalBasis::PublicHealthEmergency,
    LegalBasis::VaccineAdverseEvent,
    LegalBasis::OccupationalDiseaseReporting,
];
const FINDINGS: [ReviewFinding; 2] = [ReviewFinding::Justified, ReviewFinding::Unjustified];

/// The largest review record `medledger review` hashes (a scanned report).
const REVIEW_RECORD_BYTES_MAX: u64 = 256 << 20;

/// A file's bytes, refused before reading if it is larger than `max`.
pub(crate) fn read_bounded(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > max {
        bail!("{} is {size} bytes; at most {max} are read", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The value of `all` whose wire name is `text`, or an error listing them.
fn named<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    text: &str,
    what: &str,
) -> anyhow::Result<T> {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{what} {text:?} is not one of: {}",
                all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
            )
        })
}

/// Runs `medledger review`: a regulator institution's finding on an
/// emergency access (R7.4), with the hash of the review record it keeps.
pub fn review(
    connection: Connection,
    as_institution: String,
    access: String,
    finding: String,
    record: PathBuf,
) -> anyhow::Result<()> {
    let s = Session::open(&connection)?;
    let me = Identity::institution(institution(&as_institution)?, &s.key);
    let finding = named(&FINDINGS, ReviewFinding::name, &finding, "--finding")?;
    let bytes = read_bounded(&record, REVIEW_RECORD_BYTES_MAX)?;
    let access = TxHash(hash(&access, "--access")?);
    runtime()?.block_on(async {
        let tx = s.builder(&me).emergency_review(
            access,
            finding,
            medledger_client_sdk::review_record_hash(s.genesis.chain().hash(), &bytes),
        );
        s.receipt("reviewed", &s.client.submit_and_wait(&tx, None).await?);
        anyhow::Ok(())
    })
}

/// The institution the signer belongs to, from the node's public records.
async fn own_institution(s: &Session, me: &Identity) -> anyhow::Result<Option<InstitutionId>> {
    Ok(match &me.signer {
        Signer::Institution(i) => Some(i.clone()),
        Signer::Practitioner(p) => {
            let record: api::Practitioner = s
                .client
                .get_as(&format!("/v1/practitioners/{}", p.0.to_hex()))
                .await?;
            Some(institution(&record.institution)?)
        }
        _ => None,
    })
}
