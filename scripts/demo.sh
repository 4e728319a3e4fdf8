#!/usr/bin/env bash
# The whole mission on the committed sample, step by step, with the embedded defaults:
# sample data -> validate -> train -> design -> score-and-send to the local CAPI sandbox -> status.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. The source: data/sample (a 20k-user warehouse export), checked against the data contract"
pltv inspect --source data/sample
