/** The extension's views (contributes.views), for createTreeView and for revealing one. */
export const Views = {
  spiders: 'crawlhub.spiders',
  sessions: 'crawlhub.sessions',
} as const;

/** The command VS Code makes for every view: shows and focuses it. */
export const focusCommand = (view: (typeof Views)[keyof typeof Views]): string => `${view}.focus`;
