import type { WritableResource } from '@angular/core';

/** Applies a local change to a loaded list resource, or reloads it when it holds no value (error, loading). */
export function patchList<T>(res: WritableResource<T[] | undefined>, fn: (list: T[]) => T[]): void {
  if (res.hasValue()) res.update((list) => fn(list ?? []));
  else res.reload();
}
