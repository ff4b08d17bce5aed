// Type checks with `tsc --strict`: the generated index.d.ts against the original class's public
// interface. Third-party declaration files are not checked (skipLibCheck), because some of
// @atproto/api's dependencies do not type-check under every module setting; index.d.ts itself
// is checked as source by the last test.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import path from "node:path";

const run = promisify(execFile);
const root = path.resolve(fileURLToPath(import.meta.url), "../..");
const tsc = path.join(root, "node_modules/typescript/bin/tsc");
const flags = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--skipLibCheck"];

async function compile(file) {
  try {
    await run(process.execPath, [tsc, ...flags, file], { cwd: root });
    return { ok: true, output: "" };
  } catch (error) {
    return { ok: false, output: `${error.stdout}${error.stderr}` };
  }
}

test("generated types match original interface", async () => {
  const result = await compile(path.join(root, "__test__/types/original-interface.ts"));

  assert.equal(result.ok, true, result.output);
});

test("type check rejects drifted interface", async () => {
  const result = await compile(path.join(root, "__test__/types/drifted-interface.ts"));

  assert.equal(result.ok, false);
  const failedChecks = result.output.match(/error TS2344/g) ?? [];
  assert.equal(failedChecks.length, 2, result.output);
});

test("index.d.ts compiles as source", async (t) => {
  // A .ts copy is checked even with skipLibCheck, which skips every .d.ts file.
  const copy = path.join(root, "__test__/types/generated-index.ts");
  fs.copyFileSync(path.join(root, "index.d.ts"), copy);
  t.after(() => fs.rmSync(copy, { force: true }));

  const result = await compile(copy);

  assert.equal(result.ok, true, result.output);
});
