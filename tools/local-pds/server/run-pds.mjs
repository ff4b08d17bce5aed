// Runs an in-memory did:plc directory (@did-plc/server) and a reference PDS (@atproto/pds) in
// one Node 22 process, both listening on 127.0.0.1 only. Used by ../index.mjs for tests and the
// demo; it can also be started by hand:
//
//   PDS_DATA_DIRECTORY=/tmp/pds node run-pds.mjs [--stop-on-stdin-close] [--delete-data-directory]
//
// Environment:
//   PDS_DATA_DIRECTORY     required; SQLite files and blobs go here
//   PDS_PORT               PDS port; 0 or unset picks a free port
//   PDS_TEST_ACCESS_TTL_S  optional access-token lifetime in seconds (the PDS issues 120 min)
//   PDS_*                  any other PDS setting is passed to the PDS unchanged, except
//                          PDS_DID_PLC_URL, which always points at the local directory
//
// Once both servers listen, the program writes one JSON line {"pdsUrl","plcUrl","pid"} to
// stdout. Logs are off unless LOG_ENABLED=true; they are JSON lines on stdout as well (or in the
// file named by LOG_DESTINATION), so a reader should pick the line that has pdsUrl.
// SIGTERM or SIGINT stops both servers and exits with status 0. With --stop-on-stdin-close the
// program also stops when stdin reaches EOF, so it does not outlive a parent that crashed.
// With --delete-data-directory it removes PDS_DATA_DIRECTORY after stopping.

import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

const LOOPBACK = "127.0.0.1";

function fail(message) {
  process.stderr.write(`run-pds: ${message}\n`);
  process.exit(1);
}

function randomHex(bytes) {
  return crypto.randomBytes(bytes).toString("hex");
}

function findFreePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Both packages call express's app.listen(port) with no host, which would bind every
// interface. Rewrite the call so the servers listen on the loopback address only.
function listenOnLoopback(app) {
  const listen = app.listen.bind(app);
  app.listen = (port, ...rest) => {
    const callbacks = rest.filter((arg) => typeof arg === "function");
    return listen(port, LOOPBACK, ...callbacks);
  };
}

function parsePort(value) {
  if (value === undefined || value === "") return 0;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`invalid PDS_PORT ${JSON.stringify(value)}: expected an integer from 0 to 65535`);
  }
  return port;
}

function parseTtl(value) {
  if (value === undefined || value === "") return 0;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds <= 0) {
    fail(`invalid PDS_TEST_ACCESS_TTL_S ${JSON.stringify(value)}: expected a positive integer`);
  }
  return seconds;
}

function base64urlJson(value) {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

// Wraps the account manager methods that issue access tokens so that every access JWT expires
// ttlSeconds after it was issued. The PDS (0.5.35) hard-codes 120 minutes and has no setting,
// so the token is re-signed here with the same HS256 key the PDS verifies it with.
function shortenAccessTokens(accountManager, ttlSeconds) {
  const resign = (jwt) => {
    const [header, payload] = jwt.split(".", 2).map((part) => {
      return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    });
    const unsigned = `${base64urlJson(header)}.${base64urlJson({
      ...payload,
      exp: payload.iat + ttlSeconds,
    })}`;
    const signature = crypto
      .createHmac("sha256", accountManager.jwtKey)
      .update(unsigned)
      .digest("base64url");
    return `${unsigned}.${signature}`;
  };

  for (const name of ["createAccountAndSession", "createSession", "rotateRefreshToken"]) {
    const original = accountManager[name];
    if (typeof original !== "function") {
      fail(`PDS_TEST_ACCESS_TTL_S: AccountManager.${name} not found in this @atproto/pds`);
    }
    accountManager[name] = async (...args) => {
      // rotateRefreshToken returns null for an unknown or expired refresh token.
      const tokens = await original.apply(accountManager, args);
      if (!tokens?.accessJwt) return tokens;
      return { ...tokens, accessJwt: resign(tokens.accessJwt) };
    };
  }
}

const dataDirectory = process.env.PDS_DATA_DIRECTORY;
if (!dataDirectory) fail("PDS_DATA_DIRECTORY is not set: give a directory for the PDS data");
fs.mkdirSync(dataDirectory, { recursive: true });
const requestedPort = parsePort(process.env.PDS_PORT);
const accessTtlSeconds = parseTtl(process.env.PDS_TEST_ACCESS_TTL_S);
const stopOnStdinClose = process.argv.includes("--stop-on-stdin-close");
const deleteDataDirectory = process.argv.includes("--delete-data-directory");

// The atproto loggers read LOG_ENABLED when their module loads, so it is set before the imports
// below. LOG_DESTINATION=/dev/stderr would not work: opening it fails with ENXIO when stderr is
// a socket, as it is under child_process.spawn.
process.env.LOG_ENABLED ??= "false";

const { PDS, envToCfg, envToSecrets, readEnv } = await import("@atproto/pds");
const { default: plcPackage } = await import("@did-plc/server");
const { PlcServer, Database: PlcDatabase } = plcPackage;

const plc = PlcServer.create({ db: PlcDatabase.mock(), port: 0 });
listenOnLoopback(plc.app);
const plcListener = await plc.start();
// The PDS's DID resolver rejects URLs with an IP literal as host, so the directory is addressed
// as "localhost". Without this, DID documents never resolve (no didDoc in sessions).
const plcUrl = `http://localhost:${plcListener.address().port}`;

const port = requestedPort || (await findFreePort());
const defaults = {
  // Host name "localhost" gives the public URL http://localhost:PORT and the handle domain .test.
  PDS_HOSTNAME: "localhost",
  // Without dev mode the PDS refuses to start with an http:// public URL, and its SSRF guard
  // would block requests to the loopback directory.
  PDS_DEV_MODE: "true",
  PDS_INVITE_REQUIRED: "false",
  // No relay to notify: an empty list keeps the PDS from contacting any crawler.
  PDS_CRAWLERS: "",
  PDS_BLOBSTORE_DISK_LOCATION: path.join(dataDirectory, "blobs"),
  PDS_JWT_SECRET: randomHex(32),
  PDS_ADMIN_PASSWORD: randomHex(16),
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: randomHex(32),
};
for (const [name, value] of Object.entries(defaults)) {
  process.env[name] ??= value;
}
process.env.PDS_PORT = String(port);
process.env.PDS_DID_PLC_URL = plcUrl;

const env = readEnv();
const pds = await PDS.create(envToCfg(env), envToSecrets(env));
listenOnLoopback(pds.app);
if (accessTtlSeconds > 0) shortenAccessTokens(pds.ctx.accountManager, accessTtlSeconds);
await pds.start();

let stopping = false;
async function stop(reason) {
  if (stopping) return;
  stopping = true;
  let status = 0;
  try {
    await pds.destroy();
    await plc.destroy();
    if (deleteDataDirectory) fs.rmSync(dataDirectory, { recursive: true, force: true });
  } catch (error) {
    process.stderr.write(`run-pds: shutdown after ${reason} failed: ${error?.stack ?? error}\n`);
    status = 1;
  }
  process.exit(status);
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
if (stopOnStdinClose) {
  process.stdin.on("end", () => stop("stdin EOF"));
  process.stdin.on("error", () => stop("stdin error"));
  process.stdin.resume();
}

const ready = { pdsUrl: `http://${LOOPBACK}:${port}`, plcUrl, pid: process.pid };
process.stdout.write(`${JSON.stringify(ready)}\n`);
