//! Signed commits: `meridian run --verify-signatures` applies a revision
//! only when its commits are signed by a trusted key, SSH (git's
//! `gpg.format ssh`, signed by `ssh-keygen`) or OpenPGP (signed by `gpg`).
//! A refused revision shows its reason in /status and the metrics, is never
//! applied, and the last good revision keeps being reconciled.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::git::{Repo, example_files};
use common::{call_totals, dial, sim_run};

fn tool(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (scripts/test.sh installs it): {e}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A new ed25519 key at `path` (and `path`.pub); its public line.
fn ssh_key(path: &Path, comment: &str) -> String {
    tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            path.to_str().expect("utf-8"),
        ],
    );
    std::fs::read_to_string(path.with_extension("pub"))
        .expect("public key")
        .trim()
        .to_owned()
}

fn ssh_signing(key: &Path) -> Vec<String> {
    vec![
        "-c".to_owned(),
        "gpg.format=ssh".to_owned(),
        "-c".to_owned(),
        format!("user.signingkey={}", key.display()),
    ]
}

/// A new SSH key `root/name` for `email`, and `root/allowed_signers`
/// listing it alone.
struct SshSigner {
    public: String,
    allowed: PathBuf,
    signing: Vec<String>,
}

impl SshSigner {
    fn new(root: &Path, name: &str, email: &str) -> Self {
        let key = root.join(name);
        let public = ssh_key(&key, email);
        let allowed = root.join("allowed_signers");
        std::fs::write(&allowed, format!("{email} {public}\n")).expect("write");
        Self {
            public,
            allowed,
            signing: ssh_signing(&key),
        }
    }

    /// Git's options to sign a commit with the key.
    fn signing(&self) -> Vec<&str> {
        self.signing.iter().map(String::as_str).collect()
    }

    fn allowed(&self) -> &str {
        self.allowed.to_str().expect("utf-8")
    }
}

fn edit_dial(repo: &Repo, region_dial: (&str, u32)) {
    let ga = "desired-state/global-accelerator.yaml";
    let text = repo.read(ga);
    let https = text.find("- name: https").expect("https");
    let region = https
        + text[https..]
            .find(&format!("region: {}", region_dial.0))
            .expect("region");
    let at = region + text[region..].find("trafficDial: ").expect("dial") + "trafficDial: ".len();
    let digits = text[at..].chars().take_while(char::is_ascii_digit).count();
    repo.write(
        ga,
        &format!("{}{}{}", &text[..at], region_dial.1, &text[at + digits..]),
    );
}

/// A commit with `signed`'s signature over another message (`change`
/// replaced in it), written straight into the object database.
fn forge(repo: &Repo, root: &Path, signed: &str, kind: &str, change: (&str, &str)) -> String {
    let object = repo.git(&["cat-file", "commit", signed]);
    assert!(
        object.contains(&format!("-----BEGIN {kind} SIGNATURE-----")),
        "{object}"
    );
    let path = root.join("forged-commit");
    std::fs::write(&path, format!("{}\n", object.replace(change.0, change.1))).expect("write");
    repo.git(&[
        "hash-object",
        "-t",
        "commit",
        "-w",
        path.to_str().expect("utf-8"),
    ])
}

fn setup(root: &Path) -> (PathBuf, Repo) {
    let sim = root.join("sim");
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    (sim, Repo::new(root, &files))
}

