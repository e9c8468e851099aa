import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { ApiToken } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { RoleBadge } from '../core/ui/role-badge.component';
import { Clock } from '../core/util/clock';
import { TimeAgoPipe } from '../core/util/pipes';
import { patchList } from '../core/util/resource';
import { CreateApiTokenDialog } from './create-api-token.dialog';
import { TokensApi } from './tokens-api';

/** The user's API tokens for scripts and CI: list, create (value shown once), revoke. */
@Component({
  selector: 'app-tokens-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, MatTooltipModule, EmptyState, RoleBadge, TimeAgoPipe, DatePipe],
  template: `
    <div class="page">
      <section class="panel" data-testid="api-tokens">
        <div class="panel-toolbar">
          <span class="title">API tokens</span>
          <span class="spacer"></span>
          <button matIconButton (click)="tokens.reload()" matTooltip="Refresh" aria-label="Refresh API tokens">
            <mat-icon>refresh</mat-icon>
          </button>
          <button matButton="tonal" (click)="create()" data-testid="new-api-token">
            <mat-icon>add</mat-icon>
            New token
          </button>
        </div>
        @if (tokens.isLoading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        <p class="panel-pad muted help">
          For scripts and CI: send a token as <code>Authorization: Bearer …</code>. Each acts in one project, with at most its
          role and never more than you hold there now. Tokens cannot manage tokens, members or sessions.
        </p>
        @if (loadError(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load your API tokens">
            {{ e.message }}
            <div actions><button matButton="outlined" (click)="tokens.reload()">Retry</button></div>
          </app-empty-state>
        } @else if (rows().length) {
          <table mat-table [dataSource]="rows()" data-testid="api-tokens-table">
            <ng-container matColumnDef="name">
              <th mat-header-cell *matHeaderCellDef>Name</th>
              <td mat-cell *matCellDef="let t">{{ t.name }}</td>
            </ng-container>
            <ng-container matColumnDef="project">
              <th mat-header-cell *matHeaderCellDef>Project</th>
              <td mat-cell *matCellDef="let t" [class.muted]="!t.projectName">{{ t.projectName ?? 'no longer yours' }}</td>
            </ng-container>
            <ng-container matColumnDef="role">
              <th mat-header-cell *matHeaderCellDef>Role</th>
              <td mat-cell *matCellDef="let t"><app-role-badge [role]="t.role" /></td>
            </ng-container>
            <ng-container matColumnDef="created">
              <th mat-header-cell *matHeaderCellDef>Created</th>
              <td mat-cell *matCellDef="let t" class="muted">{{ t.createdAt | timeAgo: clock.now() }}</td>
            </ng-container>
            <ng-container matColumnDef="lastUsed">
              <th mat-header-cell *matHeaderCellDef>Last used</th>
              <td mat-cell *matCellDef="let t" class="muted">{{ t.lastUsedAt ? (t.lastUsedAt | timeAgo: clock.now()) : 'never' }}</td>
            </ng-container>
            <ng-container matColumnDef="expires">
              <th mat-header-cell *matHeaderCellDef>Expires</th>
              <td mat-cell *matCellDef="let t" [class.expired]="expired(t)" class="muted">
                @if (!t.expiresAt) {
                  never
                } @else if (expired(t)) {
                  expired
                } @else {
                  {{ t.expiresAt | date: 'mediumDate' }}
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="actions">
              <th mat-header-cell *matHeaderCellDef class="actions"></th>
              <td mat-cell *matCellDef="let t" class="actions">
                <button
                  matIconButton
                  (click)="revoke(t)"
                  [disabled]="busy() === t.id"
                  matTooltip="Revoke token"
                  [attr.aria-label]="'Revoke ' + t.name"
                  data-testid="revoke-api-token"
                >
                  <mat-icon>delete</mat-icon>
                </button>
              </td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let t; columns: columns" data-testid="api-token-row" [attr.data-id]="t.id"></tr>
          </table>
        } @else if (tokens.hasValue()) {
          <app-empty-state icon="vpn_key_off" title="No API tokens">
            Create one to drive Kapitan from a script or a CI job instead of a browser.
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
    .expired {
      color: var(--kp-err);
    }
  `,
})
export class TokensPage {
  protected readonly clock = inject(Clock);
  private readonly api = inject(TokensApi);
  private readonly dialog = inject(MatDialog);
  private readonly notify = inject(Notify);

  protected readonly columns = ['name', 'project', 'role', 'created', 'lastUsed', 'expires', 'actions'];
  protected readonly busy = signal<string | null>(null);
  protected readonly tokens = rxResource({ stream: () => this.api.list() });
  protected readonly rows = computed<ApiToken[]>(() => (this.tokens.hasValue() ? this.tokens.value() : []));
  protected readonly loadError = computed(() => {
    const e = this.tokens.error();
    return e ? ApiError.from(e) : null;
  });

  protected expired(t: ApiToken): boolean {
    return t.expiresAt !== null && Date.parse(t.expiresAt) <= this.clock.now();
  }

  protected create(): void {
    this.dialog
      .open<CreateApiTokenDialog, void, ApiToken>(CreateApiTokenDialog, { width: '560px' })
      .afterClosed()
      .subscribe((t) => {
        if (!t) return;
        patchList(this.tokens, (list) => [t, ...list.filter((x) => x.id !== t.id)]);
        this.notify.success(`API token ${t.name} created`);
      });
  }

  protected revoke(t: ApiToken): void {
    confirm(this.dialog, {
      title: `Revoke ${t.name}?`,
      message: 'Anything still using it is refused from the next request on. This cannot be undone.',
      confirmText: 'Revoke',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(t.id);
      this.api.revoke(t.id).subscribe({
        next: () => {
          this.busy.set(null);
          patchList(this.tokens, (list) => list.filter((x) => x.id !== t.id));
          this.notify.success(`API token ${t.name} revoked`);
        },
        error: (err: unknown) => {
          this.busy.set(null);
          this.notify.error(err, 'Could not revoke the token');
          this.tokens.reload();
        },
      });
    });
  }
}
