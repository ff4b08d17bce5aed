// Transient failures injected by a proxy in front of a real @atproto/pds: each is retried on
// the schedule until the login succeeds.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";

import { startPds } from "../tools/local-pds/index.mjs";
import { closedPort, startFaultProxy } from "./helpers/fault-proxy.mjs";
import { ForumAgent, recordingLogger, waitForStatus } from "./helpers/agent.mjs";

const CREATE_SESSION = "com.atproto.server.createSession";
let pds;
let proxy;

before(async () => {
  pds = await startPds({ env: { PDS_RATE_LIMITS_ENABLED: "true" } });
  proxy = await startFaultProxy(pds.url);
});

after(async () => {
  await proxy?.close();
  await pds?.stop();
});

async function logInThroughFault(t, fault, options) {
  proxy.reset();
  proxy.setFault({ methods: [CREATE_SESSION], ...fault });
  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, logger, options);
  t.after(() => agent.shutdown());
  await agent.initialize();
  return { agent, logger };
}

function retryLines(logger) {
  return logger.find("ForumAgent auth retrying").map(([level, , context]) => ({ level, ...context }));
}

test("503 is retried until login", async (t) => {
  const fault = { type: "status", status: 503, times: 2 };
  const { agent, logger } = await logInThroughFault(t, fault, { retryDelaysMs: [50, 100] });

  const retrying = agent.getStatus();
  assert.equal(retrying.status, "retrying");
  assert.equal(retrying.retryCount, 1);
  assert.equal(retrying.error, "Connection to PDS temporarily unavailable");

  await waitForStatus(agent, "authenticated");
  assert.equal(proxy.count(CREATE_SESSION), 3);
  const retries = retryLines(logger);
  assert.deepEqual(
    retries.map(({ level, attempt, maxAttempts, retryInMs }) => [level, attempt, maxAttempts, retryInMs]),
    [
      ["warn", 1, 5, 50],
      ["warn", 2, 5, 100],
    ],
  );
  assert.match(retries[0].error, /503|NotEnoughResources/);
  assert.equal(retries[0].handle, pds.handle);
});

test("429 waits for Retry-After", async (t) => {
  const fault = {
    type: "status",
    status: 429,
    error: "RateLimitExceeded",
    message: "Rate Limit Exceeded",
    headers: { "retry-after": "2" },
    times: 1,
  };
  const { agent, logger } = await logInThroughFault(t, fault, { retryDelaysMs: [50] });

  const [retry] = retryLines(logger);
  assert.equal(retry.retryInMs, 2000);
  assert.equal(retry.error, "Rate Limit Exceeded");
  const { nextRetryAt, lastAuthAttempt } = agent.getStatus();
  assert.ok(nextRetryAt - lastAuthAttempt >= 1900, `${nextRetryAt - lastAuthAttempt} ms`);

  await waitForStatus(agent, "authenticated");
  assert.equal(proxy.count(CREATE_SESSION), 2);
});

test("429 waits for RateLimit-Reset", async (t) => {
  const resetAt = Math.ceil(Date.now() / 1000) + 3;
  const fault = {
    type: "status",
    status: 429,
    error: "RateLimitExceeded",
    headers: { "ratelimit-reset": String(resetAt), "ratelimit-remaining": "0" },
    times: 1,
  };
  const { agent, logger } = await logInThroughFault(t, fault, { retryDelaysMs: [50] });

  const [retry] = retryLines(logger);
  assert.ok(retry.retryInMs >= 2000, `${retry.retryInMs} ms`);
  assert.ok(retry.retryInMs <= 4000, `${retry.retryInMs} ms`);
  assert.ok(agent.getStatus().nextRetryAt.getTime() >= resetAt * 1000 - 1000);
  await waitForStatus(agent, "authenticated");
});

