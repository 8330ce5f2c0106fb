//! A sample manufacturing execution system (MES) served as an MCP server over Streamable HTTP,
//! built with the official Rust MCP SDK (rmcp): one plant of three lines and eight machines, with
//! four tools (`machine_status`, `line_oee`, `open_work_orders`, and the one action,
//! `create_work_order`). The data is seeded and deterministic; work orders created while the
//! server runs are kept in memory.
//!
//! Athena's tests and local gateway start it in-process with [`serve`]; the `athena-mes` binary
//! runs it on its own.

mod http;
mod plant;
mod tools;

pub use http::{serve, MesServer, Options, MCP_PATH, USER_HEADER};
pub use plant::{Downtime, Line, LineOee, Machine, MachineState, Plant, PlantError, WorkOrder};
pub use tools::{input_schema, MesTools, Priority, Shift, INSTRUCTIONS, SERVER_NAME};
