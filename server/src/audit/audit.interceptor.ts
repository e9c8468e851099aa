import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { catchError, from, mergeMap, Observable, throwError } from 'rxjs';
import type { AuthUser } from '../auth/auth-user';
import { currentRequestSlot } from '../common/request-principal';
import { AUDIT_SPEC, AuditContext, AuditSpec } from './audit.decorator';
import { AuditRecord, AuditService } from './audit.service';

type AuditedRequest = Request & { user?: AuthUser; id?: string };

const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);

/**
 * Global: records each route marked `@Audit` once its handler has
 * succeeded, before the response is sent (a client that got its answer can
 * read the event). Here rather than in each service: the principal, the
 * address and the route are all at hand, and no service signature changes.
 * A failed write of the event is logged at error level; the action it
 * describes has already happened, so the caller still gets its answer.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly logger = new Logger(AuditInterceptor.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const spec = this.reflector.get<AuditSpec | { skip: string } | undefined>(AUDIT_SPEC, ctx.getHandler());
    if (!spec || 'skip' in spec) return next.handle();
    const req = ctx.switchToHttp().getRequest<AuditedRequest>();
    // The slot is the request's; its project is filled in while the handler runs.
    const slot = currentRequestSlot();
    const context = <R>(result: R): AuditContext<R> => ({
      params: (req.params ?? {}) as Record<string, string>,
      body: (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>,
      query: (req.query ?? {}) as Record<string, unknown>,
      result,
    });
    const base = (c: AuditContext<unknown>): Omit<AuditRecord, 'action' | 'actor' | 'details' | 'machineId'> => {
      const result = (c.result ?? {}) as Record<string, unknown>;
      return {
        projectId: (spec.projectId && c.result !== undefined ? spec.projectId(c) : null) ?? str(c.params.projectId) ?? slot?.projectId ?? str(result.projectId) ?? null,
        address: req.ip ?? null,
        requestId: req.id ?? null,
      };
    };
    const write = async (r: AuditRecord): Promise<void> => {
      try {
        await this.audit.record(r);
      } catch (err) {
        this.logger.error({ err: String(err), action: r.action, requestId: r.requestId }, 'audit event not recorded');
      }
    };
    return next.handle().pipe(
      mergeMap((result: unknown) =>
        from(
          (async () => {
            const c = context(result);
            const principal = req.user;
            const actor: AuditRecord['actor'] = spec.actor ? spec.actor(c) : principal ? { principal } : { anonymous: true };
            const r = (result ?? {}) as Record<string, unknown>;
            const machineId = spec.machineId ? (spec.machineId(c) ?? null) : (str(c.params.machineId) ?? str(r.machineId));
            await write({ action: spec.action, actor, machineId, details: spec.details?.(c) ?? {}, ...base(c) });
            return result;
          })(),
        ),
      ),
      catchError((err: unknown) => {
        const failure = spec.failure;
        if (!failure?.when(err)) return throwError(() => err);
        const c = context(undefined);
        return from(write({ action: failure.action, actor: { anonymous: true }, machineId: null, details: failure.details(c, err), ...base(c) })).pipe(
          mergeMap(() => throwError(() => err)),
        );
      }),
    );
  }
}
