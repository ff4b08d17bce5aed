// The forum server: logs in to the PDS as the forum account and serves the API on 127.0.0.1.
//
//   FORUM_PDS_URL=http://127.0.0.1:2583 FORUM_HANDLE=forum.test FORUM_PASSWORD=... \
//     node examples/hono-forum/server.mjs

import { pathToFileURL } from "node:url";
import { serve } from "@hono/node-server";
import { ForumAgent } from "@atbb/forum-agent";

import { createApp } from "./app.mjs";

const consoleLogger = {
  debug: (message, context) => console.debug(message, context ?? ""),
  info: (message, context) => console.info(message, context ?? ""),
  warn: (message, context) => console.warn(message, context ?? ""),
  error: (message, context) => console.error(message, context ?? ""),
};

/**
 * Starts the forum server and resolves to `{ url, forumAgent, close() }` once it listens.
 * `port` 0 picks a free port.
 */
export async function startServer({ pdsUrl, handle, password, port = 0, logger = consoleLogger }) {
  const forumAgent = new ForumAgent(pdsUrl, handle, password, logger);
  await forumAgent.initialize();

  const app = createApp(forumAgent);
  const server = await new Promise((resolve) => {
    const listening = serve({ fetch: app.fetch, port, hostname: "127.0.0.1" }, () => resolve(listening));
  });
  const url = `http://127.0.0.1:${server.address().port}`;

  const close = async () => {
    await new Promise((resolve) => server.close(resolve));
    await forumAgent.shutdown();
  };
  return { url, forumAgent, close };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { FORUM_PDS_URL, FORUM_HANDLE, FORUM_PASSWORD, PORT } = process.env;
  if (!FORUM_PDS_URL) {
    console.error("FORUM_PDS_URL is not set: give the forum's PDS URL, for example http://127.0.0.1:2583");
    process.exit(2);
  }
  const port = Number(PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a whole number from 0 to 65535, got ${JSON.stringify(PORT)}`);
    process.exit(2);
  }
  const server = await startServer({
    pdsUrl: FORUM_PDS_URL,
    handle: FORUM_HANDLE ?? "",
    password: FORUM_PASSWORD ?? "",
    port,
  });
  console.log(`forum server listening on ${server.url}`);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => server.close().then(() => process.exit(0)));
  }
}
