import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import {
  CreateSecretRequestSchema,
  SECRET_LIMITS,
  UpdateSecretRequestSchema,
  type Secret,
} from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { schemaDetails } from '../core/api/schema-errors';
import { SecretsApi } from './secrets-api';

export interface SecretDialogData {
  projectId: string;
  /** Set: rotate this secret (a new value, same name). Unset: a new secret. */
  name?: string;
}

/**
 * Add a secret or rotate one. The value field masks what is typed and the
 * browser is asked not to remember it; once sent, the value is dropped from
 * the form and the dashboard never sees it again.
 */
@Component({
  selector: 'app-secret-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatCheckboxModule,
    MatFormFieldModule,
    MatInputModule,
    MatProgressBarModule,
  ],
  template: `
    @if (busy()) {
      <mat-progress-bar mode="indeterminate" />
    }
    <h2 mat-dialog-title>{{ rotating ? 'Rotate ' + data.name : 'New secret' }}</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate autocomplete="off" data-testid="secret-form">
      <mat-dialog-content>
        <p class="muted intro">
          @if (rotating) {
            Runs started from now on get the new value. The old one is gone for good.
          } @else {
            Runs that name it get it as an environment variable; it is masked as *** in their output.
          }
        </p>
        @if (!rotating) {
          <mat-form-field class="full-width">
            <mat-label>Name</mat-label>
            <input matInput class="mono" formControlName="name" placeholder="DB_PASSWORD" spellcheck="false" data-testid="secret-name" />
            <mat-hint>The environment variable: A–Z, 0–9 and _</mat-hint>
            @if (form.controls.name.hasError('server')) {
              <mat-error>{{ form.controls.name.getError('server') }}</mat-error>
            }
          </mat-form-field>
        }
        @if (multiline()) {
          <mat-form-field class="full-width">
            <mat-label>Value</mat-label>
            <textarea
              matInput
              class="code concealed"
              rows="6"
              formControlName="value"
              spellcheck="false"
              autocomplete="off"
              data-testid="secret-value"
            ></textarea>
            <mat-hint>Each line is masked in output on its own</mat-hint>
            @if (form.controls.value.hasError('server')) {
              <mat-error>{{ form.controls.value.getError('server') }}</mat-error>
            }
          </mat-form-field>
        } @else {
          <mat-form-field class="full-width">
            <mat-label>Value</mat-label>
            <input matInput type="password" formControlName="value" autocomplete="new-password" spellcheck="false" data-testid="secret-value" />
            @if (tooShortToMask()) {
              <mat-hint class="warn" data-testid="secret-short-hint">
                Values under {{ limits.maskMinLength }} characters are not masked in output
              </mat-hint>
            } @else {
              <mat-hint>Shown to nobody after you save it, not even you</mat-hint>
            }
            @if (form.controls.value.hasError('server')) {
              <mat-error>{{ form.controls.value.getError('server') }}</mat-error>
            }
          </mat-form-field>
        }
        <mat-checkbox [checked]="multiline()" (change)="multiline.set($event.checked)" data-testid="secret-multiline">
          Multi-line value (a key file, a certificate)
        </mat-checkbox>
        @if (error(); as e) {
          <p class="error-text" role="alert">{{ e }}</p>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button matButton type="button" mat-dialog-close>Cancel</button>
        <button matButton="filled" type="submit" [disabled]="busy()" data-testid="secret-submit">
          {{ rotating ? 'Rotate' : 'Add secret' }}
        </button>
      </mat-dialog-actions>
    </form>
  `,
  styles: `
    .intro {
      margin-top: 0;
    }
    mat-dialog-content {
      min-width: min(480px, 80vw);
      display: flex;
      flex-direction: column;
      gap: 8px;
    }
    /* A textarea cannot be type=password; this hides what is typed where the browser supports it. */
    .concealed {
      -webkit-text-security: disc;
    }
    .warn {
      color: var(--kp-err);
    }
  `,
})
export class SecretDialog {
  private readonly api = inject(SecretsApi);
  private readonly ref = inject<MatDialogRef<SecretDialog, Secret>>(MatDialogRef);
  protected readonly data = inject<SecretDialogData>(MAT_DIALOG_DATA);
  protected readonly rotating = this.data.name !== undefined;

  protected readonly limits = SECRET_LIMITS;
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly multiline = signal(false);
  protected readonly form = inject(NonNullableFormBuilder).group({ name: [''], value: [''] });
  private readonly value = toSignal(this.form.controls.value.valueChanges, { initialValue: '' });
  protected readonly tooShortToMask = computed(() => {
    const v = this.value();
    return v.length > 0 && v.length < SECRET_LIMITS.maskMinLength;
  });

  protected submit(): void {
    this.error.set(null);
    const { name, value } = this.form.getRawValue();
    const parsed = this.rotating
      ? UpdateSecretRequestSchema.safeParse({ value })
      : CreateSecretRequestSchema.safeParse({ name: name.trim(), value });
    if (!parsed.success) {
      applyFieldErrors(this.form, schemaDetails(parsed.error.issues));
      return;
    }
    this.busy.set(true);
    const request = this.rotating
      ? this.api.rotate(this.data.projectId, this.data.name!, { value })
      : this.api.create(this.data.projectId, { name: name.trim(), value });
    request.subscribe({
      next: (secret) => {
        // Nothing of the value outlives the request in this page.
        this.form.reset({ name: '', value: '' });
        this.ref.close(secret);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details).length || !e.details.length) this.error.set(e.message);
      },
    });
  }
}
