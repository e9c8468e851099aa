import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { Router, RouterLink } from '@angular/router';
import type { Occurrence } from '@kapitan/shared';
import { filter, switchMap } from 'rxjs';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { ProjectContext } from '../projects/project-context';
import { SchedulesApi } from './schedules-api';
import { inZone, occurrenceTone, timingText, viewerZone } from './schedule-timing';

/** One schedule: its timing and next fires, pause/resume, and its history, each occurrence linking to its executions. */
@Component({
  selector: 'app-schedule-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink, MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, MatTooltipModule, EmptyState],
  styleUrl: './schedules.scss',
  template: `
    <div class="page">
      @if (schedule.hasValue()) {
        @let s = schedule.value();
        <div class="page-header">
          <h2 data-testid="schedule-title">{{ s.name }}</h2>
          <span class="spacer"></span>
          <a matButton [routerLink]="['/projects', ctx.projectId(), 'schedules']">All schedules</a>
          @if (ctx.canOperate()) {
            <button matButton="outlined" (click)="toggle(!s.enabled)" data-testid="schedule-toggle">
              <mat-icon>{{ s.enabled ? 'pause' : 'play_arrow' }}</mat-icon>{{ s.enabled ? 'Pause' : 'Resume' }}
            </button>
            <a matButton="outlined" [routerLink]="['edit']" data-testid="schedule-edit"><mat-icon>edit</mat-icon>Edit</a>
            <button matButton (click)="remove()" data-testid="schedule-delete"><mat-icon>delete</mat-icon>Delete</button>
          }
        </div>
        <section class="panel">
          <div class="panel-pad">
            <p class="cron-text" data-testid="schedule-timing">{{ timing(s) }}</p>
            @if (!s.enabled) {
              <p class="muted" data-testid="schedule-paused">Paused: nothing fires until resumed.</p>
            }
            <div class="fires-grid" data-testid="schedule-next-fires">
              <div>
                <div class="muted small">Next in {{ s.timezone }}</div>
                <ol class="fires">
                  @for (d of s.nextRuns; track d) {
                    <li>{{ show(d, s.timezone) }}</li>
                  }
                </ol>
              </div>
              <div>
                <div class="muted small">Next in {{ viewer }}</div>
                <ol class="fires">
                  @for (d of s.nextRuns; track d) {
                    <li data-testid="schedule-next-fire">{{ show(d, viewer) }}</li>
                  }
                </ol>
              </div>
            </div>
          </div>
        </section>
      } @else if (loadError(); as e) {
        <app-empty-state icon="cloud_off" title="Could not load the schedule">{{ e.message }}</app-empty-state>
      }
      <section class="panel">
        <div class="panel-toolbar">
          <span class="title">History</span>
          <span class="spacer"></span>
          <button matIconButton (click)="history.reload(); schedule.reload()" matTooltip="Refresh" aria-label="Refresh history" data-testid="history-refresh"><mat-icon>refresh</mat-icon></button>
        </div>
        @if (history.isLoading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        @if (rows().length) {
          <table mat-table [dataSource]="rows()" data-testid="occurrences-table">
            <ng-container matColumnDef="fireAt">
              <th mat-header-cell *matHeaderCellDef>Slot</th>
              <td mat-cell *matCellDef="let o">{{ show(o.fireAt, viewer) }}</td>
            </ng-container>
            <ng-container matColumnDef="status">
              <th mat-header-cell *matHeaderCellDef>Status</th>
              <td mat-cell *matCellDef="let o">
                <span [class]="'status ' + tone(o.status)" data-testid="occurrence-status">{{ o.status }}</span>
              </td>
            </ng-container>
            <ng-container matColumnDef="reason">
              <th mat-header-cell *matHeaderCellDef>Why</th>
              <td mat-cell *matCellDef="let o" class="muted">{{ o.reason ?? '' }}</td>
            </ng-container>
            <ng-container matColumnDef="executions">
              <th mat-header-cell *matHeaderCellDef>Executions</th>
              <td mat-cell *matCellDef="let o">
                @for (e of o.executions; track e.id) {
                  <a [routerLink]="['/projects', ctx.projectId(), 'executions', e.id]" [class]="'status ' + execTone(e.status)" data-testid="occurrence-execution">{{ host(e.machineId) }}: {{ e.status }}</a>
                  &nbsp;
                }
              </td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let o; columns: columns" data-testid="occurrence-row" [attr.data-status]="o.status"></tr>
          </table>
        } @else if (!history.isLoading()) {
          <app-empty-state icon="history" title="Nothing has fired yet" />
        }
      </section>
    </div>
  `,
})
export class SchedulePage {
  readonly scheduleId = input.required<string>();
  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(SchedulesApi);
  private readonly notify = inject(Notify);
  private readonly router = inject(Router);
  private readonly dialog = inject(MatDialog);
  protected readonly viewer = viewerZone();
  protected readonly columns = ['fireAt', 'status', 'reason', 'executions'];

  protected readonly schedule = rxResource({ params: () => this.scheduleId(), stream: ({ params }) => this.api.get(params) });
  protected readonly history = rxResource({ params: () => this.scheduleId(), stream: ({ params }) => this.api.occurrences(params) });
  protected readonly rows = computed<Occurrence[]>(() => (this.history.hasValue() ? this.history.value() : []));
  protected readonly loadError = computed(() => (this.schedule.error() ? ApiError.from(this.schedule.error()) : null));

  protected timing = timingText;
  protected tone = occurrenceTone;
  protected execTone(status: string): string {
    return status === 'succeeded' ? 'good' : ['failed', 'timed_out', 'lost', 'cancelled', 'expired', 'refused'].includes(status) ? 'bad' : 'busy';
  }
  protected show(iso: string, zone: string): string {
    return inZone(new Date(iso), zone);
  }
  protected host(machineId: string): string {
    return this.ctx.machines().find((m) => m.id === machineId)?.hostname ?? machineId.slice(0, 8);
  }

  protected toggle(enabled: boolean): void {
    this.api.setEnabled(this.scheduleId(), enabled).subscribe({
      next: (s) => this.schedule.set(s),
      error: (err: unknown) => this.notify.error(err, enabled ? 'Could not resume' : 'Could not pause'),
    });
  }

  protected remove(): void {
    confirm(this.dialog, { title: 'Delete this schedule?', message: 'Its history goes with it; the executions it started stay.', confirmText: 'Delete', danger: true })
      .pipe(filter(Boolean), switchMap(() => this.api.delete(this.scheduleId())))
      .subscribe({
        next: () => void this.router.navigate(['/projects', this.ctx.projectId(), 'schedules']),
        error: (err: unknown) => this.notify.error(err, 'Could not delete the schedule'),
      });
  }
}
