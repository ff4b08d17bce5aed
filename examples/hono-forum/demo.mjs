// `npm run demo`: builds the addon if needed, starts a local PDS with a forum account, starts the
// forum server against it, creates a category over HTTP and prints the result. Everything
// listens on 127.0.0.1 and keeps running until Ctrl-C; `--once` stops after the printout.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(fileURLToPath(import.meta.url), "../../..");
const once = process.argv.includes("--once");

function step(message) {
  console.log(`\n== ${message}`);
}

function ensureAddonBuilt() {
  const built = fs.readdirSync(root).some((name) => name.endsWith(".node"));
  if (built) {
    return;
  }
  step("building the addon (first run only; needs a Rust toolchain)");
  execFileSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
}

ensureAddonBuilt();
step("installing the local PDS (first run only, takes about two minutes)");
execFileSync("bash", [path.join(root, "tools/local-pds/setup.sh")], { stdio: "inherit" });

// Imported after the build, because they load the addon.
const { startPds } = await import("../../tools/local-pds/index.mjs");
const { startServer } = await import("./server.mjs");

step("starting the PDS");
const pds = await startPds({ handle: "atbb-forum.test" });
console.log(`PDS ${pds.url}, forum account ${pds.handle} (${pds.did})`);

step("starting the forum server");
const server = await startServer({ pdsUrl: pds.url, handle: pds.handle, password: pds.password });
console.log(`forum server ${server.url}`);

const stopAll = async () => {
  await server.close();
  await pds.stop();
};

try {
  step(`GET ${server.url}/health`);
  const health = await fetch(`${server.url}/health`);
  console.log(health.status, JSON.stringify(await health.json(), null, 2));

  step(`POST ${server.url}/categories`);
  const created = await fetch(`${server.url}/categories`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "General", description: "Talk about anything." }),
  });
  const createdBody = await created.json();
  console.log(created.status, JSON.stringify(createdBody, null, 2));
  if (created.status !== 201) {
    throw new Error(`POST /categories returned ${created.status}`);
  }

  step(`GET ${server.url}/categories`);
  const listed = await fetch(`${server.url}/categories`);
  console.log(listed.status, JSON.stringify(await listed.json(), null, 2));
} catch (error) {
  await stopAll();
  throw error;
}

if (once) {
  await stopAll();
  console.log("\ndemo finished");
} else {
  console.log(`\nforum server running on ${server.url} (PDS ${pds.url}); press Ctrl-C to stop`);
  process.once("SIGINT", () => stopAll().then(() => process.exit(0)));
}
