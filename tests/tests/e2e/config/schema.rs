//! `schema/config.schema.json` against the filter's own parser (run natively by `tollgatectl
//! validate`): the schema accepts every configuration in the repo, rejects the fixtures of
//! `examples/invalid/` that JSON Schema can express, and agrees with the parser on every file and
//! on thousands of mutations of them, except the documented differences (`differences()` below,
//! also listed in docs/config.md).
//!
//! Builds `tollgatectl` itself (`cargo build -p tollgate-store --bin tollgatectl`).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use tollgate_e2e::files::{files_with_ext, rel, yaml_documents};
use tollgate_e2e::{repo_root, TempDir};

// ---------------------------------------------------------------------------------------------
// The two validators.

use tollgate_e2e::tollgatectl;

fn schema() -> Value {
    let text = tollgate_e2e::read("schema/config.schema.json");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema/config.schema.json is not JSON: {e}"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema()).unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

/// The schema's errors for `config`, as `JSON-POINTER: message` (empty when it accepts it).
fn schema_errors(v: &jsonschema::Validator, config: &Value) -> Vec<(String, String)> {
    v.iter_errors(config).map(|e| (e.instance_path().to_string(), e.to_string())).collect()
}

/// What the filter's parser says about each file: Ok(summary) or Err(`PATH: REASON`), via one
/// `tollgatectl validate` run per chunk of files.
fn parse_with_filter(files: &[PathBuf]) -> Vec<Result<String, String>> {
    let mut out = Vec::with_capacity(files.len());
    for chunk in files.chunks(400) {
        let result = Command::new(tollgatectl()).arg("validate").args(chunk).output().unwrap();
        let stdout = String::from_utf8_lossy(&result.stdout);
        let stderr = String::from_utf8_lossy(&result.stderr);
        for file in chunk {
            let prefix = format!("{}: ", file.display());
            let ok = stdout.lines().find_map(|l| l.strip_prefix(&prefix)).map(|s| Ok(s.to_string()));
            let err = stderr.lines().find_map(|l| l.strip_prefix(&prefix)).map(|s| Err(s.to_string()));
            out.push(ok.or(err).unwrap_or_else(|| {
                panic!("tollgatectl said nothing about {}:\nstdout:\n{stdout}\nstderr:\n{stderr}", file.display())
            }));
        }
    }
    out
}

fn parse_values_with_filter(configs: &[Value]) -> Vec<Result<String, String>> {
    let dir = TempDir::new("schema");
    let files: Vec<PathBuf> = configs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = dir.0.join(format!("c{i}.json"));
            std::fs::write(&p, serde_json::to_string_pretty(c).unwrap()).unwrap();
            p
        })
        .collect();
    parse_with_filter(&files)
}

/// `rules[0].match.path_regex` -> `/rules/0/match/path_regex`.
fn pointer_of(parser_path: &str) -> String {
    let mut out = String::new();
    for part in parser_path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = part.split_once('[').map(|(n, rest)| (n, Some(rest))).unwrap_or((part, None));
        out.push('/');
        out.push_str(name);
        if let Some(rest) = indexes {
            for i in rest.split('[') {
                out.push('/');
                out.push_str(i.trim_end_matches(']'));
            }
        }
    }
    out
}

fn is_ancestor_or_self(pointer: &str, of: &str) -> bool {
    pointer.is_empty() || of == pointer || of.starts_with(&format!("{pointer}/"))
}

// ---------------------------------------------------------------------------------------------
// Every configuration in the repo.

/// Every plugin configuration of the repo that must be valid: examples/*.json (the contract
/// example among them: examples/contract.json, which the parser's own unit test reads too),
/// and the plugin configurations inside examples/**/*.yaml (Istio `pluginConfig`, Envoy wasm
/// `configuration`). A YAML file that mentions a plugin configuration which cannot be read is
/// a failure, not a skip.
fn repo_configs() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in files_with_ext(&repo_root().join("examples"), &["json"], false) {
        let text = std::fs::read_to_string(&path).unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", rel(&path)));
        out.push((rel(&path), v));
    }
    for path in files_with_ext(&repo_root().join("examples"), &["yaml", "yml"], true) {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = yaml_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
        let mut found = Vec::new();
        for doc in &docs {
            plugin_configs(doc, &mut found).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
        }
        let mentions = text.contains("pluginConfig") || text.contains("configuration:");
        assert!(
            !mentions || !found.is_empty(),
            "{} mentions a plugin configuration but none was found in it: teach repo_configs() its layout",
            rel(&path)
        );
        for (i, (where_, v)) in found.into_iter().enumerate() {
            out.push((format!("{} #{i} ({where_})", rel(&path)), v));
        }
    }
    out
}

