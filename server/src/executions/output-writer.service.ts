import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { OutputChunk } from '@kapitan/shared';
import { DataSource } from 'typeorm';
import { ExecutionChunkEntity } from './execution.entity';

interface Pending {
  rows: ExecutionChunkEntity[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Flush after this long even if the batch is small: bounds the ack delay, never the live forward. */
const FLUSH_AFTER_MS = 15;
/** Flush at once when this many chunks wait. */
const FLUSH_AT_ROWS = 2000;
/** One INSERT carries at most this many rows / bytes (MySQL's max_allowed_packet, SQLite's variable limit). */
const ROWS_PER_STATEMENT = 500;
const BYTES_PER_STATEMENT = 4 * 1024 * 1024;

/**
 * Batches output chunks from every agent into few INSERTs. Each write
 * resolves once its rows are committed: that is when the agent may forget
 * them. (executionId, seq) is the primary key and rows are inserted with
 * "or ignore", so a resent chunk is stored once.
 */
@Injectable()
export class OutputWriter implements OnModuleDestroy {
  private pending: Pending[] = [];
  private pendingRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private draining: Promise<void> | null = null;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  write(executionId: string, chunks: readonly OutputChunk[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const rows = chunks.map((c) => Object.assign(new ExecutionChunkEntity(), { executionId, seq: c.seq, stream: c.stream, data: c.data }));
      this.pending.push({ rows, resolve, reject });
      this.pendingRows += rows.length;
      if (this.pendingRows >= FLUSH_AT_ROWS) void this.kick();
      else this.timer ??= setTimeout(() => void this.kick(), FLUSH_AFTER_MS);
    });
  }

  /** Resolves when everything written before the call is committed (or failed). */
  async flush(): Promise<void> {
    while (this.pending.length || this.draining) await this.kick();
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush().catch(() => undefined);
  }

  private kick(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
    return this.draining;
  }

  private async drain(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending;
      this.pending = [];
      this.pendingRows = 0;
      try {
        await this.insert(batch.flatMap((p) => p.rows));
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
  }

  private async insert(rows: ExecutionChunkEntity[]): Promise<void> {
    await this.dataSource.transaction(async (tx) => {
      let group: ExecutionChunkEntity[] = [];
      let bytes = 0;
      const send = async () => {
        if (!group.length) return;
        await tx.createQueryBuilder().insert().into(ExecutionChunkEntity).values(group).orIgnore().updateEntity(false).execute();
        group = [];
        bytes = 0;
      };
      for (const row of rows) {
        const size = row.data.length * 3 + 64;
        if (group.length >= ROWS_PER_STATEMENT || (group.length && bytes + size > BYTES_PER_STATEMENT)) await send();
        group.push(row);
        bytes += size;
      }
      await send();
    });
  }
}
