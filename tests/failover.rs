//! `meridian failover`: the desired-state change that drains a region, as a
//! patch for `git apply` or a commit on a new branch, through the real
//! binary and real Git.

mod common;

use std::path::Path;
use std::process::Command;

use common::git::{Repo, example_files};
use common::{copy_example, meridian};

const GA: &str = "desired-state/global-accelerator.yaml";

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file of a folder, by name.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Lines that differ between two texts of the same length in lines.
fn changed_lines(before: &str, after: &str) -> Vec<(usize, String, String)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(a.len(), b.len(), "no line added or removed");
    a.iter()
        .zip(&b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i + 1, x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn the_patch_applies_with_git_apply_keeps_comments_and_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = copy_example(root);
    let before = std::fs::read_to_string(ds.join("global-accelerator.yaml")).expect("read");
    // Frankfurt: its clients go on to the next closest group with a dial
    // above 0 (N. Virginia for `api`, Ireland for `accounts-eu`), which every
    // policy allows. (Draining us-east-1 would send US clients to Frankfurt:
    // see `draining_the_only_us_region_is_refused_and_reports_the_overload`.)
    let run = meridian(
        root,
        &["failover", "--from", "eu-central-1", "desired-state"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.starts_with(
            "diff --git a/desired-state/global-accelerator.yaml b/desired-state/global-accelerator.yaml\n--- a/desired-state/global-accelerator.yaml\n+++ b/desired-state/global-accelerator.yaml\n@@"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("Drain eu-central-1: trafficDial 0 on 3 endpoint group(s), capacityScaler 0 on 0 backend(s)"),
        "{}",
        run.stderr
    );
    // ap-southeast-1 keeps half of its third and sends the rest on to the
    // next closest group with a dial above 0: Frankfurt is at 0 now, so
    // N. Virginia: 1/3 + 1/3 (Frankfurt's clients) + 1/6 = 25,000 of 30,000.
    assert!(
        run.stderr.contains(
            "warning: GlobalAccelerator[api].listener[https]: us-east-1 would carry about 25000 requests per second after the drain, above its declared capacityRps 24000"
        ),
        "{}",
        run.stderr
    );
    // Printing the patch wrote nothing.
    assert_eq!(
        std::fs::read_to_string(ds.join("global-accelerator.yaml")).expect("read"),
        before
    );

    std::fs::write(root.join("drain.patch"), &run.stdout).expect("write");
    git(root, &["apply", "--check", "drain.patch"]);
    git(root, &["apply", "drain.patch"]);
    let after = std::fs::read_to_string(ds.join("global-accelerator.yaml")).expect("read");
    // Exactly the three eu-central-1 dials (`api` https and grpc,
    // `accounts-eu`), in place: every other line — comments, flow mappings,
    // spacing — is untouched.
    assert_eq!(
        changed_lines(&before, &after),
        [30, 59, 89]
            .into_iter()
            .map(|line| (
                line,
                "          trafficDial: 100".to_owned(),
                "          trafficDial: 0".to_owned()
            ))
            .collect::<Vec<_>>()
    );
    for comment in [
        "# The public API, three regions, two listeners; US clients' records stay in North America.",
        "trafficDial: 50            # APAC still warming up",
        "weight: 0              # canary: present, healthy, no traffic yet",
        "# Accounts service: holds personal data, served from the EU only.",
    ] {
        assert!(after.contains(comment), "{comment} survives");
    }
    let validate = meridian(root, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
    assert!(
        !validate.stdout.contains("note:"),
        "no policy violation: {}",
        validate.all()
    );
    // Draining an already drained region changes nothing.
    let again = meridian(root, &["failover", "--from", "eu-central-1"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.is_empty(), "{}", again.all());
    assert!(
        again.stderr.contains("Nothing to change"),
        "{}",
        again.all()
    );
}

#[test]
fn draining_the_only_us_region_is_refused_and_reports_the_overload() {
    // `api`, clients declared equal at its three regions. With us-east-1 at
    // dial 0, N. Virginia's clients go on to their next closest group with a
    // dial above 0: Frankfurt (≈ 6,550 km; Singapore ≈ 15,500 km). So does
    // the half of Singapore's third its dial 50 turns away. eu-central-1 =
    // 1/3 + 1/3 + 1/6 = 5/6 of 30,000 = 25,000 requests per second, above
    // its declared 24,000. And US clients served in Frankfurt break
    // DataResidencyPolicy/us-customer-data: refused, nothing written.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = common::copy_example_verbatim(root);
    let before = snapshot(&ds);
    let run = meridian(root, &["failover", "--from", "us-east-1"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stdout.is_empty(), "{}", run.all());
    assert!(
        run.stderr.contains(
            "refused: GlobalAccelerator[api].listener[https] would move `us-customer-data` data to eu-central-1 (0.0% → 33.3% of new traffic, clients in us-*)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "warning: GlobalAccelerator[api].listener[https]: eu-central-1 would carry about 25000 requests per second after the drain, above its declared capacityRps 24000"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&ds), before);
}

#[test]
fn to_raises_the_target_and_gcp_backends_drain_by_capacity_scaler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = copy_example(root);
    let ga_before = std::fs::read_to_string(ds.join("global-accelerator.yaml")).expect("read");
    let run = meridian(
        root,
        &[
            "failover",
            "--from",
            "eu-central-1",
            "--to",
            "ap-southeast-1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    // With ap-southeast-1 at 100 it keeps its own third: N. Virginia carries
    // 1/3 + 1/3 = 20,000 requests per second, under its 24,000.
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    std::fs::write(root.join("drain.patch"), &run.stdout).expect("write");
    git(root, &["apply", "drain.patch"]);
    let ga_after = std::fs::read_to_string(ds.join("global-accelerator.yaml")).expect("read");
    let changes = changed_lines(&ga_before, &ga_after);
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert_eq!(
        changes[1],
        (
            38,
            "          trafficDial: 50            # APAC still warming up".to_owned(),
            "          trafficDial: 100            # APAC still warming up".to_owned()
        ),
        "the scalar changes, its comment stays"
    );
    assert_eq!(meridian(root, &["validate"]).code, 0);

    // A GCP region: the backend's capacityScaler goes to 0.
    let gcp_before = std::fs::read_to_string(ds.join("gcp-load-balancing.yaml")).expect("read");
    let run = meridian(root, &["failover", "--from", "us-east1"]);
    assert_eq!(run.code, 0, "{}", run.all());
    std::fs::write(root.join("gcp.patch"), &run.stdout).expect("write");
    git(root, &["apply", "gcp.patch"]);
    let gcp_after = std::fs::read_to_string(ds.join("gcp-load-balancing.yaml")).expect("read");
    assert_eq!(
        changed_lines(&gcp_before, &gcp_after),
        vec![(
            35,
            "      capacityScaler: 1.0".to_owned(),
            "      capacityScaler: 0".to_owned()
        )]
    );
    assert_eq!(meridian(root, &["validate"]).code, 0);
}

#[test]
fn an_absent_dial_is_added_next_to_the_region() {
    // The fixture's us-east-1 group has no trafficDial (default 100): the
    // drain adds one under `region`, at the mapping's indentation.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = root.join("records");
    std::fs::create_dir_all(&ds).expect("mkdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/whatif/us-records-standby/records.yaml");
    std::fs::copy(&source, ds.join("records.yaml")).expect("copy");
    let run = meridian(root, &["failover", "--from", "us-east-1", "records"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains(
            "         - region: us-east-1\n+          trafficDial: 0\n           endpoints:\n"
        ),
        "{}",
        run.stdout
    );
    // The standby in Canada is already a plan-time violation; the drain
    // does not make it worse (us-east-1's clients spill by dial to
    // us-west-2 only) but says that plan stays blocked.
    assert!(
        run.stderr
            .contains("warning: plan and apply stay blocked whatever this change does"),
        "{}",
        run.stderr
    );
    std::fs::write(root.join("drain.patch"), &run.stdout).expect("write");
    git(root, &["apply", "drain.patch"]);
    assert_eq!(meridian(root, &["validate", "records"]).code, 0);
}

#[test]
fn branch_commits_only_the_drained_scalars_and_leaves_head_and_work_tree_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let repo = Repo::new(dir.path(), &files);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let status_before = repo.git(&["status", "--porcelain"]);

    let run = meridian(
        &repo.work,
        &[
            "failover",
            "--from",
            "eu-central-1",
            "--branch",
            "drain-eu-central-1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("on the new branch drain-eu-central-1"),
        "{}",
        run.all()
    );

    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head, "HEAD stays");
    assert_eq!(
        repo.git(&["rev-parse", "--abbrev-ref", "HEAD"]),
        "main",
        "the current branch stays"
    );
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        status_before,
        "the work tree and the index stay"
    );
    assert_eq!(
        repo.git(&["rev-parse", "drain-eu-central-1^"]),
        head,
        "the branch starts at HEAD"
    );
    assert_eq!(
        repo.git(&["diff", "--name-only", "main", "drain-eu-central-1"]),
        GA
    );
    let committed = repo.git(&["show", &format!("drain-eu-central-1:{GA}")]);
    let changes = changed_lines(&repo.read(GA), &committed);
    assert_eq!(
        changes
            .iter()
            .map(|(line, before, after)| (*line, before.trim(), after.trim()))
            .collect::<Vec<_>>(),
        vec![
            (30, "trafficDial: 100", "trafficDial: 0"),
            (59, "trafficDial: 100", "trafficDial: 0"),
            (89, "trafficDial: 100", "trafficDial: 0"),
        ]
    );
    let message = repo.git(&["log", "-1", "--format=%B", "drain-eu-central-1"]);
    assert!(
        message.starts_with(
            "Drain eu-central-1: trafficDial 0 on 3 endpoint group(s), capacityScaler 0 on 0 backend(s)"
        ) && message.contains(
            "GlobalAccelerator/api listener https, endpoint group eu-central-1: trafficDial 100 -> 0"
        ),
        "{message}"
    );

    // The same branch name again is an error; nothing moves.
    let again = meridian(
        &repo.work,
        &[
            "failover",
            "--from",
            "eu-central-1",
            "--branch",
            "drain-eu-central-1",
        ],
    );
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.all());

    // Uncommitted edits to a file the drain touches are refused, not committed.
    repo.write(GA, &format!("{}# local edit\n", repo.read(GA)));
    let dirty = meridian(
        &repo.work,
        &[
            "failover",
            "--from",
            "eu-central-1",
            "--branch",
            "drain-dirty",
        ],
    );
    assert_eq!(dirty.code, 1, "{}", dirty.all());
    assert!(
        dirty.stderr.contains("has uncommitted changes"),
        "{}",
        dirty.all()
    );
    assert!(
        repo.git(&["branch", "--list", "drain-dirty"]).is_empty(),
        "no branch"
    );
}

#[test]
fn a_drain_that_leaves_too_few_serving_regions_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let mut repo = Repo::new(dir.path(), &files);
    // eu-central-1 is already drained; draining ap-southeast-1 as well would
    // leave `api` serving from us-east-1 alone, below TrafficPolicy/careful's
    // 2 regions.
    let first = meridian(&repo.work, &["failover", "--from", "eu-central-1"]);
    assert_eq!(first.code, 0, "{}", first.all());
    std::fs::write(repo.work.join("drain.patch"), &first.stdout).expect("write");
    git(&repo.work, &["apply", "drain.patch"]);
    std::fs::remove_file(repo.work.join("drain.patch")).expect("rm");
    repo.commit("drain eu-central-1");
    let head = repo.git(&["rev-parse", "HEAD"]);
    let before = snapshot(&repo.work.join("desired-state"));

    for extra in [&[][..], &["--branch", "drain-ap"][..]] {
        let mut args = vec!["failover", "--from", "ap-southeast-1"];
        args.extend_from_slice(extra);
        let run = meridian(&repo.work, &args);
        assert_eq!(run.code, 3, "{}", run.all());
        assert!(run.stdout.is_empty(), "{}", run.all());
        assert!(
            run.stderr.contains(
                "refused: GlobalAccelerator[api].listener[https] would keep 1 serving region(s) (us-east-1) after the drain; TrafficPolicy/careful requires at least 2"
            ),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("Nothing was written."),
            "{}",
            run.stderr
        );
    }
    assert_eq!(snapshot(&repo.work.join("desired-state")), before);
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head);
    assert!(repo.git(&["branch", "--list", "drain-ap"]).is_empty());

    // The EU-only accounts service: draining both of its regions leaves none.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let ds = copy_example(dir2.path());
    let first = meridian(dir2.path(), &["failover", "--from", "eu-west-1"]);
    assert_eq!(first.code, 0, "{}", first.all());
    std::fs::write(dir2.path().join("p.patch"), &first.stdout).expect("write");
    git(dir2.path(), &["apply", "p.patch"]);
    let before = snapshot(&ds);
    let run = meridian(dir2.path(), &["failover", "--from", "eu-central-1"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(
        run.stderr.contains("refused: GlobalAccelerator[accounts-eu].listener[https] would keep 0 serving region(s) after the drain; traffic must never drop to zero serving regions"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&ds), before);
}

#[test]
fn a_drain_that_moves_classified_data_to_a_forbidden_region_is_refused() {
    // Raising the Canadian standby of the US-only records service while
    // draining N. Virginia would put two thirds of its traffic in
    // ca-central-1: Canada's own clients, and N. Virginia's, whose next
    // closest group with a dial above 0 is Montréal (≈ 790 km; Oregon ≈
    // 3,500 km).
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let ds = root.join("records");
    std::fs::create_dir_all(&ds).expect("mkdir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/whatif/us-records-standby/records.yaml"),
        ds.join("records.yaml"),
    )
    .expect("copy");
    let before = snapshot(&ds);
    let run = meridian(
        root,
        &[
            "failover",
            "--from",
            "us-east-1",
            "--to",
            "ca-central-1",
            "records",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stdout.is_empty(), "{}", run.all());
    assert!(
        run.stderr.contains(
            "refused: GlobalAccelerator[records].listener[https] would move `us-regulated` data to ca-central-1 (0.0% → 66.7% of new traffic); DataResidencyPolicy/us-records forbids it"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&ds), before);
}

#[test]
fn unknown_absent_or_repeated_regions_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example(dir.path());
    let run = meridian(dir.path(), &["failover", "--from", "us-east-9"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("unknown region `us-east-9`") && run.stderr.contains("eu-central-1"),
        "{}",
        run.stderr
    );
    let run = meridian(dir.path(), &["failover", "--from", "us-west-1"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("no endpoint group or backend of the desired state is in `us-west-1`"),
        "{}",
        run.stderr
    );
    let run = meridian(
        dir.path(),
        &["failover", "--from", "us-east-1", "--to", "us-east-1"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let run = meridian(
        dir.path(),
        &["failover", "--from", "us-east-1", "--output", "patch"],
    );
    assert_eq!(
        run.code,
        1,
        "--output is not a flag (a patch is the default, --branch the alternative): {}",
        run.all()
    );
    assert!(run.stderr.contains("--output"), "{}", run.all());
}
