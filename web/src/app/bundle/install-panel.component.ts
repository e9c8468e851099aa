import { Clipboard } from '@angular/cdk/clipboard';
import { ChangeDetectionStrategy, Component, inject, input, output, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatIconModule } from '@angular/material/icon';
import { MatTooltipModule } from '@angular/material/tooltip';
import type { InstallLink } from '@kapitan/shared';
import { Notify } from '../core/api/notify.service';
import { Clock } from '../core/util/clock';
import { TimeAgoPipe } from '../core/util/pipes';
import { BundleApi } from './bundle-api';

/**
 * For owners: the two ways to put the agent on a client's machine (a zip to
 * hand over, a command to paste), each with a fresh enrolment token, and the
 * fingerprints the client can check the server by.
 */
@Component({
  selector: 'app-install-panel',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatButtonModule, MatIconModule, MatTooltipModule, TimeAgoPipe],
  template: `
    <section class="panel" data-testid="install-panel">
      <div class="panel-toolbar">
        <span class="title">Install the agent</span>
        <span class="spacer"></span>
        <button matButton="tonal" (click)="oneLine()" [disabled]="busy() === 'link'" data-testid="install-link-create">
          <mat-icon>terminal</mat-icon>
          One-line install
        </button>
        <button matButton="filled" (click)="download()" [disabled]="busy() === 'bundle'" data-testid="bundle-download">
          <mat-icon>download</mat-icon>
          Download bundle
        </button>
      </div>
      <div class="body">
        <p class="muted">
          The bundle is a zip with the agent (standalone, and for Node ≥ 20), install.sh, a systemd unit, an example policy and a
          fresh enrolment token for up to 10 machines, valid 7 days. The one-line command carries a token for one machine, valid
          one hour. Both are listed below among the enrolment tokens, where you can revoke them.
        </p>
        @if (link(); as l) {
          <div class="label">On the machine, as root, run (once, before {{ l.token.expiresAt! | timeAgo: clock.now() }})</div>
          <div class="copy-row">
            <code class="value" data-testid="install-command">{{ l.command }}</code>
            <button matIconButton (click)="copy(l.command)" [matTooltip]="copied() ? 'Copied' : 'Copy command'" data-testid="install-command-copy">
              <mat-icon>{{ copied() ? 'check' : 'content_copy' }}</mat-icon>
            </button>
          </div>
        }
        @if (tls.value(); as t) {
          @if (t.serving) {
            <div class="label">Server certificate SHA-256</div>
            <code class="mono fp" data-testid="tls-fingerprint">{{ t.serving.fingerprint256 }}</code>
          }
          @if (t.pins.length) {
            <div class="label">Pinned keys (SPKI SHA-256) the agents check</div>
            @for (p of t.pins; track p.spkiSha256) {
              <div><code class="mono fp" data-testid="tls-pin">{{ p.spkiSha256 }}</code> <span class="muted">{{ p.role }}</span></div>
            }
          }
          @if (!t.enabled) {
            <p class="muted" data-testid="tls-off">HTTPS is off on this server: agents would connect in the clear.</p>
          }
        }
      </div>
    </section>
  `,
  styles: `
    .body {
      padding: 0 16px 16px;
    }
    .label {
      font: var(--mat-sys-label-large);
      color: var(--mat-sys-on-surface-variant);
      margin: 12px 0 4px;
    }
    .fp {
      font-size: 12px;
      overflow-wrap: anywhere;
    }
  `,
})
export class InstallPanel {
  readonly projectId = input.required<string>();
  /** A token was made (the token list should show it). */
  readonly tokenMinted = output<void>();

  private readonly api = inject(BundleApi);
  private readonly notify = inject(Notify);
  private readonly clipboard = inject(Clipboard);
  protected readonly clock = inject(Clock);

  protected readonly busy = signal<'bundle' | 'link' | null>(null);
  protected readonly link = signal<InstallLink | null>(null);
  protected readonly copied = signal(false);
  protected readonly tls = rxResource({ stream: () => this.api.tls() });

  protected download(): void {
    this.busy.set('bundle');
    this.api.bundle(this.projectId()).subscribe({
      next: (res) => {
        this.busy.set(null);
        const name = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? 'kapitan-agent.zip';
        const url = URL.createObjectURL(res.body!);
        const a = document.createElement('a');
        a.href = url;
        a.download = name;
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
        this.tokenMinted.emit();
      },
      error: (err: unknown) => {
        this.busy.set(null);
        this.notify.error(err, 'Could not make the bundle');
      },
    });
  }

  protected oneLine(): void {
    this.busy.set('link');
    this.api.createInstallLink(this.projectId()).subscribe({
      next: (l) => {
        this.busy.set(null);
        this.link.set(l);
        this.tokenMinted.emit();
      },
      error: (err: unknown) => {
        this.busy.set(null);
        this.notify.error(err, 'Could not make the install command');
      },
    });
  }

  protected copy(text: string): void {
    if (this.clipboard.copy(text)) {
      this.copied.set(true);
      setTimeout(() => this.copied.set(false), 2000);
    }
  }
}
