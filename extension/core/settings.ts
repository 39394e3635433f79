import * as vscode from 'vscode';

/** The extension's settings (contributes.configuration), read in one place. */
export const Settings = {
  section: 'crawlhub',
  serverUrl: 'serverUrl',
  heartbeatIntervalMinutes: 'heartbeatIntervalMinutes',
  countPendingChanges: 'countPendingChanges',
} as const;

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(Settings.section);
}

export function serverUrlSetting(): string {
  return (config().get<string>(Settings.serverUrl) ?? '').trim();
}

export async function setServerUrlSetting(url: string): Promise<void> {
  await config().update(Settings.serverUrl, url, vscode.ConfigurationTarget.Global);
}

export function heartbeatIntervalMs(): number {
  const minutes = config().get<number>(Settings.heartbeatIntervalMinutes) ?? 5;
  return Math.min(Math.max(Number.isFinite(minutes) ? minutes : 5, 1), 60) * 60_000;
}

export function countPendingChanges(): boolean {
  return config().get<boolean>(Settings.countPendingChanges) ?? true;
}

export function affects(e: vscode.ConfigurationChangeEvent, key: (typeof Settings)[Exclude<keyof typeof Settings, 'section'>]): boolean {
  return e.affectsConfiguration(`${Settings.section}.${key}`);
}
