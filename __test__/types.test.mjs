import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import path from "node:path";

const run = promisify(execFile);
const root = path.resolve(fileURLToPath(import.meta.url), "../..");
const tsc = path.join(root, "node_modules/typescript/bin/tsc");
const flags = ["--strict", "--noEmit", "--target", "es2022", "--module", "nodenext", "--skipLibCheck", "false"];

async function compile(file) {
  try {
    await run(process.execPath, [tsc, ...flags, path.join(root, "__test__/types", file)], { cwd: root });
    return { ok: true, output: "" };
  } catch (error) {
    return { ok: false, output: `${error.stdout}${error.stderr}` };
  }
}

test("generated types match original interface", async () => {
  const result = await compile("original-interface.ts");

  assert.equal(result.ok, true, result.output);
});

test("type check rejects drifted interface", async () => {
  const result = await compile("drifted-interface.ts");

  assert.equal(result.ok, false);
  const failedChecks = result.output.match(/error TS2344/g) ?? [];
  assert.equal(failedChecks.length, 2, result.output);
});
