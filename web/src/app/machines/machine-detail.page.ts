import { ChangeDetectionStrategy, Component, computed, effect, inject, input, signal } from '@angular/core';
import { rxResource, takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { FormControl, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTooltipModule } from '@angular/material/tooltip';
import { Router, RouterLink } from '@angular/router';
import { UpdateMachineRequestSchema, type ExecutionSummary, type Machine } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { schemaDetails } from '../core/api/schema-errors';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { LabelChips } from '../core/ui/label-chips.component';
import { StatusChip } from '../core/ui/status-chip.component';
import { Clock } from '../core/util/clock';
import { patchList } from '../core/util/resource';
import { formatKeyValueLines, parseKeyValueLines } from '../core/util/key-value';
import { BytesPipe, TimeAgoPipe } from '../core/util/pipes';
import { ExecutionsApi } from '../executions/executions-api';
import { ExecutionsTable } from '../executions/executions-table.component';
import { mergeExecution } from '../executions/merge-execution';
import { ProjectContext } from '../projects/project-context';
import { MachinesApi } from './machines-api';
import { MachineContainers } from '../containers/machine-containers.component';
import { MachinePolicy } from './machine-policy.component';
import { MachineMetrics } from '../metrics/machine-metrics.component';

@Component({
  selector: 'app-machine-detail-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    MachinePolicy,
    RouterLink,
    ReactiveFormsModule,
    MatButtonModule,
    MatIconModule,
    MatFormFieldModule,
    MatInputModule,
    MatProgressBarModule,
    MatTooltipModule,
    StatusChip,
    LabelChips,
    EmptyState,
    ExecutionsTable,
    MachineContainers,
    MachineMetrics,
    TimeAgoPipe,
    BytesPipe,
  ],
  templateUrl: './machine-detail.page.html',
  styles: `
    .grid {
      display: grid;
      grid-template-columns: minmax(0, 1fr) minmax(0, 1fr);
      gap: 24px;
    }
    @media (max-width: 1100px) {
      .grid {
        grid-template-columns: minmax(0, 1fr);
      }
    }
    .wide {
      grid-column: 1 / -1;
    }
    .back {
      display: inline-flex;
      align-items: center;
      gap: 4px;
      color: var(--mat-sys-on-surface-variant);
      text-decoration: none;
      font: var(--mat-sys-body-medium);
      margin-bottom: 8px;
    }
    .metrics-placeholder {
      min-height: 200px;
    }
    .labels-actions {
      display: flex;
      justify-content: flex-end;
      gap: 8px;
    }
  `,
})
export class MachineDetailPage {
  /** Route param, bound by the router. */
  readonly machineId = input.required<string>();

  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(MachinesApi);
  private readonly executionsApi = inject(ExecutionsApi);
  private readonly notify = inject(Notify);
  private readonly dialog = inject(MatDialog);
  private readonly router = inject(Router);

  private readonly fetched = rxResource({
    params: () => ({ projectId: this.ctx.projectId(), machineId: this.machineId() }),
    stream: ({ params }) => this.api.get(params.projectId, params.machineId),
  });
  /** The live copy from the project room wins over the fetched one. */
  protected readonly machine = computed<Machine | null>(
    () => this.ctx.machineById().get(this.machineId()) ?? (this.fetched.hasValue() ? this.fetched.value() : null),
  );
  protected readonly loadError = computed(() => {
    const e = this.fetched.error();
    return e && !this.machine() ? ApiError.from(e) : null;
  });

  protected readonly executions = rxResource({
    params: () => ({ projectId: this.ctx.projectId(), machineId: this.machineId() }),
    stream: ({ params }) => this.executionsApi.list(params.projectId, { machineId: params.machineId, limit: 20 }),
  });
  protected readonly executionRows = computed<ExecutionSummary[]>(() =>
    this.executions.hasValue() ? this.executions.value() : [],
  );

  protected readonly labelsText = new FormControl('', { nonNullable: true });
  protected readonly editingLabels = signal(false);
  protected readonly savingLabels = signal(false);
  protected readonly busy = signal(false);

  constructor() {
    effect(() => {
      const m = this.machine();
      if (m && !this.editingLabels()) this.labelsText.reset(formatKeyValueLines(m.labels));
    });
    this.ctx.events$.pipe(takeUntilDestroyed()).subscribe((e) => {
      if (e.type === 'execution' && e.execution.machineId === this.machineId() && this.executions.hasValue()) {
        patchList(this.executions, (list) => mergeExecution(list, e.execution, 20));
      } else if (e.type === 'resync') {
        this.executions.reload();
      }
    });
  }

  protected editLabels(): void {
    this.editingLabels.set(true);
  }

  protected cancelLabels(): void {
    this.editingLabels.set(false);
    this.labelsText.reset(formatKeyValueLines(this.machine()?.labels));
  }

  protected saveLabels(): void {
    const parsedText = parseKeyValueLines(this.labelsText.value, 'key=value');
    if (parsedText.errors.length) {
      this.labelsText.setErrors({ server: parsedText.errors[0] });
      return;
    }
    const parsed = UpdateMachineRequestSchema.safeParse({ labels: parsedText.values });
    if (!parsed.success) {
      this.labelsText.setErrors({ server: schemaDetails(parsed.error.issues)[0]?.message ?? 'invalid labels' });
      return;
    }
    this.savingLabels.set(true);
    this.api.update(this.ctx.projectId(), this.machineId(), parsed.data).subscribe({
      next: (m) => {
        this.savingLabels.set(false);
        this.editingLabels.set(false);
        this.ctx.upsertMachine(m);
        this.fetched.set(m);
        this.notify.success('Labels saved');
      },
      error: (err: unknown) => {
        this.savingLabels.set(false);
        const e = ApiError.from(err);
        this.labelsText.setErrors({ server: e.details[0]?.message ?? e.message });
      },
    });
  }

  protected revoke(): void {
    const m = this.machine();
    if (!m) return;
    confirm(this.dialog, {
      title: 'Revoke machine?',
      message: `${m.hostname} loses its credential and is disconnected at once. Enrolling it again needs a new token.`,
      confirmText: 'Revoke machine',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(true);
      this.api.revoke(this.ctx.projectId(), m.id).subscribe({
        next: () => {
          this.ctx.removeMachine(m.id);
          this.notify.success(`${m.hostname} revoked`);
          void this.router.navigate(['/projects', this.ctx.projectId(), 'machines']);
        },
        error: (err: unknown) => {
          this.busy.set(false);
          this.notify.error(err, 'Could not revoke the machine');
        },
      });
    });
  }
}
