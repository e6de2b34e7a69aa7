//! A grant's record scope at the holder (R5.10): which of the listed
//! resources a grant reaches, by each resource's clinical date and its
//! sensitivity labels, read from the FHIR JSON the holder hashes anyway.
//!
//! - The date is the first of the resource's clinical date fields that is
//!   present ([`DATE_FIELDS`]: `effectiveDateTime`, `issued`,
//!   `authoredOn`, …), as the period its precision gives (`2024-05` is all
//!   of May; a date without a time counts in UTC): a record is in a date
//!   range only if all of that period is.
//! - The labels are the HL7 v3 information-sensitivity codes
//!   ([`SensitiveClass::security_labels`], any case, whatever coding system
//!   names them) in `meta.security` and `securityLabel`, of the resource
//!   and of every resource it contains (`contained`, a `Bundle`'s
//!   entries): an unrecognised system leaves a record out rather than
//!   letting it through.
//! - An attachment that is not JSON (`chest-ct.dcm`) takes the facts of the
//!   resource beside it that describes it: `chest-ct.dcm.json`, else
//!   `chest-ct.json`, else the name up to its first dot (`genome.vcf.gz` →
//!   `genome.json`); with none it is undated and unlabelled. An
//!   attachment out of scope is not even read.
//! - A resource whose facts cannot be read (JSON that does not parse as an
//!   object or is larger than [`FACTS_BYTES_MAX`], or FHIR in XML or
//!   NDJSON) is of unknown scope: it goes only under a grant with no date
//!   range that includes every sensitive class.
//!
//! What is left out is left out silently: the manifest does not say that
//! anything was, since that alone would tell the requester the patient has
//! records of a sensitive class.

use std::collections::HashMap;

use medledger_contracts::types::{GrantTerms, SensitiveClass, Timestamp};
use serde_json::Value;

/// Most bytes of a JSON resource kept to read its facts.
pub const FACTS_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The fields that give a FHIR resource's clinical date, by JSON pointer,
/// the first present one counting.
pub const DATE_FIELDS: [&str; 15] = [
    "/effectiveDateTime",
    "/effectiveInstant",
    "/effectivePeriod/start",
    "/issued",
    "/occurrenceDateTime",
    "/performedDateTime",
    "/performedPeriod/start",
    "/authoredOn",
    "/started",
    "/onsetDateTime",
    "/recordedDate",
    "/date",
    "/period/start",
    "/created",
    "/dateAsserted",
];

/// How deep labels are looked for in contained resources and entries.
const NESTING_MAX: usize = 4;

/// What the holder knows of one resource for a grant's record scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Whether the facts were read (false: unknown scope).
    pub known: bool,
    /// Its clinical date, if it has one: the period its precision gives
    /// (start inclusive, end exclusive).
    pub dated: Option<(Timestamp, Timestamp)>,
    /// The sensitive classes its labels mark.
    pub classes: Vec<SensitiveClass>,
}

/// Whether a listed path is a JSON resource (the holder reads those for
/// their facts).
pub fn is_json(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".json")
}

/// Whether a path is FHIR in a form the holder does not read for facts.
fn is_unread_fhir(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".xml") || lower.ends_with(".ndjson")
}

/// The sensitive classes marked by labels in `value`, a resource: its
/// `meta.security` and `securityLabel`, and those of the resources it
/// contains, to [`NESTING_MAX`] levels.
fn labels(value: &Value, depth: usize, out: &mut Vec<SensitiveClass>) {
    if depth > NESTING_MAX {
        return;
    }
    let codings = value
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            value
                .get("securityLabel")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|label| {
                    // A Coding (R5) or a CodeableConcept (R4).
                    std::iter::once(label).chain(
                        label
                            .get("coding")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten(),
                    )
                }),
        );
    out.extend(
        codings
            .filter_map(|coding| coding.get("code").and_then(Value::as_str))
            .filter_map(|code| SensitiveClass::from_security_label(&code.to_ascii_uppercase())),
    );
    let nested = value
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            value
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.get("resource")),
        );
    for resource in nested {
        labels(resource, depth + 1, out);
    }
}

