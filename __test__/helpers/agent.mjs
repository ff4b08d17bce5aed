// Shared pieces of the node:test suite: the addon, a logger that records every call, and
// polling helpers.

import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The addon as users load it: through the package's generated loader. */
export const { ForumAgent } = require("../../index.js");

/**
 * Returns a logger in the style of a class instance: its methods use `this`, so a call with
 * `this` unbound throws. `lines` contains [level, message, context] for every call.
 */
export function recordingLogger() {
  class RecordingLogger {
    #lines = [];

    get lines() {
      return this.#lines;
    }

    debug(message, context) {
      this.#lines.push(["debug", message, context]);
    }

    info(message, context) {
      this.#lines.push(["info", message, context]);
    }

    warn(message, context) {
      this.#lines.push(["warn", message, context]);
    }

    error(message, context) {
      this.#lines.push(["error", message, context]);
    }

    messages() {
      return this.#lines.map(([, message]) => message);
    }

    find(message) {
      return this.#lines.filter(([, text]) => text === message);
    }
  }
  return new RecordingLogger();
}

/** Polls `check` every 20 ms until it returns a truthy value, which it returns. */
export async function waitFor(check, { timeoutMs = 15_000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(20);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until the agent reports `status`, and returns its state. */
export function waitForStatus(agent, status, timeoutMs = 15_000) {
  return waitFor(() => agent.getStatus().status === status && agent.getStatus(), {
    timeoutMs,
    what: `status ${status} (now ${JSON.stringify(agent.getStatus())})`,
  });
}

/** Returns every JWT-shaped string in `text`. */
export function findJwts(text) {
  return text.match(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g) ?? [];
}
