/**
 * Promise wrappers over the few IndexedDB calls the IO needs, so the IO reads as a sequence of
 * transactions rather than callbacks.
 */
export function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Resolves when `tx` commits; rejects with its error when it aborts. */
export function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    tx.onerror = () => reject(tx.error);
  });
}

/** Opens (and on first use creates) the database with the stores the IO keeps. */
export function openDatabase(name: string, stores: readonly string[]): Promise<IDBDatabase> {
  const factory = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory) return Promise.reject(new Error("this environment has no IndexedDB"));
  const req = factory.open(name, 1);
  req.onupgradeneeded = () => {
    for (const s of stores) if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
  };
  return request(req);
}
