//! `template.yaml` is part of the product: its tables must be exactly the code's table
//! definitions, and its routes exactly the route table, each served by the function the route
//! table names (whose crate must exist).

use std::collections::BTreeSet;

use athena_tests::workspace_root;
use serde_yaml::Value;
use shared::api::routes::ROUTES;
use shared::store::schema::{all_tables, KeyDef};

fn template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is not YAML")
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn key_schema(list: &Value) -> Vec<(String, String)> {
    untag(list)
        .as_sequence()
        .expect("KeySchema is a list")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap_or_default().to_owned(),
                k["KeyType"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn expected_keys(key: &KeyDef) -> Vec<(String, String)> {
    let mut out = vec![(key.hash.0.to_owned(), "HASH".to_owned())];
    if let Some((name, _)) = key.range {
        out.push((name.to_owned(), "RANGE".to_owned()));
    }
    out
}

#[test]
fn the_tables_in_the_template_are_the_tables_in_the_code() {
    let template = template();
    for table in all_tables() {
        let resource = &template["Resources"][table.logical_id];
        assert_eq!(
            resource["Type"].as_str(),
            Some("AWS::DynamoDB::Table"),
            "{}",
            table.logical_id
        );
        let props = &resource["Properties"];
        assert_eq!(props["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
        assert_eq!(
            key_schema(&props["KeySchema"]),
            expected_keys(&table.key),
            "{} key",
            table.logical_id
        );
        // Attribute definitions: exactly the key attributes of the table and its indexes, typed.
        let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
        for key in std::iter::once(&table.key).chain(table.indexes.iter().map(|i| &i.key)) {
            for (name, ty) in std::iter::once(key.hash).chain(key.range) {
                expected.insert((name.to_owned(), ty.code().to_owned()));
            }
        }
        let declared: BTreeSet<(String, String)> = untag(&props["AttributeDefinitions"])
            .as_sequence()
            .expect("AttributeDefinitions")
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap_or_default().to_owned(),
                    a["AttributeType"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(declared, expected, "{} attribute definitions", table.logical_id);
        let indexes = untag(&props["GlobalSecondaryIndexes"])
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        assert_eq!(indexes.len(), table.indexes.len(), "{} index count", table.logical_id);
        for index in &table.indexes {
            let declared = indexes
                .iter()
                .find(|i| i["IndexName"].as_str() == Some(index.name))
                .unwrap_or_else(|| panic!("index {} missing", index.name));
            assert_eq!(
                key_schema(&declared["KeySchema"]),
                expected_keys(&index.key),
                "{}",
                index.name
            );
            assert_eq!(
                declared["Projection"]["ProjectionType"].as_str(),
                Some("ALL"),
                "{}",
                index.name
            );
        }
        match table.ttl {
            Some(attr) => {
                assert_eq!(props["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(attr));
                assert_eq!(props["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
            }
            None => assert!(props["TimeToLiveSpecification"].is_null()),
        }
        assert_eq!(
            props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true)
        );
        assert_eq!(props["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    }
}

#[test]
fn the_routes_in_the_template_are_the_route_table() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut declared = BTreeSet::new();
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("every function names its binary")
            .to_owned();
        assert_eq!(resource["Metadata"]["BuildMethod"].as_str(), Some("rust-cargolambda"));
        assert!(
            workspace_root()
                .join("functions")
                .join(&binary)
                .join("Cargo.toml")
                .exists(),
            "no crate for function {binary}"
        );
        if binary == "chat" {
            // Streaming chat: a function URL (RESPONSE_STREAM) per solution serves GET and POST of
            // the solution's path; the solution comes from ATHENA_SOLUTION.
            let props = &resource["Properties"];
            assert_eq!(
                props["FunctionUrlConfig"]["InvokeMode"].as_str(),
                Some("RESPONSE_STREAM"),
                "chat functions stream"
            );
            let solution = props["Environment"]["Variables"]["ATHENA_SOLUTION"]
                .as_str()
                .expect("ATHENA_SOLUTION");
            let path = if solution == "general" {
                "/api/chat".to_owned()
            } else {
                format!("/api/chat/{solution}")
            };
            for method in ["GET", "POST"] {
                assert!(
                    declared.insert((path.clone(), method.to_owned(), binary.clone())),
                    "{path} is served twice"
                );
            }
            continue;
        }
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().expect("Path").to_owned();
            let method = event["Properties"]["Method"]
                .as_str()
                .expect("Method")
                .to_ascii_uppercase();
            declared.insert((path, method, binary.clone()));
        }
    }
    let expected: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .flat_map(|r| {
            r.methods()
                .into_iter()
                .map(move |m| (r.pattern.to_owned(), m.to_owned(), r.function.to_owned()))
        })
        .collect();
    assert_eq!(declared, expected);
}

#[test]
fn every_route_is_documented_in_the_openapi_contract_with_its_methods() {
    let openapi = athena_tests::openapi::OpenApi::load();
    for route in ROUTES {
        let item = &openapi.doc["paths"][route.pattern];
        assert!(item.is_object(), "{} is not in docs/openapi.yaml", route.pattern);
        for method in route.methods() {
            assert!(
                item[method.to_ascii_lowercase()].is_object(),
                "{method} {} is not in docs/openapi.yaml",
                route.pattern
            );
        }
    }
}
