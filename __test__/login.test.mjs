// Login against a real @atproto/pds on 127.0.0.1, with a counting proxy in front of it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";

import { freePort, startPds } from "../tools/local-pds/index.mjs";
import { startFaultProxy } from "./helpers/fault-proxy.mjs";
import { ForumAgent, recordingLogger, waitForStatus } from "./helpers/agent.mjs";

const CREATE_SESSION = "com.atproto.server.createSession";
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

async function logIn(identifier, password, options) {
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, identifier, password, logger, options);
  await agent.initialize();
  return { agent, logger };
}

for (const by of ["handle", "did", "email"]) {
  test(`login by ${by}`, async () => {
    const identifier = { handle: pds.handle, did: pds.did, email: pds.email }[by];
    const { agent, logger } = await logIn(identifier, pds.password);
    const state = agent.getStatus();

    assert.equal(state.status, "authenticated");
    assert.equal(state.authenticated, true);
    assert.equal(agent.isAuthenticated(), true);
    assert.ok(state.lastAuthAttempt instanceof Date);
    assert.ok(Date.now() - state.lastAuthAttempt.getTime() < 60_000);
    assert.deepEqual(Object.keys(state).sort(), ["authenticated", "lastAuthAttempt", "status"]);

    assert.deepEqual(logger.lines, [
      ["info", "ForumAgent authenticated", { handle: identifier, did: pds.did }],
    ]);
    await agent.shutdown();
  });
}

test("login with app password", async () => {
  const appPassword = await pds.createAppPassword("forum-agent-test");
  const { agent, logger } = await logIn(pds.handle, appPassword);

  assert.equal(agent.getStatus().status, "authenticated");
  assert.deepEqual(logger.messages(), ["ForumAgent authenticated"]);
  await agent.shutdown();
});

test("wrong password fails without retry", async () => {
  proxy.reset();
  const { agent, logger } = await logIn(pds.handle, "not-the-password", { retryDelaysMs: [20] });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const state = agent.getStatus();

  assert.equal(proxy.count(CREATE_SESSION), 1);
  assert.equal(state.status, "failed");
  assert.equal(state.authenticated, false);
  assert.equal(state.error, "Authentication failed: invalid credentials");
  assert.equal("retryCount" in state, false);
  assert.equal("nextRetryAt" in state, false);
  assert.deepEqual(logger.lines, [
    [
      "error",
      "ForumAgent auth permanent failure",
      { handle: pds.handle, error: "Invalid identifier or password" },
    ],
  ]);

  await agent.initialize();
  assert.equal(proxy.count(CREATE_SESSION), 1, "initialize() after failure logged in again");
  await agent.shutdown();
});

test("unknown handle fails without retry", async () => {
  proxy.reset();
  const { agent } = await logIn("nobody-here.test", "whatever-password");

  assert.equal(agent.getStatus().status, "failed");
  assert.equal(agent.getStatus().error, "Authentication failed: invalid credentials");
  assert.equal(proxy.count(CREATE_SESSION), 1);
  await agent.shutdown();
});

test("taken-down account fails permanently", async () => {
  const account = await pds.createAccount({ handle: "takendown.test" });
  await pds.takedown(account.did);
  proxy.reset();

  const { agent, logger } = await logIn(account.handle, account.password);

  assert.equal(agent.getStatus().status, "failed");
  assert.equal(agent.getStatus().error, "Authentication failed: invalid credentials");
  assert.equal(proxy.count(CREATE_SESSION), 1);
  const [line] = logger.find("ForumAgent auth permanent failure");
  assert.equal(line[0], "error");
  assert.equal(line[2].handle, account.handle);
  assert.match(line[2].error, /taken ?down/i);
  await agent.shutdown();
});

test("concurrent initialize shares one login", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);

  await Promise.all([agent.initialize(), agent.initialize(), agent.initialize()]);
  await agent.initialize();

  assert.equal(proxy.count(CREATE_SESSION), 1);
  assert.equal(agent.getStatus().status, "authenticated");
  assert.deepEqual(logger.messages(), ["ForumAgent authenticated"]);
  await agent.shutdown();
});

test("PDS started after initialize", async () => {
  const port = await freePort();
  const logger = recordingLogger();
  const agent = new ForumAgent(`http://127.0.0.1:${port}`, "late-start.test", "late-password", logger, {
    retryDelaysMs: [250],
    maxRetries: 1000,
  });

  await agent.initialize();
  const retrying = agent.getStatus();
  assert.equal(retrying.status, "retrying");
  assert.equal(retrying.authenticated, false);
  assert.equal(retrying.retryCount, 1);
  assert.ok(retrying.nextRetryAt instanceof Date);
  assert.ok(retrying.nextRetryAt > retrying.lastAuthAttempt);
  assert.equal(retrying.error, "Connection to PDS temporarily unavailable");

  const [[level, message, context]] = logger.lines;
  assert.equal(level, "warn");
  assert.equal(message, "ForumAgent auth retrying");
  assert.deepEqual(Object.keys(context).sort(), ["attempt", "error", "handle", "maxAttempts", "retryInMs"]);
  assert.equal(context.attempt, 1);
  assert.equal(context.maxAttempts, 1000);
  assert.equal(context.retryInMs, 250);
  assert.match(context.error, /Connection refused/);

  // The PDS creates its account only after it starts listening, and a retry that arrived in
  // between would be rejected for good. So the PDS starts on another port, and the agent's
  // port opens (as a plain TCP forwarder) once the account exists.
  const late = await startPds({ handle: "late-start.test", password: "late-password" });
  const forwarder = await forwardPort(port, late.port);
  try {
    const state = await waitForStatus(agent, "authenticated", 30_000);

    assert.equal(state.authenticated, true);
    assert.equal("retryCount" in state, false);
    assert.equal("error" in state, false);
    assert.deepEqual(logger.lines.at(-1), [
      "info",
      "ForumAgent authenticated",
      { handle: "late-start.test", did: late.did },
    ]);
  } finally {
    await agent.shutdown();
    forwarder.close();
    await late.stop();
  }
});

function forwardPort(fromPort, toPort) {
  const server = net.createServer((socket) => {
    const upstream = net.connect(toPort, "127.0.0.1");
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  return new Promise((resolve) => server.listen(fromPort, "127.0.0.1", () => resolve(server)));
}
