import { Clipboard } from '@angular/cdk/clipboard';
import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { MatTooltipModule } from '@angular/material/tooltip';
import { CreateApiTokenRequestSchema, ROLE_RANK, type ApiToken, type CreatedApiToken, type ProjectRole } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { schemaDetails } from '../core/api/schema-errors';
import { ProjectsStore } from '../projects/projects.store';
import { TokensApi } from './tokens-api';

const ROLES: ProjectRole[] = ['viewer', 'operator', 'owner'];
/** Lifetimes offered; "never" leaves it to revocation. */
const EXPIRY_DAYS = [7, 30, 90, 365] as const;

/**
 * Mint an API token, then show it: the only time it can be seen. The role
 * list offers only what the user holds in the chosen project (the server
 * refuses more anyway). Closes with the token as the list shows it, without
 * its value, which lives only as long as this dialog.
 */
@Component({
  selector: 'app-create-api-token-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatFormFieldModule,
    MatIconModule,
    MatInputModule,
    MatProgressBarModule,
    MatSelectModule,
    MatTooltipModule,
  ],
  template: `
    @if (busy()) {
      <mat-progress-bar mode="indeterminate" />
    }
    @if (created(); as c) {
      <h2 mat-dialog-title>API token created</h2>
      <mat-dialog-content>
        <div class="warning">
          <mat-icon>warning_amber</mat-icon>
          <span>Copy it now: this token is shown only once. Kapitan keeps only a hash of it.</span>
        </div>
        <div class="copy-row">
          <code class="value" data-testid="api-token-value">{{ c.token }}</code>
          <button matIconButton (click)="copy(c.token)" [matTooltip]="copied() ? 'Copied' : 'Copy token'" aria-label="Copy token" data-testid="copy-api-token">
            <mat-icon>{{ copied() ? 'check' : 'content_copy' }}</mat-icon>
          </button>
        </div>
        <p class="muted hint">
          Send it as <code>Authorization: Bearer …</code>. It acts in {{ c.projectName }} as {{ c.role }} at most, and never
          beyond what you can do there yourself.
        </p>
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button matButton="filled" (click)="done()" data-testid="api-token-done">Done</button>
      </mat-dialog-actions>
    } @else {
      <h2 mat-dialog-title>New API token</h2>
      <form [formGroup]="form" (ngSubmit)="submit()" novalidate autocomplete="off" data-testid="api-token-form">
        <mat-dialog-content>
          <mat-form-field class="full-width">
            <mat-label>Name</mat-label>
            <input matInput formControlName="name" placeholder="CI deploy" data-testid="api-token-name" />
            <mat-hint>What uses it, so you know what breaks when you revoke it</mat-hint>
            @if (form.controls.name.hasError('server')) {
              <mat-error>{{ form.controls.name.getError('server') }}</mat-error>
            }
          </mat-form-field>
          <mat-form-field class="full-width">
            <mat-label>Project</mat-label>
            <mat-select formControlName="projectId" data-testid="api-token-project">
              @for (p of store.projects(); track p.id) {
                <mat-option [value]="p.id">{{ p.name }}</mat-option>
              }
            </mat-select>
            @if (form.controls.projectId.hasError('server')) {
              <mat-error>{{ form.controls.projectId.getError('server') }}</mat-error>
            }
          </mat-form-field>
          <mat-form-field class="full-width">
            <mat-label>Role</mat-label>
            <mat-select formControlName="role" data-testid="api-token-role">
              @for (r of roles(); track r) {
                <mat-option [value]="r">{{ r }}</mat-option>
              }
            </mat-select>
            <mat-hint>viewer reads; operator also runs scripts; owner also changes the project</mat-hint>
            @if (form.controls.role.hasError('server')) {
              <mat-error>{{ form.controls.role.getError('server') }}</mat-error>
            }
          </mat-form-field>
          <mat-form-field class="full-width">
            <mat-label>Expires</mat-label>
            <mat-select formControlName="expiresInDays" data-testid="api-token-expiry">
              <mat-option [value]="0">Never (until revoked)</mat-option>
              @for (d of expiryDays; track d) {
                <mat-option [value]="d">In {{ d }} days</mat-option>
              }
            </mat-select>
          </mat-form-field>
          @if (error(); as e) {
            <p class="error-text" role="alert">{{ e }}</p>
          }
        </mat-dialog-content>
        <mat-dialog-actions align="end">
          <button matButton type="button" mat-dialog-close>Cancel</button>
          <button matButton="filled" type="submit" [disabled]="busy()" data-testid="api-token-submit">Create token</button>
        </mat-dialog-actions>
      </form>
    }
  `,
  styles: `
    mat-dialog-content {
      min-width: min(480px, 80vw);
      display: flex;
      flex-direction: column;
      gap: 8px;
    }
    .warning {
      display: flex;
      gap: 8px;
      align-items: center;
      padding: 10px 12px;
      border-radius: 8px;
      background: var(--kp-warn-bg);
      color: var(--kp-warn);
      font: var(--mat-sys-body-medium);
    }
    .hint {
      font: var(--mat-sys-body-small);
    }
  `,
})
export class CreateApiTokenDialog {
  private readonly api = inject(TokensApi);
  private readonly clipboard = inject(Clipboard);
  private readonly ref = inject<MatDialogRef<CreateApiTokenDialog, ApiToken>>(MatDialogRef);
  protected readonly store = inject(ProjectsStore);

  protected readonly expiryDays = EXPIRY_DAYS;
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly created = signal<CreatedApiToken | null>(null);
  protected readonly copied = signal(false);
  protected readonly form = inject(NonNullableFormBuilder).group({
    name: [''],
    projectId: [this.store.projects()[0]?.id ?? ''],
    role: ['viewer' as ProjectRole],
    expiresInDays: [90],
  });
  private readonly projectId = toSignal(this.form.controls.projectId.valueChanges, { initialValue: this.form.controls.projectId.value });
  /** The roles up to the user's own in the chosen project. */
  protected readonly roles = computed(() => {
    const mine = this.store.projects().find((p) => p.id === this.projectId())?.role ?? 'viewer';
    return ROLES.filter((r) => ROLE_RANK[r] <= ROLE_RANK[mine]);
  });

  protected submit(): void {
    this.error.set(null);
    const { name, projectId, role, expiresInDays } = this.form.getRawValue();
    const body = {
      name: name.trim(),
      projectId,
      role,
      ...(expiresInDays ? { expiresAt: new Date(Date.now() + expiresInDays * 86_400_000).toISOString() } : {}),
    };
    const parsed = CreateApiTokenRequestSchema.safeParse(body);
    if (!parsed.success) {
      applyFieldErrors(this.form, schemaDetails(parsed.error.issues));
      return;
    }
    this.busy.set(true);
    this.api.create(parsed.data).subscribe({
      next: (token) => {
        this.busy.set(false);
        // Escape or a click outside would lose the value before it is copied.
        this.ref.disableClose = true;
        this.created.set(token);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details).length || !e.details.length) this.error.set(e.message);
      },
    });
  }

  protected copy(text: string): void {
    if (this.clipboard.copy(text)) {
      this.copied.set(true);
      setTimeout(() => this.copied.set(false), 2000);
    }
  }

  protected done(): void {
    const c = this.created();
    this.created.set(null);
    if (!c) return this.ref.close();
    const { token: _value, ...listed } = c;
    this.ref.close(listed);
  }
}
