import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, effect, inject, signal, untracked } from '@angular/core';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { AUDIT_ACTIONS, AuditAction, AuditEvent, AuditFilter, AuditFilterSchema } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { EmptyState } from '../core/ui/empty-state.component';
import { ProjectContext } from '../projects/project-context';
import { AuditApi } from './audit-api';

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** `datetime-local` gives local wall time without a zone; the API wants an instant. */
function instant(local: string): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

/** A project's audit log, for owners: filter, page back through it, export it as JSON lines. */
@Component({
  selector: 'app-audit-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, DatePipe, MatButtonModule, MatFormFieldModule, MatIconModule, MatInputModule, MatProgressBarModule, MatSelectModule, MatTableModule, EmptyState],
  template: `
    <div class="page">
      <section class="panel" data-testid="audit">
        <div class="panel-toolbar">
          <span class="title">Audit log</span>
          <span class="spacer"></span>
          <button matButton="tonal" (click)="export()" [disabled]="exporting()" data-testid="audit-export">
            <mat-icon>download</mat-icon>
            Export JSON lines
          </button>
        </div>
        <form class="filters panel-pad" [formGroup]="form" (ngSubmit)="apply()" data-testid="audit-filters">
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Action</mat-label>
            <mat-select formControlName="action" data-testid="audit-filter-action">
              <mat-option value="">Any</mat-option>
              @for (a of actions; track a) {
                <mat-option [value]="a">{{ a }}</mat-option>
              }
            </mat-select>
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Actor id</mat-label>
            <input matInput formControlName="actor" placeholder="user, token or machine id" data-testid="audit-filter-actor" />
            @if (form.controls.actor.hasError('pattern')) {
              <mat-error>An id (UUID)</mat-error>
            }
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>Machine</mat-label>
            <mat-select formControlName="machine" data-testid="audit-filter-machine">
              <mat-option value="">Any</mat-option>
              @for (m of ctx.machines(); track m.id) {
                <mat-option [value]="m.id">{{ m.hostname }}</mat-option>
              }
            </mat-select>
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>From</mat-label>
            <input matInput type="datetime-local" formControlName="from" data-testid="audit-filter-from" />
          </mat-form-field>
          <mat-form-field subscriptSizing="dynamic">
            <mat-label>To</mat-label>
            <input matInput type="datetime-local" formControlName="to" data-testid="audit-filter-to" />
          </mat-form-field>
          <button matButton="filled" type="submit" [disabled]="form.invalid" data-testid="audit-apply">Apply</button>
          <button matButton type="button" (click)="reset()" data-testid="audit-reset">Clear</button>
        </form>
        @if (loading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        @if (error(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load the audit log">
            {{ e.message }}
            <div actions><button matButton="outlined" (click)="load(false)">Retry</button></div>
          </app-empty-state>
        } @else if (events().length) {
          <table mat-table [dataSource]="events()" data-testid="audit-table">
            <ng-container matColumnDef="at">
              <th mat-header-cell *matHeaderCellDef>When</th>
              <td mat-cell *matCellDef="let e" class="muted nowrap">{{ e.at | date: 'yyyy-MM-dd HH:mm:ss' }}</td>
            </ng-container>
            <ng-container matColumnDef="action">
              <th mat-header-cell *matHeaderCellDef>Action</th>
              <td mat-cell *matCellDef="let e"><code class="mono" data-testid="audit-action">{{ e.action }}</code></td>
            </ng-container>
            <ng-container matColumnDef="actor">
              <th mat-header-cell *matHeaderCellDef>Who</th>
              <td mat-cell *matCellDef="let e" data-testid="audit-actor">{{ actorLabel(e) }}</td>
            </ng-container>
            <ng-container matColumnDef="address">
              <th mat-header-cell *matHeaderCellDef>From</th>
              <td mat-cell *matCellDef="let e" class="muted mono">{{ e.address ?? '' }}</td>
            </ng-container>
            <ng-container matColumnDef="details">
              <th mat-header-cell *matHeaderCellDef>Details</th>
              <td mat-cell *matCellDef="let e" class="mono details">{{ detailsLabel(e) }}</td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let e; columns: columns" data-testid="audit-row" [attr.data-action]="e.action"></tr>
          </table>
          @if (cursor()) {
            <div class="panel-pad more">
              <button matButton="outlined" (click)="load(true)" [disabled]="loading()" data-testid="audit-more">Older events</button>
            </div>
          }
        } @else if (!loading()) {
          <app-empty-state icon="history" title="No events">Nothing recorded matches these filters.</app-empty-state>
        }
      </section>
    </div>
  `,
  styles: `
    .filters {
      display: flex;
      flex-wrap: wrap;
      gap: 12px;
      align-items: center;
      border-bottom: 1px solid var(--mat-sys-outline-variant);
    }
    .nowrap {
      white-space: nowrap;
    }
    .details {
      font-size: 12px;
      word-break: break-all;
    }
    .more {
      display: flex;
      justify-content: center;
    }
  `,
})
export class AuditPage {
  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(AuditApi);
  private readonly notify = inject(Notify);

