import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSlideToggleModule } from '@angular/material/slide-toggle';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { RouterLink } from '@angular/router';
import type { Schedule } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { EmptyState } from '../core/ui/empty-state.component';
import { ProjectContext } from '../projects/project-context';
import { SchedulesApi } from './schedules-api';
import { inZone, occurrenceTone, timingText, viewerZone } from './schedule-timing';

/** A project's schedules: when each fires next and how its last occurrence went (a failure shows at a glance). */
@Component({
  selector: 'app-schedule-list-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [RouterLink, MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, MatSlideToggleModule, MatTooltipModule, EmptyState],
  styleUrl: './schedules.scss',
  template: `
    <div class="page">
      <section class="panel" data-testid="schedules">
        <div class="panel-toolbar">
          <span class="title">Schedules</span>
          <span class="spacer"></span>
          <button matIconButton (click)="schedules.reload()" matTooltip="Refresh" aria-label="Refresh schedules"><mat-icon>refresh</mat-icon></button>
          @if (ctx.canOperate()) {
            <a matButton="filled" routerLink="new" data-testid="new-schedule"><mat-icon>add</mat-icon>New schedule</a>
          }
        </div>
        @if (schedules.isLoading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        @if (loadError(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load the schedules">{{ e.message }}</app-empty-state>
        } @else if (rows().length) {
          <table mat-table [dataSource]="rows()" data-testid="schedules-table">
            <ng-container matColumnDef="name">
              <th mat-header-cell *matHeaderCellDef>Name</th>
              <td mat-cell *matCellDef="let s">
                <a [routerLink]="[s.id]" data-testid="schedule-link">{{ s.name }}</a>
              </td>
            </ng-container>
            <ng-container matColumnDef="timing">
              <th mat-header-cell *matHeaderCellDef>When</th>
              <td mat-cell *matCellDef="let s">{{ timing(s) }}</td>
            </ng-container>
            <ng-container matColumnDef="next">
              <th mat-header-cell *matHeaderCellDef>Next fire</th>
              <td mat-cell *matCellDef="let s" data-testid="schedule-next">
                @if (s.nextRunAt) {
                  {{ local(s.nextRunAt) }}
                } @else {
                  <span class="muted">{{ s.enabled ? 'none' : 'paused' }}</span>
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="last">
              <th mat-header-cell *matHeaderCellDef>Last occurrence</th>
              <td mat-cell *matCellDef="let s">
                @if (s.lastOccurrence; as o) {
                  <span class="status" [class]="'status ' + tone(o.status)" [attr.title]="o.reason ?? ''" data-testid="schedule-last-status">
                    @if (o.status === 'failed') {
                      <mat-icon inline>error</mat-icon>
                    }
                    {{ o.status }}
                  </span>
                  <span class="muted small"> {{ local(o.fireAt) }}</span>
                } @else {
                  <span class="muted">never fired</span>
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="enabled">
              <th mat-header-cell *matHeaderCellDef>Active</th>
              <td mat-cell *matCellDef="let s">
                <mat-slide-toggle [checked]="s.enabled" [disabled]="!ctx.canOperate()" (change)="toggle(s, $event.checked)" [attr.aria-label]="'Active: ' + s.name" data-testid="schedule-enabled" />
              </td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let s; columns: columns" [attr.data-schedule-id]="s.id" [class.failed-row]="s.lastOccurrence?.status === 'failed'"></tr>
          </table>
        } @else if (!schedules.isLoading()) {
          <app-empty-state icon="schedule" title="No schedules yet">Run a script on a cron expression or once at a set time.</app-empty-state>
        }
      </section>
    </div>
  `,
})
export class ScheduleListPage {
  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(SchedulesApi);
  private readonly notify = inject(Notify);
  protected readonly columns = ['name', 'timing', 'next', 'last', 'enabled'];
  private readonly zone = viewerZone();

  protected readonly schedules = rxResource({ params: () => this.ctx.projectId(), stream: ({ params }) => this.api.list(params) });
  protected readonly rows = computed<Schedule[]>(() => (this.schedules.hasValue() ? this.schedules.value() : []));
  protected readonly loadError = computed(() => (this.schedules.error() ? ApiError.from(this.schedules.error()) : null));

  protected timing = timingText;
  protected tone = occurrenceTone;
  protected local(iso: string): string {
    return inZone(new Date(iso), this.zone);
  }

  protected toggle(s: Schedule, enabled: boolean): void {
    this.api.setEnabled(s.id, enabled).subscribe({
      next: (updated) => this.schedules.update((list) => list?.map((x) => (x.id === updated.id ? updated : x))),
      error: (err: unknown) => {
        this.notify.error(err, enabled ? 'Could not resume' : 'Could not pause');
        this.schedules.reload();
      },
    });
  }
}
