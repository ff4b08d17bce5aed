// `npm run bench`: compares this package with @atproto/api's AtpAgent (what the original
// ForumAgent used) and with a raw keep-alive HTTP client, in the same run, alternating, and
// prints medians and ratios. `--smoke` runs every benchmark with tiny counts, as the test suite
// does; `--json FILE` also writes the results to FILE.
//
// Each measurement runs in a fresh `node` process (bench/worker.mjs). Writes go to
// bench/server.rs, a minimal XRPC server on 127.0.0.1, except in the last benchmark, which
// writes to the reference PDS.

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

import { startPds } from "../tools/local-pds/index.mjs";

const root = path.resolve(fileURLToPath(import.meta.url), "../..");
const smoke = process.argv.includes("--smoke");
const jsonIndex = process.argv.indexOf("--json");
const jsonPath = jsonIndex > 0 ? process.argv[jsonIndex + 1] : null;

const SETTINGS = smoke
  ? {
      rounds: 1,
      coldRuns: 1,
      writes: { count: 60, warmup: 10, concurrencies: [1, 8, 32, 128] },
      storm: { count: 100, singles: 5 },
      soak: { count: 500, warmup: 50, concurrency: 32 },
      pds: { count: 10, warmup: 2, concurrencies: [1, 8] },
    }
  : {
      rounds: 3,
      coldRuns: 7,
      writes: { count: 5_000, warmup: 500, concurrencies: [1, 8, 32, 128] },
      storm: { count: 1_000, singles: 50 },
      soak: { count: 100_000, warmup: 1_000, concurrency: 32 },
      pds: { count: 300, warmup: 30, concurrencies: [1, 8, 32] },
    };
const CLIENTS = ["native", "atproto"];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Rotates `list` by `round`, so that no client always runs first. */
function rotate(list, round) {
  return list.map((_, i) => list[(i + round) % list.length]);
}

function format(value, digits = 1) {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value);
}

function table(headers, rows) {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells) => cells.map((cell, i) => String(cell).padStart(widths[i])).join("  ");
  console.log(line(headers));
  for (const row of rows) {
    console.log(line(row));
  }
}

function runWorker(scenario, kind, options) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(
      process.execPath,
      ["--expose-gc", path.join(root, "bench/worker.mjs"), scenario, kind, JSON.stringify(options)],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) {
        reject(new Error(`${scenario} ${kind} exited with code ${code}`));
        return;
      }
      resolve({ wallMs, ...JSON.parse(output.trim().split("\n").at(-1)) });
    });
  });
}

function runBaseline() {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const script = "console.log(JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS }))";
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("exit", () => {
      resolve({ wallMs: Number(process.hrtime.bigint() - started) / 1e6, ...JSON.parse(output) });
    });
  });
}

/** Builds and starts bench/server.rs; a smoke run uses the quicker debug build. */
async function startBenchServer() {
  const profile = smoke ? "debug" : "release";
  const profileFlags = smoke ? [] : ["--release"];
  execFileSync("cargo", ["build", "--quiet", ...profileFlags, "--example", "bench-server"], {
    cwd: root,
    stdio: "inherit",
  });
  const binary = path.join(root, "target", profile, "examples", "bench-server");
  const child = spawn(binary, [], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = readline.createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`bench-server exited with code ${code}`)));
    lines.once("line", (line) => resolve(Number(line.replace("listening ", ""))));
  });
  return { url: `http://127.0.0.1:${port}`, close: () => child.kill() };
}

async function coldStart(pds) {
  const login = { url: pds.url, handle: pds.handle, password: pds.password };
  const samples = { baseline: [], native: [], atproto: [] };
  for (let run = 0; run < SETTINGS.coldRuns; run += 1) {
    for (const kind of rotate(["baseline", ...CLIENTS], run)) {
      const result = kind === "baseline" ? await runBaseline() : await runWorker("cold", kind, login);
      if (kind !== "baseline" && result.status !== "authenticated") {
        throw new Error(`${kind} cold start ended ${result.status}`);
      }
      samples[kind].push(result);
    }
  }

  const summary = {};
  for (const [kind, runs] of Object.entries(samples)) {
    summary[kind] = { wallMs: median(runs.map((r) => r.wallMs)), maxRssMb: median(runs.map((r) => r.maxRssKb)) / 1024 };
  }
  console.log(`\n## 1. Cold start: load, construct, initialize() against the local PDS, getStatus() (median of ${SETTINGS.coldRuns})`);
  table(
    ["client", "wall ms", "over node -e 0", "peak RSS MB", "over node -e 0"],
    Object.entries(summary).map(([kind, s]) => [
      kind,
      format(s.wallMs),
      format(s.wallMs - summary.baseline.wallMs),
      format(s.maxRssMb),
      format(s.maxRssMb - summary.baseline.maxRssMb),
    ]),
  );
  return summary;
}

