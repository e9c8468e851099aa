import { ChangeDetectionStrategy, Component, computed, inject, input, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { EnrolmentToken, EnrolmentTokenPurpose } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { LabelChips } from '../core/ui/label-chips.component';
import { Clock } from '../core/util/clock';
import { patchList } from '../core/util/resource';
import { TimeAgoPipe } from '../core/util/pipes';
import { CreateTokenDialog } from './create-token.dialog';
import { EnrolmentTokensApi } from './enrolment-tokens-api';
import { TokenCreatedDialog } from './token-created.dialog';

export type TokenState = 'active' | 'revoked' | 'expired' | 'used up';

export function tokenState(t: EnrolmentToken, now: number): TokenState {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return 'expired';
  if (t.maxUses !== null && t.uses >= t.maxUses) return 'used up';
  return 'active';
}

const PURPOSE_LABELS: Record<EnrolmentTokenPurpose, string> = { manual: 'made by hand', bundle: 'bundle', install: 'one-line install' };

/** The enrolment tokens of a project: create (shown once), list, revoke. */
@Component({
  selector: 'app-enrolment-tokens',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, MatTooltipModule, EmptyState, LabelChips, TimeAgoPipe],
  template: `
    <section class="panel" data-testid="enrolment-tokens">
      <div class="panel-toolbar">
        <span class="title">Enrolment tokens</span>
        <span class="spacer"></span>
        <button matIconButton (click)="tokens.reload()" matTooltip="Refresh" aria-label="Refresh tokens">
          <mat-icon>refresh</mat-icon>
        </button>
        <button matButton="tonal" (click)="create()" data-testid="new-enrolment-token">
          <mat-icon>key</mat-icon>
          New token
        </button>
      </div>
      @if (tokens.isLoading()) {
        <mat-progress-bar mode="indeterminate" />
      }
      @if (loadError(); as e) {
        <app-empty-state icon="cloud_off" title="Could not load the tokens">{{ e.message }}</app-empty-state>
      } @else if (rows().length) {
        <table mat-table [dataSource]="rows()">
          <ng-container matColumnDef="prefix">
            <th mat-header-cell *matHeaderCellDef>Token</th>
            <td mat-cell *matCellDef="let t"><code class="mono">{{ t.prefix }}…</code></td>
          </ng-container>
          <ng-container matColumnDef="purpose">
            <th mat-header-cell *matHeaderCellDef>For</th>
            <td mat-cell *matCellDef="let t" class="muted" data-testid="token-purpose">{{ purposeOf(t) }}</td>
          </ng-container>
          <ng-container matColumnDef="state">
            <th mat-header-cell *matHeaderCellDef>State</th>
            <td mat-cell *matCellDef="let t">
              <span class="state" [class]="'state state-' + stateOf(t).replace(' ', '-')">{{ stateOf(t) }}</span>
            </td>
          </ng-container>
          <ng-container matColumnDef="labels">
            <th mat-header-cell *matHeaderCellDef>Labels</th>
            <td mat-cell *matCellDef="let t"><app-label-chips [labels]="t.labels" /></td>
          </ng-container>
          <ng-container matColumnDef="uses">
            <th mat-header-cell *matHeaderCellDef>Used</th>
            <td mat-cell *matCellDef="let t">{{ t.uses }}{{ t.maxUses !== null ? ' / ' + t.maxUses : '' }}</td>
          </ng-container>
          <ng-container matColumnDef="expires">
            <th mat-header-cell *matHeaderCellDef>Expires</th>
            <td mat-cell *matCellDef="let t" class="muted">{{ t.expiresAt ? (t.expiresAt | timeAgo: clock.now()) : 'never' }}</td>
          </ng-container>
          <ng-container matColumnDef="created">
            <th mat-header-cell *matHeaderCellDef>Created</th>
            <td mat-cell *matCellDef="let t" class="muted">{{ t.createdAt | timeAgo: clock.now() }}</td>
          </ng-container>
          <ng-container matColumnDef="actions">
            <th mat-header-cell *matHeaderCellDef class="actions"></th>
            <td mat-cell *matCellDef="let t" class="actions">
              @if (!t.revokedAt) {
                <button
                  matIconButton
                  (click)="revoke(t)"
                  [disabled]="busy() === t.id"
                  matTooltip="Revoke token"
                  [attr.aria-label]="'Revoke token ' + t.prefix"
                  data-testid="revoke-token"
                >
                  <mat-icon>block</mat-icon>
                </button>
              }
            </td>
          </ng-container>
          <tr mat-header-row *matHeaderRowDef="columns"></tr>
          <tr
            mat-row
            *matRowDef="let t; columns: columns"
            data-testid="token-row"
            [attr.data-token-id]="t.id"
            [attr.data-state]="stateOf(t)"
          ></tr>
        </table>
      } @else if (tokens.hasValue()) {
        <app-empty-state icon="key" title="No enrolment tokens">
          Create a token, then run the enrol command it gives you on each machine.
        </app-empty-state>
      }
    </section>
  `,
  styles: `
    .state {
      font: var(--mat-sys-label-medium);
      padding: 2px 8px;
      border-radius: 10px;
      background: var(--kp-muted-bg);
      color: var(--kp-muted);
    }
    .state-active {
      background: var(--kp-ok-bg);
      color: var(--kp-ok);
    }
    .state-revoked {
      background: var(--kp-err-bg);
      color: var(--kp-err);
    }
  `,
})
export class EnrolmentTokens {
  readonly projectId = input.required<string>();

