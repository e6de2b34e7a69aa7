//! Reports from a replayed ledger: a summary, one patient's history (what
//! PIPL's right to know asks for), per institution, and anomalies; as JSON,
//! CSV and one self-contained HTML page (inline SVG charts, no network).
//!
//! Figures are gathered as each block is replayed, with the state at that
//! point at hand, so the audit entries themselves are not kept — only those
//! of the patients whose reports were asked for. Memory grows with the
//! number of patients, practitioners × days and anomalies found, not with
//! the number of entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::state::ReplayState;
use medledger_contracts::records::{
    AccessKind, AccessKindTag, AccessRecord, AuditEntry, AuditEvent, Decision, LedgerParameters,
    OwnAccessRecord,
};
use medledger_contracts::state::StateKey;
use medledger_contracts::types::{InstitutionId, PatientId, PractitionerId, RequestId, Timestamp};
use serde_json::{Value, json};

const DAY_MS: u64 = 86_400_000;

/// Figures gathered while replaying.
#[derive(Default)]
pub struct Reports {
    counts: BTreeMap<&'static str, u64>,
    patients: BTreeMap<PatientId, u64>,
    entry_count: u64,
    /// Whose entries are kept, for their own reports.
    reported: BTreeSet<PatientId>,
    /// Those patients' entries.
    entries: Vec<AuditEntry>,
    accesses_by_holder: BTreeMap<String, u64>,
    accesses_by_category: BTreeMap<String, u64>,
    releases_unmatched: Vec<Value>,
    releases_after_the_grant_ended: Vec<Value>,
    institutions: BTreeMap<String, BTreeMap<&'static str, u64>>,
    requests_by_requester_day: BTreeMap<(String, u64), u64>,
    denied_by_requester: BTreeMap<String, u64>,
    /// Refused fetches per (practitioner, reason code).
    refused_fetches: BTreeMap<(String, &'static str), u64>,
    emergencies: BTreeMap<RequestId, Emergency>,
    accesses_by_day: BTreeMap<u64, u64>,
    /// Accesses asked for, by the requester's institution.
    accesses_by_requesting_institution: BTreeMap<String, u64>,
    /// Each requester's institution (practitioner id in hex → institution).
    institution_of: BTreeMap<String, String>,
    /// Up to [`EXAMPLES_MAX`] denied requests per requester: (height, tx).
    denied_examples: BTreeMap<String, Vec<(u64, String)>>,
    last_time: Timestamp,
}

/// Evidence kept per requester and finding: enough to open the cases,
/// bounded so memory does not grow with a flood of denials.
const EXAMPLES_MAX: usize = 5;

/// An emergency access, followed until its review (dropped once reviewed
/// in time: it can no longer be a finding).
struct Emergency {
    at: Timestamp,
    height: u64,
    reviewed: Option<Timestamp>,
    requester: PractitionerId,
    patient: PatientId,
    holder: InstitutionId,
}

/// Findings of one kind the HTML page lists before "and N more" (the JSON
/// keeps them all).
const FINDINGS_SHOWN_MAX: usize = 50;

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

impl Reports {
    /// Reports that keep the entries of `patients` for their own reports.
    pub fn for_patients(patients: &[PatientId]) -> Self {
        Self {
            reported: patients.iter().copied().collect(),
            ..Self::default()
        }
    }

