import { Clipboard } from '@angular/cdk/clipboard';
import { DatePipe } from '@angular/common';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatButtonToggleModule } from '@angular/material/button-toggle';
import { MatIconModule } from '@angular/material/icon';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { Invitation, SignupMode } from '@kapitan/shared';
import { Notify } from '../core/api/notify.service';
import { AdminApi } from './admin-api';

/** Instance settings (who may sign up) and sign-up invitations: create → copy the link, list, revoke. */
@Component({
  selector: 'app-admin-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [DatePipe, MatButtonModule, MatButtonToggleModule, MatIconModule, MatTableModule, MatTooltipModule],
  templateUrl: './admin.page.html',
  styleUrl: './admin.page.scss',
})
export class AdminPage {
  private readonly api = inject(AdminApi);
  private readonly notify = inject(Notify);
  private readonly clipboard = inject(Clipboard);

  protected readonly settings = rxResource({ stream: () => this.api.settings() });
  protected readonly invitations = rxResource({ stream: () => this.api.invitations() });
  protected readonly readOnly = computed(() => this.settings.value()?.signupModeSource === 'env');
  /** The link of the invitation just made: shown once, like the token it carries. */
  protected readonly created = signal<{ id: string; link: string } | null>(null);
  protected readonly copied = signal(false);
  protected readonly busy = signal(false);
  protected readonly columns = ['prefix', 'status', 'created', 'expires', 'actions'];

  protected setMode(signupMode: SignupMode): void {
    this.api.updateSettings({ signupMode }).subscribe({
      next: (s) => {
        this.settings.set(s);
        this.notify.success(signupMode === 'open' ? 'Anyone can sign up now' : 'Sign-up is by invitation now');
      },
      error: (err: unknown) => {
        this.notify.error(err);
        this.settings.reload();
      },
    });
  }

  protected invite(): void {
    this.busy.set(true);
    this.api.createInvitation({}).subscribe({
      next: (inv) => {
        this.busy.set(false);
        this.copied.set(false);
        this.created.set({ id: inv.id, link: new URL(inv.url ?? '', window.location.origin).toString() });
        this.invitations.reload();
      },
      error: (err: unknown) => {
        this.busy.set(false);
        this.notify.error(err);
      },
    });
  }

  protected copy(link: string): void {
    this.copied.set(this.clipboard.copy(link));
  }

  protected revoke(inv: Invitation): void {
    this.api.revokeInvitation(inv.id).subscribe({
      next: () => {
        if (this.created()?.id === inv.id) this.created.set(null);
        this.invitations.reload();
        this.notify.success(`Invitation ${inv.prefix}… revoked`);
      },
      error: (err: unknown) => this.notify.error(err),
    });
  }
}