  private readonly api = inject(EnrolmentTokensApi);
  private readonly dialog = inject(MatDialog);
  private readonly notify = inject(Notify);
  protected readonly clock = inject(Clock);

  protected readonly columns = ['prefix', 'purpose', 'state', 'labels', 'uses', 'expires', 'created', 'actions'];
  protected readonly busy = signal<string | null>(null);
  protected readonly tokens = rxResource({
    params: () => this.projectId(),
    stream: ({ params }) => this.api.list(params),
  });
  protected readonly rows = computed<EnrolmentToken[]>(() =>
    this.tokens.hasValue() ? [...this.tokens.value()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)) : [],
  );
  protected readonly loadError = computed(() => {
    const e = this.tokens.error();
    return e ? ApiError.from(e) : null;
  });

  /** After another panel made a token (a bundle, a one-line install). */
  reload(): void {
    this.tokens.reload();
  }

  protected purposeOf(t: EnrolmentToken): string {
    return PURPOSE_LABELS[t.purpose] ?? t.purpose;
  }

  protected stateOf(t: EnrolmentToken): TokenState {
    return tokenState(t, this.clock.now());
  }

  create(): void {
    this.dialog
      .open<CreateTokenDialog, { projectId: string }, EnrolmentToken>(CreateTokenDialog, {
        data: { projectId: this.projectId() },
        width: '560px',
      })
      .afterClosed()
      .subscribe((t) => {
        if (!t) return;
        const { token: _secret, ...listed } = t;
        patchList(this.tokens, (list) => [listed, ...list]);
        this.dialog.open(TokenCreatedDialog, { data: t, width: '680px', disableClose: true });
      });
  }

  protected revoke(t: EnrolmentToken): void {
    confirm(this.dialog, {
      title: 'Revoke token?',
      message: `Token ${t.prefix}… will no longer enrol machines. Machines already enrolled with it keep working.`,
      confirmText: 'Revoke',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(t.id);
      this.api.revoke(this.projectId(), t.id).subscribe({
        next: () => {
          this.busy.set(null);
          this.notify.success('Token revoked');
          this.tokens.reload();
        },
        error: (err: unknown) => {
          this.busy.set(null);
          this.notify.error(err, 'Could not revoke the token');
        },
      });
    });
  }
}
