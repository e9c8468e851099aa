/**
 * Deliveries on this agent: a deploy (a file written to a path) or a
 * distribution (an image loaded into Docker), each fetched through the
 * download cache (verified by sha256 before use). A distribution fetches
 * only the layers the engine lacks when it can (image-layers.ts), and says
 * what moved in its result. Dispatches arrive at
 * least once; each delivery id is applied once: a repeat while it runs is
 * ignored, a repeat after it ended re-sends the result it had (remembered
 * in the state directory, so a restart does not apply it twice).
 */
import type { DockerTarget } from './containers/docker-target';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DELIVERY_LIMITS, type DeliveryDispatch, type DeliveryFinished, type DeliveryProgress, type DeliveryTransfer } from '@kapitan/shared';
import { deliveryChannel } from './delivery-channel';
import { writeDeployed } from './deploy-writer';
import { DownloadError, type FileCache } from './file-cache';
import { engineLayerProbe, fetchByLayers, planLayers, type LayerProbe } from './image-layers';
import { loadImage, manifestRepoTags } from './image-loader';
import type { PolicyGuard } from './policy';
import { silentLogger, type Logger } from './logger';
import type { Outbox } from './outbox';
import { writeFileAtomic } from './state';

export const DELIVERIES_FILE = 'deliveries.json';
/** Results remembered for repeats; the server stops repeating once it stored one. */
const REMEMBERED_MAX = 1000;
/** A download's progress is reported at most this often. */
const PROGRESS_EVERY_MS = 250;

export interface DeliveryManagerOptions {
  outbox: Outbox;
  cache: FileCache;
  stateDir: string;
  /** Directories deploys may write into (their real paths; see deploy-writer.ts). */
  deployRoots: readonly string[];
  /** The Docker engine images are loaded into: a socket path, or the agent's resolved target. */
  dockerSocket: string | DockerTarget;
  /** The client policy; default: nothing refused beyond the deploy roots. */
  policy?: PolicyGuard;
  /** Which layers the engine has (chain ids); default: ask the engine. Null from it sends images whole. */
  layerProbe?: LayerProbe;
  logger?: Logger;
}

type Progress = (status: DeliveryProgress['status'], receivedBytes: number, force?: boolean, transfer?: DeliveryTransfer) => void;
type Distribution = Extract<DeliveryDispatch, { kind: 'distribution' }>;

export class DeliveryManager {
  private readonly active = new Map<string, Promise<void>>();
  private readonly done: Map<string, DeliveryFinished>;
  private readonly logger: Logger;
  private readonly file: string;
  private readonly probe: LayerProbe;

  constructor(private readonly options: DeliveryManagerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.probe = options.layerProbe ?? engineLayerProbe(options.dockerSocket, this.logger);
    this.file = path.join(options.stateDir, DELIVERIES_FILE);
    this.done = new Map(readRemembered(this.file).map((r) => [r.deliveryId, r]));
  }

  /** Deliveries being applied now. */
  activeIds(): string[] {
    return [...this.active.keys()];
  }