    /// Takes in one replayed block: its header and audit entries, with the
    /// replayed state after it (an access's decision, patient and
    /// categories never change once recorded).
    pub fn observe(
        &mut self,
        ledger: &ReplayState,
        header: &medledger_contracts::block::BlockHeader,
        entries: &[AuditEntry],
    ) {
        self.last_time = header.time;
        for entry in entries {
            bump(&mut self.patients, entry.patient);
            self.entry_count += 1;
            let day = entry.at.time.0 / DAY_MS;
            match &entry.event {
                AuditEvent::Granted { .. } => bump(&mut self.counts, "grants"),
                AuditEvent::Revoked { .. } => bump(&mut self.counts, "revocations"),
                AuditEvent::Relinquished { .. } => bump(&mut self.counts, "relinquished"),
                AuditEvent::ConsentRequested { .. } => bump(&mut self.counts, "consent requests"),
                AuditEvent::ConsentAnswered { approved, .. } => bump(
                    &mut self.counts,
                    if *approved {
                        "consent requests approved"
                    } else {
                        "consent requests refused"
                    },
                ),
                AuditEvent::DelegationStarted { .. } => bump(&mut self.counts, "delegations"),
                AuditEvent::DelegationEnded { .. } => bump(&mut self.counts, "delegations ended"),
                AuditEvent::ControlChanged { change, .. } => bump(&mut self.counts, change.name()),
                AuditEvent::EmergencyReviewOverdue { .. } => {
                    bump(&mut self.counts, "emergency reviews overdue");
                }
                AuditEvent::OwnRecordsRequested { holder, .. } => {
                    bump(&mut self.counts, "own records requests");
                    self.count_at(holder, "own records requests as holder");
                }
                AuditEvent::AccessDecided {
                    request,
                    requester,
                    holder,
                    kind,
                    decision,
                } => {
                    let requester_id = *requester;
                    let requester = requester.0.to_hex();
                    bump(&mut self.accesses_by_day, day);
                    bump(
                        &mut self.requests_by_requester_day,
                        (requester.clone(), day),
                    );
                    self.count_at(holder, "accesses asked of it as holder");
                    bump(&mut self.accesses_by_holder, holder.as_str().to_string());
                    if let Some(a) = Self::access(ledger, request) {
                        for c in a.categories.iter() {
                            bump(&mut self.accesses_by_category, c.name().to_string());
                        }
                        let institution = a.requester_institution.as_str().to_string();
                        bump(
                            &mut self.accesses_by_requesting_institution,
                            institution.clone(),
                        );
                        self.institution_of.insert(requester.clone(), institution);
                    }
                    match decision {
                        Decision::Authorized => bump(&mut self.counts, "accesses authorised"),
                        Decision::Denied(_) => {
                            bump(&mut self.counts, "accesses denied");
                            bump(&mut self.denied_by_requester, requester.clone());
                            let examples =
                                self.denied_examples.entry(requester.clone()).or_default();
                            if examples.len() < EXAMPLES_MAX {
                                examples.push((entry.at.height, request.0.to_hex()));
                            }
                        }
                    }
                    match kind {
                        AccessKindTag::Emergency => {
                            bump(&mut self.counts, "emergency accesses");
                            self.emergencies.insert(
                                *request,
                                Emergency {
                                    at: entry.at.time,
                                    height: entry.at.height,
                                    reviewed: None,
                                    requester: requester_id,
                                    patient: entry.patient,
                                    holder: holder.clone(),
                                },
                            );
                        }
                        AccessKindTag::PublicHealth => {
                            bump(&mut self.counts, "public-health accesses")
                        }
                        AccessKindTag::Grant => {}
                    }
                }
                AuditEvent::Released {
                    holder,
                    request,
                    grant_active,
                    ..
                } => {
                    bump(&mut self.counts, "releases");
                    self.count_at(holder, "releases");
                    // Each must rest on an authorised request of the same
                    // patient (impossible otherwise by the rules, so one
                    // found is an alarm); one after the grant ended is
                    // flagged.
                    let mut at = json!({
                        "request": request.0.to_hex(),
                        "height": entry.at.height,
                        "holder": holder.as_str(),
                        "patient": entry.patient.0.to_hex(),
                    });
                    if let Some(a) = Self::access(ledger, request) {
                        at["requester"] = json!(a.requester.0.to_hex());
                        at["requester_institution"] = json!(a.requester_institution.as_str());
                    }
                    let own = || {
                        ledger
                            .get::<OwnAccessRecord>(&StateKey::OwnAccess(*request))
                            .ok()
                            .flatten()
                    };
                    match Self::access(ledger, request) {
                        Some(a)
                            if a.decision == Decision::Authorized && a.patient == entry.patient => {
                        }
                        // A patient's own records, released to them (R7.8).
                        None if own()
                            .is_some_and(|o| o.patient == entry.patient && o.holder == *holder) =>
                        {
                            bump(&mut self.counts, "releases to the patient");
                        }
                        _ => self.releases_unmatched.push(at.clone()),
                    }
                    if !grant_active {
                        self.releases_after_the_grant_ended.push(at);
                    }
                }
                AuditEvent::EmergencyReviewed { request, .. } => {
                    bump(&mut self.counts, "emergency reviews");
                    let limit = u64::from(
                        ledger
                            .get::<LedgerParameters>(&StateKey::Parameters)
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                            .emergency_review_days,
                    ) * DAY_MS;
                    let in_time = self
                        .emergencies
                        .get(request)
                        .is_some_and(|e| entry.at.time.0.saturating_sub(e.at.0) <= limit);
                    if in_time {
                        self.emergencies.remove(request);
                    } else if let Some(e) = self.emergencies.get_mut(request) {
                        e.reviewed = Some(entry.at.time);
                    }
                }
                AuditEvent::FetchRefused {
                    holder,
                    practitioner,
                    reason,
                    ..
                } => {
                    bump(&mut self.counts, "fetches refused");
                    self.count_at(holder, "fetches refused as holder");
                    bump(
                        &mut self.refused_fetches,
                        (practitioner.0.to_hex(), reason.code()),
                    );
                }
            }
            if self.reported.contains(&entry.patient) {
                self.entries.push(entry.clone());
            }
        }
    }

