import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ExecutionLog, isFinalStatus, LIMITS } from '@kapitan/shared';
import { MoreThanOrEqual, Repository } from 'typeorm';
import { ExecutionChunkEntity, ExecutionEntity } from './execution.entity';
import { ExecutionsService } from './executions.service';
import { OutputWriter } from './output-writer.service';

/**
 * The stored log of an execution: pages with their gaps named, the rule of
 * when a log is complete, the whole log as text, and the history a live
 * viewer gets when it joins.
 */
@Injectable()
export class ExecutionLogService {
  constructor(
    @InjectRepository(ExecutionChunkEntity) private readonly chunks: Repository<ExecutionChunkEntity>,
    private readonly access: ExecutionsService,
    private readonly writer: OutputWriter,
  ) {}

  /** A page of the stored log, with the gaps in it named. */
  async log(userId: string, executionId: string, fromSeq = 0, limit: number = LIMITS.logPageMax): Promise<ExecutionLog> {
    const e = await this.access.findVisible(userId, executionId, 'viewer');
    return this.logPage(e, fromSeq, limit);
  }

  async logPage(e: ExecutionEntity, fromSeq: number, limit: number): Promise<ExecutionLog> {
    const rows = await this.chunks.find({
      where: { executionId: e.id, seq: MoreThanOrEqual(fromSeq) },
      order: { seq: 'ASC' },
      take: limit,
    });
    const gaps: { fromSeq: number; toSeq: number }[] = [];
    let expect = fromSeq;
    for (const r of rows) {
      if (r.seq > expect) gaps.push({ fromSeq: expect, toSeq: r.seq - 1 });
      expect = r.seq + 1;
    }
    const last = e.lastSeq;
    const pageFull = rows.length === limit;
    if (!pageFull && last !== null && expect <= last) gaps.push({ fromSeq: expect, toSeq: last });
    const complete = isFinalStatus(e.status) && !pageFull && gaps.length === 0 && (last === null || expect > last || last < fromSeq);
    return {
      executionId: e.id,
      chunks: rows.map((r) => ({ seq: r.seq, stream: r.stream, data: r.data })),
      gaps,
      complete,
      nextSeq: expect,
    };
  }

  /**
   * History for a viewer who just joined the live room: chunks this node
   * already forwarded are committed first, so history and live tail meet with
   * no gap. (A chunk still in another node's batch can be missing; the
   * client asks again for any gap it sees.)
   */
  async historyForJoin(e: ExecutionEntity, fromSeq: number, limit: number): Promise<ExecutionLog> {
    await this.writer.flush().catch(() => undefined);
    return this.logPage(e, fromSeq, limit);
  }

  /** The whole log as text, page by page, so a 100 MB log never sits in memory. */
  async *logText(userId: string, executionId: string): AsyncGenerator<string> {
    const e = await this.access.findVisible(userId, executionId, 'viewer');
    let from = 0;
    for (;;) {
      const page = await this.logPage(e, from, 1000);
      let expect = from;
      for (const c of page.chunks) {
        if (c.seq > expect) yield `\n[kapitan: output chunks ${expect}-${c.seq - 1} are missing]\n`;
        yield c.data;
        expect = c.seq + 1;
      }
      if (page.chunks.length < 1000) {
        const tailGap = page.gaps.find((g) => g.fromSeq >= expect);
        if (tailGap) yield `\n[kapitan: output chunks ${tailGap.fromSeq}-${tailGap.toSeq} are missing]\n`;
        return;
      }
      from = page.nextSeq;
    }
  }
}
