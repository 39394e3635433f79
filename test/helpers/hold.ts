/**
 * Holds every call of `target[name]` at its start until `release()`, so that a test can line up
 * what happens meanwhile: `reached` resolves when the first call gets there. `restore()` releases
 * and puts the method back as it was (an own property, or the prototype's again).
 */
export function holdCalls<T extends object, K extends keyof T>(
  target: T,
  name: K,
): { reached: Promise<void>; release: () => void; restore: () => void } {
  const own = Object.hasOwn(target, name);
  const original = target[name] as unknown as (...args: unknown[]) => Promise<unknown>;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let arrive!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  (target as Record<K, unknown>)[name] = async function (this: unknown, ...args: unknown[]) {
    arrive();
    await gate;
    return original.apply(this, args);
  };
  return {
    reached,
    release,
    restore: () => {
      release();
      if (own) (target as Record<K, unknown>)[name] = original;
      else delete (target as Record<K, unknown>)[name];
    },
  };
}
