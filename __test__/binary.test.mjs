// The shipped Linux binary: glibc floor, stripped symbols, and loading under the running Node.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";

const binary = fileURLToPath(new URL("../forum-agent.linux-x64-gnu.node", import.meta.url));
const GLIBC_FLOOR = [2, 17];

function versionParts(text) {
  return text.split(".").map(Number);
}

function compareVersions(left, right) {
  for (let i = 0; i < Math.max(left.length, right.length); i += 1) {
    const difference = (left[i] ?? 0) - (right[i] ?? 0);
    if (difference !== 0) {
      return difference;
    }
  }
  return 0;
}

test("binary needs glibc 2.17 at most", () => {
  const symbols = execFileSync("objdump", ["-T", binary], { encoding: "utf8" });
  const versions = [...symbols.matchAll(/GLIBC_([0-9.]+)/g)].map((match) => versionParts(match[1]));
  versions.sort(compareVersions);
  const highest = versions.at(-1);

  assert.ok(versions.length > 0, "objdump found no glibc symbols");
  assert.ok(
    compareVersions(highest, GLIBC_FLOOR) <= 0,
    `the binary needs GLIBC_${highest.join(".")}, above the 2.17 floor`,
  );
});

test("binary is stripped", () => {
  const sections = execFileSync("objdump", ["-h", binary], { encoding: "utf8" });

  assert.doesNotMatch(sections, /\.symtab|\.debug_info/);
});

test("binary loads under this Node", () => {
  const addon = { exports: {} };
  process.dlopen(addon, binary);

  assert.equal(typeof addon.exports.ForumAgent, "function");
  assert.ok(fs.statSync(binary).size > 100_000);
});
