// getAgent(): a real @atproto/api Agent whose requests go through the Rust core, against a
// real @atproto/pds on 127.0.0.1.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Agent, XRPCError } from "@atproto/api";

import { startPds } from "../tools/local-pds/index.mjs";
import { startFaultProxy } from "./helpers/fault-proxy.mjs";
import { ForumAgent, findJwts, recordingLogger, sleep, waitFor } from "./helpers/agent.mjs";

const run = promisify(execFile);
const CATEGORY = "space.atbb.forum.category";
const BOARD = "space.atbb.forum.board";
let pds;
let proxy;
let forumAgent;
let logger;

before(async () => {
  pds = await startPds();
  proxy = await startFaultProxy(pds.url);
  logger = recordingLogger();
  forumAgent = new ForumAgent(proxy.url, pds.handle, pds.password, logger);
  await forumAgent.initialize();
});

after(async () => {
  await forumAgent?.shutdown();
  await proxy?.close();
  await pds?.stop();
});

function category(name) {
  return { $type: CATEGORY, name, createdAt: new Date().toISOString() };
}

/** Reads a record straight from the PDS, without the agent. */
async function storedRecord(collection, rkey) {
  const params = new URLSearchParams({ repo: pds.did, collection, rkey });
  const response = await fetch(`${pds.url}/xrpc/com.atproto.repo.getRecord?${params}`);
  return { status: response.status, body: await response.json() };
}

test("getAgent returns one Agent", () => {
  const agent = forumAgent.getAgent();

  assert.ok(agent instanceof Agent);
  assert.equal(forumAgent.getAgent(), agent);
  assert.equal(agent.did, pds.did);
  assert.deepEqual(agent.session, {
    did: pds.did,
    handle: pds.handle,
    email: pds.email,
    emailConfirmed: false,
    active: true,
  });
});

test("getAgent is null before login", async () => {
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger());
  assert.equal(agent.getAgent(), null);

  await agent.initialize();
  assert.ok(agent.getAgent() instanceof Agent);

  await agent.shutdown();
  assert.equal(agent.getAgent(), null);
});

test("putRecord and getRecord", async () => {
  const agent = forumAgent.getAgent();
  const record = category("General");

  const put = await agent.com.atproto.repo.putRecord({
    repo: agent.session.did,
    collection: CATEGORY,
    rkey: "general",
    record,
  });
  assert.equal(put.success, true);
  assert.equal(put.data.uri, `at://${pds.did}/${CATEGORY}/general`);

  const stored = await storedRecord(CATEGORY, "general");
  assert.equal(stored.status, 200);
  assert.equal(stored.body.cid, put.data.cid);
  assert.deepEqual(stored.body.value, record);

  const got = await agent.com.atproto.repo.getRecord({ repo: pds.did, collection: CATEGORY, rkey: "general" });
  assert.deepEqual(got.data.value, record);
  assert.equal(got.data.cid, put.data.cid);
});

test("createRecord, listRecords and deleteRecord", async () => {
  const agent = forumAgent.getAgent();
  const record = { $type: BOARD, name: "Announcements", category: "general", createdAt: new Date().toISOString() };

  const created = await agent.com.atproto.repo.createRecord({ repo: pds.did, collection: BOARD, record });
  const rkey = created.data.uri.split("/").at(-1);
  assert.deepEqual((await storedRecord(BOARD, rkey)).body.value, record);

  const listed = await agent.com.atproto.repo.listRecords({ repo: pds.did, collection: BOARD });
  assert.deepEqual(
    listed.data.records.map((entry) => [entry.uri, entry.cid]),
    [[created.data.uri, created.data.cid]],
  );

  await agent.com.atproto.repo.deleteRecord({ repo: pds.did, collection: BOARD, rkey });
  const stored = await storedRecord(BOARD, rkey);
  assert.equal(stored.status, 400);
  assert.equal(stored.body.error, "RecordNotFound");
});

