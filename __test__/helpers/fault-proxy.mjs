// HTTP reverse proxy on 127.0.0.1 for tests. It forwards requests to a target base URL (usually
// the local PDS) and counts them per XRPC method. On request it injects faults: an error status,
// a request that never gets a response, a dropped connection, or a delay.
//
//   const proxy = await startFaultProxy(pds.url);
//   proxy.setFault({ type: "status", status: 503, methods: ["com.atproto.server.createSession"] });
//   // ... point the client at proxy.url ...
//   await proxy.close();

import http from "node:http";

import { freePort } from "../../tools/local-pds/index.mjs";

const LOOPBACK = "127.0.0.1";
const LOOPBACK_HOSTNAMES = new Set(["127.0.0.1", "localhost", "[::1]"]);
const FAULT_TYPES = new Set(["status", "hang", "reset", "delay"]);

// Error names that XRPC uses for each HTTP status (ResponseType in @atproto/xrpc).
const XRPC_ERROR_NAMES = {
  400: "InvalidRequest",
  401: "AuthenticationRequired",
  403: "Forbidden",
  404: "XRPCNotSupported",
  406: "NotAcceptable",
  413: "PayloadTooLarge",
  415: "UnsupportedMediaType",
  429: "RateLimitExceeded",
  500: "InternalServerError",
  501: "MethodNotImplemented",
  502: "UpstreamFailure",
  503: "NotEnoughResources",
  504: "UpstreamTimeout",
};

// Hop-by-hop headers describe one connection (RFC 9110, section 7.6.1), so the proxy sets its
// own instead of copying them. Forwarding the PDS's "Keep-Alive: timeout=90" in particular
// would let a client reuse connections that this server closes after 5 s.
const HOP_BY_HOP_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * Starts the proxy in front of targetUrl (http, loopback host only) and resolves to:
 *   url, port         where the proxy listens (http://127.0.0.1:PORT)
 *   counts            { [xrpcMethod]: number } of requests that arrived, faulted ones included;
 *                     paths outside /xrpc/ are counted under the path itself
 *   count(name)       counts[name], or 0
 *   requests          [{ method, path, nsid, headers }] in arrival order; headers may contain
 *                     tokens, so tests should assert on them and never print them
 *   setFault(fault)   replaces all faults with this one; addFault(fault) appends another
 *   clearFault()      removes all faults, so every request is forwarded again
 *   setTarget(url)    forwards later requests to another base URL
 *   reset()           empties counts and requests
 *   close()           stops listening and destroys every connection, hanging ones included
 *
 * A fault is { type, methods?, times?, ... }: methods limits it to those XRPC method names
 * and times to the next N matching requests. When several faults match, the first one applies.
 *   { type: "status", status = 503, error?, message?, headers?, body? }
 *       replies with that status and a JSON body {"error","message"}; error defaults to the
 *       XRPC name of the status. body (a string) replaces the JSON body.
 *   { type: "hang" }          reads the request and never sends a response
 *   { type: "reset" }         reads the request, then closes the connection with a TCP RST
 *   { type: "delay", ms }     forwards the request after ms milliseconds
 *
 * Forwarded responses keep their status, headers (except hop-by-hop ones) and body bytes. If
 * the target cannot be reached the proxy replies 502 UpstreamFailure.
 */
export async function startFaultProxy(targetUrl) {
  let target = parseTarget(targetUrl);
  let faults = [];
  const counts = {};
  const requests = [];
  const sockets = new Set();
  const delayTimers = new Set();
  const agent = new http.Agent({ keepAlive: true });
  let closePromise = null;

  const server = http.createServer((request, response) => {
    const nsid = xrpcMethodName(request.url);
    counts[nsid] = (counts[nsid] ?? 0) + 1;
    const headers = { ...request.headers };
    requests.push({ method: request.method, path: request.url, nsid, headers });

    const fault = takeFault(faults, nsid);
    if (!fault) {
      forward(request, response, target, agent);
      return;
    }
    if (fault.type === "status") {
      replyWithFault(request, response, fault);
    } else if (fault.type === "hang") {
      // Reading the body lets the client finish sending and wait for a response.
      request.resume();
    } else if (fault.type === "reset") {
      request.resume();
      request.once("end", () => request.socket.resetAndDestroy());
    } else if (fault.type === "delay") {
      const timer = setTimeout(() => {
        delayTimers.delete(timer);
        forward(request, response, target, agent);
      }, fault.ms);
      delayTimers.add(timer);
    }
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, LOOPBACK, resolve);
  });
  const { port } = server.address();

  return {
    url: `http://${LOOPBACK}:${port}`,
    port,
    counts,
    requests,

    count(nsid) {
      return counts[nsid] ?? 0;
    },

    setFault(fault) {
      faults = [normalizeFault(fault)];
    },

    addFault(fault) {
      faults = [...faults, normalizeFault(fault)];
    },

    clearFault() {
      faults = [];
    },

    setTarget(url) {
      target = parseTarget(url);
    },

    reset() {
      for (const nsid of Object.keys(counts)) delete counts[nsid];
      requests.length = 0;
    },

    close() {
      closePromise ??= new Promise((resolve) => {
        for (const timer of delayTimers) clearTimeout(timer);
        delayTimers.clear();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
        agent.destroy();
      });
      return closePromise;
    },
  };
}