fn start(sim: &Path, repo: &Repo, state: &Path, extra: &[&str]) -> Daemon {
    let url = repo.url();
    let mut args = vec![
        "--repo",
        url.as_str(),
        "--interval",
        "1s",
        "--drift-interval",
        "3s",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    Daemon::start(sim, &args, None)
}

/// Sets the eu-central-1 dial to `dial` in a commit signed with `signing`,
/// pushes it, starts a daemon with the signature `flags` and waits until it
/// has applied that commit: the daemon, the commit and the status then.
fn signed_and_applied(
    sim: &Path,
    repo: &mut Repo,
    state: &Path,
    signing: &[&str],
    dial: u32,
    flags: &[&str],
) -> (Daemon, String, serde_json::Value) {
    edit_dial(repo, ("eu-central-1", dial));
    let good = repo.commit_with(&format!("eu-central-1 to {dial}, signed"), signing, &["-S"]);
    repo.push(false);
    let daemon = start(sim, repo, state, flags);
    let status = daemon.wait_for(Duration::from_secs(90), "the signed head", |s| {
        s["last_applied"]["revision"].as_str() == Some(good.as_str())
    });
    (daemon, good, status)
}

/// Waits until the daemon has refused `revision` and returns its status.
fn refused(daemon: &Daemon, revision: &str, reason: &str) -> serde_json::Value {
    let status = daemon.wait_for(Duration::from_secs(60), reason, |s| {
        s["signature"]["revision"].as_str() == Some(revision)
    });
    assert_eq!(status["signature"]["verified"], false, "{status:#}");
    assert_eq!(status["signature"]["reason"], reason, "{status:#}");
    assert_eq!(status["last_attempted"]["outcome"], "refused", "{status:#}");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused") && m.contains(reason)),
        "{status:#}"
    );
    assert_eq!(
        daemon.metric(&format!("meridian_revision_refused{{reason=\"{reason}\"}}")),
        1.0
    );
    status
}

/// Commits after `revision`'s are not applied: the world keeps the last
/// good revision's dial, and drift back to it is still corrected.
fn last_good_stays_reconciled(sim: &Path, daemon: &Daemon, good: &str, dial_of_good: u64) {
    assert_eq!(
        daemon.status()["last_applied"]["revision"].as_str(),
        Some(good)
    );
    assert_eq!(dial(sim, "api", 443, "eu-central-1"), dial_of_good);
    common::set_https_dial(sim, "api", "eu-central-1", 7);
    let started = Instant::now();
    while dial(sim, "api", 443, "eu-central-1") != dial_of_good {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the last good revision's dial was not restored while the head is refused"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ssh_signed_heads_are_applied_and_unsigned_unknown_and_tampered_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (sim, mut repo) = setup(root);
    let keys = root.join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let trusted = keys.join("release");
    let trusted_pub = ssh_key(&trusted, "release@example.com");
    let stranger = keys.join("stranger");
    ssh_key(&stranger, "stranger@example.com");
    let allowed = keys.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("# who may move traffic\nrelease@example.com namespaces=\"git\" {trusted_pub}\n"),
    )
    .expect("allowed signers");
    let signing = ssh_signing(&trusted);
    let signing: Vec<&str> = signing.iter().map(String::as_str).collect();
    let state = root.join("state");
    let (daemon, good, status) = signed_and_applied(
        &sim,
        &mut repo,
        &state,
        &signing,
        90,
        &[
            "--verify-signatures",
            "--allowed-signers",
            allowed.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(status["signature"]["verified"], true, "{status:#}");
    assert!(
        status["signature"]["signer"]
            .as_str()
            .is_some_and(|s| s.starts_with("release@example.com (SHA256:")),
        "{status:#}"
    );
    assert_eq!(daemon.metric("meridian_revision_refused"), 0.0);
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 90);

    // Unsigned, on top.
    edit_dial(&repo, ("eu-central-1", 10));
    let unsigned = repo.commit("eu-central-1 to 10, unsigned");
    repo.push(false);
    let (_, writes) = call_totals(&sim);
    refused(&daemon, &unsigned, "unsigned");
    assert_eq!(call_totals(&sim).1, writes, "nothing written for it");
    last_good_stays_reconciled(&sim, &daemon, &good, 90);

    // Signed by a key nobody trusts.
    let stranger_signing = ssh_signing(&stranger);
    let stranger_signing: Vec<&str> = stranger_signing.iter().map(String::as_str).collect();
    edit_dial(&repo, ("eu-central-1", 20));
    let unknown = repo.commit_with("eu-central-1 to 20, stranger", &stranger_signing, &["-S"]);
    repo.push(false);
    let status = refused(&daemon, &unknown, "unknown key");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("SHA256:")),
        "the unknown key is named: {status:#}"
    );
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 90);

    // A signature by the trusted key, over other content: the message was
    // changed after signing.
    edit_dial(&repo, ("eu-central-1", 30));
    let signed = repo.commit_with("eu-central-1 to 30, signed", &signing, &["-S"]);
    let tampered = forge(&repo, root, &signed, "SSH", ("to 30", "to 0"));
    repo.git(&["update-ref", "refs/heads/main", &tampered]);
    repo.push(false);
    refused(&daemon, &tampered, "bad signature");
    let shown = common::meridian(
        root,
        &["status", "--state-dir", state.to_str().expect("utf-8")],
    );
    assert!(
        shown.stdout.contains("REFUSED (bad signature)"),
        "{}",
        shown.all()
    );
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 90);
    last_good_stays_reconciled(&sim, &daemon, &good, 90);
    let total = daemon.metric("meridian_signature_checks_total{result=\"verified\"}");
    assert!(total >= 1.0, "verified checks are counted");

    // A new signed commit is applied, and the refusal clears.
    repo.git(&["reset", "-q", "--hard", &signed]);
    // (Upwards: the drift corrections above moved the dial up, and the
    // anti-flap hold keeps it from turning back down for a while.)
    edit_dial(&repo, ("eu-central-1", 95));
    let next = repo.commit_with("eu-central-1 to 95, signed", &signing, &["-S"]);
    repo.push(true);
    daemon.wait_for(Duration::from_secs(60), "the next signed head", |s| {
        s["last_applied"]["revision"].as_str() == Some(next.as_str())
    });
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 95);
    assert_eq!(daemon.metric("meridian_revision_refused"), 0.0);
}

