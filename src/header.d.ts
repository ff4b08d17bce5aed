import type { Agent } from '@atproto/api'

/**
 * The logger the agent writes to: the shape of `@atbb/logger`. Class instances whose methods use
 * `this` work too. Pino takes the context first (`logger.info(context, message)`), so wrap a
 * pino logger to keep the context.
 */
export interface Logger {
  info(message: string, context?: Record<string, unknown>): void
  warn(message: string, context?: Record<string, unknown>): void
  error(message: string, context?: Record<string, unknown>): void
  debug(message: string, context?: Record<string, unknown>): void
}

/** The Agent that `getAgent()` returns: `@atproto/api`'s Agent plus the session it acts as. */
export type ForumAgentApi = Agent & { readonly session: ForumAgentSession }
