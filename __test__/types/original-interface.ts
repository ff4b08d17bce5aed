// Compiled by types.test.mjs with `tsc --strict`: fails to compile when the generated
// index.d.ts drifts from the public interface of the original TypeScript ForumAgent.
import { ForumAgent } from "../../index.js";
import type { ForumAgentApi, ForumAgentState, ForumAgentStatus, Logger } from "../../index.js";
import type { Agent } from "@atproto/api";

// The original class's public types, written out in full.
type OriginalStatus = "initializing" | "authenticated" | "retrying" | "failed" | "unavailable";

interface OriginalState {
  status: OriginalStatus;
  authenticated: boolean;
  lastAuthAttempt?: Date;
  nextRetryAt?: Date;
  retryCount?: number;
  error?: string;
}

interface OriginalLogger {
  info(message: string, context?: Record<string, unknown>): void;
  warn(message: string, context?: Record<string, unknown>): void;
  error(message: string, context?: Record<string, unknown>): void;
  debug(message: string, context?: Record<string, unknown>): void;
}

// True only when A and B are the same type: assignable both ways, optional fields included.
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

export type StatusUnion = Assert<Equal<ForumAgentStatus, OriginalStatus>>;
export type StateFields = Assert<Equal<ForumAgentState, OriginalState>>;
export type LoggerShape = Assert<Equal<Logger, OriginalLogger>>;

type Parameters5 = ConstructorParameters<typeof ForumAgent>;
export type ConstructorLeading = Assert<
  Equal<[Parameters5[0], Parameters5[1], Parameters5[2], Parameters5[3]], [string, string, string, OriginalLogger]>
>;
export type ConstructorOptionsOptional = Assert<Equal<Parameters5["length"], 4 | 5>>;

export type PublicMembers = Assert<
  Equal<keyof ForumAgent, "initialize" | "isAuthenticated" | "getAgent" | "getStatus" | "shutdown">
>;
export type Initialize = Assert<Equal<ForumAgent["initialize"], () => Promise<void>>>;
export type IsAuthenticated = Assert<Equal<ForumAgent["isAuthenticated"], () => boolean>>;
export type GetStatus = Assert<Equal<ReturnType<ForumAgent["getStatus"]>, OriginalState>>;
export type Shutdown = Assert<Equal<ForumAgent["shutdown"], () => Promise<void>>>;
export type GetAgentTakesNothing = Assert<Equal<Parameters<ForumAgent["getAgent"]>, []>>;
export type GetAgentReturn = Assert<Equal<ReturnType<ForumAgent["getAgent"]>, ForumAgentApi | null>>;
export type ApiIsAgent = Assert<ForumAgentApi extends Agent ? true : false>;
export type ApiIsNotAny = Assert<Equal<0 extends 1 & ForumAgentApi ? true : false, false>>;
export type SessionHasNoTokens = Assert<
  Equal<keyof ForumAgentApi["session"], "did" | "handle" | "email" | "emailConfirmed" | "active" | "status">
>;

// Code written against the original class compiles unchanged.
export async function useLikeTheOriginal(logger: OriginalLogger): Promise<OriginalState> {
  const agent = new ForumAgent("http://127.0.0.1:2583", "forum.example", "app-password", logger);
  await agent.initialize();
  const api = agent.getAgent();
  if (api !== null) {
    await api.com.atproto.repo.putRecord({
      repo: api.session.did,
      collection: "space.atbb.forum.category",
      rkey: "general",
      record: { name: "General" },
    });
  }
  const state: OriginalState = agent.getStatus();
  await agent.shutdown();
  return state;
}