test("hanging PDS times out and retries", async (t) => {
  const fault = { type: "hang", times: 1 };
  const { agent, logger } = await logInThroughFault(t, fault, {
    retryDelaysMs: [50],
    requestTimeoutMs: 500,
  });

  const [retry] = retryLines(logger);
  assert.equal(retry.error, "request to the PDS timed out after 500 ms");
  await waitForStatus(agent, "authenticated");
  assert.equal(proxy.count(CREATE_SESSION), 2);
});

test("connection reset is retried", async (t) => {
  const { agent, logger } = await logInThroughFault(t, { type: "reset", times: 2 }, { retryDelaysMs: [50] });

  await waitForStatus(agent, "authenticated");
  const retries = retryLines(logger);
  assert.equal(retries.length, 2);
  assert.equal(proxy.count(CREATE_SESSION), 3);
});

test("refused connection exhausts retries", async (t) => {
  const port = await closedPort();
  const logger = recordingLogger();
  const agent = new ForumAgent(`http://127.0.0.1:${port}`, pds.handle, pds.password, logger, {
    retryDelaysMs: [20, 40],
    maxRetries: 3,
  });
  t.after(() => agent.shutdown());
  await agent.initialize();

  const state = await waitForStatus(agent, "failed");
  assert.equal(state.error, "Auth failed after max retries");
  assert.equal("retryCount" in state, false);
  assert.equal("nextRetryAt" in state, false);
  assert.deepEqual(
    retryLines(logger).map(({ attempt, retryInMs }) => [attempt, retryInMs]),
    [
      [1, 20],
      [2, 40],
      [3, 40],
    ],
  );
  const [[level, , context]] = logger.find("ForumAgent auth failed");
  assert.equal(level, "error");
  assert.deepEqual(Object.keys(context).sort(), ["attempts", "error", "handle", "reason"]);
  assert.equal(context.attempts, 4);
  assert.equal(context.reason, "max retries exceeded");
  assert.match(context.error, /Connection refused/);
});

test("unexpected status fails without retry", async (t) => {
  const fault = { type: "status", status: 418, error: "Teapot", message: "short and stout" };
  const { agent, logger } = await logInThroughFault(t, fault, { retryDelaysMs: [20] });

  assert.equal(agent.getStatus().status, "failed");
  assert.equal(agent.getStatus().error, "Authentication failed");
  assert.equal(proxy.count(CREATE_SESSION), 1);
  const [[, , context]] = logger.find("ForumAgent auth failed");
  assert.equal(context.attempts, 1);
  assert.equal(context.reason, "unknown error");
  assert.equal(context.error, "short and stout");
});

test("malformed success fails without retry", async (t) => {
  const fault = { type: "status", status: 200, body: "<html>not xrpc</html>" };
  const { agent, logger } = await logInThroughFault(t, fault, { retryDelaysMs: [20] });

  assert.equal(agent.getStatus().error, "Authentication failed");
  assert.equal(proxy.count(CREATE_SESSION), 1);
  const [[, , context]] = logger.find("ForumAgent auth failed");
  assert.match(context.error, /^invalid response from the PDS/);
});

test("real PDS rate limit is transient", async (t) => {
  // The reference PDS allows 30 createSession calls per 5 minutes per account.
  proxy.reset();
  proxy.clearFault();
  const account = await pds.createAccount({ handle: "ratelimited.test" });
  let limited = null;
  for (let i = 0; i < 40 && !limited; i += 1) {
    const response = await fetch(`${pds.url}/xrpc/${CREATE_SESSION}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ identifier: account.handle, password: "wrong-password" }),
    });
    if (response.status === 429) {
      limited = response;
    }
  }
  assert.ok(limited, "the PDS never answered 429");

  const logger = recordingLogger();
  const agent = new ForumAgent(proxy.url, account.handle, account.password, logger, { retryDelaysMs: [20] });
  t.after(() => agent.shutdown());
  await agent.initialize();

  const state = agent.getStatus();
  assert.equal(state.status, "retrying");
  const [retry] = retryLines(logger);
  assert.ok(retry.retryInMs > 1000, `retryInMs ${retry.retryInMs} ignores the rate limit reset`);
});