/// A throw-away GnuPG home with one signing key; `gpg.program` for git.
struct Gpg {
    home: PathBuf,
    program: PathBuf,
    fingerprint: String,
}

impl Gpg {
    /// A key for `uid`; with `faked_time`, every gpg run (key creation and
    /// signing) believes it is that time.
    fn new(root: &Path, name: &str, uid: &str, expiry: &str, faked_time: Option<&str>) -> Self {
        let home = root.join(name);
        std::fs::create_dir_all(&home).expect("mkdir");
        let mut permissions = std::fs::metadata(&home).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
        std::fs::set_permissions(&home, permissions).expect("chmod");
        let program = root.join(format!("{name}.sh"));
        let faked = faked_time
            .map(|t| format!("--faked-system-time {t} "))
            .unwrap_or_default();
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nexec gpg --homedir '{}' --batch --pinentry-mode loopback --passphrase '' {faked}\"$@\"\n",
                home.display()
            ),
        )
        .expect("script");
        let mut permissions = std::fs::metadata(&program).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&program, permissions).expect("chmod");
        let run = |args: &[&str]| tool(program.to_str().expect("utf-8"), args);
        run(&["--quick-gen-key", uid, "ed25519", "sign", expiry]);
        let listing = run(&["--with-colons", "--list-secret-keys"]);
        let fingerprint = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .expect("fingerprint")
            .to_owned();
        Self {
            home,
            program,
            fingerprint,
        }
    }

    fn export(&self, to: &Path) {
        let armored = tool(
            self.program.to_str().expect("utf-8"),
            &["--export", "--armor", &self.fingerprint],
        );
        let mut keyring = std::fs::read_to_string(to).unwrap_or_default();
        keyring.push_str(&armored);
        std::fs::write(to, keyring).expect("keyring");
    }

    fn signing(&self) -> Vec<String> {
        vec![
            "-c".to_owned(),
            "gpg.format=openpgp".to_owned(),
            "-c".to_owned(),
            format!("gpg.program={}", self.program.display()),
            "-c".to_owned(),
            format!("user.signingkey={}", self.fingerprint),
        ]
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Each home started its own agent: stop it with the test.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[test]
fn openpgp_signed_commits_are_verified_against_a_keyring_and_every_commit_with_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (sim, mut repo) = setup(root);
    let release = Gpg::new(root, "release", "Release <release@example.com>", "1y", None);
    let stranger = Gpg::new(root, "stranger", "Stranger <s@example.com>", "1y", None);
    // Made and used in 2020, expired since 2021.
    let expired = Gpg::new(
        root,
        "expired",
        "Old <old@example.com>",
        "1y",
        Some("20200101T000000"),
    );
    let keyring = root.join("trusted.asc");
    release.export(&keyring);
    expired.export(&keyring);

    let signing = release.signing();
    let signing: Vec<&str> = signing.iter().map(String::as_str).collect();
    let state = root.join("state");
    let (daemon, good, status) = signed_and_applied(
        &sim,
        &mut repo,
        &state,
        &signing,
        80,
        &[
            "--verify-signatures=all",
            "--openpgp-keyring",
            keyring.to_str().expect("utf-8"),
        ],
    );
    assert!(
        status["signature"]["signer"]
            .as_str()
            .is_some_and(|s| s.contains("release@example.com")
                && s.to_ascii_lowercase()
                    .contains(&release.fingerprint.to_ascii_lowercase())),
        "{status:#}"
    );
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 80);

    // With `all`, a signed head does not excuse an unsigned commit below it.
    edit_dial(&repo, ("eu-central-1", 10));
    let unsigned = repo.commit("eu-central-1 to 10, unsigned");
    edit_dial(&repo, ("eu-central-1", 11));
    let head = repo.commit_with("eu-central-1 to 11, signed", &signing, &["-S"]);
    repo.push(false);
    let status = refused(&daemon, &head, "unsigned");
    assert_eq!(
        status["signature"]["refused_commit"].as_str(),
        Some(unsigned.as_str()),
        "{status:#}"
    );
    last_good_stays_reconciled(&sim, &daemon, &good, 80);

    // Unknown, expired and tampered, each from the last good revision.
    let stranger_signing = stranger.signing();
    let stranger_signing: Vec<&str> = stranger_signing.iter().map(String::as_str).collect();
    repo.git(&["reset", "-q", "--hard", &good]);
    edit_dial(&repo, ("eu-central-1", 20));
    let unknown = repo.commit_with("eu-central-1 to 20, stranger", &stranger_signing, &["-S"]);
    repo.push(true);
    refused(&daemon, &unknown, "unknown key");

    let expired_signing = expired.signing();
    let expired_signing: Vec<&str> = expired_signing.iter().map(String::as_str).collect();
    repo.git(&["reset", "-q", "--hard", &good]);
    edit_dial(&repo, ("eu-central-1", 21));
    let old = repo.commit_with("eu-central-1 to 21, expired key", &expired_signing, &["-S"]);
    repo.push(true);
    refused(&daemon, &old, "expired key");

    repo.git(&["reset", "-q", "--hard", &good]);
    edit_dial(&repo, ("eu-central-1", 30));
    let signed = repo.commit_with("eu-central-1 to 30, signed", &signing, &["-S"]);
    let tampered = forge(&repo, root, &signed, "PGP", ("to 30", "to 0"));
    repo.git(&["update-ref", "refs/heads/main", &tampered]);
    repo.push(true);
    refused(&daemon, &tampered, "bad signature");
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 80);
    assert_eq!(
        daemon.status()["last_applied"]["revision"].as_str(),
        Some(good.as_str())
    );

    // A force-push back to an older commit is not a way around `all`.
    let older = repo.git(&["rev-parse", &format!("{good}~1")]);
    repo.git(&["reset", "-q", "--hard", &older]);
    repo.push(true);
    refused(&daemon, &older, "behind last applied");
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 80);
}

