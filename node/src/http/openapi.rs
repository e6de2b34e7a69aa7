//! `docs/openapi.json`, generated from the route table ([`super::ROUTES`])
//! and the API's types (`medledger_api::schemas`), so the document and the
//! node cannot drift: every path, method, parameter (with its range),
//! request body, success content, server-sent event and error status comes
//! from what the dispatcher and the handlers use. Only the prose (summaries,
//! descriptions, tags, the introduction) is written by hand, in the document
//! itself; generation keeps it.
//!
//! A test holds the committed document equal to the generated one;
//! `MEDLEDGER_UPDATE_OPENAPI=1 cargo test -p medledger-node openapi` rewrites it.

use serde_json::{Map, Value, json};

use medledger_contracts::constants::INSTITUTION_ID_BYTES_MAX;

use super::{APP_FILES, Access, Body, COMMON_ERRORS, REQUIRED_QUERY, ROUTES, RouteSpec, Success};
use crate::http::patients::{PAGE_DEFAULT, PAGE_MAX};

const SCHEMAS: &str = "#/components/schemas/";

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

/// The schema of a path or query parameter, by its name: the same rule the
/// handler parses it with.
fn parameter_schema(name: &str, in_query: bool) -> Result<Value, String> {
    Ok(match name {
        // Ids in a path or query are read as hex of either case; answers
        // write them lowercase (`Hex32`).
        "tx" | "grant" | "request" | "patient" | "practitioner" | "proposal" | "licence" => {
            json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"})
        }
        "height" if in_query => json!({"type": "integer", "format": "uint64", "minimum": 1}),
        "height" | "after" => json!({"type": "integer", "format": "uint64", "minimum": 0}),
        "limit" => json!({
            "type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT,
        }),
        "institution" => json!({
            "type": "string",
            "pattern": format!("^[a-z0-9-]{{1,{INSTITUTION_ID_BYTES_MAX}}}$"),
        }),
        "file" => json!({
            "type": "string",
            "enum": APP_FILES.iter().map(|(file, ..)| *file).collect::<Vec<_>>(),
        }),
        other => return Err(format!("parameter `{other}` has no schema in openapi.rs")),
    })
}

fn parameters(spec: &RouteSpec, prose: &Value) -> Result<Vec<Value>, String> {
    let described = |name: &str, place: &str| {
        prose["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name && p["in"] == place)
            .and_then(|p| p.get("description"))
            .cloned()
    };
    let mut out = Vec::new();
    let path_names = spec
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
    for name in path_names {
        let mut p = json!({
            "name": name, "in": "path", "required": true,
            "schema": parameter_schema(name, false)?,
        });
        if let Some(d) = described(name, "path") {
            p["description"] = d;
        }
        out.push(p);
    }
    for name in spec.query {
        let mut p = json!({"name": name, "in": "query", "schema": parameter_schema(name, true)?});
        if REQUIRED_QUERY.contains(&(spec.path, *name)) {
            p["required"] = json!(true);
        }
        if let Some(d) = described(name, "query") {
            p["description"] = d;
        }
        out.push(p);
    }
    Ok(out)
}

fn request_body(spec: &RouteSpec) -> Option<Value> {
    let bound = format!("At most {} bytes.", spec.body_max);
    match spec.body {
        Body::Empty => None,
        Body::Json(name) => Some(json!({
            "required": true,
            "description": bound,
            "content": {"application/json": {"schema": reference(&name())}},
        })),
        Body::Bcs(what) => Some(json!({
            "required": true,
            "description": format!("{what}. {bound}"),
            "content": {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}},
        })),
    }
}