/** Returns a port on 127.0.0.1 that nothing listened on a moment ago (connections get refused). */
export function closedPort() {
  return freePort();
}

function parseTarget(url) {
  const target = new URL(url);
  if (target.protocol !== "http:") {
    throw new TypeError(`invalid fault proxy target ${url}: only http:// is supported`);
  }
  if (!LOOPBACK_HOSTNAMES.has(target.hostname)) {
    const expected = "the host must be 127.0.0.1, localhost or [::1]";
    throw new TypeError(`invalid fault proxy target ${url}: ${expected}`);
  }
  return target;
}

function normalizeFault(fault) {
  if (!FAULT_TYPES.has(fault?.type)) {
    const types = [...FAULT_TYPES].join(", ");
    const type = JSON.stringify(fault?.type);
    throw new TypeError(`invalid fault type ${type}: expected one of ${types}`);
  }
  const { methods, times } = fault;
  if (methods !== undefined && !(Array.isArray(methods) && methods.every(isString))) {
    throw new TypeError("invalid fault methods: expected an array of XRPC method names");
  }
  if (times !== undefined && !(Number.isInteger(times) && times > 0)) {
    throw new TypeError(`invalid fault times ${times}: expected a positive integer`);
  }
  const normalized = { ...fault, remaining: times ?? Infinity };
  if (fault.type === "status") {
    const status = fault.status ?? 503;
    normalized.status = status;
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new TypeError(`invalid fault status ${fault.status}: expected an HTTP status code`);
    }
  }
  if (fault.type === "delay" && !(Number.isFinite(fault.ms) && fault.ms >= 0)) {
    throw new TypeError(`invalid delay fault ms ${fault.ms}: expected milliseconds >= 0`);
  }
  return normalized;
}

function isString(value) {
  return typeof value === "string";
}

// Returns the first fault that applies to this request and uses up one of its repetitions.
function takeFault(faults, nsid) {
  for (const fault of faults) {
    if (fault.remaining <= 0) continue;
    if (fault.methods && !fault.methods.includes(nsid)) continue;
    fault.remaining -= 1;
    return fault;
  }
  return null;
}

// Returns the XRPC method name of a request URL, or the path when it is not under /xrpc/.
function xrpcMethodName(requestUrl) {
  const pathname = requestUrl.split("?", 1)[0];
  if (!pathname.startsWith("/xrpc/")) return pathname;
  try {
    return decodeURIComponent(pathname.slice("/xrpc/".length));
  } catch {
    return pathname.slice("/xrpc/".length);
  }
}

function replyWithFault(request, response, fault) {
  // Reply only after the whole request body arrived, so the client sees the status and not a
  // write error.
  request.resume();
  request.once("end", () => {
    const error = fault.error ?? XRPC_ERROR_NAMES[fault.status] ?? "InternalServerError";
    const message = fault.message ?? `fault proxy: injected HTTP ${fault.status}`;
    const body = fault.body ?? JSON.stringify({ error, message });
    response.writeHead(fault.status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      ...fault.headers,
    });
    response.end(body);
  });
}

function forward(request, response, target, agent) {
  const basePath = target.pathname.replace(/\/$/, "");
  const headers = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (!HOP_BY_HOP_HEADERS.has(name)) headers[name] = value;
  }
  headers.host = target.host;

  const upstream = http.request(
    {
      hostname: target.hostname.replace(/^\[|\]$/g, ""),
      port: target.port || 80,
      method: request.method,
      path: `${basePath}${request.url}`,
      headers,
      agent,
    },
    (upstreamResponse) => {
      response.writeHead(
        upstreamResponse.statusCode,
        upstreamResponse.statusMessage,
        endToEndRawHeaders(upstreamResponse.rawHeaders),
      );
      upstreamResponse.pipe(response);
      upstreamResponse.once("error", () => response.destroy());
    },
  );
  upstream.once("error", (error) => {
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const body = JSON.stringify({
      error: "UpstreamFailure",
      message: `fault proxy could not reach ${target.origin}: ${error.code ?? error.message}`,
    });
    response.writeHead(502, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    response.end(body);
  });
  // A client that gives up (timeout, abort) also cancels the upstream request.
  response.once("close", () => {
    if (!response.writableFinished) upstream.destroy();
  });
  request.pipe(upstream);
}

// Filters a rawHeaders list [name, value, name, value, ...], keeping duplicates and name case.
function endToEndRawHeaders(rawHeaders) {
  const endToEndHeaders = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!HOP_BY_HOP_HEADERS.has(rawHeaders[i].toLowerCase())) {
      endToEndHeaders.push(rawHeaders[i], rawHeaders[i + 1]);
    }
  }
  return endToEndHeaders;
}
