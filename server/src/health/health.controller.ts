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

  /** 200 when the database answers, 503 otherwise or once the node is stopping: what a load balancer should ask. */
  @Public()
  @Get()
  async health(@Res() res: Response): Promise<void> {
    if (this.drain.draining) {
      // Closing the connection too: a balancer's keep-alive to a stopping node is not reused.
      res.status(503).set('Connection', 'close').json({ status: 'draining', databaseType: this.dataSource.options.type });
      return;
    }
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
}
