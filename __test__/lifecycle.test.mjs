// initialize() and shutdown() against a real @atproto/pds: retries that stop, logs that stop,
// processes that exit on their own.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startPds } from "../tools/local-pds/index.mjs";
import { startFaultProxy } from "./helpers/fault-proxy.mjs";
import { ForumAgent, recordingLogger, sleep, waitFor, waitForStatus } from "./helpers/agent.mjs";

const run = promisify(execFile);
const CREATE_SESSION = "com.atproto.server.createSession";
const EXIT_FIXTURE = fileURLToPath(new URL("./fixtures/exit-without-shutdown.mjs", import.meta.url));
let pds;
let proxy;

before(async () => {
  pds = await startPds();
  proxy = await startFaultProxy(pds.url);
});

after(async () => {
  await proxy?.close();
  await pds?.stop();
});

test("shutdown during retry wait", async () => {
  proxy.reset();
  proxy.setFault({ type: "status", status: 503, methods: [CREATE_SESSION] });
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, { retryDelaysMs: [200] });

  await agent.initialize();
  await waitFor(() => proxy.count(CREATE_SESSION) >= 2, { what: "a retry" });
  await agent.shutdown();
  const requests = proxy.count(CREATE_SESSION);
  const logged = logger.lines.length;
  await sleep(800);

  assert.equal(proxy.count(CREATE_SESSION), requests, "a request was sent after shutdown");
  assert.equal(logger.lines.length, logged, "the logger was called after shutdown");
  assert.deepEqual(agent.getStatus(), { status: "initializing", authenticated: false });
  assert.equal(agent.isAuthenticated(), false);

  proxy.clearFault();
  await agent.initialize();
  assert.equal(agent.getStatus().status, "authenticated");
  assert.equal(proxy.count(CREATE_SESSION), requests + 1);
  await agent.shutdown();
});

test("shutdown aborts a hanging request", async () => {
  proxy.reset();
  proxy.setFault({ type: "hang", methods: [CREATE_SESSION] });
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);

  const initialized = agent.initialize();
  await waitFor(() => proxy.count(CREATE_SESSION) === 1, { what: "the hanging request" });
  const started = Date.now();
  await agent.shutdown();
  await initialized;
  proxy.clearFault();

  assert.ok(Date.now() - started < 5_000, "shutdown waited for the request timeout");
  assert.deepEqual(logger.lines, []);
  assert.equal(agent.getStatus().status, "initializing");
});

test("shutdown stops refresh after login", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, { refreshIntervalMs: 1000 });

  await agent.initialize();
  await waitFor(() => logger.find("ForumAgent session refreshed").length > 0, { what: "a refresh" });
  await agent.shutdown();
  const counts = { ...proxy.counts };
  const logged = logger.lines.length;
  await sleep(2_500);

  assert.deepEqual(proxy.counts, counts);
  assert.equal(logger.lines.length, logged);
});

test("throwing logger does not stop agent", async () => {
  const thrown = [new Error("logger broke"), Symbol("not an error"), "a string", undefined];
  for (const value of thrown) {
    let calls = 0;
    const logger = {
      debug() {},
      info() {
        calls += 1;
        throw value;
      },
      warn() {
        calls += 1;
        throw value;
      },
      error() {},
    };
    proxy.reset();
    proxy.setFault({ type: "status", status: 503, methods: [CREATE_SESSION], times: 1 });
    const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, { retryDelaysMs: [50] });

    await agent.initialize();
    await waitForStatus(agent, "authenticated");
    await agent.shutdown();

    assert.equal(calls, 2, `logger calls when it throws ${String(value)}`);
  }
});

test("class logger keeps this", async () => {
  // recordingLogger() stores lines in a private field, which throws when `this` is wrong.
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);

  await agent.initialize();
  await agent.shutdown();

  assert.deepEqual(logger.messages(), ["ForumAgent authenticated"]);
});

test("logger method looked up per call", async () => {
  const calls = [];
  const logger = { debug() {}, info: () => calls.push("original"), warn() {}, error() {} };
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);
  logger.info = (message) => calls.push(`replaced: ${message}`);

  await agent.initialize();
  await agent.shutdown();

  assert.deepEqual(calls, ["replaced: ForumAgent authenticated"]);
});

test("logger method removed later is skipped", async () => {
  const logger = { debug() {}, info() {}, warn() {}, error() {} };
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);
  delete logger.info;

  await agent.initialize();
  await agent.shutdown();

  assert.equal(typeof logger.info, "undefined");
});

test("initialize and shutdown apply in call order", async () => {
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger());
  await agent.initialize();

  for (let round = 0; round < 10; round += 1) {
    const stopped = agent.shutdown();
    await agent.initialize();
    await stopped;
    assert.equal(agent.getStatus().status, "authenticated", `round ${round}: shutdown then initialize`);

    const started = agent.initialize();
    await agent.shutdown();
    await started;
    assert.equal(agent.getStatus().status, "initializing", `round ${round}: initialize then shutdown`);
    await agent.initialize();
  }
  await agent.shutdown();
});

test("logger calls arrive in order", async () => {
  proxy.reset();
  proxy.setFault({ type: "status", status: 503, methods: [CREATE_SESSION], times: 3 });
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, { retryDelaysMs: [1] });

  await agent.initialize();
  await waitForStatus(agent, "authenticated");
  await agent.shutdown();

  assert.deepEqual(logger.lines.map(([level, message, context]) => [level, message, context.attempt]), [
    ["warn", "ForumAgent auth retrying", 1],
    ["warn", "ForumAgent auth retrying", 2],
    ["warn", "ForumAgent auth retrying", 3],
    ["info", "ForumAgent authenticated", undefined],
  ]);
});

test("process exits without shutdown", async () => {
  for (let i = 0; i < 20; i += 1) {
    const { stdout } = await run(process.execPath, [EXIT_FIXTURE, pds.url, pds.handle, pds.password], {
      timeout: 30_000,
    });
    const report = JSON.parse(stdout);

    assert.equal(report.status, "authenticated", `run ${i}`);
    assert.deepEqual(report.lines, ["ForumAgent authenticated"], `run ${i}`);
  }
});

test("process exits while retrying", async () => {
  const { stdout } = await run(process.execPath, [EXIT_FIXTURE, "http://127.0.0.1:9", "h.test", "pw"], {
    timeout: 30_000,
  });

  assert.equal(JSON.parse(stdout).status, "retrying");
});

test("no secret in logs or status", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const seen = [];
  const appPassword = await pds.createAppPassword("secret-scan");
  const cases = [
    [pds.handle, "wrong-password-value"],
    [pds.handle, pds.password],
    [pds.did, appPassword],
  ];
  for (const [identifier, password] of cases) {
    const agent = new ForumAgent(proxy.url, identifier, password, logger, { refreshIntervalMs: 1000 });
    await agent.initialize();
    if (agent.isAuthenticated()) {
      await waitFor(() => proxy.count("com.atproto.server.refreshSession") > seen.length, { what: "a refresh" });
    }
    seen.push(agent.getStatus());
    await agent.shutdown();
  }

  const tokens = proxy.requests
    .map((request) => request.headers.authorization)
    .filter(Boolean)
    .map((header) => header.replace(/^Bearer /, ""));
  assert.ok(tokens.length >= 2, "no refresh token was captured");
  const text = JSON.stringify([logger.lines, seen]);
  for (const secret of [pds.password, appPassword, "wrong-password-value", ...tokens]) {
    assert.ok(!text.includes(secret), "a secret appears in the logs or status");
  }
  assert.doesNotMatch(text, /eyJ[\w-]+\.[\w-]+/);
});