test("applyWrites creates and updates", async () => {
  const agent = forumAgent.getAgent();
  const writes = [
    { $type: "com.atproto.repo.applyWrites#create", collection: CATEGORY, rkey: "meta", value: category("Meta") },
    { $type: "com.atproto.repo.applyWrites#create", collection: CATEGORY, rkey: "help", value: category("Help") },
  ];

  const result = await agent.com.atproto.repo.applyWrites({ repo: pds.did, writes });
  assert.equal(result.data.results.length, 2);
  assert.equal((await storedRecord(CATEGORY, "meta")).body.value.name, "Meta");
  assert.equal((await storedRecord(CATEGORY, "help")).body.value.name, "Help");

  await agent.com.atproto.repo.applyWrites({
    repo: pds.did,
    writes: [
      { $type: "com.atproto.repo.applyWrites#update", collection: CATEGORY, rkey: "meta", value: category("Meta 2") },
      { $type: "com.atproto.repo.applyWrites#delete", collection: CATEGORY, rkey: "help" },
    ],
  });
  assert.equal((await storedRecord(CATEGORY, "meta")).body.value.name, "Meta 2");
  assert.equal((await storedRecord(CATEGORY, "help")).status, 400);
});

test("uploadBlob keeps bytes intact", async () => {
  const agent = forumAgent.getAgent();
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256);
  const bodies = [
    ["Uint8Array", bytes],
    ["Buffer", Buffer.from(bytes)],
    ["Blob", new Blob([bytes], { type: "image/png" })],
  ];

  for (const [kind, body] of bodies) {
    const uploaded = await agent.uploadBlob(body, { encoding: "image/png" });
    assert.equal(uploaded.data.blob.size, bytes.length, kind);
    assert.equal(uploaded.data.blob.mimeType, "image/png", kind);

    // A blob is kept only when a record refers to it.
    const rkey = `blob-${kind.toLowerCase()}`;
    await agent.com.atproto.repo.putRecord({
      repo: pds.did,
      collection: CATEGORY,
      rkey,
      record: { ...category(kind), icon: uploaded.data.blob },
    });
    const cid = uploaded.data.blob.ref.toString();
    const raw = await fetch(`${pds.url}/xrpc/com.atproto.sync.getBlob?did=${pds.did}&cid=${cid}`);
    assert.equal(raw.status, 200, kind);
    assert.deepEqual(new Uint8Array(await raw.arrayBuffer()), bytes, kind);

    const viaAgent = await agent.com.atproto.sync.getBlob({ did: pds.did, cid });
    assert.deepEqual(new Uint8Array(viaAgent.data), bytes, kind);
    assert.equal(viaAgent.headers["content-type"], "image/png", kind);
  }
});

test("RecordNotFound arrives as XRPCError", async () => {
  const agent = forumAgent.getAgent();

  await assert.rejects(
    agent.com.atproto.repo.getRecord({ repo: pds.did, collection: CATEGORY, rkey: "missing" }),
    (error) => {
      assert.ok(error instanceof XRPCError);
      assert.equal(error.status, 400);
      assert.equal(error.error, "RecordNotFound");
      assert.match(error.message, /Could not locate record/);
      return true;
    },
  );
});