impl Facts {
    /// The facts of a resource's bytes: read if they are a JSON object.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(resource @ Value::Object(_)) => Self::of_resource(&resource),
            _ => Self::default(),
        }
    }

    /// The facts of a parsed FHIR resource.
    pub fn of_resource(resource: &Value) -> Self {
        let dated = DATE_FIELDS
            .iter()
            .find_map(|field| resource.pointer(field).and_then(Value::as_str))
            .and_then(fhir_period);
        let mut classes = Vec::new();
        labels(resource, 0, &mut classes);
        classes.sort();
        classes.dedup();
        Self {
            known: true,
            dated,
            classes,
        }
    }

    /// Facts known to be undated and unlabelled (an attachment with no
    /// resource beside it).
    pub fn plain() -> Self {
        Self {
            known: true,
            ..Self::default()
        }
    }
}

/// Whether a resource with these facts is within `terms`' record scope;
/// `None` (an emergency or public-health access, which no grant limits)
/// reaches every resource.
pub fn in_scope(terms: Option<&GrantTerms>, facts: &Facts) -> bool {
    match terms {
        None => true,
        Some(terms) if facts.known => {
            // The whole period of a partial date must fall in the range.
            terms.covers_record(facts.dated.map(|(start, _)| start), &facts.classes)
                && terms
                    .records_until
                    .is_none_or(|until| facts.dated.is_some_and(|(_, end)| end <= until))
        }
        Some(terms) => {
            terms.records_from.is_none()
                && terms.records_until.is_none()
                && terms.sensitive_included.len() == SensitiveClass::ALL.len()
        }
    }
}

/// The facts of an attachment (a listed path not ending in `.json`), from
/// the JSON resources' facts by path: those of the resource beside it that
/// describes it (`x.dcm.json`, `x.json`, then the name up to its first dot),
/// plain if there is none, unknown for FHIR the holder does not read.
pub fn attachment_facts(path: &str, json: &HashMap<String, Facts>) -> Facts {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let beside = |stem: &str| {
        let candidate = if dir.is_empty() {
            format!("{stem}.json")
        } else {
            format!("{dir}/{stem}.json")
        };
        json.iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(&candidate))
            .map(|(_, f)| f.clone())
    };
    let last = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let first = name.split_once('.').map_or(name, |(stem, _)| stem);
    beside(name)
        .or_else(|| beside(last))
        .or_else(|| beside(first))
        .unwrap_or_else(|| {
            if is_unread_fhir(path) {
                Facts::default()
            } else {
                Facts::plain()
            }
        })
}

/// A FHIR `date`, `dateTime` or `instant` (`2024`, `2024-05`, `2024-05-17`,
/// `2024-05-17T08:30:00+08:00`) as the instant it starts, or `None` if it
/// is not one. Times before 1970 count as 1970.
pub fn fhir_date_time(text: &str) -> Option<Timestamp> {
    fhir_period(text).map(|(start, _)| start)
}