    /// Counts one `figure` for the institution `holder`.
    fn count_at(&mut self, holder: &InstitutionId, figure: &'static str) {
        bump(
            self.institutions
                .entry(holder.as_str().to_string())
                .or_default(),
            figure,
        );
    }

    fn access(ledger: &ReplayState, request: &RequestId) -> Option<AccessRecord> {
        ledger.get(&StateKey::Access(*request)).ok().flatten()
    }

    /// The anomalies an auditor must look at.
    pub fn anomalies(&self, ledger: &ReplayState) -> Value {
        let params: LedgerParameters = ledger
            .get(&StateKey::Parameters)
            .ok()
            .flatten()
            .unwrap_or_default();
        let limit = u64::from(params.emergency_review_days) * DAY_MS;
        let unreviewed: Vec<Value> = self
            .emergencies
            .iter()
            .filter(|(_, e)| match e.reviewed {
                None => self.last_time.0.saturating_sub(e.at.0) > limit,
                Some(r) => r.0.saturating_sub(e.at.0) > limit,
            })
            .map(|(id, e)| {
                json!({
                    "request": id.0.to_hex(),
                    "at_ms": e.at.0,
                    "height": e.height,
                    "reviewed_at_ms": e.reviewed.map(|r| r.0),
                    "requester": e.requester.0.to_hex(),
                    "requester_institution": self.institution_of.get(&e.requester.0.to_hex()),
                    "patient": e.patient.0.to_hex(),
                    "holder": e.holder.as_str(),
                })
            })
            .collect();
        // A requester whose daily volume jumps: at least 10 requests and three
        // times the median of their earlier days.
        let mut by_requester: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for ((requester, day), count) in &self.requests_by_requester_day {
            by_requester
                .entry(requester)
                .or_default()
                .push((*day, *count));
        }
        let mut jumps = Vec::new();
        for (requester, days) in &by_requester {
            for k in 3..days.len() {
                let mut earlier: Vec<u64> = days[..k].iter().map(|d| d.1).collect();
                earlier.sort_unstable();
                let median = earlier[earlier.len() / 2].max(1);
                if days[k].1 >= 10 && days[k].1 >= 3 * median {
                    jumps.push(json!({"requester": requester, "day": days[k].0, "requests": days[k].1, "median_before": median}));
                }
            }
        }
        json!({
            "emergency_accesses_not_reviewed_in_time": unreviewed,
            "emergency_review_days": params.emergency_review_days,
            "denied_requests_by_requester": self.denied_by_requester,
            "refused_fetches_by_practitioner": self
                .refused_fetches
                .iter()
                .map(|((practitioner, reason), count)| {
                    json!({"practitioner": practitioner, "reason": reason, "count": count})
                })
                .collect::<Vec<_>>(),
            "requester_volume_jumps": jumps,
            "releases_without_an_authorised_request": self.releases_unmatched,
            "releases_after_the_grant_ended": self.releases_after_the_grant_ended,
            "requester_institutions": self.institution_of,
            "denied_examples": self
                .denied_examples
                .iter()
                .map(|(p, examples)| {
                    let list: Vec<Value> = examples
                        .iter()
                        .map(|(height, tx)| json!({"height": height, "tx": tx}))
                        .collect();
                    (p.clone(), Value::Array(list))
                })
                .collect::<serde_json::Map<String, Value>>(),
        })
    }

    /// The summary.
    pub fn summary(&self, ledger: &ReplayState) -> Value {
        json!({
            "height": ledger.height(),
            "audit_entries": self.entry_count,
            "patients_with_audit_entries": self.patients.len(),
            "counts": self.counts,
            "institutions": self.institutions,
        })
    }

