import { Clipboard } from '@angular/cdk/clipboard';
import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialogModule } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { EnrolmentToken } from '@kapitan/shared';

/** The ready-to-paste command that enrols a machine with this token. */
export function enrolCommand(origin: string, token: string): string {
  return `kapitan-agent enrol --server ${origin} --token ${token}`;
}

/** Shows a new enrolment token, the only time it can be seen, with copy buttons. */
@Component({
  selector: 'app-token-created-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatDialogModule, MatButtonModule, MatIconModule, MatTooltipModule],
  template: `
    <h2 mat-dialog-title>Enrolment token created</h2>
    <mat-dialog-content>
      <div class="warning">
        <mat-icon>warning_amber</mat-icon>
        <span>Copy it now: this token is shown only once. Kapitan keeps only a hash of it.</span>
      </div>

      <div class="label">Token</div>
      <div class="copy-row">
        <code class="value" data-testid="enrolment-token-value">{{ token }}</code>
        <button matIconButton (click)="copy('token', token)" [matTooltip]="copied() === 'token' ? 'Copied' : 'Copy token'" data-testid="copy-token">
          <mat-icon>{{ copied() === 'token' ? 'check' : 'content_copy' }}</mat-icon>
        </button>
      </div>

      <div class="label">On the machine, run</div>
      <div class="copy-row">
        <code class="value command" data-testid="enrolment-command">{{ command }}</code>
        <button matIconButton (click)="copy('command', command)" [matTooltip]="copied() === 'command' ? 'Copied' : 'Copy command'" data-testid="copy-command">
          <mat-icon>{{ copied() === 'command' ? 'check' : 'content_copy' }}</mat-icon>
        </button>
      </div>
      <p class="muted hint">
        The agent dials out to this server and keeps one connection open; the machine needs no inbound port.
        @if (data.maxUses) {
          This token enrols at most {{ data.maxUses }} machine{{ data.maxUses === 1 ? '' : 's' }}.
        }
      </p>
    </mat-dialog-content>
    <mat-dialog-actions align="end">
      <button matButton="filled" mat-dialog-close data-testid="token-dialog-done">Done</button>
    </mat-dialog-actions>
  `,
  styles: `
    .warning {
      display: flex;
      gap: 8px;
      align-items: center;
      padding: 10px 12px;
      border-radius: 8px;
      background: var(--kp-warn-bg);
      color: var(--kp-warn);
      font: var(--mat-sys-body-medium);
      margin-bottom: 16px;
    }
    .label {
      font: var(--mat-sys-label-large);
      color: var(--mat-sys-on-surface-variant);
      margin: 12px 0 4px;
    }
    .hint {
      font: var(--mat-sys-body-small);
      margin-top: 16px;
    }
  `,
})
export class TokenCreatedDialog {
  protected readonly data = inject<EnrolmentToken>(MAT_DIALOG_DATA);
  private readonly clipboard = inject(Clipboard);

  protected readonly token = this.data.token ?? '';
  protected readonly command = enrolCommand(location.origin, this.token);
  protected readonly copied = signal<'token' | 'command' | null>(null);

  protected copy(which: 'token' | 'command', text: string): void {
    if (this.clipboard.copy(text)) {
      this.copied.set(which);
      setTimeout(() => this.copied.set(null), 2000);
    }
  }
}
