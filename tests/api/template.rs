//! `template.yaml` is part of the product: its tables must be exactly the code's table
//! definitions, and its routes exactly the route table, each served by the function the route
//! table names (whose crate must exist), all on one origin. The template generates the seven chat
//! functions with `Fn::ForEach` (`AWS::LanguageExtensions`); [`expanded`] expands it the way
//! CloudFormation does before the SAM transform (loops, then `Fn::FindInMap` on literal keys), so
//! every check below reads the functions CloudFormation will create.

use std::collections::{BTreeMap, BTreeSet};

use athena_tests::workspace_root;
use serde_yaml::{Mapping, Value};
use shared::api::routes::{Op, ROUTES};
use shared::store::schema::{all_tables, conversation_pk, KeyDef};

fn raw_template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is not YAML")
}

/// The template with every `Fn::ForEach::*` of `Resources` and `Outputs` expanded.
fn expanded() -> Value {
    let mut template = raw_template();
    let mappings = template["Mappings"].clone();
    for section in ["Resources", "Outputs"] {
        let Some(entries) = template[section].as_mapping() else {
            continue;
        };
        let mut out = Mapping::new();
        for (key, value) in entries {
            let name = key.as_str().expect("logical ids are strings");
            if !name.starts_with("Fn::ForEach::") {
                out.insert(key.clone(), value.clone());
                continue;
            }
            let parts = value
                .as_sequence()
                .expect("Fn::ForEach takes [identifier, collection, fragment]");
            assert_eq!(parts.len(), 3, "{name}: [identifier, collection, fragment]");
            let identifier = parts[0].as_str().expect("the loop identifier");
            let items = parts[1].as_sequence().expect("a literal collection");
            let fragment = parts[2].as_mapping().expect("the fragment");
            for item in items {
                let item = item.as_str().expect("collection items are strings");
                for (fkey, fvalue) in fragment {
                    let id = substitute(fkey.as_str().expect("fragment keys are strings"), identifier, item);
                    let body = resolve_maps(&bind(fvalue, identifier, item), &mappings);
                    assert!(
                        out.insert(Value::String(id.clone()), body).is_none(),
                        "{id} is generated twice"
                    );
                }
            }
        }
        template[section] = Value::Mapping(out);
    }
    template
}

fn substitute(text: &str, identifier: &str, item: &str) -> String {
    let alnum: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
    text.replace(&format!("${{{identifier}}}"), item)
        .replace(&format!("&{{{identifier}}}"), &alnum)
}

/// The fragment for one item: `${identifier}` in strings and `Ref: identifier` become the item.
fn bind(value: &Value, identifier: &str, item: &str) -> Value {
    match value {
        Value::String(s) => Value::String(substitute(s, identifier, item)),
        Value::Sequence(seq) => Value::Sequence(seq.iter().map(|v| bind(v, identifier, item)).collect()),
        Value::Mapping(map) => {
            if let Some(Value::String(name)) = map.get("Ref") {
                if map.len() == 1 && name == identifier {
                    return Value::String(item.to_owned());
                }
            }
            Value::Mapping(
                map.iter()
                    .map(|(k, v)| (bind(k, identifier, item), bind(v, identifier, item)))
                    .collect(),
            )
        }
        Value::Tagged(tagged) => {
            if tagged.tag == "Ref" && tagged.value.as_str() == Some(identifier) {
                return Value::String(item.to_owned());
            }
            let mut tagged = tagged.clone();
            tagged.value = bind(&tagged.value, identifier, item);
            Value::Tagged(tagged)
        }
        other => other.clone(),
    }
}

/// `Fn::FindInMap` whose three arguments are literal strings, replaced by the mapped value.
fn resolve_maps(value: &Value, mappings: &Value) -> Value {
    match value {
        Value::Sequence(seq) => Value::Sequence(seq.iter().map(|v| resolve_maps(v, mappings)).collect()),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_maps(v, mappings)))
                .collect(),
        ),
        Value::Tagged(tagged) if tagged.tag == "FindInMap" => {
            let args: Vec<&str> = tagged
                .value
                .as_sequence()
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match args.as_slice() {
                [map, key, field] => mappings[*map][*key][*field].clone(),
                _ => value.clone(),
            }
        }
        Value::Tagged(tagged) => {
            let mut tagged = tagged.clone();
            tagged.value = resolve_maps(&tagged.value, mappings);
            Value::Tagged(tagged)
        }
        other => other.clone(),
    }
}

fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

/// `(tag, arguments)` of a short-form intrinsic (`!If [...]` is `("If", [...])`).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_owned(), &t.value)),
        _ => None,
    }
}

fn resources_of_type<'a>(template: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r))
        .collect()
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

/// `!If [condition, then, else]` as its three parts.
fn if_parts(v: &Value) -> (String, Value, Value) {
    let (tag, args) = intrinsic(v).unwrap_or_else(|| panic!("expected !If, found {v:?}"));
    assert_eq!(tag, "If", "{v:?}");
    let args = args.as_sequence().expect("!If takes a list");
    assert_eq!(args.len(), 3, "{v:?}");
    (
        args[0].as_str().unwrap_or_default().to_owned(),
        args[1].clone(),
        args[2].clone(),
    )
}

fn is_no_value(v: &Value) -> bool {
    matches!(intrinsic(v), Some((tag, arg)) if tag == "Ref" && arg.as_str() == Some("AWS::NoValue"))
}

#[test]
fn the_tables_in_the_template_are_the_tables_in_the_code() {
    let template = expanded();
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
                Some(if index.keys_only { "KEYS_ONLY" } else { "ALL" }),
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
            props["StreamSpecification"]["StreamViewType"].as_str(),
            table.stream,
            "{} stream",
            table.logical_id
        );
        assert_eq!(
            props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(true)
        );
        // Encrypted at rest either way: by the AWS owned key (no SSESpecification, no charge)
        // unless a customer managed key is given.
        let (condition, with_key, without) = if_parts(&props["SSESpecification"]);
        assert_eq!(condition, "HasKmsKey", "{}", table.logical_id);
        assert_eq!(with_key["SSEEnabled"].as_bool(), Some(true));
        assert_eq!(with_key["SSEType"].as_str(), Some("KMS"));
        assert!(
            matches!(intrinsic(&with_key["KMSMasterKeyId"]), Some((t, a)) if t == "Ref" && a.as_str() == Some("KmsKeyArn"))
        );
        assert!(
            is_no_value(&without),
            "{}: the default key without KmsKeyArn",
            table.logical_id
        );
    }
}

