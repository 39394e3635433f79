/**
 * A small typed event emitter with the same shape as vscode.EventEmitter, for the modules that
 * must run without VS Code (the API client, the events socket, the state): they stay unit-testable.
 */
export type Listener<T> = (value: T) => void;

export interface Disposable {
  dispose(): void;
}

export type Event<T> = (listener: Listener<T>) => Disposable;

export class Emitter<T> implements Disposable {
  private listeners = new Set<Listener<T>>();

  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  };

  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch {
        // one broken listener must not stop the others
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
