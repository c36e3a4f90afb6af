#!/usr/bin/env bash
# Runs meridian's whole test suite: unit tests, the validation table, plan and
# preview snapshots, and the end-to-end tests that drive the real binary
# against the embedded simulated cloud, real Git repositories and the daemon's
# HTTP endpoints. Everything runs offline on loopback; the tests start what
# they need. Python checkers are installed into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v git >/dev/null; then
  echo "the tests need git (apt-get install git)" >&2
  exit 1
fi
# The HA tests run a real etcd on loopback (Debian's etcd-server); the
# signature tests sign commits with ssh-keygen (openssh-client) and gpg
# (gnupg), as git does.
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v gpg >/dev/null || missing+=(gnupg)
command -v gpgconf >/dev/null || missing+=(gpgconf)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
export MERIDIAN_TEST_PYTHON="$PWD/.venv/bin/python"

cargo test --workspace --all-targets "$@"
