//! Plan snapshots: desired + observed in, text / Markdown / JSON out.
//! See `tests/fixtures/plans/README.md`.

use std::path::Path;

use meridian::observe::Observation;
use meridian::plan::Gap;
use meridian::plan::make as make_plan;
use meridian::plan::render::{self, Format, Style};
use meridian::{desired, model};
use meridian_provider::Observed;

fn load(dir: &Path) -> model::DesiredState {
    let base = dir.parent().and_then(Path::parent).expect("case dir");
    let mut files = model::read_dir(dir).expect("read fixture");
    for file in &mut files {
        file.path = Path::new(&file.path)
            .strip_prefix(base)
            .expect("inside the case")
            .display()
            .to_string();
    }
    model::load(&files).unwrap_or_else(|e| panic!("fixture {} is invalid: {e:?}", dir.display()))
}

fn observed(case: &Path) -> Observation {
    let mut observation = Observation::default();
    let live = case.join("live");
    if live.is_dir() {
        let state = load(&live);
        for (address, resource) in desired::expand(&state) {
            observation.resources.push((
                resource.provider.clone(),
                Observed {
                    cloud_id: Some(format!("fake:{address}")),
                    address,
                    resource: resource.resource,
                    etag: None,
                    status: None,
                    health: Some("healthy".to_owned()),
                    owned: true,
                    adopted: false,
                    ip_addresses: Vec::new(),
                },
            ));
        }
    }
    let gaps = case.join("gaps.json");
    if gaps.is_file() {
        let gaps: Vec<Gap> =
            serde_json::from_str(&std::fs::read_to_string(gaps).expect("read gaps"))
                .expect("gaps.json");
        let failed: Vec<(String, meridian_provider::Family)> = gaps
            .iter()
            .map(|g| (g.provider.clone(), g.family))
            .collect();
        observation
            .resources
            .retain(|(provider, o)| !failed.contains(&(provider.clone(), o.address.family())));
        observation.gaps = gaps;
    }
    let overrides = case.join("overrides.json");
    if overrides.is_file() {
        observation.overrides =
            serde_json::from_str(&std::fs::read_to_string(overrides).expect("read overrides"))
                .expect("overrides.json");
    }
    observation
}

#[test]
fn plans_match_their_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plans");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "fixture cases exist");
    let mut mismatches = Vec::new();
    for case in cases {
        let state = load(&case.join("desired"));
        let resources = desired::expand(&state);
        let plan = make_plan(&state, &resources, &observed(&case), None);
        for (format, file) in [
            (Format::Text, "expected.txt"),
            (Format::Markdown, "expected.md"),
            (Format::Json, "expected.json"),
        ] {
            let rendered = render::plan(&plan, format, Style { color: false });
            let path = case.join(file);
            if update {
                std::fs::write(&path, &rendered).expect("write snapshot");
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != rendered {
                mismatches.push(format!(
                    "{} differs:\n{}",
                    path.display(),
                    similar_lines(&expected, &rendered)
                ));
            }
        }
        // Rendering twice gives the same bytes: output is deterministic.
        assert_eq!(
            render::plan(&plan, Format::Json, Style { color: false }),
            render::plan(
                &make_plan(&state, &resources, &observed(&case), None),
                Format::Json,
                Style { color: false }
            )
        );
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run with UPDATE_SNAPSHOTS=1 to accept, then review the diff)",
        mismatches.join("\n")
    );
}

fn similar_lines(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            out.push_str(&format!("line {}:\n- {e}\n+ {a}\n", i + 1));
            break;
        }
    }
    if expected.lines().count() != actual.lines().count() {
        out.push_str(&format!(
            "{} lines expected, {} rendered\n",
            expected.lines().count(),
            actual.lines().count()
        ));
    }
    out
}
