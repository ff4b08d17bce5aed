// Must fail to compile: proves that the checks in original-interface.ts can fail.
import type { ForumAgentState, ForumAgentStatus } from "../../index.js";

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;

export type MissingStatus = Assert<Equal<ForumAgentStatus, "initializing" | "authenticated">>;
export type RequiredRetryCount = Assert<
  Equal<ForumAgentState, Omit<ForumAgentState, "retryCount"> & { retryCount: number }>
>;
