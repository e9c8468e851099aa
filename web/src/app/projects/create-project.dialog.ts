import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialogModule, MatDialogRef } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { CreateProjectRequestSchema, LIMITS, type Project } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { schemaDetails } from '../core/api/schema-errors';
import { ProjectsApi } from './projects-api';

@Component({
  selector: 'app-create-project-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, MatDialogModule, MatButtonModule, MatFormFieldModule, MatInputModule, MatProgressBarModule],
  template: `
    @if (busy()) {
      <mat-progress-bar mode="indeterminate" />
    }
    <h2 mat-dialog-title>New project</h2>
    <form [formGroup]="form" (ngSubmit)="submit()" novalidate data-testid="create-project-form">
      <mat-dialog-content>
        <p class="muted intro">A project groups machines, the people who may act on them, and what runs there.</p>
        <mat-form-field class="full-width">
          <mat-label>Name</mat-label>
          <input matInput formControlName="name" cdkFocusInitial data-testid="project-name-input" required />
          @if (form.controls.name.hasError('server')) {
            <mat-error>{{ form.controls.name.getError('server') }}</mat-error>
          } @else {
            <mat-error>A name of 1 to {{ limits.nameMax }} characters</mat-error>
          }
        </mat-form-field>
        <mat-form-field class="full-width">
          <mat-label>Description (optional)</mat-label>
          <textarea matInput formControlName="description" rows="3" data-testid="project-description-input"></textarea>
          @if (form.controls.description.hasError('server')) {
            <mat-error>{{ form.controls.description.getError('server') }}</mat-error>
          }
        </mat-form-field>
        @if (error(); as e) {
          <p class="error-text" role="alert">{{ e }}</p>
        }
      </mat-dialog-content>
      <mat-dialog-actions align="end">
        <button matButton type="button" mat-dialog-close>Cancel</button>
        <button matButton="filled" type="submit" [disabled]="busy()" data-testid="create-project-submit">Create project</button>
      </mat-dialog-actions>
    </form>
  `,
  styles: `
    .intro {
      margin-top: 0;
    }
    mat-dialog-content {
      min-width: min(440px, 80vw);
    }
  `,
})
export class CreateProjectDialog {
  private readonly api = inject(ProjectsApi);
  private readonly ref = inject<MatDialogRef<CreateProjectDialog, Project>>(MatDialogRef);

  protected readonly limits = LIMITS;
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly form = inject(NonNullableFormBuilder).group({
    name: ['', [Validators.required, Validators.maxLength(LIMITS.nameMax)]],
    description: ['', [Validators.maxLength(LIMITS.descriptionMax)]],
  });

  protected submit(): void {
    this.error.set(null);
    const { name, description } = this.form.getRawValue();
    const parsed = CreateProjectRequestSchema.safeParse({ name, ...(description.trim() ? { description } : {}) });
    if (!parsed.success || this.form.invalid) {
      if (!parsed.success) {
        applyFieldErrors(this.form, schemaDetails(parsed.error.issues));
      }
      this.form.markAllAsTouched();
      return;
    }
    this.busy.set(true);
    this.api.create(parsed.data).subscribe({
      next: (p) => this.ref.close(p),
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details).length || !e.details.length) this.error.set(e.message);
      },
    });
  }
}