fn success(spec: &RouteSpec) -> Value {
    match spec.reply {
        Success::Json(name) => json!({
            "description": "OK",
            "content": {"application/json": {"schema": reference(&name())}},
        }),
        Success::Events(events) => {
            let declared: Map<String, Value> = events
                .iter()
                .map(|(event, name)| ((*event).to_string(), reference(&name())))
                .collect();
            json!({
                "description": "A stream of server-sent events; `x-events` gives each event's name and the schema of its `data` (JSON). An `audit` event's `id` is the entry's audit index.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "x-events": declared,
            })
        }
        Success::Fhir(name) => json!({
            "description": "A FHIR R4 resource (the elements medledger fills)",
            "content": {"application/fhir+json": {"schema": reference(&name())}},
        }),
        Success::Frames => json!({
            "description": "Frames, each a big-endian u32 length then BCS of a `GatewayResponse` (manifest, chunks, end): see docs/records.md",
            "content": {"application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}},
        }),
        Success::OpenApi => json!({
            "description": "This document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }),
        Success::Metrics => json!({
            "description": "The node's metrics",
            "content": {"application/openmetrics-text; version=1.0.0; charset=utf-8": {"schema": {"type": "string"}}},
        }),
        Success::AppFile => {
            let mut content = Map::new();
            for (file, content_type, _) in APP_FILES {
                if spec.path == "/app" && *file != "index.html" {
                    continue;
                }
                let schema = if *content_type == "application/wasm" {
                    json!({"schema": {"type": "string", "format": "binary"}})
                } else {
                    json!({"schema": {"type": "string"}})
                };
                content.insert((*content_type).to_string(), schema);
            }
            json!({"description": "A file of the patient app", "content": content})
        }
    }
}

/// Every status a route may answer.
pub fn statuses(spec: &RouteSpec) -> Vec<u16> {
    let mut all = vec![200];
    all.extend_from_slice(COMMON_ERRORS);
    if spec.access != Access::Public {
        all.push(403);
    }
    all.extend_from_slice(spec.errors);
    all.sort_unstable();
    all.dedup();
    all
}

/// The document for `prose`: its hand-written text kept, everything else
/// generated.
pub fn generate(prose: &Value) -> Result<Value, String> {
    let mut paths = Map::new();
    for spec in ROUTES {
        let method = spec.method.to_lowercase();
        let written = &prose["paths"][spec.path][&method];
        let mut operation = Map::new();
        for key in ["summary", "description", "tags"] {
            if let Some(text) = written.get(key) {
                operation.insert(key.to_string(), text.clone());
            }
        }
        if !operation.contains_key("summary") {
            return Err(format!(
                "{} {} has no summary in docs/openapi.json",
                spec.method, spec.path
            ));
        }
        let parameters = parameters(spec, written)?;
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(body) = request_body(spec) {
            operation.insert("requestBody".into(), body);
        }
        let mut responses = Map::new();
        for status in statuses(spec) {
            let answer = if status == 200 {
                success(spec)
            } else {
                json!({"$ref": "#/components/responses/Error"})
            };
            responses.insert(status.to_string(), answer);
        }
        operation.insert("responses".into(), Value::Object(responses));
        if spec.access != Access::Public {
            operation.insert("security".into(), json!([{"medledgerSignature": []}]));
        }
        let entry = paths
            .entry(spec.path.to_string())
            .or_insert_with(|| json!({}));
        entry[&method] = Value::Object(operation);
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": prose["info"],
        "paths": paths,
        "components": {
            "securitySchemes": prose["components"]["securitySchemes"],
            "responses": {"Error": {
                "description": "An error (or, with 202, a submission not committed in time): a stable `code` and a `message`",
                "content": {"application/json": {"schema": reference("Error")}},
            }},
            "schemas": medledger_api::schemas(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_generated_from_the_routes_and_types() {
        let committed: Value = serde_json::from_str(super::super::OPENAPI).unwrap();
        let generated = generate(&committed).unwrap();
        if std::env::var_os("MEDLEDGER_UPDATE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(path, text).unwrap();
            return;
        }
        assert!(
            committed == generated,
            "docs/openapi.json differs from what the routes and types generate; \
             rewrite it with `MEDLEDGER_UPDATE_OPENAPI=1 cargo test -p medledger-node openapi`"
        );
    }

    #[test]
    fn required_query_parameters_are_query_parameters_of_their_route() {
        for (path, name) in REQUIRED_QUERY {
            assert!(
                ROUTES
                    .iter()
                    .any(|s| s.path == *path && s.query.contains(name)),
                "{path} takes no query parameter {name}"
            );
        }
    }

    #[test]
    fn every_status_is_declared_once_and_in_range() {
        for spec in ROUTES {
            let all = statuses(spec);
            assert!(all.iter().all(|s| (200..600).contains(s)), "{}", spec.path);
            assert_eq!(all[0], 200);
        }
    }
}
