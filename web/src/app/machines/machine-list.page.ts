import { ChangeDetectionStrategy, Component, computed, effect, inject, signal, untracked, viewChild } from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatMenuModule } from '@angular/material/menu';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { Router, RouterLink } from '@angular/router';
import type { Machine } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { LabelChips } from '../core/ui/label-chips.component';
import { StatusChip } from '../core/ui/status-chip.component';
import { Clock } from '../core/util/clock';
import { BytesPipe, TimeAgoPipe } from '../core/util/pipes';
import { ProjectContext } from '../projects/project-context';
import { InstallPanel } from '../bundle/install-panel.component';
import { CpuSparkline } from '../metrics/cpu-sparkline.component';
import { MetricsApi } from '../metrics/metrics-api';
import { EnrolmentTokens } from './enrolment-tokens.component';
import { MachinesApi } from './machines-api';

/** How far back the machine list's CPU sparklines reach. */
const SPARK_MS = 30 * 60_000;

@Component({
  selector: 'app-machine-list-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    RouterLink,
    MatTableModule,
    MatButtonModule,
    MatIconModule,
    MatMenuModule,
    MatProgressBarModule,
    MatTooltipModule,
    StatusChip,
    LabelChips,
    EmptyState,
    EnrolmentTokens,
    InstallPanel,
    CpuSparkline,
    TimeAgoPipe,
    BytesPipe,
  ],
  templateUrl: './machine-list.page.html',
  styles: `
    .stack {
      display: flex;
      flex-direction: column;
      gap: 24px;
    }
    .host {
      font-weight: 500;
      color: inherit;
      text-decoration: none;
    }
    .host:hover {
      text-decoration: underline;
    }
    .sub {
      font: var(--mat-sys-body-small);
      color: var(--mat-sys-on-surface-variant);
    }
    .summary {
      font: var(--mat-sys-body-medium);
      color: var(--mat-sys-on-surface-variant);
    }
  `,
})
export class MachineListPage {
  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(MachinesApi);
  private readonly dialog = inject(MatDialog);
  private readonly notify = inject(Notify);
  private readonly router = inject(Router);
  private readonly tokens = viewChild(EnrolmentTokens);

  protected readonly columns = ['status', 'hostname', 'labels', 'system', 'cpu', 'agent', 'lastSeen', 'actions'];
  private readonly metricsApi = inject(MetricsApi);
  /** Each machine's host CPU over the last SPARK_MS: stored samples, then the project room's live ones. */
  protected readonly cpu = signal<Map<string, { at: number; v: number | null }[]>>(new Map());
  protected readonly cpuValues = (machineId: string): (number | null)[] => (this.cpu().get(machineId) ?? []).map((p) => p.v);
  protected readonly busy = signal<string | null>(null);
  protected readonly rows = computed(() =>
    [...this.ctx.machines()].sort(
      (a, b) => (a.status === b.status ? 0 : a.status === 'online' ? -1 : 1) || a.hostname.localeCompare(b.hostname),
    ),
  );
  protected readonly loadError = computed(() => {
    const e = this.ctx.machinesResource.error();
    return e ? ApiError.from(e) : null;
  });

  constructor() {
    effect(() => {
      const projectId = this.ctx.projectId();
      untracked(() => this.loadCpu(projectId));
    });
    this.ctx.events$.pipe(takeUntilDestroyed()).subscribe((e) => {
      if (e.type === 'host-metrics') {
        const { machineId, at, cpuPercent } = e.event;
        this.cpu.update((all) => {
          const next = new Map(all);
          const cutoff = Date.now() - SPARK_MS;
          next.set(machineId, [...(all.get(machineId) ?? []), { at: Date.parse(at), v: cpuPercent }].filter((p) => p.at >= cutoff));
          return next;
        });
      } else if (e.type === 'resync') {
        this.loadCpu(this.ctx.projectId());
      }
    });
  }

  private loadCpu(projectId: string): void {
    if (!projectId) return;
    this.metricsApi.projectCpu(projectId, { from: new Date(Date.now() - SPARK_MS).toISOString() }).subscribe({
      next: (r) => this.cpu.set(new Map(r.series.map((s) => [s.machineId, s.points.map((p) => ({ at: Date.parse(p.at), v: p.cpuPercent }))]))),
      error: () => undefined, // the sparklines stay empty; the list itself is what matters
    });
  }

  protected open(m: Machine): void {
    void this.router.navigate(['/projects', this.ctx.projectId(), 'machines', m.id]);
  }

  protected newToken(): void {
    this.tokens()?.create();
  }

  protected tokensChanged(): void {
    this.tokens()?.reload();
  }

  protected revoke(m: Machine): void {
    confirm(this.dialog, {
      title: 'Revoke machine?',
      message: `${m.hostname} loses its credential and is disconnected at once. Enrolling it again needs a new token.`,
      confirmText: 'Revoke machine',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(m.id);
      this.api.revoke(this.ctx.projectId(), m.id).subscribe({
        next: () => {
          this.busy.set(null);
          this.ctx.removeMachine(m.id);
          this.notify.success(`${m.hostname} revoked`);
        },
        error: (err: unknown) => {
          this.busy.set(null);
          this.notify.error(err, 'Could not revoke the machine');
        },
      });
    });
  }
}
