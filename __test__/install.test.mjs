// Installs the packed root and linux-x64-gnu packages into a fresh Hono app, with no cargo or
// rustc on PATH, and writes a record to the local PDS from there, as a user would.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startPds } from "../tools/local-pds/index.mjs";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const rootPackage = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
let pds;
let work;

before(async () => {
  pds = await startPds();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "forum-agent-install-"));
});

after(async () => {
  await pds?.stop();
  if (work) {
    fs.rmSync(work, { recursive: true, force: true });
  }
});

/** Returns PATH without the directories that contain cargo or rustc. */
function pathWithoutRust() {
  return process.env.PATH.split(path.delimiter)
    .filter((dir) => !["cargo", "rustc"].some((tool) => fs.existsSync(path.join(dir, tool))))
    .join(path.delimiter);
}

async function pack(directory) {
  const { stdout } = await run("npm", ["pack", "--pack-destination", work], { cwd: directory });
  return path.join(work, stdout.trim().split("\n").at(-1));
}

const APP_SCRIPT = `
import { createRequire } from "node:module";
import { Hono } from "hono";
import { ForumAgent } from "@atbb/forum-agent";

const [pdsUrl, handle, password] = process.argv.slice(2);
const logger = { debug() {}, info() {}, warn() {}, error: (message, context) => console.error(message, context) };
const forumAgent = new ForumAgent(pdsUrl, handle, password, logger);
await forumAgent.initialize();

const app = new Hono();
app.post("/categories", async (c) => {
  const agent = forumAgent.getAgent();
  const { name } = await c.req.json();
  const created = await agent.com.atproto.repo.createRecord({
    repo: agent.session.did,
    collection: "space.atbb.forum.category",
    record: { $type: "space.atbb.forum.category", name, createdAt: new Date().toISOString() },
  });
  return c.json(created.data, 201);
});
const response = await app.request("/categories", { method: "POST", body: JSON.stringify({ name: "Installed" }) });

const require = createRequire(import.meta.url);
console.log(JSON.stringify({
  status: forumAgent.getStatus().status,
  httpStatus: response.status,
  record: await response.json(),
  binary: require.resolve("@atbb/forum-agent-linux-x64-gnu"),
}));
await forumAgent.shutdown();
`;

test("packed packages install without Rust", { timeout: 300_000 }, async () => {
  const binary = path.join(root, "forum-agent.linux-x64-gnu.node");
  assert.ok(fs.existsSync(binary), "build the binary first: scripts/build-linux-gnu.sh");

  const platformDir = path.join(work, "linux-x64-gnu");
  fs.mkdirSync(platformDir);
  fs.copyFileSync(path.join(root, "npm/linux-x64-gnu/package.json"), path.join(platformDir, "package.json"));
  fs.copyFileSync(binary, path.join(platformDir, "forum-agent.linux-x64-gnu.node"));
  const rootTarball = await pack(root);
  const platformTarball = await pack(platformDir);

  const { stdout: rootFiles } = await run("tar", ["-tzf", rootTarball]);
  assert.doesNotMatch(rootFiles, /\.node$/m, "the root package must not carry a binary");
  assert.match(rootFiles, /^package\/binding\.js$/m);
  assert.match(rootFiles, /^package\/index\.d\.ts$/m);

  const app = path.join(work, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(
    path.join(app, "package.json"),
    JSON.stringify({ name: "forum-install-check", private: true, type: "module" }),
  );
  fs.writeFileSync(path.join(app, "app.mjs"), APP_SCRIPT);
  const env = { ...process.env, PATH: pathWithoutRust(), CARGO_HOME: path.join(work, "no-cargo") };
  await assert.rejects(run("cargo", ["--version"], { env }), "cargo is still on PATH");

  const apiVersion = rootPackage.devDependencies["@atproto/api"];
  const honoVersion = rootPackage.devDependencies.hono;
  await run(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      rootTarball,
      platformTarball,
      `@atproto/api@${apiVersion}`,
      `hono@${honoVersion}`,
    ],
    { cwd: app, env },
  );
  const { stdout } = await run(process.execPath, ["app.mjs", pds.url, pds.handle, pds.password], { cwd: app, env });
  const result = JSON.parse(stdout);

  assert.equal(result.status, "authenticated");
  assert.equal(result.httpStatus, 201);
  assert.ok(result.binary.startsWith(path.join(app, "node_modules", "@atbb", "forum-agent-linux-x64-gnu")));
  const rkey = result.record.uri.split("/").at(-1);
  const params = new URLSearchParams({ repo: pds.did, collection: "space.atbb.forum.category", rkey });
  const stored = await fetch(`${pds.url}/xrpc/com.atproto.repo.getRecord?${params}`);
  assert.equal((await stored.json()).value.name, "Installed");
});
