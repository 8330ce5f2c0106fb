//! Checks real responses against `docs/openapi.yaml`: the status must be documented for the
//! operation, and the body must validate against the schema documented for its media type (JSON
//! Schema 2020-12, `$ref`s into `components` resolved): a JSON body as a whole, a
//! `text/event-stream` body event by event (each event as an SSE parser reads it, `{data,
//! event, id?, retry?}`, as OpenAPI 3.1 tools read that media type's schema, and a `data`
//! documented as `contentMediaType: application/json` parsed and checked against its
//! `contentSchema`), any other text body as one string.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use crate::{workspace_root, Reply};

/// The parsed OpenAPI document.
pub struct OpenApi {
    /// The document as JSON.
    pub doc: Value,
}

impl OpenApi {
    /// Loads `docs/openapi.yaml`.
    pub fn load() -> Self {
        let path = workspace_root().join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("docs/openapi.yaml is not YAML");
        let doc = serde_json::to_value(yaml).expect("docs/openapi.yaml is not JSON-compatible");
        Self { doc }
    }

    /// One shared copy per test binary.
    pub fn shared() -> Arc<Self> {
        static DOC: OnceLock<Arc<OpenApi>> = OnceLock::new();
        Arc::clone(DOC.get_or_init(|| Arc::new(Self::load())))
    }

    /// The path template matching a concrete path.
    pub fn template_for(&self, path: &str) -> Option<String> {
        let paths = self.doc["paths"].as_object()?;
        let segments: Vec<&str> = path.split('/').collect();
        paths
            .keys()
            .find(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s)
            })
            .cloned()
    }

    /// Checks one response.
    pub fn check(&self, method: &str, path: &str, reply: &Reply) -> Result<(), String> {
        let Some(template) = self.template_for(path) else {
            // Unknown paths are answered 404 by design; nothing to check them against.
            return if reply.status == 404 {
                Ok(())
            } else {
                Err("the path is not documented".to_owned())
            };
        };
        let operation = &self.doc["paths"][&template][method.to_ascii_lowercase()];
        if operation.is_null() {
            return if reply.status == 405 {
                Ok(())
            } else {
                Err(format!("{method} is not documented for {template}"))
            };
        }
        let status = reply.status.to_string();
        let response = match &operation["responses"][&status] {
            Value::Null => &operation["responses"]["default"],
            r => r,
        };
        if response.is_null() {
            return Err(format!("status {status} is not documented for {method} {template}"));
        }
        let response = self.resolve(response);
        if reply.status == 204 || (reply.text.is_empty() && response["content"].is_null()) {
            return Ok(());
        }
        let documented = response["content"].as_object();
        let Some(documented) = documented.filter(|c| !c.is_empty()) else {
            return Err("a body was sent where none is documented".to_owned());
        };
        let sent = reply
            .header("content-type")
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let Some(media) = documented.get(&sent) else {
            let names: Vec<&String> = documented.keys().collect();
            return Err(format!("the body is {sent:?}; the document names {names:?}"));
        };
        let schema = &media["schema"];
        if schema.is_null() {
            return Err(format!("no schema is documented for {sent}"));
        }
        if sent == "application/json" {
            return self.validate(schema, &reply.json);
        }
        if sent == "text/event-stream" {
            let events = parse_sse(&reply.text);
            if events.is_empty() {
                return Err("the event stream has no event".to_owned());
            }
            for (i, event) in events.iter().enumerate() {
                self.validate(schema, event)
                    .and_then(|()| self.validate_content(&self.resolve(schema)["properties"]["data"], &event["data"]))
                    .map_err(|e| format!("event #{i} {event}: {e}"))?;
            }
            return Ok(());
        }
        self.validate(schema, &Value::String(reply.text.clone()))
    }

    /// Validates `instance` against a schema of the document.
    fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"].clone(),
            "allOf": [schema.clone()],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .map_err(|e| format!("the documented schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// JSON Schema only annotates `contentMediaType`/`contentSchema`; this asserts them. A string
    /// schema with `contentMediaType: application/json` needs the string to parse as JSON valid
    /// against its `contentSchema`; with `anyOf`/`oneOf` branches, the string must satisfy a
    /// branch that way (a branch without `contentMediaType` by plain validation).
    fn validate_content(&self, schema: &Value, value: &Value) -> Result<(), String> {
        let schema = self.resolve(schema);
        let (false, Some(text)) = (schema.is_null(), value.as_str()) else {
            return Ok(());
        };
        let branches: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| schema[*k].as_array())
            .flatten()
            .collect();
        let one = |branch: &Value| -> Result<(), String> {
            let branch = self.resolve(branch);
            self.validate(branch, value)?;
            if branch["contentMediaType"] != "application/json" {
                return Ok(());
            }
            let parsed: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
            match &branch["contentSchema"] {
                Value::Null => Ok(()),
                content => self.validate(content, &parsed),
            }
        };
        if branches.is_empty() {
            return one(schema);
        }
        one(schema)?;
        let mut problems = Vec::new();
        for branch in branches {
            match one(branch) {
                Ok(()) => return Ok(()),
                Err(e) => problems.push(e),
            }
        }
        Err(format!("no branch of the data's schema fits: {}", problems.join(" | ")))
    }

    /// Follows a `$ref` into the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => self.doc.pointer(pointer).unwrap_or(value),
            None => value,
        }
    }
}

/// Parses a `text/event-stream` body as the WHATWG algorithm does (and schemathesis, whose
/// events these are): lines end with CR, LF or CRLF; a blank line dispatches the event;
/// `data` lines are joined with LF; `event` defaults to `message`; `id` carries over to later
/// events; `retry` only when all digits; comment lines and events without data are skipped.
pub fn parse_sse(body: &str) -> Vec<Value> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut events = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    let mut event: Option<&str> = None;
    let mut retry: Option<u64> = None;
    let mut id: Option<&str> = None;
    let mut last_id: Option<&str> = None;
    let mut flush = |data: &mut Vec<&str>,
                     event: &mut Option<&str>,
                     retry: &mut Option<u64>,
                     id: &mut Option<&str>,
                     last_id: Option<&str>| {
        if !data.is_empty() {
            let mut e = serde_json::Map::new();
            e.insert("data".into(), Value::from(data.join("\n")));
            e.insert(
                "event".into(),
                Value::from(event.filter(|t| !t.is_empty()).unwrap_or("message")),
            );
            if let Some(i) = id.or(last_id) {
                e.insert("id".into(), Value::from(i));
            }
            if let Some(r) = *retry {
                e.insert("retry".into(), Value::from(r));
            }
            events.push(Value::Object(e));
        }
        data.clear();
        *event = None;
        *retry = None;
        *id = None;
    };
    let lines = body.split("\r\n").flat_map(|l| l.split(['\r', '\n']));
    for line in lines {
        if line.is_empty() {
            flush(&mut data, &mut event, &mut retry, &mut id, last_id);
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => data.push(value),
            "event" => event = Some(value),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => retry = value.parse().ok(),
            "id" if !value.contains('\0') => {
                id = Some(value);
                last_id = Some(value);
            }
            _ => {}
        }
    }
    flush(&mut data, &mut event, &mut retry, &mut id, last_id);
    events
}
