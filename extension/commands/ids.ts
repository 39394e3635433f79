/** Every command the extension contributes; a test holds this list equal to contributes.commands. */
export const Commands = {
  signIn: 'crawlhub.signIn',
  signOut: 'crawlhub.signOut',
  refresh: 'crawlhub.refresh',
  openInEditor: 'crawlhub.openInEditor',
  openInBrowser: 'crawlhub.openInBrowser',
  openPort: 'crawlhub.openPort',
  save: 'crawlhub.save',
  previewSave: 'crawlhub.previewSave',
  closeSession: 'crawlhub.closeSession',
  openTerminal: 'crawlhub.openTerminal',
  copyUrl: 'crawlhub.copyUrl',
  showOutput: 'crawlhub.showOutput',
} as const;

export type CommandId = (typeof Commands)[keyof typeof Commands];
