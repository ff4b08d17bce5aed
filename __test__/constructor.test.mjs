import { test } from "node:test";
import assert from "node:assert/strict";

import { ForumAgent, recordingLogger } from "./helpers/agent.mjs";

const URL = "http://127.0.0.1:9";
const PASSWORD = "constructor-test-password";
const logger = recordingLogger();

const invalid = [
  ["pdsUrl number", [42, "forum.test", PASSWORD, logger], TypeError, /^pdsUrl must be a string/],
  ["pdsUrl missing scheme", ["127.0.0.1:2583", "h", PASSWORD, logger], TypeError, /^pdsUrl must be an http/],
  ["pdsUrl ftp", ["ftp://127.0.0.1", "h", PASSWORD, logger], TypeError, /^pdsUrl must be an http/],
  ["pdsUrl empty", ["", "h", PASSWORD, logger], TypeError, /^pdsUrl must be an http/],
  ["pdsUrl credentials", ["http://u:pw@127.0.0.1", "h", PASSWORD, logger], TypeError, /^pdsUrl must not contain/],
  ["handle null", [URL, null, PASSWORD, logger], TypeError, /^handle must be a string, got null/],
  ["password number", [URL, "h", 1234, logger], TypeError, /^password must be a string/],
  ["password missing", [URL, "h"], TypeError, /^password must be a string, got undefined/],
  ["logger missing", [URL, "h", PASSWORD], TypeError, /^logger must be an object/],
  ["logger string", [URL, "h", PASSWORD, "console"], TypeError, /^logger must be an object/],
  ["logger without debug", [URL, "h", PASSWORD, { info() {}, warn() {}, error() {} }], TypeError, /^logger\.debug must be a function/],
  ["logger info not function", [URL, "h", PASSWORD, { ...console, info: 1 }], TypeError, /^logger\.info must be a function/],
  ["options not object", [URL, "h", PASSWORD, logger, 5], TypeError, /^options must be an object/],
  ["options array", [URL, "h", PASSWORD, logger, []], TypeError, /^options must be an object/],
  ["unknown option", [URL, "h", PASSWORD, logger, { retryDelayMs: [1] }], TypeError, /^options\.retryDelayMs is not a known option/],
  ["delays not array", [URL, "h", PASSWORD, logger, { retryDelaysMs: 10 }], TypeError, /^options\.retryDelaysMs must be an array/],
  ["delays empty", [URL, "h", PASSWORD, logger, { retryDelaysMs: [] }], RangeError, /^options\.retryDelaysMs must have between 1/],
  ["delay negative", [URL, "h", PASSWORD, logger, { retryDelaysMs: [10, -1] }], RangeError, /^options\.retryDelaysMs\[1\] must be a whole number/],
  ["delay string", [URL, "h", PASSWORD, logger, { retryDelaysMs: ["10"] }], TypeError, /^options\.retryDelaysMs\[0\] must be a number/],
  ["maxRetries fraction", [URL, "h", PASSWORD, logger, { maxRetries: 1.5 }], RangeError, /^options\.maxRetries must be a whole number/],
  ["maxRetries NaN", [URL, "h", PASSWORD, logger, { maxRetries: NaN }], RangeError, /^options\.maxRetries/],
  ["refresh too short", [URL, "h", PASSWORD, logger, { refreshIntervalMs: 10 }], RangeError, /^options\.refreshIntervalMs must be a whole number from 1000/],
  ["timeout zero", [URL, "h", PASSWORD, logger, { requestTimeoutMs: 0 }], RangeError, /^options\.requestTimeoutMs/],
  ["timeout null", [URL, "h", PASSWORD, logger, { requestTimeoutMs: null }], TypeError, /^options\.requestTimeoutMs must be a number, got null/],
];

for (const [name, args, errorType, message] of invalid) {
  test(`constructor rejects ${name}`, () => {
    assert.throws(() => new ForumAgent(...args), (error) => {
      assert.equal(error.constructor, errorType, `${error.constructor.name}: ${error.message}`);
      assert.match(error.message, message);
      assert.ok(!error.message.includes(PASSWORD), "message contains the password");
      return true;
    });
  });
}

test("constructor never echoes password", () => {
  // The password passed where the URL belongs must not come back in the error.
  for (const args of [[PASSWORD, "h", "x", logger], [`ftp://${PASSWORD}`, "h", "x", logger]]) {
    assert.throws(() => new ForumAgent(...args), (error) => {
      assert.equal(error.constructor, TypeError);
      assert.match(error.message, /^pdsUrl must be an http/);
      assert.ok(!error.message.includes(PASSWORD), error.message);
      return true;
    });
  }
});

test("constructor accepts valid options", () => {
  const agent = new ForumAgent("https://127.0.0.1:2583/", "forum.test", PASSWORD, logger, {
    retryDelaysMs: [0, 5, 86_400_000],
    maxRetries: 0,
    refreshIntervalMs: 1000,
    requestTimeoutMs: 600_000,
  });

  assert.deepEqual(agent.getStatus(), { status: "initializing", authenticated: false });
  assert.equal(agent.isAuthenticated(), false);
  assert.equal(agent.getAgent(), null);
});

test("constructor accepts undefined options", () => {
  const agent = new ForumAgent(URL, "forum.test", PASSWORD, logger, undefined);

  assert.equal(agent.getStatus().status, "initializing");
  assert.equal(logger.lines.length, 0);
});

test("blank credentials report unavailable", async () => {
  for (const [handle, password] of [["", PASSWORD], ["  ", PASSWORD], ["forum.test", ""], ["forum.test", "\t "]]) {
    const agent = new ForumAgent(URL, handle, password, logger);
    await agent.initialize();
    const state = agent.getStatus();

    assert.equal(state.status, "unavailable");
    assert.equal(state.authenticated, false);
    assert.match(state.error, /credentials not configured/);
    assert.equal("lastAuthAttempt" in state, false);
    await agent.shutdown();
  }
});
