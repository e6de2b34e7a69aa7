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
};
use medledger_contracts::state::StateKey;
use medledger_contracts::types::{InstitutionId, PatientId, RequestId, Timestamp};
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
    emergencies: BTreeMap<RequestId, (Timestamp, Option<Timestamp>)>,
    accesses_by_day: BTreeMap<u64, u64>,
    last_time: Timestamp,
}

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
                AuditEvent::AccessDecided {
                    request,
                    requester,
                    holder,
                    kind,
                    decision,
                } => {
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
                    }
                    match decision {
                        Decision::Authorized => bump(&mut self.counts, "accesses authorised"),
                        Decision::Denied(_) => {
                            bump(&mut self.counts, "accesses denied");
                            bump(&mut self.denied_by_requester, requester);
                        }
                    }
                    match kind {
                        AccessKindTag::Emergency => {
                            bump(&mut self.counts, "emergency accesses");
                            self.emergencies.insert(*request, (entry.at.time, None));
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
                    let at = json!({"request": request.0.to_hex(), "height": entry.at.height});
                    match Self::access(ledger, request) {
                        Some(a)
                            if a.decision == Decision::Authorized && a.patient == entry.patient => {
                        }
                        _ => self.releases_unmatched.push(at.clone()),
                    }
                    if !grant_active {
                        self.releases_after_the_grant_ended.push(at);
                    }
                }
                AuditEvent::EmergencyReviewed { request, .. } => {
                    bump(&mut self.counts, "emergency reviews");
                    if let Some(e) = self.emergencies.get_mut(request) {
                        e.1 = Some(entry.at.time);
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
            .filter(|(_, (at, reviewed))| match reviewed {
                None => self.last_time.0.saturating_sub(at.0) > limit,
                Some(r) => r.0.saturating_sub(at.0) > limit,
            })
            .map(|(id, (at, reviewed))| json!({"request": id.0.to_hex(), "at_ms": at.0, "reviewed_at_ms": reviewed.map(|r| r.0)}))
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
            .map(|(day, n)| {
                (
                    humantime::format_rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(day * DAY_MS),
                    )
                    .to_string()[..10]
                        .to_string(),
                    *n,
                )
            })
            .collect();
        let mut counts = String::new();
        if let Some(map) = summary["counts"].as_object() {
            for (k, v) in map {
                let _ = write!(counts, "<tr><td>{}</td><td>{v}</td></tr>", escape(k));
            }
        }
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medledger audit report</title>\
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#111}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px}}\
.bar{{fill:#2b6cb0}}text{{font-size:11px}}pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head><body>\
<h1>medledger audit report</h1><p>Replayed from genesis to height {height}: every certificate, signature and root checked. {entries} audit entries concerning {patients} patients.</p>\
<h2>Summary</h2><table><tr><th>figure</th><th>count</th></tr>{counts}</table>\
<h2>Accesses over time</h2>{day_chart}<h2>Accesses by holder institution</h2>{holder_chart}<h2>Accesses by category</h2>{category_chart}\
<h2>Anomalies</h2><pre>{anomalies}</pre></body></html>",
            height = ledger.height(),
            entries = self.entry_count,
            patients = self.patients.len(),
            day_chart = bar_chart(&by_day),
            holder_chart = bar_chart(&self.accesses_by_holder),
            category_chart = bar_chart(&self.accesses_by_category),
            anomalies = escape(&serde_json::to_string_pretty(anomalies).unwrap_or_default()),
        )
    }
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
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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
