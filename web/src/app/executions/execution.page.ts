import { ChangeDetectionStrategy, Component, computed, inject, input, linkedSignal, signal } from '@angular/core';
import { rxResource, takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatExpansionModule } from '@angular/material/expansion';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTooltipModule } from '@angular/material/tooltip';
import { RouterLink } from '@angular/router';
import { isFinalStatus, type ExecutionSummary } from '@kapitan/shared';
import { filter, tap } from 'rxjs';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { LiveService } from '../core/live/live.service';
import type { ExecutionFeedEvent } from '../core/live/execution-stream';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { StatusChip } from '../core/ui/status-chip.component';
import { Clock } from '../core/util/clock';
import { executionDuration } from '../core/util/format';
import { formatKeyValueLines } from '../core/util/key-value';
import { DurationPipe, TimeAgoPipe } from '../core/util/pipes';
import { ProjectContext } from '../projects/project-context';
import { ExecutionsApi } from './executions-api';
import { LogViewer, type LogEvent } from './log-viewer/log-viewer.component';
import { supersedes } from './merge-execution';

@Component({
  selector: 'app-execution-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    RouterLink,
    MatButtonModule,
    MatIconModule,
    MatExpansionModule,
    MatProgressBarModule,
    MatTooltipModule,
    StatusChip,
    EmptyState,
    LogViewer,
    TimeAgoPipe,
    DurationPipe,
  ],
  templateUrl: './execution.page.html',
  styleUrl: './execution.page.scss',
})
export class ExecutionPage {
  /** Route param, bound by the router. */
  readonly executionId = input.required<string>();

  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(ExecutionsApi);
  private readonly live = inject(LiveService);
  private readonly notify = inject(Notify);
  private readonly dialog = inject(MatDialog);

  protected readonly detail = rxResource({
    params: () => this.executionId(),
    stream: ({ params }) => this.api.get(params),
  });
  /** The newest state seen live (ack, `execution:updated`), ahead of the fetched one. */
  private readonly latest = linkedSignal<string, ExecutionSummary | null>({
    source: this.executionId,
    computation: () => null,
  });
  protected readonly cancelling = signal(false);
  protected readonly downloading = signal(false);
  protected readonly streamError = linkedSignal<string, string | null>({
    source: this.executionId,
    computation: () => null,
  });

  protected readonly execution = computed(() => {
    const d = this.detail.hasValue() ? this.detail.value() : null;
    const l = this.latest();
    if (!d) return null;
    return l && l.id === d.id && supersedes(d, l) ? { ...d, ...l } : d;
  });
  protected readonly status = computed(() => this.execution()?.status ?? null);
  protected readonly final = computed(() => {
    const s = this.status();
    return s !== null && isFinalStatus(s);
  });
  protected readonly canCancel = computed(() => this.ctx.canOperate() && this.status() !== null && !this.final());
  protected readonly duration = computed(() => {
    const e = this.execution();
    return e ? executionDuration(e, this.clock.now()) : null;
  });
  protected readonly machine = computed(() => {
    const e = this.execution();
    return e ? (this.ctx.machineById().get(e.machineId) ?? null) : null;
  });
  protected readonly envCount = computed(() => Object.keys(this.execution()?.env ?? {}).length);
  protected readonly argsText = computed(() => (this.execution()?.args ?? []).join('\n'));
  protected readonly envText = computed(() => formatKeyValueLines(this.execution()?.env));
  protected readonly loadError = computed(() => {
    const e = this.detail.error();
    return e ? ApiError.from(e) : null;
  });

  /** The live output: history, then the tail, in order, once (LiveService + ExecutionStream). */
  protected readonly output = computed(() => {
    const id = this.executionId();
    return this.live.execution(id).pipe(
      tap((e) => {
        if (e.type === 'execution') this.noteExecution(e.execution);
        else if (e.type === 'error') this.streamError.set(e.message);
        else if (this.streamError()) this.streamError.set(null);
      }),
      filter((e): e is Extract<ExecutionFeedEvent, LogEvent> => e.type === 'output' || e.type === 'gap'),
    );
  });

  constructor() {
    this.ctx.events$.pipe(takeUntilDestroyed()).subscribe((e) => {
      if (e.type === 'execution' && e.execution.id === this.executionId()) this.noteExecution(e.execution);
    });
  }

  private noteExecution(e: ExecutionSummary): void {
    const prev = this.latest() ?? (this.detail.hasValue() ? this.detail.value() : null);
    if (prev && !supersedes(prev, e)) return;
    this.latest.set(e);
    // Turned final: fetch the full record once more (exit code, lastSeq, reason).
    if (prev && !isFinalStatus(prev.status) && isFinalStatus(e.status)) this.detail.reload();
  }

  protected cancel(): void {
    const e = this.execution();
    if (!e) return;
    confirm(this.dialog, {
      title: 'Cancel execution?',
      message: `The script on ${this.ctx.hostname(e.machineId)} gets SIGTERM, then SIGKILL after a grace period, with all its child processes.`,
      confirmText: 'Cancel execution',
      cancelText: 'Keep running',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.cancelling.set(true);
      this.api.cancel(e.id).subscribe({
        next: () => {
          this.cancelling.set(false);
          this.notify.success('Cancel requested');
        },
        error: (err: unknown) => {
          this.cancelling.set(false);
          this.notify.error(err, 'Could not cancel');
        },
      });
    });
  }

  protected download(): void {
    const id = this.executionId();
    this.downloading.set(true);
    this.api.logText(id).subscribe({
      next: (blob) => {
        this.downloading.set(false);
        const url = URL.createObjectURL(blob);
        const a = document.createElement('a');
        a.href = url;
        a.download = `kapitan-${this.ctx.hostname(this.execution()?.machineId ?? '')}-${id.slice(0, 8)}.log`;
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      },
      error: async (err: unknown) => {
        this.downloading.set(false);
        this.notify.error(await ApiError.fromAsync(err), 'Could not download the log');
      },
    });
  }
}