#[test]
fn diff_refuses_to_preview_an_untrusted_head_and_keys_are_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (_, mut repo) = setup(root);
    let release = SshSigner::new(root, "release", "release@example.com");
    let base = repo.git(&["rev-parse", "HEAD"]);
    edit_dial(&repo, ("eu-central-1", 40));
    let unsigned = repo.commit("unsigned");
    let work = repo.work.to_str().expect("utf-8").to_owned();
    let state = root.join("state");
    let state = state.to_str().expect("utf-8");
    let diff = |head: &str, extra: &[&str]| {
        let mut args = vec![
            "diff",
            "--repo",
            &work,
            "--base",
            &base,
            "--head",
            head,
            "--state-dir",
            state,
        ];
        args.extend_from_slice(extra);
        sim_run(root, &root.join("sim"), &args)
    };
    let verify = [
        "--verify-signatures",
        "--allowed-signers",
        release.allowed(),
    ];
    let run = diff(&unsigned, &verify);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("unsigned"), "{}", run.all());
    let signed = repo.commit_with("signed", &release.signing(), &["-S"]);
    let run = diff(&signed, &verify);
    assert!(matches!(run.code, 0 | 2), "previewed: {}", run.all());
    assert!(
        run.stderr.contains("signed by release@example.com"),
        "{}",
        run.all()
    );
    // `all`: the unsigned commit between base and head is refused.
    let run = diff(
        &signed,
        &[
            "--verify-signatures=all",
            "--allowed-signers",
            release.allowed(),
        ],
    );
    assert_eq!(run.code, 3, "{}", run.all());
    // No keys: refused before anything is read; keys without the flag: refused by the parser.
    let run = diff(&signed, &["--verify-signatures"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("--allowed-signers"), "{}", run.all());
    let run = diff(&signed, &["--allowed-signers", release.allowed()]);
    assert_ne!(run.code, 0, "{}", run.all());
    // A damaged allowed_signers file is refused with its line.
    std::fs::write(
        &release.allowed,
        format!("release@example.com {}\nnot a key line\n", release.public),
    )
    .expect("write");
    let run = diff(&signed, &verify);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(":2"),
        "the line is named: {}",
        run.all()
    );
}

