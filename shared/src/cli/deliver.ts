/**
 * Follow a deploy or a distribution to its end over REST: each machine's
 * part as it moves (queued → downloading → writing | loading → succeeded |
 * failed | expired), one line per change on stderr, download progress by
 * quarters. Over when every part is final.
 */
import { describeTransfer, isFinalDelivery, type Delivery, type DeliveryMachine } from '../deliveries';
import type { Machine } from '../machines';
import { Api, isTransient } from './api';
import { formatBytes } from './progress';

export async function followDelivery(
  api: Api,
  projectId: string,
  deliveryId: string,
  log: (line: string) => void,
  options: { pollMs?: number; timeoutMs?: number } = {},
): Promise<{ delivery: Delivery; ok: boolean; hostnames: Map<string, string> }> {
  const hostnames = new Map((await api.request<Machine[]>('GET', `/projects/${projectId}/machines`)).map((m) => [m.id, m.hostname]));
  const seen = new Map<string, string>();
  const deadline = Date.now() + (options.timeoutMs ?? 24 * 3600_000);
  for (;;) {
    let d: Delivery | undefined;
    try {
      d = await api.request<Delivery>('GET', `/deliveries/${deliveryId}`);
    } catch (err) {
      if (!isTransient(err)) throw err;
    }
    if (d) {
      for (const m of d.machines) {
        const line = describePart(m, hostnames.get(m.machineId));
        const key = `${m.status}:${m.status === 'downloading' && m.totalBytes ? Math.floor((4 * m.receivedBytes) / m.totalBytes) : ''}`;
        if (seen.get(m.machineId) !== key) {
          seen.set(m.machineId, key);
          log(line);
        }
      }
      if (d.machines.every((m) => isFinalDelivery(m.status))) return { delivery: d, ok: d.machines.every((m) => m.status === 'succeeded'), hostnames };
    }
    if (Date.now() > deadline) throw new Error(`the ${d?.kind ?? 'delivery'} ${deliveryId} has not finished; it goes on, follow it in the dashboard`);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 300));
  }
}

export function describePart(m: DeliveryMachine, hostname: string | undefined): string {
  const who = hostname ?? m.machineId;
  const bytes = m.status === 'downloading' && m.totalBytes ? ` ${formatBytes(m.receivedBytes)}/${formatBytes(m.totalBytes)}` : '';
  const image = m.imageId ? ` ${m.imageId}` : '';
  const moved = isFinalDelivery(m.status) ? describeTransfer(m) : null;
  return `${who}: ${m.status}${bytes}${image}${moved ? ` (${moved})` : ''}${m.reason ? ` — ${m.reason}` : ''}`;
}
