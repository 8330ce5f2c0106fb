//! Checks real responses against `docs/openapi.yaml`: the status must be documented for the
//! operation, and a JSON body must validate against the documented schema (JSON Schema 2020-12,
//! `$ref`s into `components` resolved).

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
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            if reply.text.is_empty() || reply.status == 204 {
                return Ok(());
            }
            // A streamed (non-JSON) body: its media type must be one the document names.
            let sent = reply
                .header("content-type")
                .and_then(|t| t.split(';').next())
                .map(str::trim)
                .unwrap_or_default();
            let documented: Vec<&String> = response["content"]
                .as_object()
                .map(|c| c.keys().collect())
                .unwrap_or_default();
            return if documented.is_empty() {
                Err("a body was sent where none is documented".to_owned())
            } else if documented.iter().any(|d| d.as_str() == sent) {
                Ok(())
            } else {
                Err(format!("the body is {sent:?}; the document names {documented:?}"))
            };
        }
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
            .iter_errors(&reply.json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Follows a `$ref` into the document.
    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => self.doc.pointer(pointer).unwrap_or(value),
            None => value,
        }
    }
}
