//! Real Git repositories for the tests: a work tree, a bare remote served
//! over file://, commits with fixed dates so revisions are reproducible.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A work tree and its bare remote.
pub struct Repo {
    /// The work tree.
    pub work: PathBuf,
    /// The bare remote.
    pub remote: PathBuf,
    commits: u32,
}

fn git(dir: &Path, args: &[&str], seconds: u32) -> String {
    let date = format!(
        "2026-01-01T00:{:02}:{:02}Z",
        seconds / 60 % 60,
        seconds % 60
    );
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Repo {
    /// A repository whose first commit holds `files` (path, content).
    pub fn new(root: &Path, files: &[(&str, String)]) -> Self {
        let work = root.join("work");
        let remote = root.join("remote.git");
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"], 0);
        let mut repo = Self {
            work,
            remote,
            commits: 0,
        };
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.commit("initial desired state");
        git(root, &["clone", "-q", "--bare", "work", "remote.git"], 0);
        repo
    }

    /// The remote's URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    /// Writes a file in the work tree.
    pub fn write(&self, path: &str, content: &str) {
        let full = self.work.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, content).expect("write");
    }

    /// Reads a file of the work tree.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.work.join(path)).expect("read")
    }

    /// Removes a path from the work tree.
    pub fn remove(&self, path: &str) {
        git(&self.work, &["rm", "-rq", path], self.commits);
    }

    /// Commits everything and returns the new revision.
    pub fn commit(&mut self, message: &str) -> String {
        self.commits += 1;
        git(&self.work, &["add", "-A"], self.commits);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            self.commits,
        );
        git(&self.work, &["rev-parse", "HEAD"], self.commits)
    }

    /// Commits everything with `options` before `commit` (`-c key=value`,
    /// e.g. a signing key) and `flags` after it (`-S` to sign).
    pub fn commit_with(&mut self, message: &str, options: &[&str], flags: &[&str]) -> String {
        self.commits += 1;
        git(&self.work, &["add", "-A"], self.commits);
        let mut args: Vec<&str> = options.to_vec();
        args.extend(["commit", "-q", "--allow-empty", "-m", message]);
        args.extend(flags);
        git(&self.work, &args, self.commits);
        git(&self.work, &["rev-parse", "HEAD"], self.commits)
    }

    /// Pushes `main` (forced when `force`).
    pub fn push(&self, force: bool) {
        let remote = self.remote.display().to_string();
        let mut args = vec!["push", "-q"];
        if force {
            args.push("--force");
        }
        args.extend([remote.as_str(), "main"]);
        git(&self.work, &args, self.commits);
    }

    /// Starts an unrelated history on `main` (an orphan branch renamed over it).
    pub fn orphan(&self) {
        git(
            &self.work,
            &["checkout", "-q", "--orphan", "rewritten"],
            self.commits,
        );
        git(&self.work, &["branch", "-q", "-D", "main"], self.commits);
        git(&self.work, &["branch", "-q", "-m", "main"], self.commits);
    }

    /// Runs git in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git(&self.work, args, self.commits)
    }
}

/// A repository at `root` holding the example desired state under
/// `desired-state/` ([`example_files`]), its traffic policy moving in
/// 25-point steps that bake `bake_seconds` each.
pub fn stepped_example(root: &Path, bake_seconds: u32) -> Repo {
    let files: Vec<(String, String)> = example_files("desired-state")
        .into_iter()
        .map(|(p, c)| {
            (
                p,
                c.replace("maxStepPercent: 100", "maxStepPercent: 25")
                    .replace("bakeSeconds: 0", &format!("bakeSeconds: {bake_seconds}")),
            )
        })
        .collect();
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    Repo::new(root, &files)
}

/// The example desired state as (repository path, content) pairs under
/// `prefix`, its traffic policy made instant ([`super::instant_policy`]) and
/// without its client-origin residency scope.
pub fn example_files(prefix: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(super::example_dir())
        .expect("example")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            (
                format!(
                    "{prefix}/{}",
                    p.file_name().expect("name").to_string_lossy()
                ),
                super::without_client_residency(&super::instant_policy(
                    &std::fs::read_to_string(&p).expect("read"),
                )),
            )
        })
        .collect();
    files.sort();
    files
}
