// A small hand-written stand-in for the parts of the `vscode` module that the pure logic under
// test touches (URIs, file-system errors and enums, events). Importing this file first makes
// `require('vscode')` return it. It is not a fake workbench: anything UI-shaped is tested in
// e2e.test.ts against a real one.
import Module from 'node:module';

class Uri {
  private constructor(
    readonly scheme: string,
    readonly authority: string,
    readonly path: string,
    readonly query: string,
    readonly fragment: string,
  ) {}
  static from(c: { scheme: string; authority?: string; path?: string; query?: string; fragment?: string }): Uri {
    return new Uri(c.scheme, c.authority ?? '', c.path ?? '', c.query ?? '', c.fragment ?? '');
  }
  static parse(value: string): Uri {
    const u = new URL(value);
    return new Uri(u.protocol.slice(0, -1), u.host, decodeURIComponent(u.pathname), u.search.slice(1), u.hash.slice(1));
  }
  toString(): string {
    return `${this.scheme}://${this.authority}${this.path}${this.query ? `?${this.query}` : ''}`;
  }
}

class FileSystemError extends Error {
  constructor(
    messageOrUri: string | Uri | undefined,
    readonly code = 'Unknown',
  ) {
    super(typeof messageOrUri === 'string' ? messageOrUri : `${code}: ${messageOrUri?.toString() ?? ''}`);
  }
  static FileNotFound = (m?: string | Uri) => new FileSystemError(m, 'FileNotFound');
  static FileExists = (m?: string | Uri) => new FileSystemError(m, 'FileExists');
  static FileNotADirectory = (m?: string | Uri) => new FileSystemError(m, 'FileNotADirectory');
  static FileIsADirectory = (m?: string | Uri) => new FileSystemError(m, 'FileIsADirectory');
  static NoPermissions = (m?: string | Uri) => new FileSystemError(m, 'NoPermissions');
  static Unavailable = (m?: string | Uri) => new FileSystemError(m, 'Unavailable');
}

class Disposable {
  constructor(private readonly fn: () => void) {}
  dispose(): void {
    this.fn();
  }
}

class EventEmitter<T> {
  private listeners = new Set<(e: T) => void>();
  event = (listener: (e: T) => void) => {
    this.listeners.add(listener);
    return new Disposable(() => this.listeners.delete(listener));
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners.clear();
  }
}

export const vscodeStandIn = {
  Uri,
  FileSystemError,
  Disposable,
  EventEmitter,
  FileType: { Unknown: 0, File: 1, Directory: 2, SymbolicLink: 64 },
  FileChangeType: { Changed: 1, Created: 2, Deleted: 3 },
};

const loader = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown };
const original = loader._load.bind(loader);
loader._load = (request, parent, isMain) => (request === 'vscode' ? vscodeStandIn : original(request, parent, isMain));
