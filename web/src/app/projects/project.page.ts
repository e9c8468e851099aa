import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { MatButtonModule } from '@angular/material/button';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTabsModule } from '@angular/material/tabs';
import { MatTooltipModule } from '@angular/material/tooltip';
import { toSignal } from '@angular/core/rxjs-interop';
import { NavigationEnd, Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { filter, map } from 'rxjs';
import { ApiError } from '../core/api/api-error';
import { EmptyState } from '../core/ui/empty-state.component';
import { RoleBadge } from '../core/ui/role-badge.component';
import { ProjectContext } from './project-context';

/** One project: header, tabs, and the tab's page below (all sharing {@link ProjectContext}). */
@Component({
  selector: 'app-project-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  providers: [ProjectContext],
  imports: [
    RouterOutlet,
    RouterLink,
    RouterLinkActive,
    MatTabsModule,
    MatButtonModule,
    MatIconModule,
    MatProgressBarModule,
    MatTooltipModule,
    RoleBadge,
    EmptyState,
  ],
  templateUrl: './project.page.html',
  styleUrl: './project.page.scss',
})
export class ProjectPage {
  protected readonly ctx = inject(ProjectContext);
  private readonly router = inject(Router);
  private readonly url = toSignal(
    this.router.events.pipe(
      filter((e) => e instanceof NavigationEnd),
      map(() => this.router.url),
    ),
    { initialValue: this.router.url },
  );
  /** The run form belongs to the Executions tab. */
  protected readonly inRun = computed(() => /\/run(\?|$)/.test(this.url()));

  protected readonly loadError = computed(() => {
    const err = this.ctx.projectResource.error();
    return err ? ApiError.from(err) : null;
  });
}
