// The clients the benchmarks compare, each behind the same small interface:
//   native   this package: ForumAgent, writes through getAgent()
//   atproto  @atproto/api's AtpAgent, which the original TypeScript ForumAgent wraps
//   raw      Node's http module on a keep-alive agent, with no XRPC library: the limit

import http from "node:http";
import { createRequire } from "node:module";
import { AtpAgent } from "@atproto/api";

const require = createRequire(import.meta.url);
const { ForumAgent } = require("../index.js");

export const CATEGORY = "space.atbb.forum.category";

const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

function categoryRecord(index) {
  return { $type: CATEGORY, name: `Category ${index}`, createdAt: "2026-01-01T00:00:00.000Z" };
}

/**
 * Logs in with `kind` and resolves to `{ write(index), close() }`, where `write` creates one
 * record and resolves when the response has been read.
 */
export async function createClient(kind, { url, handle, password, concurrency = 1 }) {
  switch (kind) {
    case "native":
      return nativeClient(url, handle, password);
    case "atproto":
      return atprotoClient(url, handle, password);
    case "raw":
      return rawClient(url, handle, password, concurrency);
    default:
      throw new Error(`unknown client ${kind}: expected native, atproto or raw`);
  }
}

async function nativeClient(url, handle, password) {
  const forumAgent = new ForumAgent(url, handle, password, silentLogger);
  await forumAgent.initialize();
  const agent = forumAgent.getAgent();
  if (agent === null) {
    throw new Error(`native login failed: ${JSON.stringify(forumAgent.getStatus())}`);
  }
  const repo = agent.session.did;
  return {
    write: (index) => agent.com.atproto.repo.createRecord({ repo, collection: CATEGORY, record: categoryRecord(index) }),
    close: () => forumAgent.shutdown(),
  };
}

async function atprotoClient(url, handle, password) {
  const agent = new AtpAgent({ service: url });
  await agent.login({ identifier: handle, password });
  const repo = agent.session.did;
  return {
    write: (index) => agent.com.atproto.repo.createRecord({ repo, collection: CATEGORY, record: categoryRecord(index) }),
    close: async () => {},
  };
}

async function rawClient(url, handle, password, concurrency) {
  const login = await fetch(`${url}/xrpc/com.atproto.server.createSession`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ identifier: handle, password }),
  });
  const session = await login.json();
  const target = new URL(`${url}/xrpc/com.atproto.repo.createRecord`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

  const write = (index) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify({ repo: session.did, collection: CATEGORY, record: categoryRecord(index) });
      const request = http.request(target, {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${session.accessJwt}`,
        },
      });
      request.on("response", (response) => {
        const chunks = [];
        response.on("data", (chunk) => chunks.push(chunk));
        response.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (response.statusCode !== 200) {
            reject(new Error(`createRecord returned ${response.statusCode}: ${text}`));
            return;
          }
          resolve(JSON.parse(text));
        });
        response.on("error", reject);
      });
      request.on("error", reject);
      request.end(body);
    });
  return { write, close: async () => agent.destroy() };
}
