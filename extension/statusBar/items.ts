import { Commands, type CommandId } from '../commands/ids';

/** Every status-bar item the extension shows. */
export const StatusBarItems = {
  save: {
    id: 'crawlhub.save',
    name: 'CrawlHub: Save to Server',
    alignment: 'left',
    priority: 100,
    command: Commands.save,
    /** While the server refuses the stored token a save cannot work: the click signs in again. */
    commandWhenTokenRefused: Commands.signIn,
  },
} as const satisfies Record<
  string,
  { id: string; name: string; alignment: 'left' | 'right'; priority: number; command: CommandId; commandWhenTokenRefused?: CommandId }
>;

export type StatusBarItemSpec = (typeof StatusBarItems)[keyof typeof StatusBarItems];
