//! The JSON of the node's HTTP API as Rust types: every body the node
//! accepts and every answer it gives, shared by the node (which builds them
//! from ledger records) and the SDK (which reads them), with the JSON schemas
//! that `docs/openapi.json` is generated from and checked against.
//!
//! Names on the wire are stable: enums are written by the names in
//! `docs/api.md` ("Names on the wire"), never by Rust's debug text, and a
//! test holds each one equal to the ledger type's `name()`.

mod chain;
mod consent;
mod events;
pub mod fhir;
mod hex32;
mod names;

use serde::{Deserialize, Serialize};

pub use chain::*;
pub use consent::*;
pub use events::*;
pub use hex32::Hex32;
pub use names::*;
/// Re-exported so that users of [`schema_name`] need not depend on schemars.
pub use schemars::JsonSchema;

/// An error answer: a stable code a program can branch on and a message a
/// developer can act on (every status 4xx and 5xx, and 202 for a submission
/// accepted but not committed in time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// Stable, snake_case (e.g. `forbidden`, `bad_id`, `no_such_block`).
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// A block's height and time, where something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRef {
    /// Block height.
    pub height: u64,
    /// Block time, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl From<&medledger_contracts::records::BlockRef> for BlockRef {
    fn from(at: &medledger_contracts::records::BlockRef) -> Self {
        Self {
            height: at.height,
            time_ms: at.time.0,
        }
    }
}

/// A page of a list: items in audit-log order, and the cursor of the next
/// page (`after=`), absent on the last page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `after` for the next page; `null` when this is the last.
    pub next_after: Option<u64>,
}

/// The JSON schemas of every type the API sends or takes, by name, as they
/// appear under `components.schemas` in `docs/openapi.json` (JSON Schema
/// 2020-12, the dialect of OpenAPI 3.1).
///
/// Answers are described as the node writes them (every field present, an
/// absent value as `null`); bodies as the node reads them (fields with a
/// default may be left out).
pub fn schemas() -> serde_json::Map<String, serde_json::Value> {
    use schemars::generate::{Contract, SchemaSettings};
    let generator = |contract| {
        SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.contract = contract;
            })
            .into_generator()
    };
    let mut bodies = generator(Contract::Deserialize);
    let _ = bodies.subschema_for::<SubmitBody>();
    let _ = bodies.subschema_for::<SubmitManyBody>();
    let _ = bodies.subschema_for::<FetchBody>();
    let mut generator = generator(Contract::Serialize);
    macro_rules! add {
        ($($t:ty),* $(,)?) => { $( let _ = generator.subschema_for::<$t>(); )* };
    }
    add!(
        ErrorBody,
        SubmitAnswer,
        SubmitManyAnswer,
        GossipAnswer,
        Status,
        Header,
        BlockAnswer,
        BlockTransactions,
        Certificate,
        Validators,
        Archived,
        Receipt,
        TransactionAnswer,
        ProvedGrant,
        Page<Grant>,
        Page<ConsentRequest>,
        Page<Delegation>,
        Page<AuditEntry>,
        Page<Access>,
        Access,
        Recovery,
        InstitutionList,
        Institution,
        Proposal,
        ProposalList,
        Practitioner,
        Licence,
        BlockEvent,
        LaggedEvent,
        EndedEvent,
        fhir::Consent,
        fhir::Bundle,
    );
    let mut schemas = generator.take_definitions(true);
    schemas.extend(bodies.take_definitions(true));
    schemas
}

/// The name under which `T`'s schema is in [`schemas`].
pub fn schema_name<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

#[cfg(test)]
mod tests {
    /// Every `$ref` in the schemas names a schema that is there.
    #[test]
    fn every_reference_resolves() {
        fn walk(value: &serde_json::Value, names: &serde_json::Map<String, serde_json::Value>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
                        assert!(names.contains_key(name), "dangling reference {r}");
                    }
                    map.values().for_each(|v| walk(v, names));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, names)),
                _ => {}
            }
        }
        let schemas = super::schemas();
        assert!(schemas.contains_key("Grant") && schemas.contains_key("Error"));
        walk(&serde_json::Value::Object(schemas.clone()), &schemas);
    }
}
