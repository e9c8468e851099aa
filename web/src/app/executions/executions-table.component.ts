import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';
import { MatIconModule } from '@angular/material/icon';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { Router, RouterLink } from '@angular/router';
import type { ExecutionSummary, Machine } from '@kapitan/shared';
import { StatusChip } from '../core/ui/status-chip.component';
import { Clock } from '../core/util/clock';
import { executionDuration } from '../core/util/format';
import { DurationPipe, TimeAgoPipe } from '../core/util/pipes';

/** A dense table of executions; a row opens the execution. */
@Component({
  selector: 'app-executions-table',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatTableModule, MatIconModule, MatTooltipModule, RouterLink, StatusChip, TimeAgoPipe, DurationPipe],
  template: `
    <table mat-table [dataSource]="executions()" [trackBy]="trackById" data-testid="executions-table">
      <ng-container matColumnDef="status">
        <th mat-header-cell *matHeaderCellDef>Status</th>
        <td mat-cell *matCellDef="let e">
          <app-status-chip [status]="e.status" [title]="e.reason" data-testid="execution-status" />
        </td>
      </ng-container>
      <ng-container matColumnDef="machine">
        <th mat-header-cell *matHeaderCellDef>Machine</th>
        <td mat-cell *matCellDef="let e">
          <span class="host">{{ machines()?.get(e.machineId)?.hostname ?? e.machineId.slice(0, 8) }}</span>
        </td>
      </ng-container>
      <ng-container matColumnDef="created">
        <th mat-header-cell *matHeaderCellDef>Started</th>
        <td mat-cell *matCellDef="let e" class="muted" [matTooltip]="e.startedAt ?? e.createdAt">
          {{ e.startedAt ?? e.createdAt | timeAgo: clock.now() }}
        </td>
      </ng-container>
      <ng-container matColumnDef="duration">
        <th mat-header-cell *matHeaderCellDef>Duration</th>
        <td mat-cell *matCellDef="let e">{{ durationOf(e) | duration }}</td>
      </ng-container>
      <ng-container matColumnDef="exit">
        <th mat-header-cell *matHeaderCellDef>Exit</th>
        <td mat-cell *matCellDef="let e" class="mono">
          {{ e.exitCode ?? e.signal ?? '—' }}
        </td>
      </ng-container>
      <ng-container matColumnDef="run">
        <th mat-header-cell *matHeaderCellDef>Run</th>
        <td mat-cell *matCellDef="let e">
          <a
            class="mono run-link"
            [routerLink]="['/projects', projectId(), 'executions']"
            [queryParams]="{ runId: e.runId }"
            (click)="$event.stopPropagation()"
            matTooltip="All executions of this run"
            >{{ e.runId.slice(0, 8) }}</a
          >
        </td>
      </ng-container>
      <ng-container matColumnDef="open">
        <th mat-header-cell *matHeaderCellDef class="actions"></th>
        <td mat-cell *matCellDef="let e" class="actions"><mat-icon class="muted">chevron_right</mat-icon></td>
      </ng-container>
      <tr mat-header-row *matHeaderRowDef="columns()"></tr>
      <tr
        mat-row
        *matRowDef="let e; columns: columns()"
        class="clickable"
        tabindex="0"
        (click)="open(e)"
        (keydown.enter)="open(e)"
        data-testid="execution-row"
        [attr.data-execution-id]="e.id"
        [attr.data-machine-id]="e.machineId"
        [attr.data-status]="e.status"
      ></tr>
    </table>
  `,
  styles: `
    .host {
      font-weight: 500;
    }
    .run-link {
      color: var(--mat-sys-primary);
      text-decoration: none;
    }
    .run-link:hover {
      text-decoration: underline;
    }
  `,
})
export class ExecutionsTable {
  readonly executions = input.required<ExecutionSummary[]>();
  readonly projectId = input.required<string>();
  readonly machines = input<ReadonlyMap<string, Machine>>();
  readonly showMachine = input(true);

  protected readonly clock = inject(Clock);
  private readonly router = inject(Router);

  protected readonly columns = computed(() =>
    this.showMachine()
      ? ['status', 'machine', 'created', 'duration', 'exit', 'run', 'open']
      : ['status', 'created', 'duration', 'exit', 'run', 'open'],
  );
  protected readonly trackById = (_: number, e: ExecutionSummary) => e.id;

  protected durationOf(e: ExecutionSummary): number | null {
    return executionDuration(e, this.clock.now());
  }

  protected open(e: ExecutionSummary): void {
    void this.router.navigate(['/projects', this.projectId(), 'executions', e.id]);
  }
}
