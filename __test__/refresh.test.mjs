// Session refresh against a real @atproto/pds whose access tokens live 4 seconds.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startPds } from "../tools/local-pds/index.mjs";
import { startFaultProxy } from "./helpers/fault-proxy.mjs";
import { ForumAgent, recordingLogger, waitFor, waitForStatus } from "./helpers/agent.mjs";

const CREATE_SESSION = "com.atproto.server.createSession";
const REFRESH_SESSION = "com.atproto.server.refreshSession";
let pds;
let proxy;

before(async () => {
  pds = await startPds({ env: { PDS_TEST_ACCESS_TTL_S: "4" } });
  proxy = await startFaultProxy(pds.url);
});

after(async () => {
  await proxy?.close();
  await pds?.stop();
});

function refreshTokensSent() {
  return proxy.requests
    .filter((request) => request.nsid === REFRESH_SESSION)
    .map((request) => request.headers.authorization);
}

test("refresh before short token expires", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);
  await agent.initialize();

  await waitFor(() => logger.find("ForumAgent session refreshed").length >= 2, {
    timeoutMs: 20_000,
    what: "two refreshes",
  });

  assert.equal(proxy.count(CREATE_SESSION), 1);
  const [first, second] = logger.find("ForumAgent session refreshed");
  assert.deepEqual(first, ["debug", "ForumAgent session refreshed", { did: pds.did }]);
  assert.deepEqual(second, first);

  const tokens = refreshTokensSent();
  assert.ok(tokens.length >= 2);
  assert.match(tokens[0], /^Bearer \S+$/);
  assert.notEqual(tokens[0], tokens[1], "the refresh token was not rotated");
  assert.equal(agent.getStatus().status, "authenticated");
  assert.equal(logger.find("ForumAgent session refresh failed").length, 0);
  await agent.shutdown();
});

test("revoked refresh token falls back to login", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);
  await agent.initialize();
  assert.equal(proxy.count(CREATE_SESSION), 1);

  await pds.revokeSessions();
  await waitFor(() => logger.find("ForumAgent session refresh failed").length > 0, {
    timeoutMs: 20_000,
    what: "a failed refresh",
  });
  const [failure] = logger.find("ForumAgent session refresh failed");
  await waitFor(() => logger.find("ForumAgent authenticated").length === 2, {
    what: "a second login",
  });

  assert.equal(failure[0], "warn");
  assert.deepEqual(Object.keys(failure[2]), ["error"]);
  assert.match(failure[2].error, /revoked|expired/i);
  assert.equal(proxy.count(CREATE_SESSION), 2);
  assert.deepEqual(logger.messages().slice(0, 3), [
    "ForumAgent authenticated",
    "ForumAgent session refresh failed",
    "ForumAgent authenticated",
  ]);
  const state = await waitForStatus(agent, "authenticated");
  assert.equal(state.authenticated, true);
  await agent.shutdown();
});

test("transient refresh failure keeps session", async () => {
  proxy.reset();
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, {
    retryDelaysMs: [300],
  });
  await agent.initialize();
  proxy.setFault({ type: "status", status: 503, methods: [REFRESH_SESSION], times: 1 });

  await waitFor(() => logger.find("ForumAgent session refreshed").length >= 1, {
    timeoutMs: 20_000,
    what: "a refresh after the 503",
  });

  const [warning] = logger.find("ForumAgent session refresh failed");
  assert.ok(warning, JSON.stringify(logger.lines) + JSON.stringify(proxy.counts));
  assert.equal(warning[0], "warn");
  assert.equal(warning[2].retryInMs, 300);
  assert.equal(warning[2].attempt, 1);
  assert.match(warning[2].error, /503/);
  assert.equal(proxy.count(CREATE_SESSION), 1, "a transient refresh failure logged in again");
  assert.ok(proxy.count(REFRESH_SESSION) >= 2);
  assert.equal(agent.getStatus().status, "authenticated");
  await agent.shutdown();
});