    /// Everything that happened to one patient, in time order.
    pub fn patient(&self, ledger: &ReplayState, patient: &PatientId) -> Vec<Value> {
        self.entries
            .iter()
            .filter(|e| e.patient == *patient)
            .map(|e| {
                let mut row = json!({
                    "index": e.index,
                    "height": e.at.height,
                    "time_ms": e.at.time.0,
                    "tx": e.tx.0.to_hex(),
                    "event": event_name(&e.event),
                });
                if let AuditEvent::FetchRefused {
                    practitioner,
                    reason,
                    ..
                } = &e.event
                {
                    row["practitioner"] = json!(practitioner.0.to_hex());
                    row["refusal"] = json!(reason.code());
                }
                if let AuditEvent::AccessDecided { request, .. }
                | AuditEvent::Released { request, .. }
                | AuditEvent::FetchRefused { request, .. } = &e.event
                    && let Some(a) = Self::access(ledger, request)
                {
                    row["requester_institution"] = json!(a.requester_institution.as_str());
                    row["holder"] = json!(a.holder.as_str());
                    row["categories"] =
                        json!(a.categories.iter().map(|c| c.name()).collect::<Vec<_>>());
                    row["basis"] = json!(match a.kind {
                        AccessKind::Grant { .. } => "grant",
                        AccessKind::Emergency { .. } => "emergency",
                        AccessKind::PublicHealth { .. } => "public health",
                    });
                    row["decision"] = json!(match &a.decision {
                        Decision::Authorized => "authorised".to_string(),
                        Decision::Denied(r) => format!("denied: {r}"),
                    });
                } else if let AuditEvent::OwnRecordsRequested { request, .. }
                | AuditEvent::Released { request, .. } = &e.event
                    && let Some(own) = ledger
                        .get::<OwnAccessRecord>(&StateKey::OwnAccess(*request))
                        .ok()
                        .flatten()
                {
                    // The patient's own records (R7.8): no requester, no decision.
                    row["holder"] = json!(own.holder.as_str());
                    row["categories"] =
                        json!(own.categories.iter().map(|c| c.name()).collect::<Vec<_>>());
                    row["basis"] = json!("own records");
                }
                row
            })
            .collect()
    }

