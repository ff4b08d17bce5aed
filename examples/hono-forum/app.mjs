// A small atBB-style forum API on Hono: forum categories are records in the forum account's
// repo, written through ForumAgent.getAgent().

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { XRPCError } from "@atproto/api";

export const CATEGORY = "space.atbb.forum.category";
const MAX_NAME_LENGTH = 100;
const MAX_DESCRIPTION_LENGTH = 1000;
const MAX_BODY_BYTES = 16 * 1024;

/** Returns the Hono app for `forumAgent`, an initialized ForumAgent. */
export function createApp(forumAgent) {
  const app = new Hono();

  app.get("/health", (c) => {
    const state = forumAgent.getStatus();
    return c.json(state, state.authenticated ? 200 : 503);
  });

  app.get("/categories", async (c) => {
    const agent = forumAgent.getAgent();
    if (agent === null) {
      return notAuthenticated(c, forumAgent);
    }
    const listed = await agent.com.atproto.repo.listRecords({
      repo: agent.session.did,
      collection: CATEGORY,
      limit: 100,
      cursor: c.req.query("cursor"),
    });
    const categories = listed.data.records.map((record) => ({
      uri: record.uri,
      cid: record.cid,
      ...record.value,
    }));
    return c.json({ categories, cursor: listed.data.cursor });
  });

  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json({ error: `body must be at most ${MAX_BODY_BYTES} bytes` }, 413),
  });

  app.post("/categories", limitBody, async (c) => {
    const input = parseCategory(await c.req.json().catch(() => undefined));
    if (input.error) {
      return c.json({ error: input.error }, 400);
    }
    const agent = forumAgent.getAgent();
    if (agent === null) {
      return notAuthenticated(c, forumAgent);
    }

    const record = { $type: CATEGORY, ...input.category, createdAt: new Date().toISOString() };
    const written = await agent.com.atproto.repo.putRecord({
      repo: agent.session.did,
      collection: CATEGORY,
      rkey: recordKey(),
      record,
    });
    return c.json({ uri: written.data.uri, cid: written.data.cid, record }, 201);
  });

  app.onError((error, c) => {
    if (error instanceof XRPCError) {
      console.error(`PDS call failed: ${error.status} ${error.error}: ${error.message}`);
      return c.json({ error: "PDS request failed", pdsError: error.error, message: error.message }, 502);
    }
    console.error("request failed:", error);
    return c.json({ error: "internal error" }, 500);
  });

  return app;
}

function notAuthenticated(c, forumAgent) {
  return c.json({ error: "forum agent is not authenticated", status: forumAgent.getStatus() }, 503);
}

/** Checks a POST /categories body: `{ name, description? }` with non-empty string values. */
function parseCategory(body) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return { error: "body must be a JSON object with name and description" };
  }
  const { name, description } = body;
  if (typeof name !== "string" || name.trim() === "" || name.length > MAX_NAME_LENGTH) {
    return { error: `name must be a non-empty string of at most ${MAX_NAME_LENGTH} characters` };
  }
  if (description !== undefined && (typeof description !== "string" || description.length > MAX_DESCRIPTION_LENGTH)) {
    return { error: `description must be a string of at most ${MAX_DESCRIPTION_LENGTH} characters` };
  }
  const category = { name: name.trim() };
  if (description !== undefined) {
    category.description = description;
  }
  return { category };
}

/** Returns a record key that sorts by creation time: base-32 milliseconds plus random digits. */
function recordKey() {
  const random = Math.floor(Math.random() * 32 ** 4).toString(32).padStart(4, "0");
  return `${Date.now().toString(32)}${random}`;
}