  /** Resolves when every delivery under way has ended (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all(this.active.values());
  }

  handle(d: DeliveryDispatch): void {
    if (this.active.has(d.deliveryId)) return;
    const known = this.done.get(d.deliveryId);
    if (known) {
      // The server has not stored the result yet: send it again unless the outbox still holds it.
      if (!this.options.outbox.keys(deliveryChannel).includes(d.deliveryId)) this.options.outbox.close(deliveryChannel, d.deliveryId, known);
      return;
    }
    const run = this.apply(d).finally(() => this.active.delete(d.deliveryId));
    this.active.set(d.deliveryId, run);
  }

  private async apply(d: DeliveryDispatch): Promise<void> {
    const log = this.logger.child({ deliveryId: d.deliveryId, kind: d.kind, fileId: d.file.fileId });
    let lastAt = 0;
    const progress: Progress = (status, receivedBytes, force = false, transfer) => {
      const now = Date.now();
      if (!force && now - lastAt < PROGRESS_EVERY_MS) return;
      lastAt = now;
      this.options.outbox.add(deliveryChannel, d.deliveryId, { deliveryId: d.deliveryId, status, receivedBytes, ...(transfer ? { transfer } : {}) });
    };
    let result: DeliveryFinished | null;
    // What the policy can tell before any byte is fetched: nothing is downloaded for refused work.
    const early = this.options.policy ? (d.kind === 'deploy' ? this.options.policy.deploy(d.path) : this.options.policy.imageLoad(null)) : null;
    if (early) return this.refuse(d.deliveryId, early, log);
    progress('downloading', 0, true);
    try {
      if (d.kind === 'deploy') {
        const lease = await this.options.cache.acquire(d.file, (received) => progress('downloading', received, received === d.file.size));
        try {
          // Again now: the directories may have changed during the download (a symlink swapped in).
          const late = this.options.policy?.deploy(d.path) ?? null;
          if (late) return this.refuse(d.deliveryId, late, log);
          const transfer = { movedBytes: lease.fetched, layers: null };
          progress('writing', d.file.size, true, transfer);
          const written = await writeDeployed(lease.path, { path: d.path, mode: d.mode, owner: d.owner }, this.options.deployRoots);
          log.info('file deployed', { path: written, size: d.file.size });
          result = { deliveryId: d.deliveryId, status: 'succeeded', reason: null, transfer };
        } finally {
          lease.release();
        }
      } else {
        result = await this.distribute(d, progress, log);
        if (!result) return;
      }
    } catch (err) {
      const message = err instanceof DownloadError ? `download failed: ${err.message}` : (err as Error).message;
      log.warn('delivery failed', { error: message });
      result = { deliveryId: d.deliveryId, status: 'failed', reason: message.slice(0, DELIVERY_LIMITS.reasonMax) };
    }
    this.remember(result);
    this.options.outbox.close(deliveryChannel, d.deliveryId, result);
  }

  /** Loads the image, by layers when the server indexed it and the engine has some of them, else whole; null when the policy refused it (already reported). */
  private async distribute(d: Distribution, progress: Progress, log: Logger): Promise<DeliveryFinished | null> {
    const plan = await planLayers(d.file, this.options.cache, this.probe, log);
    if (plan && plan.present.some(Boolean)) {
      const image = await fetchByLayers(plan, d.file, this.options.cache, (have) => progress('downloading', have));
      try {
        // The tags come from the verified manifest.json: checked before the engine sees anything.
        const late = this.options.policy?.imageLoad(image.repoTags) ?? null;
        if (late) {
          this.refuse(d.deliveryId, late, log);
          return null;
        }
        progress('loading', d.file.size, true, image.transfer);
        const ids = await loadImage(image, this.options.dockerSocket);
        log.info('image loaded by layers', { imageIds: ids, ...image.transfer });
        return { deliveryId: d.deliveryId, status: 'succeeded', reason: null, imageId: ids[0], transfer: image.transfer };
      } finally {
        image.release();
      }
    }
    const lease = await this.options.cache.acquire(d.file, (received) => progress('downloading', received, received === d.file.size));
    try {
      // The tags the engine would give the image come from the tarball itself, so they are checked once it is here and verified.
      const late = this.options.policy?.imageLoad(manifestRepoTags(lease.path)) ?? null;
      if (late) {
        this.refuse(d.deliveryId, late, log);
        return null;
      }
      const transfer: DeliveryTransfer = { movedBytes: lease.fetched, layers: plan ? { present: 0, total: plan.index.layers.length } : null };
      progress('loading', d.file.size, true, transfer);
      const ids = await loadImage(lease.path, this.options.dockerSocket);
      log.info('image loaded', { imageIds: ids, movedBytes: transfer.movedBytes });
      return { deliveryId: d.deliveryId, status: 'succeeded', reason: null, imageId: ids[0], transfer };
    } finally {
      lease.release();
    }
  }

  private refuse(deliveryId: string, reason: string, log: Logger): void {
    log.warn('delivery refused by the client policy', { reason });
    const result: DeliveryFinished = { deliveryId, status: 'refused', reason: reason.slice(0, DELIVERY_LIMITS.reasonMax) };
    this.remember(result);
    this.options.outbox.close(deliveryChannel, deliveryId, result);
  }

  private remember(result: DeliveryFinished): void {
    this.done.set(result.deliveryId, result);
    while (this.done.size > REMEMBERED_MAX) this.done.delete(this.done.keys().next().value!);
    try {
      writeFileAtomic(this.file, JSON.stringify([...this.done.values()]));
    } catch (err) {
      this.logger.warn('could not remember a delivery result', { error: (err as Error).message });
    }
  }
}

function readRemembered(file: string): DeliveryFinished[] {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return Array.isArray(parsed) ? (parsed as DeliveryFinished[]).filter((r) => typeof r?.deliveryId === 'string') : [];
  } catch {
    return [];
  }
}
