import { ChangeDetectionStrategy, Component, computed, inject, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { Router } from '@angular/router';
import { AddMemberRequestSchema, LIMITS, ProjectRoleSchema, type Member, type ProjectRole } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { AuthService } from '../core/auth/auth.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { RoleBadge } from '../core/ui/role-badge.component';
import { Clock } from '../core/util/clock';
import { patchList } from '../core/util/resource';
import { TimeAgoPipe } from '../core/util/pipes';
import { ProjectContext } from './project-context';
import { ProjectsApi } from './projects-api';
import { ProjectsStore } from './projects.store';

const ROLE_HELP: Record<ProjectRole, string> = {
  owner: 'Manages members and settings, can delete the project',
  operator: 'Runs scripts, enrols and manages machines',
  viewer: 'Sees machines, executions and their output',
};

@Component({
  selector: 'app-members-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    MatTableModule,
    MatButtonModule,
    MatIconModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatProgressBarModule,
    MatTooltipModule,
    RoleBadge,
    EmptyState,
    TimeAgoPipe,
  ],
  templateUrl: './members.page.html',
  styles: `
    .add-form {
      display: flex;
      gap: 12px;
      align-items: flex-start;
      flex-wrap: wrap;
      padding: 16px 20px 4px;
      border-bottom: 1px solid var(--mat-sys-outline-variant);
    }
    .add-form .email {
      flex: 1 1 280px;
    }
    .add-form .role {
      width: 160px;
    }
    .add-form button {
      margin-top: 4px;
      height: 48px;
    }
    .who .name {
      font-weight: 500;
    }
    .who .email {
      font: var(--mat-sys-body-small);
      color: var(--mat-sys-on-surface-variant);
    }
    .role-select {
      width: 140px;
    }
    .you {
      margin-left: 6px;
      font: var(--mat-sys-label-small);
      color: var(--mat-sys-primary);
    }
    .role-help {
      font: var(--mat-sys-body-small);
      color: var(--mat-sys-on-surface-variant);
    }
  `,
})
export class MembersPage {
  protected readonly ctx = inject(ProjectContext);
  protected readonly auth = inject(AuthService);
  protected readonly clock = inject(Clock);
  private readonly api = inject(ProjectsApi);
  private readonly store = inject(ProjectsStore);
  private readonly notify = inject(Notify);
  private readonly dialog = inject(MatDialog);
  private readonly router = inject(Router);

  protected readonly roles = ProjectRoleSchema.options;
  protected readonly roleHelp = ROLE_HELP;
  protected readonly adding = signal(false);
  protected readonly busyMember = signal<string | null>(null);

  protected readonly members = rxResource({
    params: () => this.ctx.projectId() || undefined,
    stream: ({ params }) => this.api.members(params),
  });
  protected readonly rows = computed<Member[]>(() =>
    this.members.hasValue()
      ? [...this.members.value()].sort((a, b) => a.role.localeCompare(b.role) || a.email.localeCompare(b.email))
      : [],
  );
  protected readonly loadError = computed(() => {
    const e = this.members.error();
    return e ? ApiError.from(e) : null;
  });
  protected readonly columns = ['who', 'role', 'since', 'actions'];

  protected readonly form = inject(NonNullableFormBuilder).group({
    email: ['', [Validators.required, Validators.email, Validators.maxLength(LIMITS.emailMax)]],
    role: ['operator' as ProjectRole, [Validators.required]],
  });

  protected add(): void {
    const parsed = AddMemberRequestSchema.safeParse(this.form.getRawValue());
    if (!parsed.success || this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    this.adding.set(true);
    this.api.addMember(this.ctx.projectId(), parsed.data).subscribe({
      next: (m) => {
        this.adding.set(false);
        // The answer does not say whether the e-mail has an account (no enumeration): reload the list.
        this.members.reload();
        this.form.reset({ email: '', role: this.form.controls.role.value });
        this.notify.success(`${m.email} added as ${m.role} (or invited, if they have no account yet)`);
      },
      error: (err: unknown) => {
        this.adding.set(false);
        const e = ApiError.from(err);
        if (applyFieldErrors(this.form, e.details).length || !e.details.length) this.notify.error(e);
      },
    });
  }

  protected changeRole(m: Member, role: ProjectRole): void {
    if (role === m.role) return;
    this.busyMember.set(m.userId);
    this.api.updateMember(this.ctx.projectId(), m.userId, { role }).subscribe({
      next: (updated) => {
        this.busyMember.set(null);
        patchList(this.members, (list) => list.map((x) => (x.userId === updated.userId ? updated : x)));
        this.notify.success(`${updated.email} is now ${updated.role}`);
        if (updated.userId === this.auth.user()?.id) this.ctx.projectResource.reload();
      },
      error: (err: unknown) => {
        this.busyMember.set(null);
        this.notify.error(err, 'Could not change the role');
        this.members.reload(); // put the select back
      },
    });
  }

  protected remove(m: Member): void {
    const self = m.userId === this.auth.user()?.id;
    confirm(this.dialog, {
      title: self ? 'Leave project?' : 'Remove member?',
      message: self
        ? `You will lose access to ${this.ctx.project()?.name ?? 'this project'}.`
        : `${m.email} will lose access to this project at once.`,
      confirmText: self ? 'Leave' : 'Remove',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busyMember.set(m.userId);
      this.api.removeMember(this.ctx.projectId(), m.userId).subscribe({
        next: () => {
          this.busyMember.set(null);
          if (self) {
            this.store.remove(this.ctx.projectId());
            void this.router.navigate(['/projects']);
            return;
          }
          patchList(this.members, (list) => list.filter((x) => x.userId !== m.userId));
          this.notify.success(`${m.email} removed`);
        },
        error: (err: unknown) => {
          this.busyMember.set(null);
          this.notify.error(err, 'Could not remove the member');
        },
      });
    });
  }

  protected isSelf(m: Member): boolean {
    return m.userId === this.auth.user()?.id;
  }
}
