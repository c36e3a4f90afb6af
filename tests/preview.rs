//! `meridian diff`: the pull-request preview between two real commits.

mod common;

use std::path::Path;

use common::git::Repo;
use common::sim_run;

const GA: &str = "desired-state/global-accelerator.yaml";
const APAC_DIAL: &str = "trafficDial: 50            # APAC still warming up";

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    repo: Repo,
    sim: std::path::PathBuf,
    base: String,
}

/// A repository at the example, and a simulated world where it is live.
fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    // The example's careful policy (25% steps, 5 min bake), without its
    // weekend deny window, so the preview shows a real schedule whatever
    // the day.
    let repo = common::git::stepped_example(&root, 300);
    let sim = root.join("sim");
    assert_eq!(
        sim_run(&root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]).code,
        0
    );
    // The rollout ledger goes outside the work tree, so later commits do
    // not pick it up.
    let state = root.join("state");
    let apply = sim_run(
        &repo.work,
        &sim,
        &[
            "apply",
            "--yes",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
    let base = repo.git(&["rev-parse", "HEAD"]);
    Setup {
        _dir: dir,
        root,
        repo,
        sim,
        base,
    }
}

fn diff(s: &Setup, head: &str, format: &str) -> common::Run {
    let state = s.root.join("state");
    sim_run(
        &s.root,
        &s.sim,
        &[
            "diff",
            "--repo",
            &s.repo.url(),
            "--base",
            &s.base,
            "--head",
            head,
            "--format",
            format,
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    )
}

#[test]
fn the_markdown_preview_shows_file_diff_plan_and_traffic_shares() {
    let mut s = setup();
    s.repo
        .write(GA, &s.repo.read(GA).replace(APAC_DIAL, "trafficDial: 100"));
    let head = s.repo.commit("APAC to full traffic");
    s.repo.push(false);

    let markdown = diff(&s, &head, "markdown");
    assert_eq!(markdown.code, 2, "{}", markdown.all());
    let expected_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff/dial-change.md");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(expected_path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&expected_path, &markdown.stdout).expect("write");
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("snapshot exists (UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(
        markdown.stdout, expected,
        "the preview differs from tests/fixtures/diff/dial-change.md"
    );
    // What the snapshot must show, spelled out.
    let first_line = markdown.stdout.lines().next().expect("a summary line");
    assert!(
        first_line.contains("0 to create, 1 to update, 0 to delete")
            && first_line.contains("traffic moves on 1"),
        "{first_line}"
    );
    assert!(markdown.stdout.contains("-          trafficDial: 50            # APAC still warming up\n+          trafficDial: 100"), "file diff");
    assert!(
        markdown.stdout.contains("!     trafficDial: 50 → 100"),
        "plan"
    );
    // Hand-computed: clients declared equal at the three regions. Before,
    // APAC keeps half of its third (16.7%) and sends the other 16.7% to the
    // next closest group from Singapore, Frankfurt (≈ 10,300 km; N. Virginia
    // ≈ 15,500 km): eu-central-1 50%, us-east-1 33.3% (GA-1, GA-2). After,
    // 33.3% each; only Frankfurt's share moves.
    assert!(
        markdown.stdout.contains(
            "| `GlobalAccelerator[api].listener[https]` | ap-southeast-1 | 16.7% | 33.3% ▲ |"
        ),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains(
            "| `GlobalAccelerator[api].listener[https]` | eu-central-1 | 50.0% | 33.3% ▼ |"
        ),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown
            .stdout
            .contains("| `GlobalAccelerator[api].listener[https]` | us-east-1 | 33.3% | 33.3% |"),
        "{}",
        markdown.stdout
    );
    // The preview says which rules and which clients the shares rest on.
    assert!(
        markdown.stdout.contains(
            "- `GlobalAccelerator[api].listener[https]`: GA-1 closest endpoint group; GA-2 traffic dial, rest to the next closest group; clients declared at GlobalAccelerator/api spec.clients: ap-southeast-1 33.3%, eu-central-1 33.3%, us-east-1 33.3%"
        ) && markdown.stdout.contains("`BackendService[app-backend]`: GCP-1 waterfall by region")
            && markdown.stdout.contains("clients not declared; assumed equal at each region in use"),
        "{}",
        markdown.stdout
    );
    assert!(
        markdown.stdout.contains("<details>"),
        "details are collapsible"
    );

    let json = diff(&s, &head, "json");
    assert_eq!(json.code, 2);
    let preview: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(preview["format_version"], 2);
    assert_eq!(preview["head"], head.as_str());
    assert_eq!(preview["files"][0]["path"], GA);
    assert_eq!(preview["files"][0]["status"], "modified");
    assert_eq!(preview["plan"]["summary"]["update"], 1);
    let https = preview["traffic"]
        .as_array()
        .expect("traffic")
        .iter()
        .find(|t| t["subject"] == "GlobalAccelerator[api].listener[https]")
        .expect("listener");
    let apac = https["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["region"] == "ap-southeast-1")
        .expect("apac");
    assert!((apac["before"].as_f64().expect("before") - 1.0 / 6.0).abs() < 1e-9);
    assert!((apac["after"].as_f64().expect("after") - 1.0 / 3.0).abs() < 1e-9);

    let text = diff(&s, &head, "text");
    assert_eq!(text.code, 2);
    assert!(
        text.stdout
            .contains("ap-southeast-1     16.7% ->   33.3% ▲"),
        "{}",
        text.stdout
    );
}

#[test]
fn exit_codes_no_change_blocked_and_invalid() {
    let mut s = setup();
    let same = diff(&s, &s.base.clone(), "markdown");
    assert_eq!(same.code, 0, "{}", same.all());
    assert!(
        same.stdout.starts_with(&format!(
            "**meridian diff** `{}..{}`: no changes to the live world · no traffic moves",
            &s.base[..8],
            &s.base[..8]
        )),
        "{}",
        same.stdout
    );

    s.repo.write(
        GA,
        &s.repo.read(GA).replace(
            "        - region: eu-west-1\n",
            "        - region: us-east-1\n          trafficDial: 5\n        - region: eu-west-1\n",
        ),
    );
    let blocked = s.repo.commit("serve accounts from us-east-1");
    s.repo.push(false);
    let run = diff(&s, &blocked, "markdown");
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stdout
            .lines()
            .next()
            .expect("summary")
            .contains("blocked by policy"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("GlobalAccelerator/accounts-eu serves `pii` data in us-east-1"),
        "{}",
        run.stdout
    );

    s.repo.write(
        GA,
        &s.repo
            .read(GA)
            .replace("trafficDial: 5\n", "trafficDial: 500\n"),
    );
    let invalid = s.repo.commit("typo");
    s.repo.push(false);
    let run = diff(&s, &invalid, "markdown");
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout.contains("the desired state is invalid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("desired-state/global-accelerator.yaml:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("must be from 0 to 100, got 500"),
        "{}",
        run.stdout
    );
}

#[test]
fn reading_a_revision_ignores_symlinks_and_other_files_and_never_touches_the_work_tree() {
    let mut s = setup();
    std::os::unix::fs::symlink(
        "global-accelerator.yaml",
        s.repo.work.join("desired-state/link.yaml"),
    )
    .expect("symlink");
    s.repo.write("desired-state/NOTES.md", "notes\n");
    s.repo.write("big/blob.bin", &"x".repeat(8 << 20));
    let head = s.repo.commit("symlink, notes and a big unrelated file");
    let status_before = s.repo.git(&["status", "--porcelain"]);
    // A local path is read in place, from the object database.
    let run = sim_run(
        &s.root,
        &s.sim,
        &[
            "diff",
            "--repo",
            s.repo.work.to_str().expect("utf-8"),
            "--base",
            &s.base,
            "--head",
            &head,
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let preview: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let notes: Vec<&str> = preview["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("desired-state/link.yaml: symbolic link ignored")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("desired-state/NOTES.md: not a *.yaml")),
        "{notes:?}"
    );
    assert_eq!(
        s.repo.git(&["status", "--porcelain"]),
        status_before,
        "the work tree is untouched"
    );
}

/// 50 accelerators × 2 listeners × 3 regions: 300 endpoint groups, each at
/// `dial`, moved by a careful policy (25% steps, 5 min bakes).
fn fleet_files(dial: u8) -> Vec<(&'static str, String)> {
    let mut fleet = String::from(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n---\napiVersion: meridian.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: careful}\nspec:\n  selector: {kind: GlobalAccelerator}\n  maxStepPercent: 25\n  bakeSeconds: 300\n",
    );
    for a in 0..50 {
        fleet.push_str(&format!(
            "---\napiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {{name: svc-{a:02}}}\nspec:\n  provider: aws-main\n  listeners:\n"
        ));
        for (listener, port) in [("https", 443), ("grpc", 8443)] {
            fleet.push_str(&format!(
                "    - name: {listener}\n      protocol: TCP\n      portRanges: [{{from: {port}, to: {port}}}]\n      endpointGroups:\n"
            ));
            for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
                fleet.push_str(&format!(
                    "        - region: {region}\n          trafficDial: {dial}\n          endpoints:\n            - id: arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/net/s{a}-{listener}/0a1b2c3d\n              weight: 128\n"
                ));
            }
        }
    }
    vec![("desired-state/fleet.yaml", fleet)]
}

#[test]
fn a_dial_change_in_300_endpoint_groups_previews_within_one_github_comment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let mut repo = Repo::new(&root, &fleet_files(100));
    let sim = root.join("sim");
    for args in [
        &["sim", "quotas", "--accelerators", "60"][..],
        &["sim", "faults", "--deploy-delay-ms", "0"][..],
        &["sim", "limits", "--off"][..],
    ] {
        let run = sim_run(&root, &sim, args);
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let state = root.join("state");
    let state = state.to_str().expect("utf-8");
    let apply = sim_run(&repo.work, &sim, &["apply", "--yes", "--state-dir", state]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let base = repo.git(&["rev-parse", "HEAD"]);
    let (path, halved) = fleet_files(50).remove(0);
    repo.write(path, &halved);
    let head = repo.commit("every dial to 50");
    repo.push(false);
    let s = Setup {
        _dir: dir,
        root: root.clone(),
        repo,
        sim,
        base,
    };

    let markdown = diff(&s, &head, "markdown");
    assert_eq!(markdown.code, 2, "{}", markdown.all());
    let text = &markdown.stdout;
    let length = text.chars().count();
    assert!(length <= 65_536, "one GitHub comment: {length} characters");
    let first_line = text.lines().next().expect("a headline");
    assert!(
        first_line.contains("0 to create, 300 to update, 0 to delete"),
        "{first_line}"
    );
    // Counted by kind, region and field: 100 groups per region.
    for region in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert!(
            text.contains(&format!(
                "| 100 | update | endpointGroup | {region} | `trafficDial` |"
            )),
            "{region} counted:\n{text}"
        );
    }
    // The schedule is a table: 100 → 75 → 50 in every group, a bake between.
    assert!(
        text.contains("| step | what moves | values | then |"),
        "{text}"
    );
    assert!(
        text.contains(
            "| 1 | 300 endpoint groups `trafficDial` in ap-southeast-1, eu-west-1, us-east-1 | 100 → 75 (×300) | bake 5 min |"
        ),
        "{text}"
    );
    assert!(
        text.contains("| 2 | 300 endpoint groups `trafficDial` in ap-southeast-1, eu-west-1, us-east-1 | 75 → 50 (×300) |"),
        "{text}"
    );
    assert!(
        text.contains("… and 250 more"),
        "the rest counted, not listed"
    );

    // JSON stays complete.
    let json = diff(&s, &head, "json");
    assert_eq!(json.code, 2, "{}", json.all());
    let preview: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(
        preview["plan"]["changes"].as_array().map(Vec::len),
        Some(300),
        "every change in JSON"
    );

    // `drift` of the same difference reads the same way: counted, the
    // first 50 listed, the rest a flag away.
    let drift = sim_run(&s.repo.work, &s.sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("Drift: 300 resource(s) differ from desired state."),
        "{}",
        drift.stdout
    );
    for region in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert!(
            drift.stdout.contains(&format!(
                "   100 changed endpointGroup in {region}: trafficDial"
            )),
            "{region} counted:\n{}",
            drift.stdout
        );
    }
    let listed = drift
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ~ "))
        .count();
    assert_eq!(listed, 50, "{}", drift.stdout);
    assert!(
        drift
            .stdout
            .contains("… and 250 more (`--format json` lists every one)")
    );
    let markdown = sim_run(&s.repo.work, &s.sim, &["drift", "--format", "markdown"]);
    assert_eq!(markdown.code, 2, "{}", markdown.all());
    assert!(markdown.stdout.chars().count() <= 65_536);
    assert!(
        markdown
            .stdout
            .contains("| 100 | changed | endpointGroup | us-east-1 | `trafficDial` |"),
        "{}",
        markdown.stdout
    );
    assert_eq!(
        markdown
            .stdout
            .lines()
            .filter(|l| l.starts_with("| `GlobalAccelerator["))
            .count(),
        50,
        "{}",
        markdown.stdout
    );
    assert!(markdown.stdout.contains("| … 250 more |"));
    let json = sim_run(&s.repo.work, &s.sim, &["drift", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["resources"].as_array().map(Vec::len), Some(300));
}
