/**
 * Following container logs for the dashboard, while someone watches.
 *
 * A follow lives as long as the server renews it (`container:logs:follow`
 * again with the same stream id) within its lease, or until
 * `container:logs:stop`. Lines are batched (every `flushMs`, at most
 * CONTAINER_LIMITS.logLinesPerMessageMax a message) and sent outside the
 * outbox, with at most `maxInFlight` batches unacknowledged: lossy by design,
 * since the engine keeps the log and a viewer can follow again from a tail.
 * What does not fit in `maxBufferedLines` is counted and reported as
 * `dropped`, never held without bound.
 */
import { PassThrough, type Readable } from 'node:stream';
import { AgentEvents, CONTAINER_LIMITS, type ContainerLogLine, type ContainerLogsFollow } from '@kapitan/shared';
import type Dockerode from 'dockerode';
import { silentLogger, type Logger } from '../logger';
import { dockerError } from './docker-target';
import type { ServerLink } from './supervisor';

export interface LogFollowerOptions {
  link: ServerLink;
  docker: () => Dockerode | null;
  logger?: Logger;
  flushMs?: number;
  maxInFlight?: number;
  maxBufferedLines?: number;
}

interface Follow {
  streamId: string;
  containerId: string;
  source: Readable | null;
  lease: NodeJS.Timeout;
  buffered: ContainerLogLine[];
  dropped: number;
  inFlight: number;
  flushTimer: NodeJS.Timeout | null;
  /** Why it ended, until the message saying so is sent. */
  ended: { reason: string } | null;
  done: boolean;
}

export class ContainerLogFollower {
  private readonly follows = new Map<string, Follow>();
  private readonly logger: Logger;
  private readonly flushMs: number;
  private readonly maxInFlight: number;
  private readonly maxBuffered: number;

  constructor(private readonly options: LogFollowerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.flushMs = options.flushMs ?? 100;
    this.maxInFlight = options.maxInFlight ?? 4;
    this.maxBuffered = options.maxBufferedLines ?? 20_000;
  }

  /** Streams being followed now (tests, logs). */
  active(): string[] {
    return [...this.follows.keys()];
  }

  follow(p: ContainerLogsFollow): void {
    const existing = this.follows.get(p.streamId);
    if (existing) {
      existing.lease.refresh();
      return;
    }
    const f: Follow = {
      streamId: p.streamId,
      containerId: p.containerId,
      source: null,
      lease: setTimeout(() => this.end(f, 'nobody renewed the follow', true), p.leaseMs),
      buffered: [],
      dropped: 0,
      inFlight: 0,
      flushTimer: null,
      ended: null,
      done: false,
    };
    this.follows.set(p.streamId, f);
    void this.open(f, p.tail);
  }

  stop(streamId: string): void {
    const f = this.follows.get(streamId);
    if (f) this.end(f, 'stopped', true);
  }

  stopAll(): void {
    for (const f of [...this.follows.values()]) this.end(f, 'agent stopping', true);
  }

  private async open(f: Follow, tail: number): Promise<void> {
    const docker = this.options.docker();
    if (!docker) return this.end(f, 'Docker is not available on this machine', false);
    try {
      const c = docker.getContainer(f.containerId);
      const info = await c.inspect();
      const raw = (await c.logs({ follow: true, stdout: true, stderr: true, tail, timestamps: false })) as unknown as Readable;
      if (!this.follows.has(f.streamId)) {
        raw.destroy();
        return;
      }
      f.source = raw;
      raw.on('error', (err) => this.end(f, `log stream failed: ${dockerError(err)}`, false));
      raw.on('end', () => this.end(f, 'the container stopped', false));
      if (info.Config.Tty) {
        this.lines(f, raw, 'stdout');
      } else {
        const out = new PassThrough();
        const err = new PassThrough();
        docker.modem.demuxStream(raw, out, err);
        this.lines(f, out, 'stdout');
        this.lines(f, err, 'stderr');
      }
    } catch (err) {
      this.end(f, dockerError(err), false);
    }
  }

  private lines(f: Follow, stream: Readable, name: 'stdout' | 'stderr'): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      partial += text;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        this.push(f, { stream: name, data: partial.slice(0, nl).slice(0, CONTAINER_LIMITS.logLineMax) });
        partial = partial.slice(nl + 1);
      }
      if (partial.length > CONTAINER_LIMITS.logLineMax) {
        this.push(f, { stream: name, data: partial.slice(0, CONTAINER_LIMITS.logLineMax) });
        partial = '';
      }
    });
    stream.on('end', () => {
      if (partial) this.push(f, { stream: name, data: partial });
      partial = '';
    });
  }

  private push(f: Follow, line: ContainerLogLine): void {
    if (f.done) return;
    if (f.buffered.length >= this.maxBuffered) f.dropped++;
    else f.buffered.push(line);
    f.flushTimer ??= setTimeout(() => {
      f.flushTimer = null;
      this.flush(f);
    }, this.flushMs);
  }

  private flush(f: Follow): void {
    while (f.inFlight < this.maxInFlight && (f.buffered.length > 0 || f.dropped > 0 || f.ended)) {
      if (!this.options.link.ready) {
        // Nowhere to send: what waits is lost (the engine still has it), and said so in the next message.
        f.dropped += f.buffered.length;
        f.buffered = [];
        return;
      }
      const lines = f.buffered.splice(0, CONTAINER_LIMITS.logLinesPerMessageMax);
      const ended = f.ended && f.buffered.length === 0 ? f.ended : null;
      const payload = {
        streamId: f.streamId,
        lines,
        ...(f.dropped ? { dropped: f.dropped } : {}),
        ...(ended ? { ended: true, reason: ended.reason.slice(0, CONTAINER_LIMITS.errorMax) } : {}),
      };
      f.dropped = 0;
      if (ended) f.ended = null; // its last message: nothing more for this stream
      f.inFlight++;
      void this.options.link
        .request(AgentEvents.containerLogs, payload, 10_000)
        .catch(() => undefined)
        .then(() => {
          f.inFlight--;
          this.flush(f);
        });
    }
  }

  /** `tell`: the server asked for the end (lease, stop), so no final message is owed. */
  private end(f: Follow, reason: string, tell: boolean): void {
    if (this.follows.get(f.streamId) !== f) return;
    this.follows.delete(f.streamId);
    f.done = true;
    clearTimeout(f.lease);
    f.source?.removeAllListeners('end');
    f.source?.destroy();
    this.logger.info('container log follow ended', { streamId: f.streamId, reason });
    if (tell) {
      if (f.flushTimer) clearTimeout(f.flushTimer);
      return;
    }
    f.ended = { reason };
    if (f.flushTimer) clearTimeout(f.flushTimer);
    f.flushTimer = null;
    this.flush(f);
  }
}