/// Every API event of every function: `(path, method, binary, event properties)`.
fn api_events(template: &Value) -> Vec<(String, String, String, Value)> {
    let mut out = Vec::new();
    for (name, resource) in resources_of_type(template, "AWS::Serverless::Function") {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} names its binary"))
            .to_owned();
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (event_name, event) in events {
            assert_eq!(
                event["Type"].as_str(),
                Some("Api"),
                "{name}.{event_name:?}: every route is on the REST API (one origin)"
            );
            let props = &event["Properties"];
            let path = props["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}.{event_name:?}: a literal Path"))
                .to_owned();
            let method = props["Method"].as_str().expect("Method").to_ascii_uppercase();
            out.push((path, method, binary.clone(), props.clone()));
        }
    }
    out
}

#[test]
fn the_routes_in_the_template_are_the_route_table() {
    let template = expanded();
    for (name, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name}"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default();
        assert!(
            workspace_root()
                .join("functions")
                .join(binary)
                .join("Cargo.toml")
                .exists(),
            "no crate for function {binary}"
        );
    }
    let mut declared = BTreeSet::new();
    let mut preflights = BTreeSet::new();
    for (path, method, binary, _) in api_events(&template) {
        if method == "OPTIONS" {
            preflights.insert(path);
        } else {
            assert!(
                declared.insert((path.clone(), method.clone(), binary)),
                "{method} {path} is served twice"
            );
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
    // Browsers preflight every cross-origin call with a JSON body or a bearer token; the
    // functions answer the preflights (several allowed origins).
    let needs_preflight: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| !matches!(r.pattern, "/api/health" | "/dashboard"))
        .map(|r| r.pattern.to_owned())
        .collect();
    assert_eq!(preflights, needs_preflight);
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

#[test]
fn every_route_is_on_one_origin_and_no_function_is_open_to_anonymous_invocation() {
    let template = expanded();
    assert!(
        resources_of_type(&template, "AWS::Serverless::HttpApi").is_empty(),
        "one front door: the REST API"
    );
    let apis = resources_of_type(&template, "AWS::Serverless::Api");
    assert_eq!(apis.len(), 1, "one REST API");
    let (api_name, api) = &apis[0];
    // The token is checked at the edge: a Cognito authorizer is every route's default.
    let auth = &api["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"].as_str().expect("a default authorizer");
    assert!(auth["Authorizers"][default]["UserPoolArn"].is_tagged_or_string());
    for (path, method, binary, props) in api_events(&template) {
        assert!(
            matches!(intrinsic(&props["RestApiId"]), Some((t, a)) if t == "Ref" && a.as_str() == Some(api_name)),
            "{method} {path}: on {api_name}"
        );
        let open = props["Auth"]["Authorizer"].as_str() == Some("NONE");
        // Open: preflights, and what the policy lets anyone do (the health check, the
        // dashboard's page, a share link read with its token).
        let rule = shared::api::routes::find(shared::api::routes::Scope::All, &path)
            .and_then(|m| m.route.ops.iter().find(|(m, _)| *m == method).map(|(_, op)| *op))
            .map(shared::api::policy::rule);
        let may_be_open = method == "OPTIONS"
            || matches!(
                rule,
                Some(shared::api::policy::Rule::Public | shared::api::policy::Rule::Link)
            );
        assert!(!open || may_be_open, "{method} {path} skips the authorizer");
        if binary == "chat" {
            assert_eq!(
                props["ResponseTransferMode"].as_str(),
                Some("RESPONSE_STREAM"),
                "{method} {path}: a streaming function needs a streaming integration"
            );
        }
    }
    for (name, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        let url = &resource["Properties"]["FunctionUrlConfig"];
        if url.is_null() {
            continue;
        }
        assert_eq!(url["AuthType"].as_str(), Some("AWS_IAM"), "{name}: SigV4 callers only");
    }
    for (name, resource) in resources_of_type(&template, "AWS::Lambda::Url") {
        assert_eq!(resource["Properties"]["AuthType"].as_str(), Some("AWS_IAM"), "{name}");
    }
}

trait TaggedOrString {
    fn is_tagged_or_string(&self) -> bool;
}

impl TaggedOrString for Value {
    fn is_tagged_or_string(&self) -> bool {
        matches!(self, Value::Tagged(_) | Value::String(_))
    }
}

#[test]
fn the_chat_functions_are_one_definition_generating_every_chat_route() {
    let raw = raw_template();
    let chat_definitions: Vec<_> = raw["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .flat_map(|(key, value)| {
            let fragment = if key.as_str().is_some_and(|k| k.starts_with("Fn::ForEach::")) {
                value[2].as_mapping().cloned().unwrap_or_default()
            } else {
                std::iter::once((key.clone(), value.clone())).collect()
            };
            fragment.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
        })
        .filter(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("chat"))
        .collect();
    assert_eq!(chat_definitions.len(), 1, "one definition of the chat functions");

    let template = expanded();
    let chat_routes: BTreeSet<&str> = ROUTES
        .iter()
        .filter(|r| r.ops.iter().any(|(_, op)| matches!(op, Op::Chat(_))))
        .map(|r| r.pattern)
        .collect();
    let mut generated = BTreeMap::new();
    for (name, resource) in resources_of_type(&template, "AWS::Serverless::Function") {
        if resource["Metadata"]["BuildProperties"]["Binary"].as_str() != Some("chat") {
            continue;
        }
        let solution = resource["Properties"]["Environment"]["Variables"]["ATHENA_SOLUTION"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: ATHENA_SOLUTION"))
            .to_owned();
        let path = if solution == "general" {
            "/api/chat".to_owned()
        } else {
            format!("/api/chat/{solution}")
        };
        generated.insert(path, name);
    }
    assert_eq!(
        generated.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        chat_routes
    );
    // Each chat route is throttled on its own (MethodSettings of the API's stage).
    let apis = resources_of_type(&template, "AWS::Serverless::Api");
    let settings = apis[0].1["Properties"]["MethodSettings"]
        .as_sequence()
        .expect("MethodSettings");
    for path in chat_routes {
        let encoded = path.replace('/', "~1");
        let setting = settings
            .iter()
            .find(|s| s["ResourcePath"].as_str() == Some(&format!("/{encoded}")))
            .unwrap_or_else(|| panic!("no throttling for POST {path}"));
        assert_eq!(setting["HttpMethod"].as_str(), Some("POST"));
        assert!(
            matches!(intrinsic(&setting["ThrottlingRateLimit"]), Some((t, a)) if t == "Ref" && a.as_str() == Some("ChatRateLimit"))
        );
    }
}

/// Every string anywhere in `value` (intrinsic arguments included).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(seq) => seq.iter().for_each(|v| strings(v, out)),
        Value::Mapping(map) => map.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

#[test]
fn no_alarm_uses_a_search_expression_and_each_solution_has_its_turn_error_alarm() {
    // CloudWatch refuses an alarm on a SEARCH expression ("When an expression contains a SEARCH
    // function, it cannot be used within an Alarm") when the stack is created; neither linter
    // notices.
    let template = expanded();
    let alarms = resources_of_type(&template, "AWS::CloudWatch::Alarm");
    assert!(!alarms.is_empty());
    let mut solutions = BTreeSet::new();
    for (name, alarm) in &alarms {
        let mut text = Vec::new();
        strings(&alarm["Properties"], &mut text);
        assert!(
            !text.iter().any(|s| s.to_ascii_uppercase().contains("SEARCH(")),
            "{name} alarms on a SEARCH expression"
        );
        if alarm["Properties"]["Namespace"].as_str() == Some("Athena")
            && alarm["Properties"]["MetricName"].as_str() == Some("Errors")
        {
            let dims = alarm["Properties"]["Dimensions"].as_sequence().expect("Dimensions");
            assert_eq!(dims.len(), 1, "{name}: the EMF dimension set [solution]");
            assert_eq!(dims[0]["Name"].as_str(), Some("solution"));
            solutions.insert(dims[0]["Value"].as_str().expect("a literal solution").to_owned());
        }
    }
    let expected: BTreeSet<String> = ROUTES
        .iter()
        .filter(|r| r.ops.iter().any(|(_, op)| matches!(op, Op::Chat(_))))
        .map(|r| r.pattern.strip_prefix("/api/chat/").unwrap_or("general").to_owned())
        .collect();
    assert_eq!(solutions, expected, "one turn-error alarm per solution");
}

/// A template parameter: `(type, default)`.
fn parameter(template: &Value, name: &str) -> (String, String) {
    let p = &template["Parameters"][name];
    let text = |v: &Value| match v {
        Value::Number(n) => n.to_string(),
        other => other.as_str().unwrap_or_default().to_owned(),
    };
    (text(&p["Type"]), text(&p["Default"]))
}

/// An operator alarm as it must be.
struct Expected {
    name: &'static str,
    metric: &'static str,
    statistic: &'static str,
    period: u64,
    comparison: &'static str,
    /// The parameter it reads, or a literal.
    threshold: &'static str,
    /// The EMF dimension set it is written with.
    dimensions: &'static [(&'static str, &'static str)],
}

#[test]
fn the_operator_alarms_watch_their_athena_metrics_and_notify_the_alarm_topic() {
    let template = expanded();
    let alarm = |name: &str| template["Resources"][name].clone();
    let reference = |v: &Value| {
        intrinsic(v)
            .filter(|(f, _)| f == "Ref")
            .and_then(|(_, r)| r.as_str().map(str::to_owned))
    };
    let expected = [
        Expected {
            name: "CostGrowthAlarm",
            metric: "CostGrowthRatio",
            statistic: "Maximum",
            period: 3600,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: "CostGrowthThreshold",
            dimensions: &[],
        },
        Expected {
            name: "AuthFailuresAlarm",
            metric: "AuthFailures",
            statistic: "Sum",
            period: 300,
            comparison: "GreaterThanThreshold",
            threshold: "AuthFailuresThreshold",
            dimensions: &[],
        },
        Expected {
            name: "RateLimitRefusalsAlarm",
            metric: "Refusals",
            statistic: "Sum",
            period: 300,
            comparison: "GreaterThanThreshold",
            threshold: "RateLimitRefusalsThreshold",
            dimensions: &[("code", "RATE_LIMIT")],
        },
        Expected {
            name: "SpendCapNearingAlarm",
            metric: "SpendCapUsedPercent",
            statistic: "Maximum",
            period: 300,
            comparison: "GreaterThanOrEqualToThreshold",
            threshold: "80",
            dimensions: &[],
        },
    ];
    for Expected {
        name,
        metric,
        statistic,
        period,
        comparison,
        threshold,
        dimensions,
    } in expected
    {
        let a = alarm(name);
        assert_eq!(a["Type"].as_str(), Some("AWS::CloudWatch::Alarm"), "{name}");
        let p = &a["Properties"];
        assert_eq!(p["Namespace"].as_str(), Some("Athena"), "{name}: the EMF namespace");
        assert_eq!(p["MetricName"].as_str(), Some(metric), "{name}");
        assert_eq!(p["Statistic"].as_str(), Some(statistic), "{name}");
        assert_eq!(p["Period"].as_u64(), Some(period), "{name}");
        assert_eq!(p["EvaluationPeriods"].as_u64(), Some(1), "{name}");
        assert_eq!(p["ComparisonOperator"].as_str(), Some(comparison), "{name}");
        let actual = reference(&p["Threshold"]).or_else(|| p["Threshold"].as_u64().map(|n| n.to_string()));
        assert_eq!(actual.as_deref(), Some(threshold), "{name}: threshold");
        let dims: Vec<(String, String)> = p["Dimensions"]
            .as_sequence()
            .map(|d| {
                d.iter()
                    .map(|d| {
                        (
                            d["Name"].as_str().unwrap_or_default().to_owned(),
                            d["Value"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<(String, String)> = dimensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(dims, want, "{name}: the EMF dimension set it is written with");
        for actions in ["AlarmActions", "OKActions"] {
            let (condition, then, otherwise) = if_parts(&p[actions]);
            assert_eq!(condition, "HasAlarmTopic", "{name}.{actions}");
            let topics: Vec<Option<String>> = then
                .as_sequence()
                .map(|t| t.iter().map(reference).collect())
                .unwrap_or_default();
            assert_eq!(topics, [Some("AlarmTopicArn".to_owned())], "{name}.{actions}");
            assert!(is_no_value(&otherwise), "{name}.{actions}");
        }
        if threshold != "80" {
            assert_eq!(parameter(&template, threshold).0, "Number", "{name}: {threshold}");
        }
    }
    // The metrics are written by the code under these names (shared::metrics, shared::analytics).
    let source = |path: &str| std::fs::read_to_string(workspace_root().join(path)).unwrap_or_default();
    let code =
        source("shared/src/metrics.rs") + &source("shared/src/analytics.rs") + &source("shared/src/api/error.rs");
    for metric in [
        "\"CostGrowthRatio\"",
        "\"AuthFailures\"",
        "\"Refusals\"",
        "\"RATE_LIMIT\"",
    ] {
        assert!(code.contains(metric), "{metric} is not written by the code");
    }
    // The spend cap: off by default; its alarm exists only with a cap, and every chat function
    // is told the cap.
    assert_eq!(
        parameter(&template, "SpendCapUsd"),
        ("Number".to_owned(), "0".to_owned())
    );
    assert_eq!(alarm("SpendCapNearingAlarm")["Condition"].as_str(), Some("HasSpendCap"));
    let condition = &template["Conditions"]["HasSpendCap"];
    let (not, inner) = intrinsic(condition).expect("Fn::Not");
    assert_eq!(not, "Not");
    let (equals, operands) = intrinsic(&untag(inner)[0]).expect("Fn::Equals");
    assert_eq!(equals, "Equals");
    assert_eq!(reference(&operands[0]).as_deref(), Some("SpendCapUsd"));
    assert_eq!(operands[1].as_str(), Some("0"));
    let chats: Vec<(String, &Value)> = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("chat"))
        .collect();
    assert!(chats.len() >= 7, "{}", chats.len());
    for (name, function) in chats {
        let cap = &function["Properties"]["Environment"]["Variables"]["ATHENA_SPEND_CAP_USD"];
        assert_eq!(reference(cap).as_deref(), Some("SpendCapUsd"), "{name}");
    }
}

#[test]
fn dev_deletes_what_it_created_and_prod_retains_its_data() {
    let template = expanded();
    let mut stateful = resources_of_type(&template, "AWS::DynamoDB::Table");
    stateful.extend(resources_of_type(&template, "AWS::Cognito::UserPool"));
    // The files bucket, and its TLS-only policy so that a retained bucket keeps it.
    stateful.extend(resources_of_type(&template, "AWS::S3::Bucket"));
    stateful.extend(resources_of_type(&template, "AWS::S3::BucketPolicy"));
    assert_eq!(
        stateful.len(),
        5,
        "two tables, the user pool, the files bucket and its policy"
    );
    for (name, resource) in stateful {
        let (condition, prod, dev) = if_parts(&resource["DeletionPolicy"]);
        assert_eq!(
            (condition.as_str(), prod.as_str(), dev.as_str()),
            ("IsProd", Some("RetainExceptOnCreate"), Some("Delete")),
            "{name} DeletionPolicy"
        );
        let (condition, prod, dev) = if_parts(&resource["UpdateReplacePolicy"]);
        assert_eq!(
            (condition.as_str(), prod.as_str(), dev.as_str()),
            ("IsProd", Some("Retain"), Some("Delete")),
            "{name} UpdateReplacePolicy"
        );
    }
    let mut others = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["DeletionPolicy"].as_str() == Some("Retain") {
            others.push(name.as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(others.is_empty(), "retained in every stage: {others:?}");
    // Prod signs in with SRP only.
    let client = &template["Resources"]["UserPoolClient"]["Properties"];
    let (condition, prod, dev) = if_parts(&client["ExplicitAuthFlows"]);
    assert_eq!(condition, "IsProd");
    let flows = |v: &Value| -> BTreeSet<String> {
        v.as_sequence()
            .expect("flows")
            .iter()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        flows(&prod),
        ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
    assert!(flows(&dev).contains("ALLOW_USER_SRP_AUTH"));
    let pool = &template["Resources"]["UserPool"]["Properties"];
    assert!(matches!(intrinsic(&pool["MfaConfiguration"]), Some((t, a)) if t == "Ref" && a.as_str() == Some("Mfa")));
    let password = &pool["Policies"]["PasswordPolicy"];
    assert!(password["MinimumLength"].as_u64().unwrap_or_default() >= 14);
    for rule in [
        "RequireLowercase",
        "RequireUppercase",
        "RequireNumbers",
        "RequireSymbols",
    ] {
        assert_eq!(password[rule].as_bool(), Some(true), "{rule}");
    }
}

/// `(sid, actions, resource text, condition)` of every statement of a function's inline policies.
fn statements(function: &Value) -> Vec<(String, Vec<String>, Vec<String>, Value)> {
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
    {
        for statement in policy["Statement"].as_sequence().cloned().unwrap_or_default() {
            // A conditional statement (`!If [condition, statement, !Ref AWS::NoValue]`): the
            // statement it grants when the condition holds.
            let statement = match intrinsic(&statement) {
                Some((tag, args)) if tag == "If" => args[1].clone(),
                _ => statement,
            };
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            let actions = match &statement["Action"] {
                Value::String(a) => vec![a.clone()],
                other => other
                    .as_sequence()
                    .expect("Action")
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
            };
            let mut resources = Vec::new();
            strings(&statement["Resource"], &mut resources);
            out.push((
                statement["Sid"].as_str().unwrap_or_default().to_owned(),
                actions,
                resources,
                statement["Condition"].clone(),
            ));
        }
    }
    out
}

/// What a function does: its binary's name, or `import-worker` for the conversations binary in its
/// worker mode (`ATHENA_IMPORT_WORKER`, on the bucket's events rather than API routes).
fn role_of(function: &Value) -> &str {
    if function["Properties"]["Environment"]["Variables"]["ATHENA_IMPORT_WORKER"].as_str() == Some("true") {
        return "import-worker";
    }
    function["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn every_function_has_least_privilege() {
    let template = expanded();
    let tables: BTreeSet<String> = all_tables().iter().map(|t| t.logical_id.to_owned()).collect();
    let probe_partition = conversation_pk(shared::store::PROBE_ID, shared::store::PROBE_ID);
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let binary = role_of(function);
        let statements = statements(function);
        assert!(!statements.is_empty(), "{name}: inline policies only");
        let mut probes = false;
        for (sid, actions, resources, condition) in &statements {
            for action in actions {
                assert!(!action.contains('*'), "{name}.{sid}: wildcard action {action}");
                // The files bucket and its key: conversations and chat only (checked in detail by
                // only_the_conversations_and_chat_functions_touch_the_files_bucket).
                let files = matches!(binary, "conversations" | "chat" | "housekeeping" | "import-worker")
                    && (action.starts_with("s3:") || action.starts_with("kms:"));
                // The stream consumer's dead-letter queue (checked in detail by
                // the_stream_consumer_writes_postings_only_and_reads_the_filtered_stream).
                let dead_letters = binary == "streams" && action == "sqs:SendMessage";
                assert!(
                    action.starts_with("dynamodb:")
                        || files
                        || dead_letters
                        || (binary == "chat"
                            && (action.starts_with("bedrock:") || action == "secretsmanager:GetSecretValue")),
                    "{name}.{sid}: {action} is outside what {binary} does"
                );
                assert!(
                    !matches!(action.as_str(), "dynamodb:Scan" | "dynamodb:DeleteTable" | "dynamodb:*"),
                    "{name}.{sid}: {action}"
                );
            }
            if actions.iter().all(|a| a.starts_with("dynamodb:")) {
                // A table (or its indexes) of this stack, never `*`.
                assert!(
                    resources.iter().all(|r| tables.iter().any(|t| r.contains(t.as_str()))),
                    "{name}.{sid}: {resources:?}"
                );
                if actions.iter().any(|a| a == "dynamodb:Query")
                    && resources
                        .iter()
                        .any(|r| r == "ConversationsTable.Arn" || r == "ConversationsTable")
                {
                    probes = true;
                }
            }
            if actions.iter().any(|a| a.starts_with("bedrock:")) {
                // Derived from the ModelAllowlist parameter, no model named in the template.
                assert!(
                    resources.iter().all(|r| !r.contains("anthropic.")),
                    "{name}.{sid}: hard-coded model ARN"
                );
                let mut everything = resources.clone();
                strings(condition, &mut everything);
                assert!(
                    everything.iter().any(|s| s == "ModelAllowlist"),
                    "{name}.{sid}: not derived from ModelAllowlist"
                );
                assert_eq!(actions, &["bedrock:InvokeModelWithResponseStream".to_owned()]);
            }
            if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
                // Exactly the secrets the McpSecretArns parameter names, and only when it is set.
                assert_eq!(sid, "McpServerSecrets");
                assert_eq!(resources, &["McpSecretArns".to_owned()], "{name}.{sid}");
            }
            if binary == "import-worker" && actions.iter().any(|a| a.starts_with("dynamodb:")) {
                // The worker writes import jobs and conversations only, never deletes, never
                // touches another partition (analytics, counters, search postings, links).
                assert!(
                    !actions.iter().any(|a| a.contains("Delete")),
                    "{name}.{sid}: {actions:?}"
                );
                let mut keys = Vec::new();
                strings(&condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], &mut keys);
                assert_eq!(keys, ["CONV#*", "IMPJ#*"], "{name}.{sid}: its partitions only");
                assert!(
                    resources.iter().all(|r| r.contains("ConversationsTable")),
                    "{name}.{sid}: {resources:?}"
                );
            }
            if binary == "analytics" && resources.iter().any(|r| r.contains("ConversationsTable")) {
                // Analytics reads no conversation: only the cold-start probe's partition.
                assert_eq!(actions, &["dynamodb:Query".to_owned()], "{name}.{sid}");
                let keys = &condition["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"];
                assert_eq!(
                    keys.as_sequence()
                        .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
                    Some(vec![probe_partition.as_str()]),
                    "{name}.{sid}: the probe's partition only"
                );
            }
        }
        // Every API function probes the conversations table during init
        // (shared::lambda::warm_store); the stream consumer serves no request and reads nothing.
        assert!(
            probes || binary == "streams",
            "{name}: its cold-start probe (Query on ConversationsTable) is denied"
        );
    }
}

/// The one files bucket: `(logical id, resource)`.
fn files_bucket(template: &Value) -> (String, Value) {
    let buckets = resources_of_type(template, "AWS::S3::Bucket");
    assert_eq!(buckets.len(), 1, "one bucket, for file attachments");
    let (name, bucket) = &buckets[0];
    (name.clone(), (*bucket).clone())
}

fn is_ref(v: &Value, name: &str) -> bool {
    matches!(intrinsic(v), Some((t, a)) if t == "Ref" && a.as_str() == Some(name))
}

#[test]
fn the_files_bucket_is_private_encrypted_and_reachable_over_tls_only() {
    let template = expanded();
    let (name, bucket) = files_bucket(&template);
    let props = &bucket["Properties"];
    let block = &props["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting].as_bool(), Some(true), "{name}: {setting}");
    }
    let rules = props["OwnershipControls"]["Rules"]
        .as_sequence()
        .expect("OwnershipControls");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0]["ObjectOwnership"].as_str(),
        Some("BucketOwnerEnforced"),
        "no ACLs"
    );
    // Encrypted by default: with KmsKeyArn by that key (as the tables), SSE-S3 otherwise.
    let encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        .as_sequence()
        .expect("default encryption");
    assert_eq!(encryption.len(), 1, "{name}: one default encryption rule");
    let (condition, with_key, without) = if_parts(&encryption[0]);
    assert_eq!(condition, "HasKmsKey");
    let with_key = &with_key["ServerSideEncryptionByDefault"];
    assert_eq!(with_key["SSEAlgorithm"].as_str(), Some("aws:kms"));
    assert!(is_ref(&with_key["KMSMasterKeyID"], "KmsKeyArn"), "{with_key:?}");
    assert_eq!(
        without["ServerSideEncryptionByDefault"]["SSEAlgorithm"].as_str(),
        Some("AES256")
    );
    // A bucket policy denying every request that is not over TLS, on the bucket and its objects.
    let policies: Vec<_> = resources_of_type(&template, "AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|(_, p)| is_ref(&p["Properties"]["Bucket"], &name))
        .collect();
    assert_eq!(policies.len(), 1, "{name}: one bucket policy");
    let statements = policies[0].1["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("Statement");
    let tls_only = statements
        .iter()
        .find(|s| s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false"))
        .expect("a statement on aws:SecureTransport false");
    assert_eq!(tls_only["Effect"].as_str(), Some("Deny"));
    assert_eq!(tls_only["Principal"].as_str(), Some("*"));
    assert_eq!(tls_only["Action"].as_str(), Some("s3:*"));
    let mut resources = Vec::new();
    strings(&tls_only["Resource"], &mut resources);
    let arn = format!("{name}.Arn");
    assert!(resources.contains(&arn), "the bucket: {resources:?}");
    assert!(
        resources.contains(&format!("${{{arn}}}/*")),
        "its objects: {resources:?}"
    );
}

#[test]
fn browsers_may_upload_and_download_files_from_the_allowed_origins_only() {
    let template = expanded();
    let (name, bucket) = files_bucket(&template);
    let rules = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
        .as_sequence()
        .expect("CorsRules");
    assert_eq!(rules.len(), 1, "{name}: one CORS rule");
    let rule = &rules[0];
    let methods: BTreeSet<&str> = rule["AllowedMethods"]
        .as_sequence()
        .expect("AllowedMethods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        methods,
        BTreeSet::from(["POST", "GET"]),
        "the upload and presigned downloads"
    );
    // The origins the API allows (the AllowedOrigins parameter, comma separated), never `*`.
    let (tag, args) = intrinsic(&rule["AllowedOrigins"]).expect("AllowedOrigins from the parameter");
    assert_eq!(tag, "Split");
    assert_eq!(args[0].as_str(), Some(","));
    assert!(is_ref(&args[1], "AllowedOrigins"), "{args:?}");
    assert_eq!(
        rule["AllowedHeaders"]
            .as_sequence()
            .map(|h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
        Some(vec!["*"])
    );
    assert_eq!(rule["MaxAge"].as_u64(), Some(3000));
}

#[test]
fn abandoned_uploads_expire_within_a_day_and_files_are_kept() {
    let template = expanded();
    let (name, bucket) = files_bucket(&template);
    let rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .expect("lifecycle rules");
    let enabled: Vec<&Value> = rules
        .iter()
        .filter(|r| r["Status"].as_str() == Some("Enabled"))
        .collect();
    let uploads = enabled
        .iter()
        .find(|r| r["Prefix"].as_str() == Some("uploads/"))
        .unwrap_or_else(|| panic!("{name}: no rule for uploads/"));
    let days = uploads["ExpirationInDays"].as_u64().expect("ExpirationInDays");
    assert_eq!(days, 1, "uploads/ expire after a day, not {days}");
    let multipart = enabled
        .iter()
        .find_map(|r| r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_u64())
        .unwrap_or_else(|| panic!("{name}: incomplete multipart uploads are never aborted"));
    assert!(multipart <= 1, "incomplete multipart uploads kept {multipart} days");
    // An export file the import worker did not delete (it kept failing) goes within a day too.
    let imports = enabled
        .iter()
        .find(|r| r["Prefix"].as_str() == Some("imports/"))
        .unwrap_or_else(|| panic!("{name}: no rule for imports/"));
    assert_eq!(
        imports["ExpirationInDays"].as_u64(),
        Some(1),
        "imports/ expire after a day"
    );
    // Nothing expires files/ (the app deletes them) or the whole bucket.
    for rule in &enabled {
        if rule["ExpirationInDays"].is_null() && rule["ExpirationDate"].is_null() {
            continue;
        }
        assert!(
            matches!(rule["Prefix"].as_str(), Some("uploads/" | "imports/")),
            "{name}: {rule:?} expires more than uploads"
        );
    }
}

/// The statements of a function's inline policies granted only under a condition:
/// `(condition, statement)`.
fn conditional_statements(function: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
    {
        for statement in policy["Statement"].as_sequence().cloned().unwrap_or_default() {
            if matches!(intrinsic(&statement), Some((tag, _)) if tag == "If") {
                let (condition, then, otherwise) = if_parts(&statement);
                assert!(is_no_value(&otherwise), "{statement:?}");
                out.push((condition, then));
            }
        }
    }
    out
}

#[test]
fn only_the_conversations_and_chat_functions_touch_the_files_bucket() {
    let template = expanded();
    let (bucket, _) = files_bucket(&template);
    let objects = |prefix: &str| format!("${{{bucket}.Arn}}/{prefix}/*");
    let mut chats = 0;
    let mut conversations = 0;
    let mut housekeepers = 0;
    let mut workers = 0;
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let binary = role_of(function);
        // action -> the resources it is granted on
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (sid, actions, resources, _) in statements(function) {
            for action in actions.iter().filter(|a| a.starts_with("s3:")) {
                assert!(!action.contains('*'), "{name}.{sid}: {action}");
                for resource in &resources {
                    assert!(
                        resource != "*" && resource.starts_with(&format!("${{{bucket}.Arn}}/")),
                        "{name}.{sid}: {action} on {resource}, not on objects of {bucket}"
                    );
                    granted.entry(action.clone()).or_default().insert(resource.clone());
                }
            }
        }
        let expected: BTreeMap<String, BTreeSet<String>> = match binary {
            // Reads promoted files to send them to the model: nothing else.
            "chat" => {
                chats += 1;
                BTreeMap::from([("s3:GetObject".to_owned(), BTreeSet::from([objects("files")]))])
            }
            // Signs the presigned POST (PutObject on uploads/), verifies, copies to files/,
            // presigns downloads and deletes: no ListBucket, nothing outside the two prefixes.
            // Import jobs: signs the export file's POST to imports/ and deletes it with its job;
            // never reads it (the worker does).
            "conversations" => {
                conversations += 1;
                let both = BTreeSet::from([objects("uploads"), objects("files")]);
                let mut all = both.clone();
                all.insert(objects("imports"));
                BTreeMap::from([
                    ("s3:PutObject".to_owned(), all.clone()),
                    ("s3:GetObject".to_owned(), both),
                    ("s3:DeleteObject".to_owned(), all),
                ])
            }
            // Reads the uploaded export file and deletes it: imports/ only.
            "import-worker" => {
                workers += 1;
                let imports = BTreeSet::from([objects("imports")]);
                ["s3:GetObject", "s3:DeleteObject"]
                    .into_iter()
                    .map(|a| (a.to_owned(), imports.clone()))
                    .collect()
            }
            // Deletes a purged conversation's objects: nothing else.
            "housekeeping" => {
                housekeepers += 1;
                let both = BTreeSet::from([objects("uploads"), objects("files")]);
                BTreeMap::from([("s3:DeleteObject".to_owned(), both)])
            }
            _ => BTreeMap::new(),
        };
        assert_eq!(granted, expected, "{name} ({binary}): S3 grants");
        // The bucket's key, only when KmsKeyArn is given, only through S3; chat only decrypts.
        let kms: Vec<(String, Value)> = conditional_statements(function)
            .into_iter()
            .filter(|(_, s)| {
                let mut actions = Vec::new();
                strings(&s["Action"], &mut actions);
                actions.iter().any(|a| a.starts_with("kms:"))
            })
            .collect();
        let expected_kms: &[&str] = match binary {
            "chat" | "import-worker" => &["kms:Decrypt"],
            "conversations" => &["kms:Decrypt", "kms:GenerateDataKey"],
            _ => &[],
        };
        if expected_kms.is_empty() {
            assert!(kms.is_empty(), "{name}: {kms:?}");
            continue;
        }
        assert_eq!(kms.len(), 1, "{name}: one statement for the bucket's key");
        let (condition, statement) = &kms[0];
        assert_eq!(condition, "HasKmsKey", "{name}");
        let mut actions = Vec::new();
        strings(&statement["Action"], &mut actions);
        assert_eq!(actions, expected_kms, "{name}");
        assert!(is_ref(&statement["Resource"], "KmsKeyArn"), "{name}: {statement:?}");
        let mut via = Vec::new();
        strings(&statement["Condition"]["StringEquals"]["kms:ViaService"], &mut via);
        assert_eq!(via, ["s3.${AWS::Region}.amazonaws.com"], "{name}: through S3 only");
    }
    assert_eq!((chats, conversations, housekeepers, workers), (7, 1, 1, 1));
    // No unconditional KMS grant anywhere (a conditional one is checked above).
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        for (sid, actions, _, _) in statements(function) {
            if actions.iter().any(|a| a.starts_with("kms:")) {
                assert!(
                    conditional_statements(function)
                        .iter()
                        .any(|(_, s)| s["Sid"].as_str() == Some(sid.as_str())),
                    "{name}.{sid}: a KMS grant without KmsKeyArn"
                );
            }
        }
    }
}

#[test]
fn the_files_bucket_is_named_to_exactly_the_functions_that_use_it() {
    let template = raw_template();
    assert!(
        template["Globals"]["Function"]["Environment"]["Variables"]["ATHENA_FILES_BUCKET"].is_null(),
        "not in Globals: only conversations and chat use the bucket"
    );
    let template = expanded();
    let (bucket, _) = files_bucket(&template);
    for (name, function) in resources_of_type(&template, "AWS::Serverless::Function") {
        let binary = role_of(function);
        let value = &function["Properties"]["Environment"]["Variables"]["ATHENA_FILES_BUCKET"];
        if matches!(binary, "conversations" | "chat" | "housekeeping" | "import-worker") {
            assert!(is_ref(value, &bucket), "{name}: ATHENA_FILES_BUCKET is {value:?}");
        } else {
            assert!(value.is_null(), "{name} ({binary}) does not use the files bucket");
        }
    }
    let output = &template["Outputs"]["FilesBucketName"]["Value"];
    assert!(is_ref(output, &bucket), "the bucket's name is an output: {output:?}");
}

/// The stream consumer (the search indexer, `shared::reactions`): it may write search postings
/// (`SRCH#` partitions) and nothing else of the table, reads the table's stream, sends failed
/// batches to its dead-letter queue; the mapping lets only conversation and message records
/// through, reports failed records one by one and has an on-failure destination.
#[test]
fn the_stream_consumer_writes_postings_only_and_reads_the_filtered_stream() {
    let template = expanded();
    let functions: Vec<(String, &Value)> = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("streams"))
        .collect();
    assert_eq!(functions.len(), 1, "one stream consumer");
    let (name, function) = &functions[0];
    assert!(
        function["Properties"]["Events"].is_null(),
        "{name}: no API event, no SAM-made policy"
    );
    let statements = statements(function);
    let by_sid = |sid: &str| {
        statements
            .iter()
            .find(|s| s.0 == sid)
            .unwrap_or_else(|| panic!("{name}: no statement {sid}"))
    };
    assert_eq!(statements.len(), 3, "{name}: {statements:?}");
    let (_, actions, resources, condition) = by_sid("SearchPostings");
    assert_eq!(actions, &["dynamodb:BatchWriteItem".to_owned()]);
    assert_eq!(resources, &["ConversationsTable.Arn".to_owned()]);
    let keys = &condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert_eq!(
        keys.as_sequence()
            .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
        Some(vec!["SRCH#*"]),
        "postings only"
    );
    assert!(shared::store::schema::search_pk("u", "t").starts_with("SRCH#"));
    let (_, actions, resources, _) = by_sid("ConversationsStream");
    let mut actions = actions.clone();
    actions.sort();
    assert_eq!(
        actions,
        [
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams"
        ]
    );
    assert_eq!(resources, &["${ConversationsTable.Arn}/stream/*".to_owned()]);
    let (_, actions, resources, _) = by_sid("DeadLetters");
    assert_eq!(actions, &["sqs:SendMessage".to_owned()]);
    assert_eq!(resources, &["StreamsDeadLetterQueue.Arn".to_owned()]);

    let mappings = resources_of_type(&template, "AWS::Lambda::EventSourceMapping");
    assert_eq!(mappings.len(), 1);
    let props = &mappings[0].1["Properties"];
    let mut source = Vec::new();
    strings(&props["EventSourceArn"], &mut source);
    assert_eq!(source, ["ConversationsTable.StreamArn"]);
    assert_eq!(
        props["FunctionResponseTypes"]
            .as_sequence()
            .map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>()),
        Some(vec!["ReportBatchItemFailures"])
    );
    let mut destination = Vec::new();
    strings(
        &props["DestinationConfig"]["OnFailure"]["Destination"],
        &mut destination,
    );
    assert_eq!(destination, ["StreamsDeadLetterQueue.Arn"]);
    assert!(props["MaximumRetryAttempts"].as_u64().is_some_and(|n| n > 0 && n <= 10));
    // The filter: every record of a conversation's META or a message, nothing else (checked
    // against what the consumer follows).
    let patterns: Vec<serde_json::Value> = props["FilterCriteria"]["Filters"]
        .as_sequence()
        .expect("filters")
        .iter()
        .map(|f| serde_json::from_str(f["Pattern"].as_str().expect("pattern")).expect("a JSON pattern"))
        .collect();
    let passes = |sk: &str| {
        patterns.iter().any(|p| {
            p["dynamodb"]["Keys"]["sk"]["S"]
                .as_array()
                .expect("a sort key pattern")
                .iter()
                .any(|m| m.as_str() == Some(sk) || m["prefix"].as_str().is_some_and(|pre| sk.starts_with(pre)))
        })
    };
    for (pk, sk) in [
        ("CONV#u#c", "META"),
        ("CONV#u#c", "MSG#01JH0000000000000000000001"),
        ("CONV#u#c", "CID#x"),
        ("CONV#u#c", "LIVE"),
        ("CONV#u#c", "STREAM#t#000001"),
        ("SRCH#u#valve", "M#01JH0000000000000000000001#c"),
        ("IDEM#u", "key"),
    ] {
        if shared::store::dynamo::is_indexed(pk, sk) {
            assert!(passes(sk), "{pk} {sk} must reach the consumer");
        }
        if !sk.starts_with("MSG#") && sk != "META" {
            assert!(!passes(sk), "{pk} {sk} must not invoke the consumer");
        }
    }
    // The stream carries the old image the index needs to remove postings.
    assert_eq!(
        template["Resources"]["ConversationsTable"]["Properties"]["StreamSpecification"]["StreamViewType"].as_str(),
        Some(shared::store::schema::STREAM_VIEW)
    );
}

/// The import jobs' worker: the conversations binary in its worker mode (no binary of its own),
/// up to 15 minutes, invoked by an EventBridge rule on the files bucket's "Object Created" events
/// under `imports/` (the bucket sends its events to EventBridge), with a permission for that rule
/// only; no API route.
#[test]
fn uploads_of_export_files_invoke_the_import_worker() {
    let template = expanded();
    let (bucket_name, bucket) = files_bucket(&template);
    assert_eq!(
        bucket["Properties"]["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"].as_bool(),
        Some(true),
        "{bucket_name} sends its events to EventBridge"
    );
    let workers: Vec<(String, &Value)> = resources_of_type(&template, "AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, f)| role_of(f) == "import-worker")
        .collect();
    assert_eq!(workers.len(), 1, "one import worker");
    let (worker, function) = &workers[0];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("conversations"),
        "no binary of its own"
    );
    let timeout = function["Properties"]["Timeout"].as_u64().expect("a Timeout");
    assert!((60..=900).contains(&timeout), "{worker}: Timeout {timeout}");
    assert!(function["Properties"]["Events"].is_null(), "{worker}: no API route");
    let rules: Vec<(String, &Value)> = resources_of_type(&template, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| {
            r["Properties"]["Targets"]
                .as_sequence()
                .is_some_and(|t| t.iter().any(|t| matches!(intrinsic(&t["Arn"]), Some((tag, a)) if tag == "GetAtt" && a.as_str() == Some(&format!("{worker}.Arn")))))
        })
        .collect();
    assert_eq!(rules.len(), 1, "one rule invokes {worker}");
    let (rule, resource) = &rules[0];
    let pattern = &resource["Properties"]["EventPattern"];
    assert_eq!(pattern["source"][0].as_str(), Some("aws.s3"), "{rule}");
    assert_eq!(pattern["detail-type"][0].as_str(), Some("Object Created"), "{rule}");
    assert!(
        is_ref(&pattern["detail"]["bucket"]["name"][0], &bucket_name),
        "{rule}: {pattern:?}"
    );
    assert_eq!(
        pattern["detail"]["object"]["key"][0]["prefix"].as_str(),
        Some(shared::domain::import_job::UPLOAD_PREFIX),
        "{rule}: the uploads of export files only"
    );
    let permissions: Vec<(String, &Value)> = resources_of_type(&template, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, p)| is_ref(&p["Properties"]["FunctionName"], worker))
        .collect();
    assert_eq!(permissions.len(), 1, "{worker}: one invoke permission");
    let props = &permissions[0].1["Properties"];
    assert_eq!(props["Principal"].as_str(), Some("events.amazonaws.com"));
    assert!(
        matches!(intrinsic(&props["SourceArn"]), Some((tag, a)) if tag == "GetAtt" && a.as_str() == Some(&format!("{rule}.Arn"))),
        "{worker}: invoked by {rule} only: {props:?}"
    );
}
