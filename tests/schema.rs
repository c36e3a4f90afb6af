//! The committed JSON Schema must equal the one generated from the model.

use std::path::Path;

#[test]
fn committed_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/meridian.schema.json");
    let committed = std::fs::read_to_string(&path).expect("schema/meridian.schema.json exists");
    let generated = serde_json::to_string_pretty(&meridian::model::schema::editor_schema())
        .expect("serializes")
        + "\n";
    assert!(
        committed == generated,
        "schema/meridian.schema.json is stale; regenerate it with `cargo run -- schema > schema/meridian.schema.json`"
    );
}

#[test]
fn committed_schema_names_every_kind_and_the_shared_field_names() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/meridian.schema.json"),
        )
        .expect("read"),
    )
    .expect("json");
    let text = schema.to_string();
    for field in [
        "trafficDial",
        "capacityScaler",
        "clientIpPreservation",
        "maxStepPercent",
        "blockedRegions",
        "requestPath",
        "checkIntervalSec",
    ] {
        assert!(text.contains(field), "{field} missing from the schema");
    }
}