test("write to another repo is rejected", async () => {
  const other = await pds.createAccount({ handle: "other-repo.test" });
  const agent = forumAgent.getAgent();
  const direct = await fetch(`${pds.url}/xrpc/com.atproto.repo.putRecord`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${pds.accessJwt}` },
    body: JSON.stringify({ repo: other.did, collection: CATEGORY, rkey: "x", record: category("X") }),
  });
  const expected = await direct.json();

  await assert.rejects(
    agent.com.atproto.repo.putRecord({ repo: other.did, collection: CATEGORY, rkey: "x", record: category("X") }),
    (error) => {
      assert.ok(error instanceof XRPCError);
      assert.equal(error.status, direct.status);
      assert.equal(error.error, expected.error);
      return true;
    },
  );
  assert.equal((await storedRecord(CATEGORY, "x")).status, 400);
});

test("request timeout rejects the call", async () => {
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger(), {
    requestTimeoutMs: 500,
  });
  await agent.initialize();
  proxy.setFault({ type: "hang", methods: ["com.atproto.repo.listRecords"], times: 1 });

  await assert.rejects(agent.getAgent().com.atproto.repo.listRecords({ repo: pds.did, collection: CATEGORY }), (error) => {
    assert.ok(error instanceof XRPCError);
    assert.match(`${error.message} ${error.cause?.message}`, /timed out after 500 ms/);
    return true;
  });
  await agent.shutdown();
});

test("shutdown rejects a request in flight", async () => {
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger());
  await agent.initialize();
  proxy.setFault({ type: "hang", methods: ["com.atproto.repo.describeRepo"], times: 1 });

  const call = agent.getAgent().com.atproto.repo.describeRepo({ repo: pds.did });
  // Settled before shutdown() resolves, so the outcome is captured right away.
  const outcome = call.then(
    () => Promise.reject(new Error("the request succeeded after shutdown")),
    (error) => Promise.reject(error),
  );
  outcome.catch(() => {});
  await waitFor(() => proxy.count("com.atproto.repo.describeRepo") > 0, { what: "the request" });
  await agent.shutdown();

  await assert.rejects(outcome, (error) => {
    assert.ok(error instanceof XRPCError);
    assert.match(`${error.message} ${error.cause?.message}`, /shut down/);
    return true;
  });
});

test("stopped PDS rejects, not hangs", async () => {
  const doomed = await startPds({ handle: "doomed.test" });
  const agent = new ForumAgent(doomed.url, doomed.handle, doomed.password, recordingLogger());
  await agent.initialize();
  const api = agent.getAgent();
  await doomed.stop();

  await assert.rejects(api.com.atproto.repo.describeRepo({ repo: doomed.did }), (error) => {
    assert.ok(error instanceof XRPCError);
    assert.equal(error.status, 1);
    return true;
  });
  await agent.shutdown();
});

test("fetchHandler returns a standard Response", async () => {
  const { fetchHandler } = forumAgent.getAgent().sessionManager;
  const url = `/xrpc/com.atproto.repo.describeRepo?repo=${encodeURIComponent(pds.did)}`;

  const response = await fetchHandler(url, { method: "GET" });
  assert.ok(response instanceof Response);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^application\/json/);
  const copy = response.clone();
  assert.equal((await response.json()).did, pds.did);
  assert.equal(response.bodyUsed, true);
  await assert.rejects(response.text(), TypeError);
  const streamed = await new Response(copy.body).json();
  assert.equal(streamed.did, pds.did);

  const missing = await fetchHandler("/xrpc/com.atproto.repo.getRecord?repo=x&collection=y&rkey=z", {});
  assert.equal(missing.status, 400);
  assert.equal((await missing.json()).error, "InvalidRequest");
});

test("ForumAgent requires new", () => {
  assert.throws(() => ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger()), TypeError);
});

test("aborted call rejects", async () => {
  const agent = forumAgent.getAgent();
  const controller = new AbortController();

  const call = agent.com.atproto.repo.describeRepo({ repo: pds.did }, { signal: controller.signal });
  controller.abort();

  await assert.rejects(call, (error) => {
    assert.match(`${error.name} ${error.message} ${error.cause?.name}`, /AbortError|aborted/);
    return true;
  });
  await assert.rejects(
    agent.com.atproto.repo.describeRepo({ repo: pds.did }, { signal: AbortSignal.abort() }),
    /aborted/,
  );
});

test("stalled request body is bounded", async () => {
  const agent = new ForumAgent(proxy.url, pds.handle, pds.password, recordingLogger(), { requestTimeoutMs: 500 });
  await agent.initialize();
  const api = agent.getAgent();
  const stalled = () => new ReadableStream({ pull: () => new Promise(() => {}) });

  await assert.rejects(api.uploadBlob(stalled(), { encoding: "image/png" }), (error) => {
    assert.match(`${error.message} ${error.cause?.message}`, /reading the request body timed out after 500 ms/);
    return true;
  });
  await assert.rejects(
    api.uploadBlob(stalled(), { encoding: "image/png", signal: AbortSignal.timeout(100) }),
    (error) => {
      assert.match(`${error.name} ${error.message} ${error.cause?.name}`, /TimeoutError|timed out|aborted/);
      return true;
    },
  );
  await agent.shutdown();
});

test("FormData body keeps its content type", async () => {
  proxy.reset();
  const agent = forumAgent.getAgent();
  const form = new FormData();
  form.append("field", "value");

  await agent.call("com.atproto.repo.uploadBlob", {}, form).catch(() => {});

  const [request] = proxy.requests.filter((entry) => entry.nsid === "com.atproto.repo.uploadBlob");
  assert.match(request.headers["content-type"], /^multipart\/form-data; boundary=/);
});

test("response header bytes pass through", async () => {
  // The same non-ASCII header bytes, read by fetch and through the agent, must give the same
  // string: fetch maps each byte to one character.
  const fault = {
    type: "status",
    status: 400,
    error: "InvalidRequest",
    headers: { "x-odd": "caf\u00e9" },
    methods: ["com.atproto.repo.describeRepo"],
    times: 1,
  };
  proxy.setFault(fault);
  const direct = await fetch(`${proxy.url}/xrpc/com.atproto.repo.describeRepo?repo=${pds.did}`);
  const expected = direct.headers.get("x-odd");
  proxy.setFault(fault);

  await assert.rejects(forumAgent.getAgent().com.atproto.repo.describeRepo({ repo: pds.did }), (error) => {
    assert.ok(error instanceof XRPCError);
    assert.equal(error.status, 400);
    assert.equal(error.headers["x-odd"], expected);
    return true;
  });
});

test("status outside 200-599 rejects", async () => {
  proxy.setFault({ type: "status", status: 799, methods: ["com.atproto.repo.describeRepo"], times: 1 });

  await assert.rejects(forumAgent.getAgent().com.atproto.repo.describeRepo({ repo: pds.did }), (error) => {
    assert.ok(error instanceof XRPCError);
    assert.match(`${error.message} ${error.cause?.message}`, /HTTP status 799/);
    return true;
  });
});

test("same-origin redirect is followed", async () => {
  proxy.reset();
  const location = `/xrpc/com.atproto.repo.describeRepo?repo=${encodeURIComponent(pds.did)}`;
  proxy.setFault({
    type: "status",
    status: 307,
    headers: { location },
    methods: ["com.atproto.repo.describeRepo"],
    times: 1,
  });

  const described = await forumAgent.getAgent().com.atproto.repo.describeRepo({ repo: pds.did });

  assert.equal(described.data.did, pds.did);
  assert.equal(proxy.count("com.atproto.repo.describeRepo"), 2);
});

test("getAgent without @atproto/api", async () => {
  const packageDir = fs.mkdtempSync(path.join(os.tmpdir(), "forum-agent-no-api-"));
  try {
    const root = fileURLToPath(new URL("..", import.meta.url));
    for (const name of fs.readdirSync(root)) {
      if (name === "index.js" || name === "binding.js" || name.endsWith(".node")) {
        fs.copyFileSync(path.join(root, name), path.join(packageDir, name));
      }
    }
    const fixture = fileURLToPath(new URL("./fixtures/get-agent-without-api.cjs", import.meta.url));
    const { stdout } = await run(process.execPath, [fixture, packageDir, pds.url, pds.handle, pds.password], {
      cwd: packageDir,
    });
    const result = JSON.parse(stdout);

    assert.equal(result.threw, true);
    assert.match(result.message, /needs @atproto\/api/);
    assert.match(result.message, /npm install @atproto\/api/);
  } finally {
    fs.rmSync(packageDir, { recursive: true, force: true });
  }
});

test("no token reachable from agent", async () => {
  proxy.reset();
  const agent = forumAgent.getAgent();
  await agent.com.atproto.repo.describeRepo({ repo: pds.did });
  const tokens = proxy.requests
    .map((request) => request.headers.authorization?.replace(/^Bearer /, ""))
    .filter(Boolean);
  assert.ok(tokens.length > 0);

  const seen = new Set();
  const strings = [];
  const visit = (value, depth) => {
    if (depth > 8 || value === null || seen.has(value)) {
      return;
    }
    if (typeof value === "string") {
      strings.push(value);
      return;
    }
    if (typeof value !== "object" && typeof value !== "function") {
      return;
    }
    seen.add(value);
    for (const key of Reflect.ownKeys(value)) {
      let child;
      try {
        child = value[key];
      } catch {
        continue;
      }
      visit(child, depth + 1);
    }
    visit(Object.getPrototypeOf(value), depth + 1);
  };
  visit(agent, 0);
  visit(forumAgent, 0);

  const text = strings.join("\n") + JSON.stringify(logger.lines) + JSON.stringify(agent.session);
  assert.ok(strings.length > 100, `only ${strings.length} strings reached`);
  for (const token of tokens) {
    assert.ok(!text.includes(token), "a token is reachable from the agent");
  }
  assert.deepEqual(findJwts(text), []);
});

test("concurrent writes share one refresh", async () => {
  const shortLived = await startPds({ handle: "short-ttl.test", env: { PDS_TEST_ACCESS_TTL_S: "4" } });
  const shortProxy = await startFaultProxy(shortLived.url);
  const agent = new ForumAgent(shortProxy.url, shortLived.handle, shortLived.password, recordingLogger());
  try {
    await agent.initialize();
    const api = agent.getAgent();
    const loggedInAt = Date.now();

    // The proactive refresh (due 3 s after login) is held back until well after the access
    // token expires at 4 s, so the writes below meet ExpiredToken while it is in flight.
    shortProxy.setFault({ type: "delay", ms: 3_000, methods: ["com.atproto.server.refreshSession"], times: 1 });
    await waitFor(() => shortProxy.count("com.atproto.server.refreshSession") === 1, { what: "the refresh" });
    await sleep(Math.max(0, loggedInAt + 4_500 - Date.now()));

    const writes = Array.from({ length: 50 }, (_, i) =>
      api.com.atproto.repo.createRecord({
        repo: shortLived.did,
        collection: CATEGORY,
        rkey: `storm-${i}`,
        record: category(`Storm ${i}`),
      }),
    );
    const results = await Promise.all(writes);

    assert.equal(results.length, 50);
    assert.equal(shortProxy.count("com.atproto.server.refreshSession"), 1);
    assert.ok(shortProxy.count("com.atproto.repo.createRecord") > 50, "no write met an expired token");
    const listed = await api.com.atproto.repo.listRecords({ repo: shortLived.did, collection: CATEGORY, limit: 100 });
    assert.equal(listed.data.records.length, 50);
  } finally {
    await agent.shutdown();
    await shortProxy.close();
    await shortLived.stop();
  }
});

test("writes follow didDoc endpoint", async () => {
  const withDoc = await startPds({ handle: "diddoc.test", env: { PDS_ENABLE_DID_DOC_WITH_SESSION: "true" } });
  const docProxy = await startFaultProxy(withDoc.url);
  const agent = new ForumAgent(docProxy.url, withDoc.handle, withDoc.password, recordingLogger());
  try {
    await agent.initialize();
    const api = agent.getAgent();
    await api.com.atproto.repo.putRecord({ repo: withDoc.did, collection: CATEGORY, rkey: "doc", record: category("Doc") });

    assert.equal(docProxy.count("com.atproto.server.createSession"), 1);
    assert.equal(docProxy.count("com.atproto.repo.putRecord"), 0, "the write went to pdsUrl");
    const params = new URLSearchParams({ repo: withDoc.did, collection: CATEGORY, rkey: "doc" });
    const stored = await fetch(`${withDoc.url}/xrpc/com.atproto.repo.getRecord?${params}`);
    assert.equal((await stored.json()).value.name, "Doc");
  } finally {
    await agent.shutdown();
    await docProxy.close();
    await withDoc.stop();
  }
});