    /// Writes summary.json, anomalies.json, institutions.csv, report.html
    /// and, for each patient asked for, patient-<id>.json and .csv.
    pub fn write(
        &self,
        ledger: &ReplayState,
        dir: &Path,
        patients: &[PatientId],
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let summary = self.summary(ledger);
        let anomalies = self.anomalies(ledger);
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_string_pretty(&summary)?,
        )?;
        std::fs::write(
            dir.join("anomalies.json"),
            serde_json::to_string_pretty(&anomalies)?,
        )?;
        let mut csv = String::from("institution,figure,count\n");
        for (institution, figures) in &self.institutions {
            for (figure, count) in figures {
                let _ = writeln!(csv, "{institution},{figure},{count}");
            }
        }
        std::fs::write(dir.join("institutions.csv"), csv)?;
        for patient in patients {
            let rows = self.patient(ledger, patient);
            let id = patient.0.to_hex();
            std::fs::write(
                dir.join(format!("patient-{id}.json")),
                serde_json::to_string_pretty(&rows)?,
            )?;
            let mut csv = String::from(
                "index,height,time_ms,event,requester_institution,holder,categories,basis,decision,tx\n",
            );
            for r in &rows {
                let field = |k: &str| {
                    r[k].as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| r[k].to_string().trim_matches('"').replace("null", ""))
                };
                let _ = writeln!(
                    csv,
                    "{},{},{},{},{},{},\"{}\",{},\"{}\",{}",
                    r["index"],
                    r["height"],
                    r["time_ms"],
                    field("event"),
                    field("requester_institution"),
                    field("holder"),
                    r["categories"]
                        .as_array()
                        .map(|c| c
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" "))
                        .unwrap_or_default(),
                    field("basis"),
                    field("decision"),
                    field("tx")
                );
            }
            std::fs::write(dir.join(format!("patient-{id}.csv")), csv)?;
        }
        std::fs::write(
            dir.join("report.html"),
            self.html(ledger, &summary, &anomalies),
        )?;
        Ok(())
    }

    fn html(&self, ledger: &ReplayState, summary: &Value, anomalies: &Value) -> String {
        let by_day: BTreeMap<String, u64> = self
            .accesses_by_day
            .iter()
            .map(|(day, n)| (date(day * DAY_MS)[..10].to_string(), *n))
            .collect();
        let mut counts = String::new();
        if let Some(map) = summary["counts"].as_object() {
            for (k, v) in map {
                let _ = write!(
                    counts,
                    "<tr><td>{} {}</td><td>{v}</td></tr>",
                    figure_zh(k),
                    escape(k)
                );
            }
        }
        let findings = findings(anomalies);
        let mut items = String::new();
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &findings {
            let n = shown.entry(f.kind).or_default();
            *n += 1;
            if *n > FINDINGS_SHOWN_MAX {
                continue;
            }
            let _ = write!(
                items,
                "<li><p lang=\"zh-CN\">{}</p><p lang=\"en\">{}</p><p class=\"evidence\">证据 Evidence ({}): {}</p></li>",
                escape(&f.zh),
                escape(&f.en),
                escape(f.rule),
                f.evidence
                    .iter()
                    .map(|e| format!("<code>{}</code>", escape(e)))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        for (kind, n) in &shown {
            if *n > FINDINGS_SHOWN_MAX {
                let _ = write!(
                    items,
                    "<li><p>……以及另外 {more} 条同类事项（{kind}），完整列表见 anomalies.json。 And {more} more of this kind ({kind}); anomalies.json lists them all.</p></li>",
                    more = n - FINDINGS_SHOWN_MAX,
                    kind = escape(kind),
                );
            }
        }
        let findings_html = if findings.is_empty() {
            "<p>未发现需要关注的事项。 No findings.</p>".to_string()
        } else {
            format!("<ol class=\"findings\">{items}</ol>")
        };
        // Denials per practitioner, named with their institution.
        let mut denied: BTreeMap<String, u64> = BTreeMap::new();
        for (p, n) in &self.denied_by_requester {
            *denied
                .entry(practitioner_label(p, self.institution_of.get(p)))
                .or_default() += n;
        }
        // Requests per day, per requesting institution and for the busiest
        // practitioners: trends, drawn as one line each over the same days.
        let mut by_institution_day: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut by_practitioner_day: BTreeMap<String, BTreeMap<u64, u64>> = BTreeMap::new();
        for ((requester, day), n) in &self.requests_by_requester_day {
            let institution = self
                .institution_of
                .get(requester)
                .cloned()
                .unwrap_or_else(|| "?".into());
            *by_institution_day
                .entry(institution)
                .or_default()
                .entry(*day)
                .or_default() += n;
            *by_practitioner_day
                .entry(practitioner_label(
                    requester,
                    self.institution_of.get(requester),
                ))
                .or_default()
                .entry(*day)
                .or_default() += n;
        }
        let mut busiest: Vec<(u64, String)> = by_practitioner_day
            .iter()
            .map(|(p, days)| (days.values().sum(), p.clone()))
            .collect();
        busiest.sort_by(|a, b| b.cmp(a));
        busiest.truncate(TRENDS_PRACTITIONERS_MAX);
        let busiest: BTreeMap<String, BTreeMap<u64, u64>> = busiest
            .into_iter()
            .filter_map(|(_, p)| by_practitioner_day.remove(&p).map(|days| (p, days)))
            .collect();
        format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>medledger 审计报告 audit report</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#111}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px}}\
.bar{{fill:#2b6cb0}}text{{font-size:11px}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}.findings li{{margin-bottom:1em}}.findings p{{margin:0.2em 0}}\
.evidence{{color:#444;font-size:0.9em}}p[lang=en]{{color:#333}}</style></head><body>\
<h1>medledger 审计报告 <small>audit report</small></h1>\
<p lang=\"zh-CN\">自创世块重放至第 {height} 块：每个证书、签名和根均已核验。共 {entries} 条审计记录，涉及 {patients} 名患者（以假名编号表示）。</p>\
<p lang=\"en\">Replayed from genesis to height {height}: every certificate, signature and root checked. {entries} audit entries concerning {patients} patients (by pseudonymous id).</p>\
<h2>需要关注的事项 Findings ({finding_count})</h2>{findings_html}\
<h2>摘要 Summary</h2><table><tr><th>项目 figure</th><th>数量 count</th></tr>{counts}</table>\
<h2>按日调取 Accesses over time</h2>{day_chart}\
<h2>按申请机构 Accesses by requesting institution</h2>{requesting_chart}\
<h2>各申请机构每日请求 Requests per day by requesting institution</h2>{institution_trends}\
<h2>请求最多的医务人员每日请求 Requests per day of the busiest practitioners</h2>{practitioner_trends}\
<h2>按持有机构 Accesses by holder institution</h2>{holder_chart}\
<h2>按医务人员的拒绝 Denied requests by practitioner</h2>{denied_chart}\
<h2>按类别 Accesses by category</h2>{category_chart}\
<details><summary>原始数据 Raw findings (anomalies.json)</summary><pre>{anomalies}</pre></details></body></html>",
            height = ledger.height(),
            entries = self.entry_count,
            patients = self.patients.len(),
            finding_count = findings.len(),
            day_chart = bar_chart(&by_day),
            requesting_chart = bar_chart(&self.accesses_by_requesting_institution),
            institution_trends = trend_lines(&by_institution_day),
            practitioner_trends = trend_lines(&busiest),
            holder_chart = bar_chart(&self.accesses_by_holder),
            denied_chart = bar_chart(&denied),
            category_chart = bar_chart(&self.accesses_by_category),
            anomalies = escape(&serde_json::to_string_pretty(anomalies).unwrap_or_default()),
        )
    }
}

/// One finding of the report, as an inspector reads it: a sentence in
/// Chinese and in English naming who, whose records (by pseudonymous id),
/// where and when, the rule it concerns, and the evidence to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of finding (the page lists at most
    /// `FINDINGS_SHOWN_MAX` of each kind).
    pub kind: &'static str,
    /// The rule concerned, e.g. `R7.4`.
    pub rule: &'static str,
    /// The sentence in Chinese.
    pub zh: String,
    /// The sentence in English.
    pub en: String,
    /// Transaction ids and heights that show it.
    pub evidence: Vec<String>,
}

/// An id's first 12 hex characters, for a sentence (the JSON has it whole).
fn short(hex: &str) -> String {
    format!("{}…", hex.get(..12).unwrap_or(hex))
}

/// A practitioner as named in a sentence or chart: short id and institution.
fn practitioner_label(hex: &str, institution: Option<&String>) -> String {
    match institution {
        Some(i) => format!("{} ({i})", short(hex)),
        None => short(hex),
    }
}

/// A time in UTC, to the minute.
fn date(ms: u64) -> String {
    const RFC3339_MS_MAX: u64 = 253_402_300_799_999;
    if ms > RFC3339_MS_MAX {
        return format!("{ms} ms");
    }
    let text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
    )
    .to_string();
    format!("{} {} UTC", &text[..10], &text[11..16])
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("?").to_string()
}

/// The findings in `anomalies` (as [`Reports::anomalies`] gives them), as
/// sentences.
pub fn findings(anomalies: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    let list = |key: &str| anomalies[key].as_array().cloned().unwrap_or_default();
    let days = anomalies["emergency_review_days"].as_u64().unwrap_or(0);
    for e in list("emergency_accesses_not_reviewed_in_time") {
        let who = short(&text(&e, "requester"));
        let institution = e["requester_institution"].as_str().unwrap_or("?");
        let patient = short(&text(&e, "patient"));
        let holder = text(&e, "holder");
        let height = e["height"].as_u64().unwrap_or(0);
        let (zh_review, en_review) = match e["reviewed_at_ms"].as_u64() {
            Some(ms) => (
                format!("，{} 才复核", date(ms)),
                format!(", reviewed only on {}", date(ms)),
            ),
            None => ("，至今未复核".to_string(), ", still unreviewed".to_string()),
        };
        out.push(Finding {
            kind: "emergency review late",
            rule: "R7.4, R7.7",
            zh: format!(
                "第 {height} 块（{}）：{institution} 的医务人员 {who} 紧急调取了患者 {patient} 在 {holder} 的记录，未在 {days} 天内复核{zh_review}。",
                date(e["at_ms"].as_u64().unwrap_or(0))
            ),
            en: format!(
                "Block {height} ({}): practitioner {who} of {institution} made an emergency access to patient {patient}'s records at {holder}, not reviewed within {days} days{en_review}.",
                date(e["at_ms"].as_u64().unwrap_or(0))
            ),
            evidence: vec![format!("tx {}", text(&e, "request")), format!("block {height}")],
        });
    }
    for (kind, zh_what, en_what, rule) in [
        (
            "releases_without_an_authorised_request",
            "没有对应的授权请求",
            "with no authorised request behind it",
            "R7.2",
        ),
        (
            "releases_after_the_grant_ended",
            "发放时其依据（授权、紧急时限或医务人员的执业资格）已不成立",
            "after its basis (the grant, the emergency window or the practitioner's standing) had stopped holding",
            "R7.2",
        ),
    ] {
        for r in list(kind) {
            let height = r["height"].as_u64().unwrap_or(0);
            let holder = text(&r, "holder");
            let patient = short(&text(&r, "patient"));
            let to = match (r["requester"].as_str(), r["requester_institution"].as_str()) {
                (Some(p), Some(i)) => (
                    format!("{i} 的医务人员 {}", short(p)),
                    format!("practitioner {} of {i}", short(p)),
                ),
                _ => ("未知请求方".to_string(), "an unknown requester".to_string()),
            };
            out.push(Finding {
                kind,
                rule,
                zh: format!("第 {height} 块：{holder} 向{} 发放了患者 {patient} 的记录，{zh_what}。", to.0),
                en: format!("Block {height}: {holder} released patient {patient}'s records to {} {en_what}.", to.1),
                evidence: vec![format!("request {}", text(&r, "request")), format!("block {height}")],
            });
        }
    }
    if let Some(denied) = anomalies["denied_requests_by_requester"].as_object() {
        for (requester, count) in denied {
            let count = count.as_u64().unwrap_or(0);
            let institution = anomalies["requester_institutions"][requester]
                .as_str()
                .unwrap_or("?");
            let examples: Vec<String> = anomalies["denied_examples"][requester]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| format!("block {} tx {}", e["height"], text(e, "tx")))
                .collect();
            out.push(Finding {
                kind: "denied requests",
                rule: "R7.1",
                zh: format!("{institution} 的医务人员 {} 有 {count} 次调取请求被拒绝（理由见各患者的审计记录）。", short(requester)),
                en: format!("Practitioner {} of {institution} had {count} access requests denied (the reasons are in the patients' audit trails).", short(requester)),
                evidence: examples,
            });
        }
    }
    for f in list("refused_fetches_by_practitioner") {
        let practitioner = text(&f, "practitioner");
        let count = f["count"].as_u64().unwrap_or(0);
        let reason = text(&f, "reason");
        let zh_reason = match reason.as_str() {
            "not_authorized" => "不是该请求的授权请求方",
            "already_served" => "已发放过（重放）",
            "grant_not_active" => "依据已不成立",
            _ => "其他",
        };
        let (zh_of, en_of) = anomalies["requester_institutions"][practitioner.as_str()]
            .as_str()
            .map(|i| (format!("{i} 的"), format!(" of {i}")))
            .unwrap_or_default();
        out.push(Finding {
            kind: "refused fetches",
            rule: "R7.6",
            zh: format!(
                "{zh_of}医务人员 {} 有 {count} 次取件被持有机构拒绝：{zh_reason}（{reason}）。",
                short(&practitioner)
            ),
            en: format!(
                "Practitioner {}{en_of} had {count} fetches refused by the holder: {reason}.",
                short(&practitioner)
            ),
            evidence: vec![format!("practitioner {practitioner}")],
        });
    }
    for j in list("requester_volume_jumps") {
        let requester = text(&j, "requester");
        let day = date(j["day"].as_u64().unwrap_or(0).saturating_mul(DAY_MS))[..10].to_string();
        let (n, median) = (
            j["requests"].as_u64().unwrap_or(0),
            j["median_before"].as_u64().unwrap_or(0),
        );
        let institution = anomalies["requester_institutions"][requester.as_str()]
            .as_str()
            .unwrap_or("?");
        out.push(Finding {
            kind: "volume jump",
            rule: "R7.1",
            zh: format!("{day}：{institution} 的医务人员 {} 当天发起 {n} 次调取，此前日中位数为 {median}。", short(&requester)),
            en: format!("{day}: practitioner {} of {institution} made {n} access requests, against a median of {median} a day before.", short(&requester)),
            evidence: vec![format!("practitioner {requester}")],
        });
    }
    out
}

fn event_name(event: &AuditEvent) -> &'static str {
    match event {
        AuditEvent::Granted { .. } => "granted",
        AuditEvent::Revoked { .. } => "revoked",
        AuditEvent::Relinquished { .. } => "relinquished",
        AuditEvent::ConsentRequested { .. } => "consent requested",
        AuditEvent::ConsentAnswered { .. } => "consent answered",
        AuditEvent::DelegationStarted { .. } => "delegation started",
        AuditEvent::DelegationEnded { .. } => "delegation ended",
        AuditEvent::AccessDecided { .. } => "access decided",
        AuditEvent::Released { .. } => "released",
        AuditEvent::EmergencyReviewed { .. } => "emergency reviewed",
        AuditEvent::FetchRefused { .. } => "fetch refused",
        AuditEvent::ControlChanged { .. } => "account control changed",
        AuditEvent::EmergencyReviewOverdue { .. } => "emergency review overdue",
        AuditEvent::OwnRecordsRequested { .. } => "own records requested",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A summary figure's name in Chinese (empty for one not named here).
fn figure_zh(figure: &str) -> &'static str {
    match figure {
        "grants" => "授权",
        "revocations" => "撤回授权",
        "relinquished" => "被授权方放弃",
        "consent requests" => "授权请求",
        "consent requests approved" => "授权请求获同意",
        "consent requests refused" => "授权请求被拒绝",
        "delegations" => "指定监护人或代理人",
        "delegations ended" => "监护或代理结束",
        "accesses authorised" => "调取获准",
        "accesses denied" => "调取被拒",
        "emergency accesses" => "紧急调取",
        "emergency reviews" => "紧急调取复核",
        "emergency reviews overdue" => "紧急调取逾期未复核",
        "public-health accesses" => "公共卫生调取",
        "releases" => "记录发放",
        "fetches refused" => "取件被拒",
        "own records requests" => "患者调取本人病历",
        "own records requests as holder" => "作为持有方收到的本人病历调取",
        "releases to the patient" => "发放给患者本人",
        "recovery_contacts_changed" => "恢复联系人变更",
        "recovery_approved" => "恢复获批准",
        "key_replacement_scheduled" => "密钥替换待生效",
        "key_rotated" => "密钥已轮换",
        "pending_changes_cancelled" => "待生效变更已取消",
        _ => "",
    }
}

/// Practitioners whose daily requests the page draws (the busiest).
const TRENDS_PRACTITIONERS_MAX: usize = 10;

/// One line per series of (day, count), over the same days, as inline SVG:
/// a label, the line, and its largest day.
fn trend_lines(series: &BTreeMap<String, BTreeMap<u64, u64>>) -> String {
    let days: BTreeSet<u64> = series.values().flat_map(|d| d.keys().copied()).collect();
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return "<p>(none)</p>".into();
    };
    let span = (last - first).max(1) as f64;
    let max = series
        .values()
        .flat_map(|d| d.values().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let row = 28;
    let mut svg = format!(
        "<svg role=\"img\" width=\"720\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        series.len() * row + 18
    );
    for (i, (label, counts)) in series.iter().enumerate() {
        let base = (i * row + row) as f64;
        // Every day of the span, zero where there were none.
        let points: Vec<String> = (first..=last)
            .map(|day| {
                let n = counts.get(&day).copied().unwrap_or(0) as f64;
                let x = 220.0 + (day - first) as f64 / span * 440.0;
                let y = base - n / max * (row as f64 - 6.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let peak = counts.values().copied().max().unwrap_or(0);
        // A dot on each day with requests, so that a single day shows.
        for (day, n) in counts {
            let x = 220.0 + (day - first) as f64 / span * 440.0;
            let y = base - *n as f64 / max * (row as f64 - 6.0);
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"#2b6cb0\"/>"
            );
        }
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.0}\">{}</text><polyline fill=\"none\" stroke=\"#2b6cb0\" points=\"{}\"/><text x=\"666\" y=\"{:.0}\">max {peak}</text>",
            base,
            escape(label),
            points.join(" "),
            base
        );
    }
    let _ = write!(
        svg,
        "<text x=\"220\" y=\"{y}\">{}</text><text x=\"600\" y=\"{y}\">{}</text></svg>",
        &date(first.saturating_mul(DAY_MS))[..10],
        &date(last.saturating_mul(DAY_MS))[..10],
        y = series.len() * row + 14
    );
    svg
}

/// A horizontal bar chart as inline SVG.
fn bar_chart(data: &BTreeMap<String, u64>) -> String {
    if data.is_empty() {
        return "<p>(none)</p>".into();
    }
    let max = data.values().copied().max().unwrap_or(1).max(1);
    let row = 18;
    let mut svg = format!(
        "<svg role=\"img\" width=\"720\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        data.len() * row + 4
    );
    for (i, (label, value)) in data.iter().enumerate() {
        let y = i * row;
        let width = (*value as f64 / max as f64 * 440.0).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text><rect class=\"bar\" x=\"220\" y=\"{}\" width=\"{width:.0}\" height=\"{}\"/><text x=\"{:.0}\" y=\"{}\">{value}</text>",
            y + 13,
            escape(label),
            y + 2,
            row - 4,
            226.0 + width,
            y + 13
        );
    }
    svg.push_str("</svg>");
    svg
}