async function writeThroughput(title, login, settings, clients) {
  const samples = {};
  for (let round = 0; round < SETTINGS.rounds; round += 1) {
    for (const kind of rotate(clients, round)) {
      const { results } = await runWorker("writes", kind, { ...login, ...settings });
      for (const result of results) {
        const key = `${kind}@${result.concurrency}`;
        (samples[key] ??= []).push(result);
      }
    }
  }

  const summary = {};
  for (const [key, runs] of Object.entries(samples)) {
    summary[key] = {
      perSecond: median(runs.map((r) => r.perSecond)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
    };
  }
  console.log(`\n## ${title} (${settings.count} writes per run, median of ${SETTINGS.rounds} runs)`);
  const rows = [];
  for (const concurrency of settings.concurrencies) {
    const reference = summary[`atproto@${concurrency}`];
    for (const kind of clients) {
      const s = summary[`${kind}@${concurrency}`];
      rows.push([concurrency, kind, format(s.perSecond, 0), format(s.perSecond / reference.perSecond, 2), format(s.p50, 2), format(s.p99, 2)]);
    }
  }
  table(["concurrency", "client", "writes/s", "vs atproto", "p50 ms", "p99 ms"], rows);
  return summary;
}

async function refreshStorm(login) {
  const samples = { native: [], atproto: [] };
  for (let round = 0; round < SETTINGS.rounds; round += 1) {
    for (const kind of rotate(CLIENTS, round)) {
      samples[kind].push(await runWorker("storm", kind, { ...login, ...SETTINGS.storm }));
    }
  }

  console.log(`\n## 3. Refresh storm: ${SETTINGS.storm.count} concurrent writes on an expired access token`);
  const summary = {};
  for (const [kind, runs] of Object.entries(samples)) {
    summary[kind] = {
      refreshSessionCalls: Math.max(...runs.map((r) => r.refreshSessionCalls)),
      singleP50: median(runs.map((r) => r.singleP50)),
      burstP99: median(runs.map((r) => r.burstP99)),
      p99OverSingle: median(runs.map((r) => r.p99OverSingle)),
    };
  }
  table(
    ["client", "refreshSession calls (max)", "single write p50 ms", "burst p99 ms", "p99 / single"],
    Object.entries(summary).map(([kind, s]) => [kind, s.refreshSessionCalls, format(s.singleP50, 2), format(s.burstP99, 1), format(s.p99OverSingle, 1)]),
  );
  return summary;
}

async function soak(login) {
  const summary = {};
  for (const kind of CLIENTS) {
    summary[kind] = await runWorker("soak", kind, { ...login, ...SETTINGS.soak });
  }
  console.log(`\n## 4. Soak: ${SETTINGS.soak.count} writes at concurrency ${SETTINGS.soak.concurrency}`);
  table(
    ["client", "writes/s", "RSS before MB", "RSS after MB", "event-loop delay p99 ms", "max ms"],
    Object.entries(summary).map(([kind, s]) => [
      kind,
      format(s.perSecond, 0),
      format(s.rssBeforeMb),
      format(s.rssAfterMb),
      format(s.loopDelayP99Ms, 2),
      format(s.loopDelayMaxMs, 1),
    ]),
  );
  return summary;
}

console.log(`# forum-agent benchmarks${smoke ? " (smoke run: tiny counts, numbers mean nothing)" : ""}`);
console.log(`node ${process.version}, ${os.cpus().length} x ${os.cpus()[0].model}, ${new Date().toISOString()}`);

const server = await startBenchServer();
const pds = await startPds({ handle: "bench-forum.test" });
const results = { node: process.version, date: new Date().toISOString(), smoke };
try {
  const fakeLogin = { url: server.url, handle: "bench-forum.test", password: "bench-password" };
  const pdsLogin = { url: pds.url, handle: pds.handle, password: pds.password };

  results.coldStart = await coldStart(pds);
  results.writes = await writeThroughput(
    "2. Writes to a minimal loopback XRPC server",
    fakeLogin,
    SETTINGS.writes,
    [...CLIENTS, "raw"],
  );
  results.storm = await refreshStorm(fakeLogin);
  results.soak = await soak(fakeLogin);
  results.pdsWrites = await writeThroughput("5. Writes to the reference PDS", pdsLogin, SETTINGS.pds, [...CLIENTS, "raw"]);
} finally {
  server.close();
  await pds.stop();
}

if (jsonPath) {
  fs.writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
}
for (const [kind, storm] of Object.entries(results.storm)) {
  if (storm.refreshSessionCalls !== 1) {
    console.error(`${kind}: ${storm.refreshSessionCalls} refreshSession calls in the storm, expected 1`);
    process.exitCode = 1;
  }
}
