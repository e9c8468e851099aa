import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { Router } from '@angular/router';
import type { Project } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { EmptyState } from '../core/ui/empty-state.component';
import { RoleBadge } from '../core/ui/role-badge.component';
import { Clock } from '../core/util/clock';
import { TimeAgoPipe } from '../core/util/pipes';
import { CreateProjectDialog } from './create-project.dialog';
import { ProjectsStore } from './projects.store';

@Component({
  selector: 'app-project-list-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatTableModule, MatButtonModule, MatIconModule, MatProgressBarModule, RoleBadge, EmptyState, TimeAgoPipe],
  template: `
    <div class="page">
      <div class="page-header">
        <h1>Projects</h1>
        <span class="spacer"></span>
        <button matButton="filled" (click)="create()" data-testid="new-project">
          <mat-icon>add</mat-icon>
          New project
        </button>
      </div>

      <div class="panel">
        @if (store.loading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        @if (error(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load your projects">
            {{ e.message }}
            <div actions><button matButton="outlined" (click)="store.reload()">Retry</button></div>
          </app-empty-state>
        } @else if (store.resource.hasValue() && store.projects().length === 0) {
          <app-empty-state icon="rocket_launch" title="No projects yet">
            Create a project, enrol a machine with its token, then run scripts on it and watch the output live.
            <div actions>
              <button matButton="filled" (click)="create()" data-testid="new-project-empty">
                <mat-icon>add</mat-icon>
                Create your first project
              </button>
            </div>
          </app-empty-state>
        } @else if (store.projects().length) {
          <table mat-table [dataSource]="store.projects()" [trackBy]="trackById" data-testid="projects-table">
            <ng-container matColumnDef="name">
              <th mat-header-cell *matHeaderCellDef>Name</th>
              <td mat-cell *matCellDef="let p">
                <div class="name">{{ p.name }}</div>
              </td>
            </ng-container>
            <ng-container matColumnDef="description">
              <th mat-header-cell *matHeaderCellDef>Description</th>
              <td mat-cell *matCellDef="let p" class="desc muted">{{ p.description || '—' }}</td>
            </ng-container>
            <ng-container matColumnDef="role">
              <th mat-header-cell *matHeaderCellDef>Your role</th>
              <td mat-cell *matCellDef="let p"><app-role-badge [role]="p.role" /></td>
            </ng-container>
            <ng-container matColumnDef="created">
              <th mat-header-cell *matHeaderCellDef>Created</th>
              <td mat-cell *matCellDef="let p" class="muted">{{ p.createdAt | timeAgo: clock.now() }}</td>
            </ng-container>
            <ng-container matColumnDef="open">
              <th mat-header-cell *matHeaderCellDef class="actions"></th>
              <td mat-cell *matCellDef="let p" class="actions"><mat-icon class="muted">chevron_right</mat-icon></td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr
              mat-row
              *matRowDef="let p; columns: columns"
              class="clickable"
              tabindex="0"
              (click)="open(p)"
              (keydown.enter)="open(p)"
              data-testid="project-row"
              [attr.data-project-id]="p.id"
              [attr.data-project-name]="p.name"
            ></tr>
          </table>
        }
      </div>
    </div>
  `,
  styles: `
    .name {
      font-weight: 500;
    }
    .desc {
      max-width: 520px;
      overflow: hidden;
      text-overflow: ellipsis;
      white-space: nowrap;
    }
  `,
})
export class ProjectListPage {
  protected readonly store = inject(ProjectsStore);
  protected readonly clock = inject(Clock);
  private readonly dialog = inject(MatDialog);
  private readonly router = inject(Router);

  protected readonly columns = ['name', 'description', 'role', 'created', 'open'];
  protected readonly error = computed(() => {
    const e = this.store.resource.error();
    return e ? ApiError.from(e) : null;
  });
  protected readonly trackById = (_: number, p: Project) => p.id;

  protected create(): void {
    this.dialog
      .open<CreateProjectDialog, void, Project>(CreateProjectDialog, { width: '520px' })
      .afterClosed()
      .subscribe((p) => {
        if (!p) return;
        this.store.upsert(p);
        void this.router.navigate(['/projects', p.id]);
      });
  }

  protected open(p: Project): void {
    void this.router.navigate(['/projects', p.id]);
  }
}
