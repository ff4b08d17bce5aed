// A smoke run of every benchmark with tiny counts: the benchmarks keep working, and both
// clients survive a refresh storm with one refreshSession call.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));

test("benchmarks run with tiny counts", { timeout: 600_000 }, async () => {
  const resultsPath = path.join(os.tmpdir(), `forum-agent-bench-${process.pid}.json`);
  try {
    const { stdout } = await run(process.execPath, ["bench/run.mjs", "--smoke", "--json", resultsPath], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const results = JSON.parse(fs.readFileSync(resultsPath, "utf8"));

    for (const heading of ["## 1. Cold start", "## 2. Writes", "## 3. Refresh storm", "## 4. Soak", "## 5. Writes to the reference PDS"]) {
      assert.ok(stdout.includes(heading), `missing section ${heading}`);
    }
    for (const kind of ["baseline", "native", "atproto"]) {
      assert.ok(results.coldStart[kind].wallMs > 0, kind);
      assert.ok(results.coldStart[kind].maxRssMb > 0, kind);
    }
    for (const concurrency of [1, 8, 32, 128]) {
      for (const kind of ["native", "atproto", "raw"]) {
        assert.ok(results.writes[`${kind}@${concurrency}`].perSecond > 0, `${kind}@${concurrency}`);
      }
    }
    assert.equal(results.storm.native.refreshSessionCalls, 1);
    assert.equal(results.storm.atproto.refreshSessionCalls, 1);
    assert.ok(results.soak.native.rssAfterMb > 0);
    assert.ok(results.pdsWrites["native@8"].perSecond > 0);
  } finally {
    fs.rmSync(resultsPath, { force: true });
  }
});
