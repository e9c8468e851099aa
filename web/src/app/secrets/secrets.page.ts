import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { Secret } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { Clock } from '../core/util/clock';
import { patchList } from '../core/util/resource';
import { TimeAgoPipe } from '../core/util/pipes';
import { ProjectContext } from '../projects/project-context';
import { SecretDialog, type SecretDialogData } from './secret.dialog';
import { SecretsApi } from './secrets-api';

/** A project's secrets: every member sees the names; owners add, rotate and delete. No value is ever shown. */
@Component({
  selector: 'app-secrets-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, MatTooltipModule, EmptyState, TimeAgoPipe],
  template: `
    <div class="page">
      <section class="panel" data-testid="secrets">
        <div class="panel-toolbar">
          <span class="title">Secrets</span>
          <span class="spacer"></span>
          <button matIconButton (click)="secrets.reload()" matTooltip="Refresh" aria-label="Refresh secrets">
            <mat-icon>refresh</mat-icon>
          </button>
          @if (ctx.isOwner()) {
            <button matButton="tonal" (click)="add()" data-testid="new-secret">
              <mat-icon>add</mat-icon>
              New secret
            </button>
          }
        </div>
        @if (secrets.isLoading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        <p class="panel-pad muted help">
          A run that names a secret gets it as an environment variable, and the value is shown as *** in its output.
          Values are stored encrypted and never shown again, to anyone.
          @if (!ctx.isOwner()) {
            Only owners add, rotate or delete secrets.
          }
        </p>
        @if (loadError(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load the secrets">
            {{ e.message }}
            <div actions><button matButton="outlined" (click)="secrets.reload()">Retry</button></div>
          </app-empty-state>
        } @else if (rows().length) {
          <table mat-table [dataSource]="rows()" data-testid="secrets-table">
            <ng-container matColumnDef="name">
              <th mat-header-cell *matHeaderCellDef>Name</th>
              <td mat-cell *matCellDef="let s"><code class="mono">{{ s.name }}</code></td>
            </ng-container>
            <ng-container matColumnDef="value">
              <th mat-header-cell *matHeaderCellDef>Value</th>
              <td mat-cell *matCellDef="let s" class="muted" aria-label="hidden">••••••••</td>
            </ng-container>
            <ng-container matColumnDef="updated">
              <th mat-header-cell *matHeaderCellDef>Last set</th>
              <td mat-cell *matCellDef="let s" class="muted">
                {{ s.updatedAt | timeAgo: clock.now() }}
                @if (s.updatedBy) {
                  by {{ s.updatedBy.email }}
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="created">
              <th mat-header-cell *matHeaderCellDef>Created</th>
              <td mat-cell *matCellDef="let s" class="muted">
                {{ s.createdAt | timeAgo: clock.now() }}
                @if (s.createdBy) {
                  by {{ s.createdBy.email }}
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="actions">
              <th mat-header-cell *matHeaderCellDef class="actions"></th>
              <td mat-cell *matCellDef="let s" class="actions">
                @if (ctx.isOwner()) {
                  <button
                    matIconButton
                    (click)="rotate(s)"
                    [disabled]="busy() === s.name"
                    matTooltip="Rotate: set a new value"
                    [attr.aria-label]="'Rotate ' + s.name"
                    data-testid="rotate-secret"
                  >
                    <mat-icon>autorenew</mat-icon>
                  </button>
                  <button
                    matIconButton
                    (click)="remove(s)"
                    [disabled]="busy() === s.name"
                    matTooltip="Delete secret"
                    [attr.aria-label]="'Delete ' + s.name"
                    data-testid="delete-secret"
                  >
                    <mat-icon>delete</mat-icon>
                  </button>
                }
              </td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let s; columns: columns" data-testid="secret-row" [attr.data-name]="s.name"></tr>
          </table>
        } @else if (secrets.hasValue()) {
          <app-empty-state icon="key_off" title="No secrets">
            @if (ctx.isOwner()) {
              Add a password or a token here instead of writing it into a run's environment, where every member can read it.
            } @else {
              The owners of this project have not added any.
            }
          </app-empty-state>
        }
      </section>
    </div>
  `,
  styles: `
    .help {
      margin: 0;
      border-bottom: 1px solid var(--mat-sys-outline-variant);
    }
  `,
})
export class SecretsPage {
  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(SecretsApi);
  private readonly dialog = inject(MatDialog);
  private readonly notify = inject(Notify);

  protected readonly columns = ['name', 'value', 'updated', 'created', 'actions'];
  protected readonly busy = signal<string | null>(null);
  protected readonly secrets = rxResource({
    params: () => this.ctx.projectId() || undefined,
    stream: ({ params }) => this.api.list(params),
  });
  protected readonly rows = computed<Secret[]>(() => (this.secrets.hasValue() ? this.secrets.value() : []));
  protected readonly loadError = computed(() => {
    const e = this.secrets.error();
    return e ? ApiError.from(e) : null;
  });

  protected add(): void {
    this.openDialog({ projectId: this.ctx.projectId() }, (s) => {
      patchList(this.secrets, (list) => [...list.filter((x) => x.name !== s.name), s].sort((a, b) => a.name.localeCompare(b.name)));
      this.notify.success(`Secret ${s.name} added`);
    });
  }

  protected rotate(s: Secret): void {
    this.openDialog({ projectId: this.ctx.projectId(), name: s.name }, (updated) => {
      patchList(this.secrets, (list) => list.map((x) => (x.name === updated.name ? updated : x)));
      this.notify.success(`Secret ${updated.name} rotated`);
    });
  }

  protected remove(s: Secret): void {
    confirm(this.dialog, {
      title: `Delete ${s.name}?`,
      message: 'Runs and schedules that name it will be refused until a secret of that name exists again. The value cannot be recovered.',
      confirmText: 'Delete',
      danger: true,
      requireText: s.name,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(s.name);
      this.api.delete(this.ctx.projectId(), s.name).subscribe({
        next: () => {
          this.busy.set(null);
          patchList(this.secrets, (list) => list.filter((x) => x.name !== s.name));
          this.notify.success(`Secret ${s.name} deleted`);
        },
        error: (err: unknown) => {
          this.busy.set(null);
          this.notify.error(err, 'Could not delete the secret');
          this.secrets.reload();
        },
      });
    });
  }

  private openDialog(data: SecretDialogData, done: (s: Secret) => void): void {
    this.dialog
      .open<SecretDialog, SecretDialogData, Secret>(SecretDialog, { data, width: '560px' })
      .afterClosed()
      .subscribe((s) => {
        if (s) done(s);
      });
  }
}
