//! The MCP tools over the plant (rmcp's `#[tool_router]`), one handler per MCP session.

use std::sync::Arc;

use rmcp::{
    handler::server::{common::schema_for_input, router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, JsonObject, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router, ServerHandler,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::plant::{Plant, PlantError};

pub const SERVER_NAME: &str = "athena-mes";
pub const INSTRUCTIONS: &str =
    "A sample manufacturing execution system (MES) of one plant with three lines (L1 stamping, \
    L2 welding & assembly, L3 paint): machine status and alarms, line OEE per shift, open work orders, and \
    creating a maintenance work order.";

/// A shift of the plant's three-shift day.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema)]
#[schemars(inline)]
pub enum Shift {
    #[default]
    A,
    B,
    C,
}

impl Shift {
    fn as_str(self) -> &'static str {
        match self {
            Shift::A => "A",
            Shift::B => "B",
            Shift::C => "C",
        }
    }
}

/// Work-order priority.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatusParams {
    /// Machine id, e.g. PRESS-02; omit for every machine.
    pub machine_id: Option<String>,
    /// Line id (L1, L2 or L3); omit for every line.
    pub line_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineOeeParams {
    /// Line id: L1 (stamping), L2 (welding & assembly) or L3 (paint).
    pub line_id: String,
    /// Shift A, B or C; the current shift (A) when omitted.
    pub shift: Option<Shift>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenWorkOrdersParams {
    /// Only orders for machines of this line (L1, L2 or L3).
    pub line_id: Option<String>,
    /// Only orders for this machine, e.g. PRESS-02.
    pub machine_id: Option<String>,
    /// Only orders of this priority.
    pub priority: Option<Priority>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWorkOrderParams {
    /// The machine the work is for, e.g. PRESS-02.
    pub machine_id: String,
    /// Short summary, 1 to 200 characters.
    pub title: String,
    /// How urgent the work is.
    pub priority: Priority,
    /// Details for the technician (optional, up to 2000 characters).
    pub description: Option<String>,
}

/// The tool input schema of `T` as a model provider can take it: rmcp's generated schema
/// (draft 2020-12, type "object", enums inlined) without the `$schema` keyword, and with optional
/// properties described by their type alone (no `null` alternatives): a property left out is the
/// way to omit it.
pub fn input_schema<T: schemars::JsonSchema + 'static>() -> Arc<JsonObject> {
    match schema_for_input::<T>() {
        Ok(schema) => {
            let mut schema = schema.as_ref().clone();
            schema.remove("$schema");
            if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                for property in properties.values_mut() {
                    if let Value::Object(property) = property {
                        drop_null_alternative(property);
                    }
                }
            }
            Arc::new(schema)
        }
        Err(error) => {
            // Cannot happen for the parameter structs above (a unit test builds each); if it
            // did, an open object schema keeps the tool listable and the call still validates.
            tracing::error!(%error, type_name = std::any::type_name::<T>(), "invalid tool input schema");
            let mut schema = JsonObject::new();
            schema.insert("type".into(), json!("object"));
            Arc::new(schema)
        }
    }
}

/// `{"type": ["string", "null"]}` becomes `{"type": "string"}`; `{"anyOf": [S, {"type":
/// "null"}]}` (and `oneOf`) becomes S merged with the property's other keywords.
fn drop_null_alternative(property: &mut JsonObject) {
    if let Some(Value::Array(types)) = property.get("type") {
        let rest: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
        if rest.len() == 1 {
            property.insert("type".into(), rest[0].clone());
        } else if rest.len() != types.len() {
            property.insert("type".into(), Value::Array(rest));
        }
    }
    if let Some(Value::Array(enumeration)) = property.get("enum") {
        let rest: Vec<Value> = enumeration.iter().filter(|v| !v.is_null()).cloned().collect();
        property.insert("enum".into(), Value::Array(rest));
    }
    for keyword in ["anyOf", "oneOf"] {
        let Some(Value::Array(alternatives)) = property.get(keyword) else {
            continue;
        };
        let rest: Vec<Value> = alternatives
            .iter()
            .filter(|alt| alt.get("type").and_then(Value::as_str) != Some("null"))
            .cloned()
            .collect();
        if let [Value::Object(only)] = rest.as_slice() {
            let only = only.clone();
            property.remove(keyword);
            for (key, value) in only {
                property.entry(key).or_insert(value);
            }
        } else if rest.len() != alternatives.len() {
            property.insert(keyword.into(), Value::Array(rest));
        }
    }
}

fn ok_json(value: Value) -> CallToolResult {
    // Structured content, and the same JSON as one text item for clients that read only text.
    CallToolResult::structured(value)
}

fn tool_error(error: PlantError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serializing the plant's plain structs (strings, numbers, options, vectors) cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The MCP server handler over a [`Plant`]: the four tools.
#[derive(Clone)]
pub struct MesTools {
    plant: Plant,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl MesTools {
    pub fn new(plant: Plant) -> Self {
        Self {
            plant,
            tool_router: Self::tool_router(),
        }
    }

    /// Status of the plant's machines: state (running, idle, down, maintenance), active alarm,
    /// cycle time against target, temperature, uptime hours and last maintenance date. Filter by
    /// machine or line; without a filter every machine is returned.
    #[tool(
        input_schema = input_schema::<MachineStatusParams>(),
        annotations(
            title = "Machine status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    fn machine_status(&self, Parameters(params): Parameters<MachineStatusParams>) -> CallToolResult {
        match self
            .plant
            .machines(params.machine_id.as_deref(), params.line_id.as_deref())
        {
            Ok(machines) => ok_json(json!({ "count": machines.len(), "machines": to_value(&machines) })),
            Err(error) => tool_error(error),
        }
    }

    /// Overall equipment effectiveness of a line in a shift: availability, performance, quality
    /// and OEE (their product), planned and run minutes, good and total part counts, and the top
    /// three downtime reasons with their minutes.
    #[tool(
        input_schema = input_schema::<LineOeeParams>(),
        annotations(
            title = "Line OEE",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    fn line_oee(&self, Parameters(params): Parameters<LineOeeParams>) -> CallToolResult {
        let shift = params.shift.unwrap_or_default();
        match self.plant.line_oee(&params.line_id, shift.as_str()) {
            Ok(oee) => ok_json(to_value(&oee)),
            Err(error) => tool_error(error),
        }
    }

    /// Open maintenance work orders, optionally filtered by line, machine or priority.
    #[tool(
        input_schema = input_schema::<OpenWorkOrdersParams>(),
        annotations(
            title = "Open work orders",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    fn open_work_orders(&self, Parameters(params): Parameters<OpenWorkOrdersParams>) -> CallToolResult {
        match self.plant.open_work_orders(
            params.line_id.as_deref(),
            params.machine_id.as_deref(),
            params.priority.map(Priority::as_str),
        ) {
            Ok(orders) => ok_json(json!({ "count": orders.len(), "workOrders": to_value(&orders) })),
            Err(error) => tool_error(error),
        }
    }

    /// Create a maintenance work order for a machine (status "open"); returns the new order with
    /// its id (WO-...). This changes the plant's records: confirm with the user first.
    #[tool(
        input_schema = input_schema::<CreateWorkOrderParams>(),
        annotations(
            title = "Create work order",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    fn create_work_order(&self, Parameters(params): Parameters<CreateWorkOrderParams>) -> CallToolResult {
        match self.plant.create_work_order(
            &params.machine_id,
            &params.title,
            params.priority.as_str(),
            params.description.as_deref(),
        ) {
            Ok(order) => {
                tracing::info!(id = %order.id, machine = %order.machine_id, priority = %order.priority, "work order created");
                ok_json(to_value(&order))
            }
            Err(error) => tool_error(error),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MesTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_self_contained(name: &str, schema: &JsonObject) {
        let text = serde_json::to_string(schema).expect("json");
        assert_eq!(schema.get("type"), Some(&json!("object")), "{name}: {text}");
        assert!(schema.get("properties").is_some_and(Value::is_object), "{name}: {text}");
        for needle in ["$schema", "$ref", "$defs", "definitions", "null", "anyOf", "oneOf"] {
            assert!(!text.contains(needle), "{name} has {needle}: {text}");
        }
    }

    #[test]
    fn input_schemas_are_plain_objects() {
        for tool in MesTools::new(Plant::sample()).tool_router.list_all() {
            assert_self_contained(&tool.name, &tool.input_schema);
        }
        let create = input_schema::<CreateWorkOrderParams>();
        assert_eq!(create["required"], json!(["machineId", "title", "priority"]));
        assert_eq!(
            create["properties"]["priority"]["enum"],
            json!(["low", "medium", "high", "urgent"])
        );
        let oee = input_schema::<LineOeeParams>();
        assert_eq!(oee["properties"]["shift"]["enum"], json!(["A", "B", "C"]));
        assert_eq!(oee["required"], json!(["lineId"]));
    }
}