/// The plugin configurations inside a YAML document: Istio's `pluginConfig` (a mapping) and
/// Envoy's wasm `configuration` (a StringValue holding JSON, or a JSON string).
fn plugin_configs(v: &Value, out: &mut Vec<(String, Value)>) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("pluginConfig", Value::Object(_)) => out.push(("pluginConfig".into(), child.clone())),
                    ("pluginConfig", other) => return Err(format!("pluginConfig is not a mapping: {other}")),
                    ("configuration", Value::Object(c)) if c.get("value").is_some_and(Value::is_string) => {
                        let text = c["value"].as_str().unwrap_or_default();
                        let parsed = if text.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(text)
                                .map_err(|e| format!("configuration.value is not JSON ({e}): {text}"))?
                        };
                        out.push(("configuration.value".into(), parsed));
                    }
                    ("configuration", Value::String(text)) => {
                        let parsed = serde_json::from_str(text)
                            .map_err(|e| format!("configuration is not JSON ({e}): {text}"))?;
                        out.push(("configuration".into(), parsed));
                    }
                    _ => plugin_configs(child, out)?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                plugin_configs(item, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema_with_descriptions_everywhere() {
    let s = schema();
    if let Err(e) = jsonschema::draft202012::meta::validate(&s) {
        panic!("schema/config.schema.json is not a valid 2020-12 schema: {e}");
    }
    // Every property of every object documents itself (the schema doubles as docs).
    fn walk(v: &Value, at: &str, missing: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    for (name, p) in props {
                        if p.get("description").is_none() {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                // Conditionals refine fields documented where they are declared.
                for (k, child) in m.iter().filter(|(k, _)| !matches!(k.as_str(), "if" | "then" | "else")) {
                    walk(child, &format!("{at}/{k}"), missing);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&s, "#", &mut missing);
    assert!(missing.is_empty(), "properties without a description: {missing:#?}");
    // Every object that the parser closes is closed in the schema too.
    let text = serde_json::to_string(&s).unwrap();
    assert!(
        text.matches("\"additionalProperties\":false").count() >= 12,
        "additionalProperties: false missing somewhere"
    );
}

#[test]
fn the_schema_and_the_parser_accept_every_config_in_the_repo() {
    let v = validator();
    let configs = repo_configs();
    let names: Vec<&str> = configs.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "examples/demo.json",
        "examples/slowapi-per-ip.json",
        "examples/per-key-roles.json",
        "examples/multi-window.json",
        "examples/default-rules.json",
        "examples/per-provider.json",
        "examples/contract.json",
    ] {
        assert!(names.contains(&expected), "{expected} was not checked; checked: {names:#?}");
    }
    let values: Vec<Value> = configs.iter().map(|(_, c)| c.clone()).collect();
    let parsed = parse_values_with_filter(&values);
    let mut failures = Vec::new();
    for ((name, config), parser) in configs.iter().zip(&parsed) {
        let errors = schema_errors(&v, config);
        if !errors.is_empty() {
            failures.push(format!("{name}: the schema rejects it: {errors:?}"));
        }
        if let Err(e) = parser {
            failures.push(format!("{name}: the filter rejects it: {e}"));
        }
    }
    println!("checked {} configurations:", configs.len());
    for (name, parser) in names.iter().zip(&parsed) {
        println!("  {name}: {}", parser.as_ref().map(|s| s.as_str()).unwrap_or_else(|e| e.as_str()));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// The invalid fixtures.

/// Which layer rejects a fixture of examples/invalid/.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    /// The schema and the filter's parser.
    Both,
    /// Only the filter's parser: JSON Schema cannot express the check.
    Parser,
    /// Not JSON: nothing can read it (the filter reports `configuration is not valid JSON`).
    NotJson,
}

/// Every fixture of examples/invalid/, the layer that rejects it, and the field path the filter
/// names (what Envoy logs after `invalid configuration: `).
const INVALID: &[(&str, Layer, &str)] = &[
    ("bad-key-source.json", Layer::Both, "rules[0].key[1]"),
    ("bad-path-regex.json", Layer::Parser, "rules[0].match.path_regex"),
    ("bad-rule-name.json", Layer::Both, "rules[0].name"),
    ("bad-status.json", Layer::Both, "response.status"),
    ("bad-window.json", Layer::Both, "rules[0].window"),
    ("body-tier-source.json", Layer::Both, "tier.source"),
    ("degrade-without-section.json", Layer::Both, "rules[0].degrade"),
    ("duplicate-names.json", Layer::Parser, "rules[1].name"),
    ("empty-key.json", Layer::Both, "rules[0].key"),
    ("global-without-store.json", Layer::Both, "rules[1].scope"),
    ("missing-algorithm.json", Layer::Both, "rules[0].algorithm"),
    ("not-json.json", Layer::NotJson, ""),
    ("relative-exempt-path.json", Layer::Both, "exempt_paths[1]"),
    ("small-slots.json", Layer::Both, "slots.capacity"),
    ("string-limit.json", Layer::Both, "rules[0].limit"),
    ("too-many-hops.json", Layer::Both, "client_ip.trusted_hops"),
    ("unknown-algorithm.json", Layer::Both, "rules[0].algorithm"),
    ("unknown-field.json", Layer::Both, "rules[0].limitt"),
    ("unknown-header-format.json", Layer::Both, "response.headers[1]"),
    ("window-overflow.json", Layer::Parser, "rules[0].window"),
    ("zero-limit.json", Layer::Both, "rules[0].limit"),
    ("zero-window.json", Layer::Both, "rules[0].window"),
];

#[test]
fn every_invalid_fixture_is_rejected_by_the_layer_the_table_names() {
    let dir = repo_root().join("examples/invalid");
    let files = files_with_ext(&dir, &["json"], false);
    let on_disk: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let in_table: Vec<String> = INVALID.iter().map(|(f, _, _)| f.to_string()).collect();
    assert_eq!(on_disk, in_table, "examples/invalid/ and the INVALID table must list the same files");
    let v = validator();
    let parsed = parse_with_filter(&files);
    println!("{:<30} {:<8} {:<8} filter's error", "fixture", "layer", "schema");
    for ((file, layer, path), parser) in INVALID.iter().zip(&parsed) {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let err = parser.as_ref().err().unwrap_or_else(|| panic!("{file}: the filter accepts it"));
        if path.is_empty() {
            assert!(err.starts_with("configuration is not valid JSON"), "{file}: {err}");
        } else {
            assert!(err.starts_with(&format!("{path}: ")), "{file}: the filter's error {err:?} does not name {path}");
        }
        let schema_verdict = match serde_json::from_str::<Value>(&text) {
            Err(_) => {
                assert_eq!(*layer, Layer::NotJson, "{file} is not JSON but the table says {layer:?}");
                "n/a"
            }
            Ok(config) => {
                let errors = schema_errors(&v, &config);
                match layer {
                    Layer::NotJson => panic!("{file} is JSON but the table says NotJson"),
                    Layer::Parser => {
                        assert!(errors.is_empty(), "{file}: the schema now rejects it ({errors:?}): mark it Both");
                        "accepts"
                    }
                    Layer::Both => {
                        assert!(!errors.is_empty(), "{file}: the schema accepts it, the table says it rejects it");
                        let want = pointer_of(path);
                        assert!(
                            errors.iter().any(|(at, _)| is_ancestor_or_self(at, &want)),
                            "{file}: no schema error at or above {want}: {errors:?}"
                        );
                        "rejects"
                    }
                }
            }
        };
        println!("{file:<30} {:<8} {schema_verdict:<8} {err}", format!("{layer:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Documented differences (docs/config.md, "Schema and filter differences").

/// Configurations on which the schema and the filter knowingly disagree: (what, config,
/// schema accepts, filter accepts).
fn differences() -> Vec<(&'static str, Value, bool, bool)> {
    let rule = |extra: Value| {
        let mut r = json!({"name": "r", "algorithm": "gcra", "limit": 10, "window": "1m"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        json!({"rules": [r]})
    };
    vec![
        (
            "null means absent to the filter; the schema wants the field left out",
            rule(json!({"burst": null})),
            false,
            true,
        ),
        ("null top-level section", json!({"response": null, "rules": null}), false, true),
        (
            "an integer written as a float: JSON Schema counts 10.0 as an integer",
            rule(json!({"limit": 10.0})),
            true,
            false,
        ),
        ("an integer beyond u64", rule(json!({"limit": 18446744073709551616.0_f64})), true, false),
        ("a duration that overflows u64 nanoseconds", rule(json!({"window": "999999999999d"})), true, false),
        ("a fixed estimate beyond u64", json!({"llm": {"estimate": "fixed:99999999999999999999"}}), true, false),
        ("an invalid regex (format: regex is an annotation)", rule(json!({"match": {"path_regex": "("}})), true, false),
        (
            "duplicate rule names",
            json!({"rules": [
                {"name": "a", "algorithm": "gcra", "limit": 1, "window": "1s"},
                {"name": "a", "algorithm": "gcra", "limit": 1, "window": "1s"}
            ]}),
            true,
            false,
        ),
        (
            "a cost_usd amount under 0.000001 that the filter rounds up to one micro-dollar",
            rule(json!({"unit": "cost_usd", "limit": 0.0000007})),
            false,
            true,
        ),
    ]
}

#[test]
fn the_documented_differences_are_exactly_as_documented() {
    let v = validator();
    let cases = differences();
    let configs: Vec<Value> = cases.iter().map(|(_, c, _, _)| c.clone()).collect();
    let parsed = parse_values_with_filter(&configs);
    for ((what, config, schema_ok, filter_ok), parser) in cases.iter().zip(&parsed) {
        let errors = schema_errors(&v, config);
        assert_eq!(errors.is_empty(), *schema_ok, "{what}: schema {errors:?} on {config}");
        assert_eq!(parser.is_ok(), *filter_ok, "{what}: filter {parser:?} on {config}");
    }
    // An empty (or blank) configuration is `{}` to the filter; it is not a JSON document.
    let dir = TempDir::new("schema-empty");
    let empty = dir.0.join("empty.json");
    std::fs::write(&empty, " \n").unwrap();
    assert_eq!(parse_with_filter(&[empty])[0], Ok("ok (0 rules)".to_string()));
    // The differences are listed in the reference.
    let doc = tollgate_e2e::read("docs/config.md");
    assert!(doc.contains("## Schema and filter differences"), "docs/config.md lacks the differences section");
    for needle in ["null", "10.0", "999999999999d", "path_regex", "duplicate"] {
        assert!(doc.contains(needle), "docs/config.md's differences do not mention {needle:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Differential test: mutate every field of every known-good configuration and require both
// layers to agree on each mutation.

const PROBES: &[&str] = &[
    r#"0"#,
    r#"1"#,
    r#"32"#,
    r#"33"#,
    r#"63"#,
    r#"64"#,
    r#"399"#,
    r#"400"#,
    r#"429"#,
    r#"599"#,
    r#"600"#,
    r#"16777216"#,
    r#"16777217"#,
    r#"4294967296"#,
    r#"70000"#,
    r#"-1"#,
    r#"1.5"#,
    r#""""#,
    r#""x""#,
    r#""1m""#,
    r#""250ms""#,
    r#""0s""#,
    r#""5x""#,
    r#""/v1""#,
    r#""header:x""#,
    r#""jwt:""#,
    r#""body:/m""#,
    r#""fixed:5""#,
    r#""ietf""#,
    r#""global""#,
    r#""concurrent""#,
    r#""degrade""#,
    r#""shared""#,
    r#""cost_usd""#,
    r#"0.5"#,
    r#"0.0000001"#,
    r#"true"#,
    r#"false"#,
    r#"[]"#,
    r#"["x"]"#,
    r#"["api_key"]"#,
    r#"{}"#,
    r#"{"x": 1}"#,
    r#"{"x": "y"}"#,
    r#"{"limit": 5}"#,
];

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every JSON pointer inside `v` (not the root), and whether its parent is an object.
fn pointers(v: &Value, at: &str, out: &mut Vec<(String, bool)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", escape_pointer(k));
                out.push((p.clone(), true));
                pointers(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push((p.clone(), false));
                pointers(child, &p, out);
            }
        }
        _ => {}
    }
}

fn parent_and_key(pointer: &str) -> (&str, String) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    (parent, key.replace("~1", "/").replace("~0", "~"))
}

/// Mutations of `base`: each field set to each probe, each object field removed, and an
/// unknown field added to each object.
fn mutations(base: &Value) -> Vec<(String, Value)> {
    let probes: Vec<Value> = PROBES.iter().map(|p| serde_json::from_str(p).unwrap()).collect();
    let mut ptrs = Vec::new();
    pointers(base, "", &mut ptrs);
    let mut out = Vec::new();
    for (ptr, in_object) in &ptrs {
        for probe in &probes {
            let mut m = base.clone();
            let slot = m.pointer_mut(ptr).unwrap();
            if slot != probe {
                *slot = probe.clone();
                out.push((format!("{ptr} = {probe}"), m));
            }
        }
        if *in_object {
            let mut m = base.clone();
            let (parent, key) = parent_and_key(ptr);
            m.pointer_mut(parent).and_then(Value::as_object_mut).unwrap().remove(&key);
            out.push((format!("{ptr} removed"), m));
        }
    }
    let mut objects = vec![String::new()];
    objects.extend(ptrs.iter().map(|(p, _)| p.clone()));
    for ptr in objects {
        let mut m = base.clone();
        if let Some(obj) = m.pointer_mut(&ptr).and_then(Value::as_object_mut) {
            obj.insert("zz_unknown".into(), json!(1));
            out.push((format!("{ptr}/zz_unknown added"), m));
        }
    }
    out
}

#[test]
fn the_schema_and_the_parser_agree_on_every_mutation_of_every_config() {
    let v = validator();
    let mut bases: Vec<(String, Value)> = repo_configs();
    // Shapes the repo's configs lack: a concurrent rule (no algorithm or window), a degrade
    // rule, a global rule with its store.
    bases.push(("concurrent rule".into(), json!({"rules": [{"name": "c", "unit": "concurrent", "limit": 5}]})));
    bases.push((
        "degrade rule".into(),
        json!({"rules": [{"name": "d", "algorithm": "gcra", "limit": 1, "window": "1s", "strategy": "degrade",
                          "degrade": {"set_model": "m"}}]}),
    ));
    bases.push((
        "global rule".into(),
        json!({"store": {"token": "t", "fleet_size": 3}, "rules": [{"name": "g", "algorithm": "gcra", "limit": 1, "window": "1s",
                                                   "scope": "global", "sync": "strict"}]}),
    ));
    bases.push((
        "top-level extras and a throttled rule".into(),
        json!({"debug": true, "enabled": false, "slots": {"capacity": 1024}, "max_body_bytes": 65536,
               "api_key": {"headers": [], "query": "key"},
               "rules": [{"name": "m", "enabled": false, "key": ["ip", "body:/model"], "missing_key": "skip",
                          "algorithm": "leaky_bucket", "limit": 5, "window": "10s", "burst": 8,
                          "strategy": "throttle", "max_wait": "500ms"}]}),
    ));
    bases.push((
        "cost rule".into(),
        json!({"llm": {"estimate": "fixed:100", "usage_header": "x-token-count",
                       "prices": {"m": {"input_per_mtok": 0.5, "output_per_mtok": 2}},
                       "default_price": {"input_per_mtok": 1, "output_per_mtok": 4}},
               "rules": [{"name": "cost", "unit": "cost_usd", "algorithm": "fixed_window", "limit": 5.5, "burst": 6,
                          "window": "1d", "tiers": {"pro": {"limit": 50.25, "burst": 60}}}]}),
    ));
    let mut seen = std::collections::HashSet::new();
    let mut cases: Vec<(String, Value)> = Vec::new();
    for (name, base) in &bases {
        for (what, m) in mutations(base) {
            if seen.insert(serde_json::to_string(&m).unwrap()) {
                cases.push((format!("{name}: {what}"), m));
            }
        }
    }
    let configs: Vec<Value> = cases.iter().map(|(_, c)| c.clone()).collect();
    let parsed = parse_values_with_filter(&configs);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for ((what, config), parser) in cases.iter().zip(&parsed) {
        let errors = schema_errors(&v, config);
        let verdict = match (errors.is_empty(), parser.is_ok()) {
            (true, true) => "both accept",
            (false, false) => "both reject",
            _ => {
                disagreements.push(format!("{what}\n    schema: {errors:?}\n    filter: {parser:?}"));
                "disagree"
            }
        };
        *tally.entry(verdict).or_default() += 1;
    }
    println!("{} mutations of {} configurations: {tally:?}", cases.len(), bases.len());
    assert!(cases.len() > 2000, "too few mutations: {}", cases.len());
    assert!(tally.get("both accept").copied().unwrap_or(0) > 200, "{tally:?}");
    assert!(tally.get("both reject").copied().unwrap_or(0) > 200, "{tally:?}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_schema_default_is_valid_and_accepted_by_the_filter() {
    // A config that spells out every default the schema documents is valid for both layers,
    // and the documented values are the parser's (src/config/mod.rs).
    let s = schema();
    let v = validator();
    let mut config = json!({"rules": [{"name": "r", "algorithm": "gcra", "limit": 10, "window": "1m"}]});
    for (field, prop) in s["properties"].as_object().unwrap() {
        if field == "rules" {
            continue;
        }
        if let Some(d) = prop.get("default") {
            config[field] = d.clone();
        }
    }
    let rule_props = s["$defs"]["rule"]["properties"].as_object().unwrap();
    for (field, prop) in rule_props {
        if let Some(d) = prop.get("default") {
            config["rules"][0][field] = d.clone();
        }
    }
    config["rules"][0]["name"] = json!("r");
    assert!(schema_errors(&v, &config).is_empty(), "{:?}", schema_errors(&v, &config));
    assert_eq!(parse_values_with_filter(&[config.clone()])[0], Ok("ok (1 rule: r)".to_string()), "{config}");
    assert_eq!(s["properties"]["response"]["properties"]["status"]["default"], 429);
    assert_eq!(s["properties"]["slots"]["properties"]["capacity"]["default"], 65536);
    assert_eq!(s["properties"]["max_body_bytes"]["default"], 1 << 20);
    assert_eq!(rule_props["missing_key"]["default"], "shared");
    assert_eq!(rule_props["key"]["default"], json!(["global"]));
}

#[test]
fn plugin_configs_are_found_in_istio_and_envoy_yaml() {
    let istio = r#"
# An Istio WasmPlugin
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: tollgate
  namespace: istio-system   # the root namespace
spec:
  selector:
    matchLabels: { istio: ingressgateway }
  url: oci://ghcr.io/example/tollgate:0.1.0
  phase: AUTHN
  pluginConfig:
    client_ip:
      trusted_hops: 1
    exempt_paths: ["/healthz", '/metrics']
    rules:
    - name: per-key-rpm
      key: [api_key]
      algorithm: token_bucket
      limit: 60
      window: 1m
      match:
        methods:
          - POST
        headers: { "x-env": "prod", x-beta: "*" }
    - name: "per-ip"
      key:
      - ip
      algorithm: sliding_window
      limit: 600
      window: "1h"
      enabled: false
---
apiVersion: v1
kind: ConfigMap
"#;
    let envoy = r#"
static_resources:
  listeners:
  - name: ingress
    filter_chains:
    - filters:
      - name: envoy.filters.http.wasm
        typed_config:
          config:
            name: tollgate
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: |
                {
                  "rules": [
                    # not a comment inside a block scalar's JSON? it is text; keep it out
                    {"name": "r", "algorithm": "gcra", "limit": 5, "window": "1s"}
                  ]
                }
"#;
    let docs = yaml_documents(istio).unwrap();
    assert_eq!(docs.len(), 2);
    let mut found = Vec::new();
    plugin_configs(&docs[0], &mut found).unwrap();
    assert_eq!(
        found[0].1,
        json!({
            "client_ip": {"trusted_hops": 1},
            "exempt_paths": ["/healthz", "/metrics"],
            "rules": [
                {"name": "per-key-rpm", "key": ["api_key"], "algorithm": "token_bucket", "limit": 60, "window": "1m",
                 "match": {"methods": ["POST"], "headers": {"x-env": "prod", "x-beta": "*"}}},
                {"name": "per-ip", "key": ["ip"], "algorithm": "sliding_window", "limit": 600, "window": "1h",
                 "enabled": false}
            ]
        })
    );
    assert_eq!(docs[0]["spec"]["selector"]["matchLabels"]["istio"], "ingressgateway");
    assert_eq!(docs[0]["metadata"]["namespace"], "istio-system");
    // The block scalar keeps its text, comment line included: that JSON is then invalid,
    // and plugin_configs says so rather than skipping it.
    let docs = yaml_documents(envoy).unwrap();
    let mut found = Vec::new();
    let err = plugin_configs(&docs[0], &mut found).unwrap_err();
    assert!(err.contains("configuration.value is not JSON"), "{err}");
    let fixed = envoy
        .replace("                    # not a comment inside a block scalar's JSON? it is text; keep it out\n", "");
    let docs = yaml_documents(&fixed).unwrap();
    let mut found = Vec::new();
    plugin_configs(&docs[0], &mut found).unwrap();
    assert_eq!(found[0].1["rules"][0]["limit"], 5);
    // YAML that is not YAML is an error, never a skip.
    assert!(yaml_documents("a: [1, 2\nb: }").is_err());
}
