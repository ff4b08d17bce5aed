import type { Agent } from '@atproto/api'

/** The logger the agent writes to: the shape of `@atbb/logger`. Pino-style loggers work too. */
export interface Logger {
  info(message: string, context?: Record<string, unknown>): void
  warn(message: string, context?: Record<string, unknown>): void
  error(message: string, context?: Record<string, unknown>): void
  debug(message: string, context?: Record<string, unknown>): void
}

/** The Agent that `getAgent()` returns: `@atproto/api`'s Agent plus the session it acts as. */
export type ForumAgentApi = Agent & { readonly session: ForumAgentSession }