  protected readonly actions = AUDIT_ACTIONS;
  protected readonly columns = ['at', 'action', 'actor', 'address', 'details'];
  protected readonly form = new FormGroup({
    action: new FormControl<AuditAction | ''>('', { nonNullable: true }),
    actor: new FormControl('', { nonNullable: true, validators: [Validators.pattern(UUID)] }),
    machine: new FormControl('', { nonNullable: true }),
    from: new FormControl('', { nonNullable: true }),
    to: new FormControl('', { nonNullable: true }),
  });
  /** The filter the table shows: what was last applied, not what is being typed. */
  private readonly applied = signal<AuditFilter>({});
  protected readonly events = signal<AuditEvent[]>([]);
  protected readonly cursor = signal<string | null>(null);
  protected readonly loading = signal(false);
  protected readonly exporting = signal(false);
  protected readonly error = signal<ApiError | null>(null);

  constructor() {
    effect(() => {
      if (this.ctx.projectId()) untracked(() => this.load(false));
    });
  }

  protected apply(): void {
    const v = this.form.getRawValue();
    // The shared schema is the contract; a filter it refuses never leaves the browser.
    const parsed = AuditFilterSchema.safeParse({
      action: v.action || undefined,
      actor: v.actor.trim() || undefined,
      machine: v.machine || undefined,
      from: instant(v.from),
      to: instant(v.to),
    });
    if (!parsed.success) {
      this.notify.error(parsed.error, 'Filter');
      return;
    }
    this.applied.set(parsed.data);
    this.load(false);
  }

  protected reset(): void {
    this.form.reset();
    this.applied.set({});
    this.load(false);
  }

  load(more: boolean): void {
    const projectId = this.ctx.projectId();
    if (!projectId) return;
    const cursor = more ? this.cursor() : null;
    this.loading.set(true);
    this.error.set(null);
    this.api.page(projectId, { ...this.applied(), ...(cursor ? { cursor } : {}) }).subscribe({
      next: (page) => {
        this.events.set(more ? [...this.events(), ...page.events] : page.events);
        this.cursor.set(page.nextCursor);
        this.loading.set(false);
      },
      error: (err: unknown) => {
        this.error.set(ApiError.from(err));
        this.loading.set(false);
      },
    });
  }

  protected export(): void {
    const projectId = this.ctx.projectId();
    this.exporting.set(true);
    this.api.export(projectId, this.applied()).subscribe({
      next: (blob) => {
        const url = URL.createObjectURL(blob);
        const a = document.createElement('a');
        a.href = url;
        a.download = `audit-${projectId}.ndjson`;
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 0);
        this.exporting.set(false);
      },
      error: (err: unknown) => {
        this.notify.error(err, 'Export');
        this.exporting.set(false);
      },
    });
  }

  protected actorLabel(e: AuditEvent): string {
    const a = e.actor;
    if (a.type === 'machine') return `machine ${this.ctx.machines().find((m) => m.id === a.machineId)?.hostname ?? a.machineId}`;
    if (a.type === 'api_token') return `${a.email ?? a.userId} (token ${a.tokenName ?? a.tokenId})`;
    if (a.type === 'anonymous') return 'anonymous';
    return a.email ?? a.userId ?? '';
  }

  protected detailsLabel(e: AuditEvent): string {
    return Object.entries(e.details)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
      .join(' ');
  }
}
