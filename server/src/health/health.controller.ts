import { Controller, Get, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth-user';
import { DrainService } from '../drain/drain.service';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly drain: DrainService,
  ) {}

  /**
   * Readiness: 200 when the database answers, 503 otherwise or once the node
   * is stopping. For monitoring and a container's own health check, not for
   * a balancer: see `live`.
   */
  @Public()
  @Get()
  async health(@Res() res: Response): Promise<void> {
    if (this.refusedWhileDraining(res)) return;
    const started = Date.now();
    try {
      await Promise.race([
        this.dataSource.query('SELECT 1'),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref()),
      ]);
      res.status(200).json({ status: 'ok', database: 'up', databaseType: this.dataSource.options.type, latencyMs: Date.now() - started });
    } catch {
      res.status(503).json({ status: 'degraded', database: 'down', databaseType: this.dataSource.options.type });
    }
  }

  /**
   * What a load balancer asks: 200 while this node takes connections, 503
   * once it drains. It never touches the database. A database that is slow
   * or down is the same for every node, so taking nodes out for it helps no
   * one; worse, during a reconnect storm a busy pool made `/api/health` time
   * out on the last node standing and the balancer took it out too, leaving
   * thousands of agents with nowhere to go.
   */
  @Public()
  @Get('live')
  live(@Res() res: Response): void {
    if (this.refusedWhileDraining(res)) return;
    res.status(200).json({ status: 'ok' });
  }

  private refusedWhileDraining(res: Response): boolean {
    if (!this.drain.draining) return false;
    // Closing the connection too: a balancer's keep-alive to a stopping node is not reused.
    res.status(503).set('Connection', 'close').json({ status: 'draining', databaseType: this.dataSource.options.type });
    return true;
  }
}
