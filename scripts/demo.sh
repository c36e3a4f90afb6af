#!/usr/bin/env bash
# Runs meridian's main job against the embedded simulated cloud: validate the
# example desired state, plan, apply, then show the live result and prove the
# world has converged (a second plan finds nothing to do).
#
# The simulated cloud persists in .meridian-sim/ (override with MERIDIAN_SIM);
# delete that folder to start from an empty cloud.
set -euo pipefail
cd "$(dirname "$0")/.."

export MERIDIAN_SIM="${MERIDIAN_SIM:-.meridian-sim}"
cargo build --quiet --bin meridian
meridian=target/debug/meridian

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "meridian validate desired-state"
"$meridian" validate desired-state

step "meridian plan desired-state"
"$meridian" plan desired-state

step "meridian apply desired-state --yes"
"$meridian" apply desired-state --yes

step "meridian sim show   (the live, simulated world)"
"$meridian" sim show

step "meridian plan --detailed-exitcode   (converged: expect exit 0)"
"$meridian" plan desired-state --detailed-exitcode
echo "exit code $? — nothing left to do"
