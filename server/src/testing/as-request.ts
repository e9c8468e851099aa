import { AsyncLocalStorage } from 'node:async_hooks';
import { currentRequestSlot, requestPrincipalMiddleware, setRequestPrincipal } from '../common/request-principal';

/** Another store a caller's context carries, as the request logger keeps one. */
export const callerStore = new AsyncLocalStorage<string>();

/** What code sees of its caller's context right now: the principal slot and the other store. */
export const seenContext = () => ({ slot: currentRequestSlot(), caller: callerStore.getStore() });

/** Runs `fn` as a request of user `name` with an operator API token of project `p-${name}`, as the middleware and guard set it up. */
export function asRequest<T>(name: string, fn: () => T): T {
  return callerStore.run(name, () => {
    let out!: T;
    requestPrincipalMiddleware({} as never, {} as never, () => {
      setRequestPrincipal({ userId: name, apiToken: { id: `t-${name}`, userId: name, projectId: `p-${name}`, role: 'operator' } } as never);
      out = fn();
    });
    return out;
  });
}
