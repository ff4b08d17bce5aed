// One benchmark scenario for one client, in a fresh process so that memory and event-loop
// figures belong to that client alone. Prints one JSON line with the results.
//
//   node --expose-gc bench/worker.mjs <scenario> <client> '<json options>'
//
// Scenarios: cold (login and getStatus), writes (throughput and latency per concurrency),
// storm (concurrent writes on an expired access token), soak (many writes: memory and
// event-loop delay).

import { createRequire } from "node:module";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

const [scenario, kind, optionsJson] = process.argv.slice(2);
const options = JSON.parse(optionsJson ?? "{}");

function percentile(sorted, fraction) {
  if (sorted.length === 0) {
    return NaN;
  }
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

/** Runs `count` writes with `concurrency` workers; returns writes/s and latency percentiles (ms). */
async function measureWrites(client, count, concurrency) {
  const latencies = new Float64Array(count);
  let next = 0;
  const started = process.hrtime.bigint();

  const worker = async () => {
    while (next < count) {
      const index = next;
      next += 1;
      const begin = process.hrtime.bigint();
      await client.write(index);
      latencies[index] = Number(process.hrtime.bigint() - begin) / 1e6;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    count,
    concurrency,
    perSecond: count / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
  };
}

async function adminRequest(method, path) {
  const response = await fetch(`${options.url}${path}`, { method });
  return response.json();
}

/** Logs in and reads the status, loading only what that client needs. */
async function cold() {
  let status;
  if (kind === "native") {
    const { ForumAgent } = createRequire(import.meta.url)("../index.js");
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const agent = new ForumAgent(options.url, options.handle, options.password, logger);
    await agent.initialize();
    status = agent.getStatus().status;
    await agent.shutdown();
  } else if (kind === "atproto") {
    const { AtpAgent } = await import("@atproto/api");
    const agent = new AtpAgent({ service: options.url });
    await agent.login({ identifier: options.handle, password: options.password });
    status = agent.hasSession ? "authenticated" : "failed";
  } else {
    throw new Error(`no cold start for client ${kind}`);
  }
  return { status, sinceStartMs: performance.now(), maxRssKb: process.resourceUsage().maxRSS };
}

async function writes() {
  const { createClient } = await import("./clients.mjs");
  const results = [];
  for (const concurrency of options.concurrencies) {
    const client = await createClient(kind, { ...options, concurrency });
    await measureWrites(client, options.warmup, concurrency);
    results.push(await measureWrites(client, options.count, concurrency));
    await client.close();
  }
  return { results };
}

async function storm() {
  const { createClient } = await import("./clients.mjs");
  const client = await createClient(kind, options);
  const single = await measureWrites(client, options.singles, 1);

  await adminRequest("POST", "/admin/reset");
  await adminRequest("POST", "/admin/expire");
  const burst = await measureWrites(client, options.count, options.count);
  const stats = await adminRequest("GET", "/admin/stats");
  await client.close();

  return {
    singleP50: single.p50,
    burstP50: burst.p50,
    burstP99: burst.p99,
    p99OverSingle: burst.p99 / single.p50,
    refreshSessionCalls: stats["com.atproto.server.refreshSession"] ?? 0,
    expiredWrites: (stats["com.atproto.repo.createRecord"] ?? 0) - options.count,
  };
}

async function soak() {
  const { createClient } = await import("./clients.mjs");
  const client = await createClient(kind, { ...options, concurrency: options.concurrency });
  await measureWrites(client, options.warmup, options.concurrency);
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const run = await measureWrites(client, options.count, options.concurrency);
  delay.disable();
  globalThis.gc?.();
  const rssAfter = process.memoryUsage().rss;
  await client.close();

  return {
    perSecond: run.perSecond,
    rssBeforeMb: rssBefore / 2 ** 20,
    rssAfterMb: rssAfter / 2 ** 20,
    loopDelayP99Ms: delay.percentile(99) / 1e6,
    loopDelayMaxMs: delay.max / 1e6,
  };
}

const scenarios = { cold, writes, storm, soak };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}: expected ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const result = await scenarios[scenario]();
console.log(JSON.stringify(result));
