import { ChangeDetectionStrategy, Component, effect, inject, signal } from '@angular/core';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { Router } from '@angular/router';
import { LIMITS, UpdateProjectRequestSchema } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { ProjectContext } from './project-context';
import { ProjectsApi } from './projects-api';
import { ProjectsStore } from './projects.store';

@Component({
  selector: 'app-project-settings-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, MatFormFieldModule, MatInputModule, MatButtonModule, MatIconModule],
  template: `
    <div class="page narrow">
      <section class="panel">
        <div class="panel-toolbar"><span class="title">General</span></div>
        <form class="panel-pad" [formGroup]="form" (ngSubmit)="save()" novalidate data-testid="project-settings-form">
          <mat-form-field class="full-width">
            <mat-label>Name</mat-label>
            <input matInput formControlName="name" [readonly]="!ctx.isOwner()" data-testid="settings-name" />
            @if (form.controls.name.hasError('server')) {
              <mat-error>{{ form.controls.name.getError('server') }}</mat-error>
            } @else {
              <mat-error>A name of 1 to {{ limits.nameMax }} characters</mat-error>
            }
          </mat-form-field>
          <mat-form-field class="full-width">
            <mat-label>Description</mat-label>
            <textarea matInput rows="3" formControlName="description" [readonly]="!ctx.isOwner()"></textarea>
            @if (form.controls.description.hasError('server')) {
              <mat-error>{{ form.controls.description.getError('server') }}</mat-error>
            }
          </mat-form-field>
          @if (ctx.isOwner()) {
            <div class="actions-row">
              <button matButton="filled" type="submit" [disabled]="saving() || form.pristine" data-testid="settings-save">
                Save changes
              </button>
            </div>
          }
        </form>
      </section>

      @if (ctx.isOwner()) {
        <section class="panel danger-zone">
          <div class="panel-toolbar"><span class="title">Danger zone</span></div>
          <div class="panel-pad row">
            <div>
              <div class="strong">Delete this project</div>
              <div class="muted">
                Its machines are revoked and disconnected, its tokens stop working, and its history is removed.
              </div>
            </div>
            <span class="spacer"></span>
            <button matButton="outlined" class="danger" (click)="remove()" [disabled]="deleting()" data-testid="delete-project">
              <mat-icon>delete_forever</mat-icon>
              Delete project
            </button>
          </div>
        </section>
      }
    </div>
  `,
  styles: `
    .narrow {
      max-width: 860px;
      display: flex;
      flex-direction: column;
      gap: 24px;
    }
    form {
      display: flex;
      flex-direction: column;
      gap: 12px;
    }
    .danger button {
      white-space: nowrap;
      flex-shrink: 0;
    }
    .actions-row {
      display: flex;
      justify-content: flex-end;
    }
    .row {
      display: flex;
      align-items: center;
      gap: 16px;
    }
    .spacer {
      flex: 1 1 auto;
    }
    .strong {
      font-weight: 500;
    }
    .danger-zone {
      border-color: color-mix(in srgb, var(--mat-sys-error) 40%, transparent);
    }
    .danger {
      --mat-button-outlined-label-text-color: var(--mat-sys-error);
      --mat-button-outlined-outline-color: var(--mat-sys-error);
    }
  `,
})
export class SettingsPage {
  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(ProjectsApi);
  private readonly store = inject(ProjectsStore);
  private readonly notify = inject(Notify);
  private readonly dialog = inject(MatDialog);
  private readonly router = inject(Router);

  protected readonly limits = LIMITS;
  protected readonly saving = signal(false);
  protected readonly deleting = signal(false);
  protected readonly form = inject(NonNullableFormBuilder).group({
    name: ['', [Validators.required, Validators.maxLength(LIMITS.nameMax)]],
    description: ['', [Validators.maxLength(LIMITS.descriptionMax)]],
  });

  constructor() {
    effect(() => {
      const p = this.ctx.project();
      if (p && this.form.pristine) this.form.reset({ name: p.name, description: p.description });
    });
  }

  protected save(): void {
    const parsed = UpdateProjectRequestSchema.safeParse(this.form.getRawValue());
    if (!parsed.success || this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    this.saving.set(true);
    this.api.update(this.ctx.projectId(), parsed.data).subscribe({
      next: (p) => {
        this.saving.set(false);
        this.ctx.setProject(p);
        this.store.upsert(p);
        this.form.reset({ name: p.name, description: p.description });
        this.notify.success('Project saved');
      },
      error: (err: unknown) => {
        this.saving.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details).length || !e.details.length) this.notify.error(e);
      },
    });
  }

  protected remove(): void {
    const p = this.ctx.project();
    if (!p) return;
    confirm(this.dialog, {
      title: 'Delete project?',
      message: `This deletes "${p.name}" for every member. It cannot be undone.`,
      confirmText: 'Delete project',
      danger: true,
      requireText: p.name,
    }).subscribe((ok) => {
      if (!ok) return;
      this.deleting.set(true);
      this.api.delete(p.id).subscribe({
        next: () => {
          this.store.remove(p.id);
          this.notify.success(`Project "${p.name}" deleted`);
          void this.router.navigate(['/projects']);
        },
        error: (err: unknown) => {
          this.deleting.set(false);
          this.notify.error(err, 'Could not delete the project');
        },
      });
    });
  }
}
