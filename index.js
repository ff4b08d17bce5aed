// Entry point of @atbb/forum-agent. `napi build` generates the native binding, binding.js. This
// file adds the JavaScript half of getAgent(): an Agent of the application's own @atproto/api
// whose requests go through the Rust core.
"use strict";

module.exports = require("./binding.js");

const { ForumAgent } = module.exports;
const nativeGetAgent = ForumAgent.prototype.getAgent;
const agents = new WeakMap();
let AgentClass = null;

/** Statuses that a Response must be built without a body for. */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

function loadAgentClass() {
  if (AgentClass === null) {
    try {
      // Resolved from this package's folder, so the application's copy of the peer dependency
      // is the one loaded, and its XRPCError classes are the ones callers catch.
      ({ Agent: AgentClass } = require("@atproto/api"));
    } catch (error) {
      if (error?.code !== "MODULE_NOT_FOUND") {
        throw error;
      }
      throw new Error(
        "ForumAgent.getAgent() needs @atproto/api, which is not installed: run `npm install @atproto/api`",
        { cause: error },
      );
    }
  }
  return AgentClass;
}

async function readBody(body) {
  if (body === undefined || body === null) {
    return undefined;
  }
  if (typeof body === "string" || body instanceof Uint8Array) {
    return body;
  }
  if (body instanceof ArrayBuffer) {
    return new Uint8Array(body);
  }
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  }
  if (body instanceof URLSearchParams) {
    return body.toString();
  }
  // Blob, FormData, ReadableStream and async iterables: let Response read them.
  return new Uint8Array(await new Response(body).arrayBuffer());
}

function headerList(headers) {
  const list = [];
  for (const [name, value] of new Headers(headers ?? undefined)) {
    list.push(name, value);
  }
  return list;
}

/**
 * Settles with `promise`, or rejects with the signal's reason once `signal` aborts.
 * NOTE: an aborted request is not cancelled in the core; it may still reach the PDS, and its
 * response is discarded.
 */
function untilAborted(promise, signal) {
  if (!signal) {
    return promise;
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function createAgent(sessionManager) {
  const Agent = loadAgentClass();

  const manager = {
    get did() {
      return sessionManager.did ?? undefined;
    },
    async fetchHandler(url, init = {}) {
      init.signal?.throwIfAborted();
      const body = await readBody(init.body);
      const method = init.method ?? "GET";
      const pending = sessionManager.fetch(method, String(url), headerList(init.headers), body);
      const response = await untilAborted(pending, init.signal);
      const headers = [];
      for (let i = 0; i < response.headers.length; i += 2) {
        headers.push([response.headers[i], response.headers[i + 1]]);
      }
      const responseBody = NULL_BODY_STATUSES.has(response.status) ? null : response.body;
      return new Response(responseBody, { status: response.status, headers });
    },
  };

  const agent = new Agent(manager);
  Object.defineProperty(agent, "session", {
    enumerable: true,
    get: () => sessionManager.session ?? undefined,
  });
  return agent;
}

ForumAgent.prototype.getAgent = function getAgent() {
  const sessionManager = nativeGetAgent.call(this);
  if (sessionManager === null || sessionManager === undefined) {
    return null;
  }
  let agent = agents.get(this);
  if (agent === undefined) {
    agent = createAgent(sessionManager);
    agents.set(this, agent);
  }
  return agent;
};