/// The period a FHIR `date`, `dateTime` or `instant` names at its
/// precision — a year, a month, a day, or the millisecond of a time —,
/// start inclusive, end exclusive.
pub fn fhir_period(text: &str) -> Option<(Timestamp, Timestamp)> {
    use time::format_description::well_known::Rfc3339;
    use time::{Date, Duration, Month, OffsetDateTime};
    let ms = |at: OffsetDateTime| {
        Timestamp(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
    };
    if text.contains('T') {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        return Some((ms(at), ms(at + Duration::milliseconds(1))));
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next(), parts.next());
    if parts.next().is_some()
        || !digits(y, 4)
        || !m.is_none_or(|m| digits(m, 2))
        || !d.is_none_or(|d| digits(d, 2))
    {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let month = Month::try_from(m.map_or(Ok(1), str::parse::<u8>).ok()?).ok()?;
    let day = d.map_or(Ok(1), str::parse::<u8>).ok()?;
    let start = Date::from_calendar_date(year, month, day).ok()?;
    let end = match (m, d) {
        (_, Some(_)) => start.next_day()?,
        (Some(_), None) => match month {
            Month::December => Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
            _ => Date::from_calendar_date(year, month.next(), 1).ok()?,
        },
        (None, None) => Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
    };
    Some((
        ms(start.midnight().assume_utc()),
        ms(end.midnight().assume_utc()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_contracts::encoding::{BoundedVec, Hash32};
    use medledger_contracts::types::*;
    use serde_json::json;

    fn terms(from: Option<u64>, until: Option<u64>, included: Vec<SensitiveClass>) -> GrantTerms {
        GrantTerms {
            patient: PatientId(Hash32([1; 32])),
            grantee: Grantee::Institution(InstitutionId::new("h").unwrap()),
            categories: BoundedVec::new(vec![Category::FullRecord]).unwrap(),
            records_from: from.map(Timestamp),
            records_until: until.map(Timestamp),
            sensitive_included: BoundedVec::new(included).unwrap(),
            holders: Holders::Any,
            purpose: Purpose::Treatment,
            not_before: Timestamp(0),
            expires_at: Timestamp(u64::MAX),
            notice_hash: Hash32::default(),
        }
    }

    #[test]
    fn fhir_dates_of_every_precision_parse_to_their_first_instant() {
        let day = 1_715_904_000_000; // 2024-05-17T00:00:00Z
        assert_eq!(fhir_date_time("2024-05-17"), Some(Timestamp(day)));
        assert_eq!(
            fhir_date_time("2024-05-17T08:30:00+08:00"),
            Some(Timestamp(day + 30 * 60 * 1000))
        );
        assert_eq!(
            fhir_date_time("2024-05-17T00:00:00.250Z"),
            Some(Timestamp(day + 250))
        );
        assert_eq!(fhir_date_time("2024"), Some(Timestamp(1_704_067_200_000)));
        assert_eq!(
            fhir_date_time("2024-02"),
            Some(Timestamp(1_706_745_600_000))
        );
        assert_eq!(fhir_date_time("1960-01-01"), Some(Timestamp(0)));
        for bad in [
            "",
            "24-05-17",
            "2024-13-01",
            "2024-02-30",
            "2024-5-17",
            "x",
            "2024-05-17-01",
        ] {
            assert_eq!(fhir_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_partial_date_is_the_whole_period_it_names() {
        let at = |t: &str| fhir_date_time(t).unwrap();
        assert_eq!(
            fhir_period("2024"),
            Some((at("2024-01-01"), at("2025-01-01")))
        );
        assert_eq!(
            fhir_period("2024-12"),
            Some((at("2024-12-01"), at("2025-01-01")))
        );
        assert_eq!(
            fhir_period("2024-02"),
            Some((at("2024-02-01"), at("2024-03-01")))
        );
        assert_eq!(
            fhir_period("2024-05-31"),
            Some((at("2024-05-31"), at("2024-06-01")))
        );
        let t = at("2024-05-17T08:30:00+08:00");
        assert_eq!(
            fhir_period("2024-05-17T08:30:00+08:00"),
            Some((t, Timestamp(t.0 + 1)))
        );
        // Under a range ending 17 May, "May 2024" is not wholly inside.
        let may = Facts::of_bytes(br#"{"effectiveDateTime":"2024-05"}"#);
        assert!(!in_scope(
            Some(&terms(None, Some(at("2024-05-17").0), vec![])),
            &may
        ));
        assert!(in_scope(
            Some(&terms(None, Some(at("2024-06-01").0), vec![])),
            &may
        ));
        assert!(!in_scope(
            Some(&terms(Some(at("2024-05-02").0), None, vec![])),
            &may
        ));
    }

    #[test]
    fn facts_come_from_the_first_date_field_and_every_label_inside() {
        let facts = Facts::of_bytes(
            json!({"resourceType": "Observation", "issued": "2024-05-18",
                   "effectiveDateTime": "2024-05-17",
                   "meta": {"security": [
                       {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"},
                       {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
                       {"code": "psy"}, {"code": "BH"}]}})
            .to_string()
            .as_bytes(),
        );
        assert!(facts.known);
        assert_eq!(
            facts.dated.map(|(start, _)| start),
            fhir_date_time("2024-05-17")
        );
        assert_eq!(
            facts.classes,
            [SensitiveClass::Hiv, SensitiveClass::MentalHealth]
        );
        // A DocumentReference's securityLabel (CodeableConcept), a
        // contained resource's and a Bundle entry's labels count too.
        let nested = Facts::of_bytes(
            json!({"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "DocumentReference",
                              "securityLabel": [{"coding": [{"code": "GDIS"}]}]}},
                {"resource": {"resourceType": "Observation",
                              "contained": [{"resourceType": "Condition", "meta": {"security": [{"code": "SEX"}]}}]}}]})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(
            nested.classes,
            [SensitiveClass::ReproductiveHealth, SensitiveClass::Genetic]
        );
        assert!(!Facts::of_bytes(b"\x00DICM").known);
        assert!(!Facts::of_bytes(b"[1]").known);
    }

    #[test]
    fn a_grant_reaches_dated_records_in_range_and_only_included_classes() {
        let may = fhir_date_time("2024-05-17").unwrap();
        let dated = |t: Timestamp, classes: Vec<SensitiveClass>| Facts {
            known: true,
            dated: Some((t, Timestamp(t.0 + 1))),
            classes,
        };
        let open = terms(None, None, vec![]);
        assert!(in_scope(Some(&open), &dated(may, vec![])));
        assert!(in_scope(Some(&open), &Facts::plain()));
        assert!(!in_scope(
            Some(&open),
            &dated(may, vec![SensitiveClass::Hiv])
        ));
        let hiv = terms(None, None, vec![SensitiveClass::Hiv]);
        assert!(in_scope(Some(&hiv), &dated(may, vec![SensitiveClass::Hiv])));
        assert!(!in_scope(
            Some(&hiv),
            &dated(may, vec![SensitiveClass::Hiv, SensitiveClass::Genetic])
        ));
        let last_year = terms(Some(may.0), Some(may.0 + 1000), vec![]);
        assert!(in_scope(Some(&last_year), &dated(may, vec![])));
        assert!(!in_scope(
            Some(&last_year),
            &dated(Timestamp(may.0 - 1), vec![])
        ));
        assert!(!in_scope(
            Some(&last_year),
            &dated(Timestamp(may.0 + 1000), vec![])
        ));
        assert!(!in_scope(Some(&last_year), &Facts::plain()));
        // Unknown facts: only under a grant that limits nothing.
        assert!(!in_scope(Some(&open), &Facts::default()));
        assert!(in_scope(
            Some(&terms(None, None, SensitiveClass::ALL.to_vec())),
            &Facts::default()
        ));
        assert!(in_scope(None, &Facts::default()));
    }

    #[test]
    fn an_attachment_takes_the_facts_of_the_resource_that_describes_it() {
        let labelled = |class| Facts {
            known: true,
            dated: None,
            classes: vec![class],
        };
        let json: HashMap<String, Facts> = [
            ("imaging/ct.dcm.json", labelled(SensitiveClass::Hiv)),
            ("imaging/ct.json", labelled(SensitiveClass::Genetic)),
            ("imaging/eeg.json", labelled(SensitiveClass::MentalHealth)),
            ("lab-reports/Genome.JSON", labelled(SensitiveClass::Genetic)),
        ]
        .into_iter()
        .map(|(p, f)| (p.to_string(), f))
        .collect();
        let facts = |path: &str| attachment_facts(path, &json);
        assert_eq!(facts("imaging/ct.dcm"), labelled(SensitiveClass::Hiv));
        assert_eq!(
            facts("imaging/eeg.edf"),
            labelled(SensitiveClass::MentalHealth)
        );
        assert_eq!(
            facts("lab-reports/genome.vcf.gz"),
            labelled(SensitiveClass::Genetic)
        );
        // Not beside it: another directory's resource does not count.
        assert_eq!(facts("lab-reports/eeg.edf"), Facts::plain());
        assert_eq!(facts("imaging/xray.png"), Facts::plain());
        assert_eq!(facts("imaging/report.xml"), Facts::default());
        assert!(is_json("a/B.Json") && !is_json("a/b.json.gz"));
    }
}