#[test]
fn apply_verifies_the_checkouts_head_and_refuses_uncommitted_edits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (sim, mut repo) = setup(root);
    let release = SshSigner::new(root, "release", "release@example.com");
    let signing = release.signing();
    let allowed = release.allowed();
    let folder = repo.work.join("desired-state");
    let folder = folder.to_str().expect("utf-8").to_owned();
    let state = root.join("state");
    let state = state.to_str().expect("utf-8").to_owned();
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            folder.as_str(),
            "--yes",
            "--state-dir",
            state.as_str(),
            "--verify-signatures",
            "--allowed-signers",
            allowed,
        ];
        args.extend_from_slice(extra);
        sim_run(root, &sim, &args)
    };
    // The checkout's HEAD is the unsigned initial commit.
    let run = apply(&[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("(unsigned)"), "{}", run.all());
    assert_eq!(call_totals(&sim).1, 0, "nothing written");

    let signed = repo.commit_with("signed", &signing, &["-S"]);
    let run = apply(&[]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("signed by release@example.com"),
        "{}",
        run.all()
    );
    let writes = call_totals(&sim).1;
    assert!(writes > 0);
    let audit = common::meridian(root, &["audit", "--state-dir", &state, "--format", "json"]);
    assert_eq!(audit.code, 0, "{}", audit.all());
    let lines: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert_eq!(line["trigger"], "apply", "{line:#}");
        assert_eq!(line["revision"], signed.as_str(), "{line:#}");
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
    }

    // An edit not committed is not what was signed.
    edit_dial(&repo, ("eu-central-1", 10));
    let run = apply(&[]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.stderr.contains("not committed"), "{}", run.all());
    assert_eq!(call_totals(&sim).1, writes, "nothing written");
    // `all` is for the daemon.
    let run = sim_run(
        root,
        &sim,
        &[
            "apply",
            &folder,
            "--yes",
            "--verify-signatures=all",
            "--allowed-signers",
            allowed,
        ],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.stderr.contains("meridian run"), "{}", run.all());
}

#[test]
fn a_revision_whose_key_was_retired_is_neither_applied_nor_reconciled_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let (sim, mut repo) = setup(root);
    let old = SshSigner::new(root, "old", "old@example.com");
    let state = root.join("state");
    let flags = ["--verify-signatures", "--allowed-signers", old.allowed()];
    let (mut daemon, signed, _) =
        signed_and_applied(&sim, &mut repo, &state, &old.signing(), 90, &flags);
    assert_eq!(daemon.terminate(), 0);

    // The old key is retired (the new one replaces it in the same
    // allowed_signers file); the branch has not moved.
    let new = SshSigner::new(root, "new", "new@example.com");
    let daemon = start(&sim, &repo, &state, &flags);
    // (The status persisted by the first run says it was verified.)
    daemon.wait_for(Duration::from_secs(60), "the check at start", |s| {
        s["signature"]["verified"] == false
    });
    refused(&daemon, &signed, "unknown key");
    // Drift is not corrected against a revision no trusted key signed.
    common::set_https_dial(&sim, "api", "eu-central-1", 40);
    // Two drift intervals (3 s) and more.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 40, "not reconciled");
    // A commit signed by the new key is applied.
    edit_dial(&repo, ("eu-central-1", 95));
    let next = repo.commit_with("signed by the new key", &new.signing(), &["-S"]);
    repo.push(false);
    daemon.wait_for(Duration::from_secs(60), "the newly signed head", |s| {
        s["last_applied"]["revision"].as_str() == Some(next.as_str())
    });
    assert_eq!(dial(&sim, "api", 443, "eu-central-1"), 95);
}
