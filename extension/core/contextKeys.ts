/** Every context key the extension sets, for `when` clauses in package.json. */
export const ContextKeys = {
  /** A server URL and a token are stored. */
  signedIn: 'crawlhub.signedIn',
  /** Signed in, but the last attempt to load spiders and sessions got no answer (or the token was refused). */
  unreachable: 'crawlhub.unreachable',
  /** Signed in and the spiders and sessions are loaded. */
  loaded: 'crawlhub.loaded',
  /** This window has a session's files open (a crawlhub: workspace folder). */
  sessionOpen: 'crawlhub.sessionOpen',
  /** A Save to Server started from this window is running. */
  saving: 'crawlhub.saving',
} as const;

export type ContextKey = (typeof ContextKeys)[keyof typeof ContextKeys];
