import { Commands, type CommandId } from '../commands/ids';

/** Every status-bar item the extension shows. */
export const StatusBarItems = {
  save: {
    id: 'crawlhub.save',
    name: 'CrawlHub: Save to Server',
    alignment: 'left',
    priority: 100,
    command: Commands.save,
  },
} as const satisfies Record<string, { id: string; name: string; alignment: 'left' | 'right'; priority: number; command: CommandId }>;

export type StatusBarItemSpec = (typeof StatusBarItems)[keyof typeof StatusBarItems];
