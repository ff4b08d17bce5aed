// Self-check of the test infrastructure: the local PDS (tools/local-pds) and the fault proxy.
// Starts one PDS, so it needs tools/local-pds/setup.sh to have run.

import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, test } from "node:test";

import { pdsInstalled, SETUP_HINT, startPds } from "../tools/local-pds/index.mjs";
import { closedPort, startFaultProxy } from "./helpers/fault-proxy.mjs";

const ACCESS_TTL_S = 2;
const CREATE_SESSION = "com.atproto.server.createSession";
const GET_SESSION = "com.atproto.server.getSession";

let pds;
let proxy;

before(async () => {
  assert.ok(pdsInstalled(), `local PDS is not installed: ${SETUP_HINT}`);
  pds = await startPds({
    env: { PDS_TEST_ACCESS_TTL_S: ACCESS_TTL_S, PDS_ENABLE_DID_DOC_WITH_SESSION: "true" },
  });
  proxy = await startFaultProxy(pds.url);
});

after(async () => {
  await proxy?.close();
  await pds?.stop();
});

// Sends an XRPC request with plain fetch. The method defaults to POST with a body, GET without.
async function call(baseUrl, nsid, { method, body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${baseUrl}/xrpc/${nsid}`, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Left null: a test that expects JSON fails on its own assertion.
  }
  return { status: response.status, headers: response.headers, body: json, text };
}

function createSession(baseUrl, identifier, password) {
  return call(baseUrl, CREATE_SESSION, { body: { identifier, password } });
}

function jwtPayload(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
}

test("startPds resolves to a ready PDS", () => {
  assert.equal(pds.url, `http://127.0.0.1:${pds.port}`);
  assert.match(pds.plcUrl, /^http:\/\/localhost:\d+$/);
  assert.equal(pds.handle, "atbb-forum.test");
  assert.equal(pds.email, "atbb-forum@example.com");
  assert.match(pds.did, /^did:plc:[a-z2-7]{24}$/);
  assert.equal(typeof pds.password, "string");
  assert.equal(typeof pds.adminPassword, "string");
  assert.equal(typeof pds.accessJwt, "string");
  assert.equal(typeof pds.refreshJwt, "string");
  assert.equal(pds.process.exitCode, null);
});

test("createSession by handle", async () => {
  const response = await createSession(pds.url, pds.handle, pds.password);
  assert.equal(response.status, 200);
  assert.equal(response.body.did, pds.did);
  assert.equal(response.body.handle, pds.handle);
  assert.equal(typeof response.body.accessJwt, "string");
  assert.equal(typeof response.body.refreshJwt, "string");

  const service = response.body.didDoc.service.find((entry) => entry.id === "#atproto_pds");
  assert.equal(service.serviceEndpoint, `http://localhost:${pds.port}`);
});

test("createSession by DID", async () => {
  const response = await createSession(pds.url, pds.did, pds.password);
  assert.equal(response.status, 200);
  assert.equal(response.body.did, pds.did);
  assert.equal(response.body.handle, pds.handle);
});

test("createSession with wrong password", async () => {
  const response = await createSession(pds.url, pds.handle, "wrong-password");
  assert.equal(response.status, 401);
  assert.equal(response.body.error, "AuthenticationRequired");
});

test("access token lifetime hook", async () => {
  const session = (await createSession(pds.url, pds.handle, pds.password)).body;
  const payload = jwtPayload(session.accessJwt);
  assert.equal(payload.exp - payload.iat, ACCESS_TTL_S);

  const fresh = await call(pds.url, GET_SESSION, { token: session.accessJwt });
  assert.equal(fresh.status, 200);

  await new Promise((resolve) => setTimeout(resolve, (ACCESS_TTL_S + 1) * 1000));
  const expired = await call(pds.url, GET_SESSION, { token: session.accessJwt });
  assert.equal(expired.status, 400);
  assert.equal(expired.body.error, "ExpiredToken");
});

test("deleteSession revokes refresh token", async () => {
  const session = (await createSession(pds.url, pds.handle, pds.password)).body;
  await pds.deleteSession(session.refreshJwt);

  const response = await call(pds.url, "com.atproto.server.refreshSession", {
    method: "POST",
    token: session.refreshJwt,
  });
  assert.equal(response.status, 400);
  assert.equal(response.body.error, "ExpiredToken");
  assert.equal(response.body.message, "Token has been revoked");
});

test("app password logs in", async () => {
  const appPassword = await pds.createAppPassword("self-check");
  assert.match(appPassword, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);

  const response = await createSession(pds.url, pds.handle, appPassword);
  assert.equal(response.status, 200);
  assert.equal(response.body.did, pds.did);
});

