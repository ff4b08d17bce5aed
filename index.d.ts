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

/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/**
 * Logs in to a PDS as the forum account and keeps the session alive: retries transient
 * failures, never retries rejected credentials, refreshes the session before its access token
 * expires, and reports its health.
 */
export declare class ForumAgent {
  /**
   * Creates an agent; no request is sent until `initialize()`. Throws a `TypeError` or
   * `RangeError` naming the argument when an argument is invalid.
   */
  constructor(pdsUrl: string, handle: string, password: string, logger: Logger, options?: ForumAgentOptions)
  /**
   * Logs in to the PDS. Resolves once the first attempt has ended: logged in, rejected, or
   * a retry scheduled (retries go on in the background). Never rejects because of the PDS.
   * Repeated and concurrent calls share one login; after `shutdown()` it starts afresh.
   */
  initialize(): Promise<void>
  /** Reports whether the agent has a usable session. */
  isAuthenticated(): boolean
  /**
   * Returns an `Agent` of the application's `@atproto/api` for writes to the forum's repo,
   * or `null` while not authenticated. The same Agent is returned each time; its requests
   * carry the current access token and survive refreshes. Throws when `@atproto/api` is not
   * installed.
   */
  getAgent(): ForumAgentApi | null
  /** Returns the agent's health: status, whether it is authenticated, and retry details. */
  getStatus(): ForumAgentState
  /**
   * Stops refreshing and retrying, aborts any request in flight, and drops the session.
   * After it resolves no request is sent and the logger is not called again.
   */
  shutdown(): Promise<void>
}

/**
 * The session manager inside the Agent that `getAgent()` returns, implementing the
 * `SessionManager` interface of `@atproto/api` (`did` and `fetchHandler`, the latter in
 * `index.js`). Created by `getAgent()`, not by `new`.
 */
export declare class NativeSessionManager {
  /** Returns the DID of the session, or `undefined` while logged out. */
  get did(): string | null
  /** Returns the timeout of each request to the PDS, in milliseconds. */
  get requestTimeoutMs(): number
  /** Returns the public part of the session, or `undefined` while logged out. */
  get session(): ForumAgentSession | null
  /**
   * Sends one request to the PDS with the session's access token. `url` is relative to the
   * PDS (`/xrpc/<nsid>?<params>`); `headers` alternates names and values.
   */
  fetch(method: string, url: string, headers: Array<string>, body?: string | Uint8Array | undefined | null): Promise<NativeResponse>
}

/** Tuning for retries, refresh and timeouts. Every field is optional. */
export interface ForumAgentOptions {
  /**
   * Delay before each retry of a transient failure, in milliseconds; retries past the end
   * reuse the last one. Default `[10000, 30000, 60000, 300000, 600000]`.
   */
  retryDelaysMs?: Array<number>
  /** Retries after the first attempt before giving up. Default 5. */
  maxRetries?: number
  /** Maximum gap between proactive session refreshes, in milliseconds. Default 1800000. */
  refreshIntervalMs?: number
  /** Timeout of each HTTP request to the PDS, in milliseconds. Default 30000. */
  requestTimeoutMs?: number
}

/** The public part of the session: who the agent is logged in as. No tokens. */
export interface ForumAgentSession {
  did: string
  handle: string
  email?: string
  emailConfirmed?: boolean
  active?: boolean
  status?: string
}

/** A snapshot of the agent's health, for health checks. */
export interface ForumAgentState {
  status: ForumAgentStatus
  authenticated: boolean
  /** When the latest login attempt started. */
  lastAuthAttempt?: Date
  /** When the next login attempt starts; only while `retrying`. */
  nextRetryAt?: Date
  /** Transient failures so far; only while `retrying`. */
  retryCount?: number
  /** Message for the latest failure, when there is one. */
  error?: string
}

/** Health of the agent's session with the PDS. */
export type ForumAgentStatus = 'initializing' | 'authenticated' | 'retrying' | 'failed' | 'unavailable'

/** A response read in full, for `index.js` to turn into a `Response`. */
export interface NativeResponse {
  status: number
  /** Header names and values, alternating. */
  headers: Array<string>
  body: Buffer
}
