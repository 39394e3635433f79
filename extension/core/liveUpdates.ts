import type { EventsOutage } from '../api/events';
import { liveUpdatesUnavailable } from '../views/presentation';
import type { Notifier } from './notify';

/** An outage this long is no server restart. The socket reports again at the latest 30 s after the last `hello`. */
const PERSISTENT_MS = 20_000;
const SHOW_OUTPUT = 'Show Output';

/**
 * The one notification about live updates not arriving: the views and the Save to Server button
 * say it quietly for as long as it lasts, but a user who never looks there would lose stop
 * warnings unawares. So once per window, in a window with a session's files open (where a stop
 * costs work), and only once the outage has outlasted a restart of the server.
 */
export class LiveUpdatesNotice {
  private told = false;

  constructor(
    private readonly notify: Notifier,
    private readonly sessionOpen: () => boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Called with every EventsSocket.onOutage report. */
  update(outage: EventsOutage | undefined): void {
    if (this.told || !outage || !this.sessionOpen() || this.now() - outage.since < PERSISTENT_MS) return;
    this.told = true;
    void this.notify.warn(liveUpdatesUnavailable(outage.reason), SHOW_OUTPUT).then((choice) => {
      if (choice === SHOW_OUTPUT) this.notify.showOutput();
    });
  }
}
