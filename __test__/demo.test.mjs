// The Hono forum example: its HTTP API, and `npm run demo -- --once` end to end.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import path from "node:path";

import { createApp } from "../examples/hono-forum/app.mjs";
import { ForumAgent, recordingLogger } from "./helpers/agent.mjs";

const run = promisify(execFile);
const root = path.resolve(fileURLToPath(import.meta.url), "../..");

function unavailableApp() {
  const forumAgent = new ForumAgent("http://127.0.0.1:9", "", "", recordingLogger());
  return createApp(forumAgent);
}

function post(app, body) {
  return app.request("/categories", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
}

test("demo app rejects bad bodies", async () => {
  const app = unavailableApp();
  const bodies = ["not json", "[]", "{}", '{"name":""}', '{"name":5}', `{"name":"${"x".repeat(101)}"}`, '{"name":"A","description":7}'];

  for (const body of bodies) {
    const response = await post(app, body);
    assert.equal(response.status, 400, body);
    assert.match((await response.json()).error, /name|description|JSON object/, body);
  }
});

test("demo app limits body size", async () => {
  const response = await post(unavailableApp(), JSON.stringify({ name: "x", description: "y".repeat(20_000) }));

  assert.equal(response.status, 413);
});

test("demo server rejects invalid PORT", async () => {
  for (const port of ["abc", "70000", "-1"]) {
    await assert.rejects(
      run(process.execPath, ["examples/hono-forum/server.mjs"], {
        cwd: root,
        env: { ...process.env, FORUM_PDS_URL: "http://127.0.0.1:9", PORT: port },
      }),
      (error) => {
        assert.equal(error.code, 2, port);
        assert.match(error.stderr, /PORT must be a whole number from 0 to 65535/);
        return true;
      },
    );
  }
});

test("demo app answers 503 while unauthenticated", async () => {
  const app = unavailableApp();

  const created = await post(app, '{"name":"General"}');
  assert.equal(created.status, 503);
  const body = await created.json();
  assert.equal(body.status.status, "unavailable");
  assert.equal(body.status.authenticated, false);

  const health = await app.request("/health");
  assert.equal(health.status, 503);
  assert.equal((await health.json()).status, "unavailable");
  assert.equal((await app.request("/categories")).status, 503);
});

test("npm run demo -- --once", async () => {
  const { stdout } = await run("npm", ["run", "demo", "--", "--once"], {
    cwd: root,
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });

  assert.match(stdout, /== GET http:\/\/127\.0\.0\.1:\d+\/health\n200 \{\n {2}"status": "authenticated"/);
  assert.match(stdout, /== POST http:\/\/127\.0\.0\.1:\d+\/categories\n201 \{\n {2}"uri": "at:\/\/did:plc:\w+\/space\.atbb\.forum\.category\/\w+"/);
  assert.match(stdout, /"name": "General"/);
  assert.match(stdout, /demo finished/);
});
