//! The audit trail: every write meridian makes is one line, with its
//! revision, author, verified signer, trigger, fields before → after and the
//! cloud's request id; `meridian audit` answers "who moved this dial", and
//! the trail matches the simulated cloud's own history call for call.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::{sim_run, world};

const GROUP: &str = "GlobalAccelerator[api].listener[https].endpointGroup[us-east-1]";

fn audit(root: &Path, state: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "audit",
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let run = common::meridian(root, &args);
    assert_eq!(run.code, 0, "{}", run.all());
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The dial a line moved the group from and to.
fn dial_change(line: &serde_json::Value) -> Option<(u64, u64)> {
    line["changes"].as_array()?.iter().find_map(|c| {
        let field = c["fields"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == "trafficDial")?;
        Some((field["before"].as_u64()?, field["after"].as_u64()?))
    })
}

#[test]
fn a_rollout_a_rollback_and_an_override_are_each_in_the_trail_matching_the_clouds_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    let run = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "10"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut repo = common::git::stepped_example(root, 4);

    // Commits are signed with an SSH key the daemon trusts.
    let key = root.join("release");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "release", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen must be installed (scripts/test.sh installs it)");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let allowed = root.join("allowed_signers");
    std::fs::write(&allowed, format!("release@example.com {public}")).expect("write");
    let signing = [
        "-c".to_owned(),
        "gpg.format=ssh".to_owned(),
        "-c".to_owned(),
        format!("user.signingkey={}", key.display()),
    ];
    let signing: Vec<&str> = signing.iter().map(String::as_str).collect();
    let first = repo.commit_with("signed start", &signing, &["-S"]);
    repo.push(false);

    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            "1s",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--verify-signatures",
            "--allowed-signers",
            allowed.to_str().expect("utf-8"),
        ],
        None,
    );
    daemon.wait_for(Duration::from_secs(90), "the first revision", |s| {
        s["last_applied"]["revision"].as_str() == Some(first.as_str())
    });

    // A rollout (us-east-1 drained in 25-point steps) that fails in step 1
    // and is rolled back.
    let ga = "desired-state/global-accelerator.yaml";
    let text = repo.read(ga);
    let https = text.find("- name: https").expect("https");
    let at = https + text[https..].find("trafficDial: 100").expect("dial");
    repo.write(
        ga,
        &format!(
            "{}trafficDial: 0{}",
            &text[..at],
            &text[at + "trafficDial: 100".len()..]
        ),
    );
    let drain = repo.commit_with("drain us-east-1", &signing, &["-S"]);
    repo.push(false);
    daemon.wait_for(Duration::from_secs(60), "step 1 to bake", |s| {
        s["rollout_waiting"]
            .as_str()
            .is_some_and(|w| w.contains("baking"))
    });
    let down = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "unhealthy"],
    );
    assert_eq!(down.code, 0, "{}", down.all());
    daemon.wait_for(Duration::from_secs(60), "the rollback", |s| {
        s["last_attempted"]["outcome"] == "rolled_back"
    });
    drop(daemon);

    // A break-glass override set by hand.
    let dir_arg = root.join("desired-state-copy");
    common::copy_example(&dir_arg);
    let set = sim_run(
        root,
        &sim,
        &[
            "override",
            "set",
            "GlobalAccelerator/api",
            "--until",
            "2h",
            "--dir",
            dir_arg.to_str().expect("utf-8"),
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());

    // Who moved the us-east-1 dial.
    let lines = audit(root, &state, &["--object", GROUP]);
    let moves: Vec<(String, u64, u64, Option<u64>, String)> = lines
        .iter()
        .filter(|l| l["outcome"] == "ok")
        .filter_map(|l| {
            let (before, after) = dial_change(l)?;
            Some((
                l["trigger"].as_str()?.to_owned(),
                before,
                after,
                l["step"].as_u64(),
                l["revision"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("daemon".to_owned(), 100, 75, Some(1), drain.clone()),
            ("rollback".to_owned(), 75, 100, Some(2), drain.clone()),
        ],
        "{lines:#?}"
    );
    for line in lines.iter().filter(|l| dial_change(l).is_some()) {
        assert_eq!(line["call"], "UpdateEndpointGroup", "{line:#}");
        assert_eq!(
            line["author"], "Test Author <author@example.com>",
            "{line:#}"
        );
        assert!(
            line["signer"]
                .as_str()
                .is_some_and(|s| s.starts_with("release@example.com (SHA256:")),
            "{line:#}"
        );
        assert!(
            line["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{line:#}"
        );
    }
    let text = common::meridian(
        root,
        &[
            "audit",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--object",
            GROUP,
        ],
    );
    assert_eq!(text.code, 0, "{}", text.all());
    assert!(
        text.stdout.contains("trafficDial: 100 → 75"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("trafficDial: 75 → 100"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("rollback"), "{}", text.stdout);

    // The override is a line of its own, on the accelerator.
    let overrides = audit(root, &state, &["--object", "GlobalAccelerator[api]"]);
    let line = overrides
        .iter()
        .find(|l| l["trigger"] == "override")
        .expect("the override's line");
    assert_eq!(line["outcome"], "ok", "{line:#}");
    assert_eq!(line["call"], "TagResource", "{line:#}");
    assert!(
        line["changes"][0]["fields"][0]["after"].as_str().is_some(),
        "{line:#}"
    );

    // One to one with the cloud's history: every write the cloud recorded
    // with a request id is exactly one `ok` line with that id and operation,
    // and every `ok` line is one write the cloud recorded. The writes the
    // cloud recorded without one are the test's own `sim` commands.
    let all = audit(root, &state, &[]);
    // --since: a time or a duration back from now.
    assert_eq!(audit(root, &state, &["--since", "1h"]), all);
    assert!(audit(root, &state, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let first_ms = all[0]["at_unix_ms"].as_u64().expect("ms");
    let last_ms = all[all.len() - 1]["at_unix_ms"].as_u64().expect("ms");
    assert!(last_ms > first_ms + 2000, "the run spans a bake");
    // (RFC 3339 here is to the second: the cut is at most 1.5 s before
    // the last line.)
    let cut =
        meridian::clock::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(last_ms - 500));
    let later = audit(root, &state, &["--since", &cut]);
    assert!(!later.is_empty() && later.len() < all.len(), "{cut}");
    assert!(
        later
            .iter()
            .all(|l| l["at_unix_ms"].as_u64() >= Some(last_ms - 1500))
    );
    let mut lines_by_request: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in all.iter().filter(|l| l["outcome"] == "ok") {
        lines_by_request
            .entry(line["request_id"].as_str().expect("request id").to_owned())
            .or_default()
            .push(line["call"].as_str().expect("call").to_owned());
    }
    let world = world(&sim);
    let history = world["history"].as_array().expect("history");
    let mut history_by_request: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut without = Vec::new();
    for entry in history {
        match entry["request_id"].as_str() {
            Some(id) => history_by_request
                .entry(id.to_owned())
                .or_default()
                .push(entry["operation"].as_str().expect("operation").to_owned()),
            None => without.push(entry["operation"].as_str().unwrap_or_default().to_owned()),
        }
    }
    assert!(
        history_by_request.len() > 20,
        "the initial converge wrote the fleet"
    );
    assert_eq!(lines_by_request, history_by_request);
    assert_eq!(
        without,
        vec!["SetRegionHealth".to_owned()],
        "only the test's own `sim set-health` lacks a request id"
    );
    // Nothing failed in this run (a failed call would have a line of its
    // own, `failed`, matched by no history entry).
    assert!(all.iter().all(|l| l["outcome"] == "ok"), "{all:#?}");
}
