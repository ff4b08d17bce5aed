// Entry point of @atbb/forum-agent. `napi build` generates the native binding, binding.js. This
// file adds the JavaScript half of getAgent(): an Agent of the application's own @atproto/api
// whose requests go through the Rust core.
"use strict";

const binding = require("./binding.js");

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

/**
 * Converts a fetch-style request body that needs no reading (a string, bytes, form parameters)
 * into a string or bytes for the core, with the content type fetch would add for it. Returns
 * `null` for bodies that must be read first.
 */
function bodyNow(body) {
  if (body === undefined || body === null) {
    return { body: undefined };
  }
  if (typeof body === "string") {
    return { body, contentType: "text/plain;charset=UTF-8" };
  }
  if (body instanceof Uint8Array) {
    return { body };
  }
  if (body instanceof ArrayBuffer) {
    return { body: new Uint8Array(body) };
  }
  if (ArrayBuffer.isView(body)) {
    return { body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) };
  }
  if (body instanceof URLSearchParams) {
    return { body: body.toString(), contentType: "application/x-www-form-urlencoded;charset=UTF-8" };
  }
  return null;
}

/** Reads a Blob, FormData, ReadableStream or async iterable body, as fetch would. */
async function readBody(body) {
  const response = new Response(body);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { body: bytes, contentType: response.headers.get("content-type") ?? undefined };
}

let BufferedResponse = null;

/**
 * Returns the class of Responses whose body is already in memory. Reading one returns the bytes
 * directly instead of going through a ReadableStream, which costs more than the rest of the
 * response handling. The stream is built only if `body` is read. The class is defined on first
 * use because touching the global Response loads Node's fetch implementation (about 8 MB).
 */
function bufferedResponseClass() {
  BufferedResponse ??= class BufferedResponse extends Response {
    #bytes;
    #stream = null;
    #used = false;

    constructor(bytes, init) {
      super(null, init);
      this.#bytes = bytes;
    }

    get body() {
      if (this.#bytes === null) {
        return null;
      }
      this.#stream ??= new Response(this.#bytes).body;
      return this.#stream;
    }

    get bodyUsed() {
      return this.#used || (this.#stream !== null && this.#stream.locked);
    }

    #take() {
      if (this.bodyUsed) {
        throw new TypeError("Body is unusable: Body has already been read");
      }
      this.#used = true;
      return this.#bytes ?? new Uint8Array(0);
    }

    async arrayBuffer() {
      const bytes = this.#take();
      // A stream handed out by `body` but not read yet would otherwise yield the body again.
      await this.#stream?.cancel();
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    }

    async bytes() {
      return new Uint8Array(await this.arrayBuffer());
    }

    async text() {
      return new TextDecoder().decode(await this.arrayBuffer());
    }

    async json() {
      return JSON.parse(await this.text());
    }

    async blob() {
      return new Blob([await this.arrayBuffer()], { type: this.headers.get("content-type") ?? "" });
    }

    async formData() {
      return new Response(await this.arrayBuffer(), { headers: this.headers }).formData();
    }

    clone() {
      if (this.bodyUsed) {
        throw new TypeError("Response.clone: Body has already been consumed.");
      }
      return new BufferedResponse(this.#bytes, {
        status: this.status,
        statusText: this.statusText,
        headers: this.headers,
      });
    }
  };
  return BufferedResponse;
}

function headerList(headers, contentType) {
  const list = [];
  const merged = new Headers(headers ?? undefined);
  if (contentType !== undefined && !merged.has("content-type")) {
    merged.set("content-type", contentType);
  }
  for (const [name, value] of merged) {
    list.push(name, value);
  }
  return list;
}

/**
 * Settles with `promise`; rejects with the signal's reason once `signal` aborts (at once if it
 * already has), or with a timeout error after `timeoutMs`.
 * NOTE: an aborted request is not cancelled in the core; it may still reach the PDS, and its
 * response is discarded.
 */
function settleWithin(promise, signal, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => reject(signal.reason);
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    });
  });
}

function createAgent(sessionManager) {
  const Agent = loadAgentClass();

  const manager = {
    get did() {
      return sessionManager.did ?? undefined;
    },
    async fetchHandler(url, init = {}) {
      const { signal } = init;
      signal?.throwIfAborted();
      let read = bodyNow(init.body);
      if (read === null) {
        const timeoutMs = sessionManager.requestTimeoutMs;
        read = await settleWithin(readBody(init.body), signal, timeoutMs, "reading the request body");
      }
      const headers = headerList(init.headers, read.contentType);
      const pending = sessionManager.fetch(init.method ?? "GET", String(url), headers, read.body);
      const response = await (signal ? settleWithin(pending, signal) : pending);

      if (response.status < 200 || response.status > 599) {
        throw new Error(`the PDS returned HTTP status ${response.status}, which is outside 200-599`);
      }
      const responseHeaders = [];
      for (let i = 0; i < response.headers.length; i += 2) {
        responseHeaders.push([response.headers[i], response.headers[i + 1]]);
      }
      const responseBody = NULL_BODY_STATUSES.has(response.status) ? null : response.body;
      const BufferedResponse = bufferedResponseClass();
      return new BufferedResponse(responseBody, { status: response.status, headers: responseHeaders });
    },
  };

  const agent = new Agent(manager);
  Object.defineProperty(agent, "session", {
    enumerable: true,
    get: () => sessionManager.session ?? undefined,
  });
  return agent;
}

/**
 * The native ForumAgent, with getAgent() returning an @atproto/api Agent. Being a JavaScript
 * class, it also throws a TypeError when called without `new`.
 */
class ForumAgent extends binding.ForumAgent {
  getAgent() {
    const sessionManager = super.getAgent();
    if (sessionManager === null || sessionManager === undefined) {
      return null;
    }
    let agent = agents.get(this);
    if (agent === undefined) {
      agent = createAgent(sessionManager);
      agents.set(this, agent);
    }
    return agent;
  }
}

module.exports.ForumAgent = ForumAgent;
module.exports.NativeSessionManager = binding.NativeSessionManager;
module.exports.__napiBindingTarget = binding.__napiBindingTarget;
module.exports.ForumAgentStatus = binding.ForumAgentStatus;
