import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MAT_DIALOG_DATA, MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { CreateEnrolmentTokenRequestSchema, LIMITS, type EnrolmentToken } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { schemaDetails } from '../core/api/schema-errors';
import { parseKeyValueLines } from '../core/util/key-value';
import { EnrolmentTokensApi } from './enrolment-tokens-api';

const EXPIRY: { label: string; hours: number | null }[] = [
  { label: '1 hour', hours: 1 },
  { label: '24 hours', hours: 24 },
  { label: '7 days', hours: 24 * 7 },
  { label: '30 days', hours: 24 * 30 },
  { label: 'Never', hours: null },
];

@Component({
  selector: 'app-create-token-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    MatDialogModule,
    MatButtonModule,
    MatCheckboxModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatProgressBarModule,
  ],
  template: `
    @if (busy()) {
      <mat-progress-bar mode="indeterminate" />
    }
    <h2 mat-dialog-title>New enrolment token</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate data-testid="create-token-form">
      <mat-dialog-content>
        <p class="muted intro">Agents exchange this token once for their own machine credential.</p>
        <div class="row">
          <mat-form-field>
            <mat-label>Expires after</mat-label>
            <mat-select formControlName="expiresInHours" data-testid="token-expiry">
              @for (e of expiry; track e.label) {
                <mat-option [value]="e.hours">{{ e.label }}</mat-option>
              }
            </mat-select>
            @if (form.controls.expiresInHours.hasError('server')) {
              <mat-error>{{ form.controls.expiresInHours.getError('server') }}</mat-error>
            }
          </mat-form-field>
          <mat-form-field>
            <mat-label>Max machines</mat-label>
            <input matInput type="number" min="1" [max]="limits.enrolmentMaxUses" formControlName="maxUses" placeholder="unlimited" data-testid="token-max-uses" />
            @if (form.controls.maxUses.hasError('server')) {
              <mat-error>{{ form.controls.maxUses.getError('server') }}</mat-error>
            } @else {
              <mat-error>1 to {{ limits.enrolmentMaxUses }}</mat-error>
            }
          </mat-form-field>
        </div>
        <mat-form-field class="full-width">
          <mat-label>Labels for enrolled machines (optional)</mat-label>
          <textarea matInput class="code" rows="3" formControlName="labels" placeholder="env=prod&#10;site=paris" data-testid="token-labels"></textarea>
          <mat-hint>One key=value per line</mat-hint>
          @if (form.controls.labels.hasError('server')) {
            <mat-error>{{ form.controls.labels.getError('server') }}</mat-error>
          }
        </mat-form-field>
        <mat-checkbox formControlName="allowAgentLabels" data-testid="token-allow-agent-labels">
          Let agents add their own labels (<code>enrol --label</code>)
        </mat-checkbox>
        <p class="muted hint">Never over the labels above: those always win.</p>
        @if (error(); as e) {
          <p class="error-text" role="alert">{{ e }}</p>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button matButton type="button" mat-dialog-close>Cancel</button>
        <button matButton="filled" type="submit" [disabled]="busy()" data-testid="create-token-submit">Create token</button>
      </mat-dialog-actions>
    </form>
  `,
  styles: `
    .intro {
      margin-top: 0;
    }
    .hint {
      margin: 0 0 0 40px;
      font-size: 12px;
    }
    .row {
      display: grid;
      grid-template-columns: 1fr 1fr;
      gap: 12px;
    }
    mat-dialog-content {
      min-width: min(480px, 80vw);
    }
  `,
})
export class CreateTokenDialog {
  private readonly api = inject(EnrolmentTokensApi);
  private readonly ref = inject<MatDialogRef<CreateTokenDialog, EnrolmentToken>>(MatDialogRef);
  private readonly projectId = inject<{ projectId: string }>(MAT_DIALOG_DATA).projectId;

  protected readonly limits = LIMITS;
  protected readonly expiry = EXPIRY;
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly form = inject(NonNullableFormBuilder).group({
    expiresInHours: [24 as number | null],
    maxUses: [null as number | null, [Validators.min(1), Validators.max(LIMITS.enrolmentMaxUses)]],
    labels: [''],
    allowAgentLabels: [false],
  });

  protected submit(): void {
    this.error.set(null);
    const v = this.form.getRawValue();
    const labels = parseKeyValueLines(v.labels, 'key=value');
    if (labels.errors.length) {
      this.form.controls.labels.setErrors({ server: labels.errors[0] });
      this.form.controls.labels.markAsTouched();
      return;
    }
    const body = {
      ...(v.expiresInHours !== null ? { expiresAt: new Date(Date.now() + v.expiresInHours * 3_600_000).toISOString() } : {}),
      ...(v.maxUses !== null ? { maxUses: v.maxUses } : {}),
      ...(Object.keys(labels.values).length ? { labels: labels.values } : {}),
      ...(v.allowAgentLabels ? { allowAgentLabels: true } : {}),
    };
    const parsed = CreateEnrolmentTokenRequestSchema.safeParse(body);
    if (!parsed.success) {
      applyFieldErrors(
        this.form,
        schemaDetails(parsed.error.issues),
        ALIASES,
      );
      return;
    }
    this.busy.set(true);
    this.api.create(this.projectId, parsed.data).subscribe({
      next: (t) => this.ref.close(t),
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details, ALIASES).length || !e.details.length) this.error.set(e.message);
      },
    });
  }
}

const ALIASES = { expiresAt: 'expiresInHours' };