test("takedown blocks createSession", async () => {
  const account = await pds.createAccount();
  assert.match(account.handle, /^user-[0-9a-f]{10}\.test$/);
  assert.equal((await createSession(pds.url, account.handle, account.password)).status, 200);

  await pds.takedown(account.did);
  const response = await createSession(pds.url, account.handle, account.password);
  assert.equal(response.status, 401);
  assert.equal(response.body.error, "AccountTakedown");
});

test("fault proxy forwards and counts", async () => {
  proxy.reset();
  const login = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(login.status, 200);
  assert.equal(login.body.did, pds.did);
  assert.match(login.headers.get("content-type"), /^application\/json/);
  assert.equal(proxy.count(CREATE_SESSION), 1);

  const session = await call(proxy.url, GET_SESSION, { token: login.body.accessJwt });
  assert.equal(session.status, 200);
  assert.equal(proxy.counts[GET_SESSION], 1);
  assert.equal(proxy.requests.length, 2);
  assert.equal(proxy.requests[0].method, "POST");
  assert.equal(proxy.requests[0].path, `/xrpc/${CREATE_SESSION}`);
  assert.equal(proxy.requests[1].nsid, GET_SESSION);
  assert.equal(proxy.requests[1].headers.authorization, `Bearer ${login.body.accessJwt}`);
});

test("fault proxy status fault", async () => {
  proxy.reset();
  proxy.setFault({ type: "status", status: 503, methods: [CREATE_SESSION], times: 1 });

  const failed = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(failed.status, 503);
  assert.equal(failed.body.error, "NotEnoughResources");
  assert.equal(typeof failed.body.message, "string");

  const retried = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(retried.status, 200);
  assert.equal(proxy.count(CREATE_SESSION), 2);
  proxy.clearFault();
});

test("fault proxy rate limit headers", async () => {
  const resetAt = String(Math.floor(Date.now() / 1000) + 30);
  proxy.setFault({
    type: "status",
    status: 429,
    headers: { "RateLimit-Reset": resetAt, "Retry-After": "30" },
  });

  const response = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(response.status, 429);
  assert.equal(response.body.error, "RateLimitExceeded");
  assert.equal(response.headers.get("ratelimit-reset"), resetAt);
  assert.equal(response.headers.get("retry-after"), "30");
  proxy.clearFault();
});

test("fault proxy methods filter", async () => {
  proxy.setFault({ type: "status", status: 500, methods: [GET_SESSION] });
  const response = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(response.status, 200);
  proxy.clearFault();
});

test("fault proxy reset fault", async () => {
  proxy.setFault({ type: "reset", times: 1 });
  await assert.rejects(createSession(proxy.url, pds.handle, pds.password), TypeError);

  const response = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(response.status, 200);
});

test("fault proxy hang fault", async () => {
  proxy.reset();
  proxy.setFault({ type: "hang", times: 1 });
  const request = fetch(`${proxy.url}/xrpc/${GET_SESSION}`, {
    signal: AbortSignal.timeout(300),
  });
  await assert.rejects(request, { name: "TimeoutError" });
  assert.equal(proxy.count(GET_SESSION), 1);
});

test("fault proxy delay fault", async () => {
  proxy.setFault({ type: "delay", ms: 300, times: 1 });
  const startedAt = Date.now();
  const response = await createSession(proxy.url, pds.handle, pds.password);
  assert.equal(response.status, 200);
  assert.ok(Date.now() - startedAt >= 300, "response arrived before the 300 ms delay");
});

test("fault proxy unreachable target", async () => {
  proxy.setTarget(`http://127.0.0.1:${await closedPort()}`);
  try {
    const response = await createSession(proxy.url, pds.handle, pds.password);
    assert.equal(response.status, 502);
    assert.equal(response.body.error, "UpstreamFailure");
  } finally {
    proxy.setTarget(pds.url);
  }
});

test("fault proxy rejects remote target", () => {
  assert.throws(() => proxy.setTarget("http://192.0.2.1/"), TypeError);
});

test("closedPort refuses connections", async () => {
  const port = await closedPort();
  await assert.rejects(fetch(`http://127.0.0.1:${port}/`), (error) => {
    assert.equal(error.cause?.code, "ECONNREFUSED");
    return true;
  });
});

test("stop ends process and removes data", async () => {
  const result = await pds.stop();
  assert.deepEqual(result, { code: 0, signal: null });
  assert.equal(fs.existsSync(pds.dataDir), false);
  await assert.rejects(fetch(`${pds.url}/xrpc/_health`), TypeError);
});
