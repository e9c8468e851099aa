import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';
import { rxResource, takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatChipsModule } from '@angular/material/chips';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { MatTooltipModule } from '@angular/material/tooltip';
import { ActivatedRoute, Router, RouterLink } from '@angular/router';
import { ExecutionStatusSchema, type ExecutionStatus, type ExecutionSummary } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { EmptyState } from '../core/ui/empty-state.component';
import { patchList } from '../core/util/resource';
import { ProjectContext } from '../projects/project-context';
import { ExecutionsApi } from './executions-api';
import { ExecutionsTable } from './executions-table.component';
import { mergeExecution } from './merge-execution';

const LIMIT = 200;

@Component({
  selector: 'app-execution-list-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    RouterLink,
    MatButtonModule,
    MatIconModule,
    MatSelectModule,
    MatFormFieldModule,
    MatChipsModule,
    MatProgressBarModule,
    MatTooltipModule,
    ExecutionsTable,
    EmptyState,
  ],
  templateUrl: './execution-list.page.html',
  styles: `
    .filters {
      display: flex;
      gap: 12px;
      align-items: center;
      flex-wrap: wrap;
      padding: 12px 20px 0;
    }
    .filters mat-form-field {
      width: 200px;
    }
    .counts {
      display: flex;
      gap: 12px;
      flex-wrap: wrap;
      font: var(--mat-sys-body-medium);
      color: var(--mat-sys-on-surface-variant);
      padding: 8px 20px 12px;
    }
    .counts b {
      color: var(--mat-sys-on-surface);
    }
  `,
})
export class ExecutionListPage {
  /** Query params, bound by the router. */
  readonly runId = input<string>();
  readonly status = input<string>();
  readonly machineId = input<string>();

  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(ExecutionsApi);
  private readonly router = inject(Router);
  private readonly route = inject(ActivatedRoute);

  protected readonly statuses = ExecutionStatusSchema.options;

  private readonly query = computed(() => {
    const status = ExecutionStatusSchema.safeParse(this.status());
    return {
      projectId: this.ctx.projectId(),
      runId: this.runId() || undefined,
      machineId: this.machineId() || undefined,
      status: status.success ? status.data : undefined,
      limit: LIMIT,
    };
  });

  protected readonly executions = rxResource({
    params: () => this.query(),
    stream: ({ params: { projectId, ...q } }) => this.api.list(projectId, q),
  });
  protected readonly rows = computed<ExecutionSummary[]>(() =>
    this.executions.hasValue() ? this.executions.value() : [],
  );
  protected readonly loadError = computed(() => {
    const e = this.executions.error();
    return e ? ApiError.from(e) : null;
  });
  protected readonly filtered = computed(() => !!(this.runId() || this.status() || this.machineId()));
  protected readonly counts = computed(() => {
    const by = new Map<ExecutionStatus, number>();
    for (const e of this.rows()) by.set(e.status, (by.get(e.status) ?? 0) + 1);
    return [...by.entries()].map(([status, n]) => ({ status: status.replace('_', ' '), n }));
  });

  constructor() {
    this.ctx.events$.pipe(takeUntilDestroyed()).subscribe((e) => {
      if (e.type === 'resync') {
        this.executions.reload();
        return;
      }
      if (e.type !== 'execution' || !this.executions.hasValue()) return;
      const q = this.query();
      const x = e.execution;
      const known = this.rows().some((r) => r.id === x.id);
      const matches =
        (!q.runId || x.runId === q.runId) &&
        (!q.machineId || x.machineId === q.machineId) &&
        (!q.status || x.status === q.status);
      if (known || matches) patchList(this.executions, (list) => mergeExecution(list, x, LIMIT));
    });
  }

  protected setFilter(key: 'status' | 'machineId' | 'runId', value: string | null): void {
    void this.router.navigate([], {
      relativeTo: this.route,
      queryParams: { [key]: value || null },
      queryParamsHandling: 'merge',
    });
  }
}
