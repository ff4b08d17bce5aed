#!/usr/bin/env bash
# Builds the binary that ships in @atbb/forum-agent-linux-x64-gnu: x86_64 Linux with a glibc
# 2.17 floor (so it loads on any distribution from 2014 on), release profile with LTO and
# stripped symbols. zig (the ziglang package from PyPI) links against the old glibc through
# cargo-zigbuild (crates.io); both are installed under .tools/ on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

ziglang_version=0.17.1
cargo_zigbuild_version=0.24.1
tools=$PWD/.tools

log() { printf 'build-linux-gnu.sh: %s\n' "$*" >&2; }

if [[ $("$tools/zig/ziglang/zig" version 2>/dev/null) != "$ziglang_version" ]]; then
  log "installing zig (ziglang $ziglang_version from PyPI) into $tools/zig"
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools/zig" \
    --upgrade "ziglang==$ziglang_version"
fi

if [[ $("$tools/cargo/bin/cargo-zigbuild" --version 2>/dev/null) != *" $cargo_zigbuild_version"* ]]; then
  log "installing cargo-zigbuild $cargo_zigbuild_version into $tools/cargo (compiles, about a minute)"
  cargo install --quiet --locked --root "$tools/cargo" "cargo-zigbuild@$cargo_zigbuild_version"
fi

export PATH=$tools/cargo/bin:$tools/zig/ziglang:$PATH
log "building with zig $(zig version) for x86_64-unknown-linux-gnu.2.17"
npx napi build --platform --release --js binding.js --dts index.d.ts \
  --cross-compile --target x86_64-unknown-linux-gnu.2.17 --target-dir target/zig
