import { BreakpointObserver } from '@angular/cdk/layout';
import { ChangeDetectionStrategy, Component, computed, inject, viewChild } from '@angular/core';
import { takeUntilDestroyed, toSignal } from '@angular/core/rxjs-interop';
import { MatButtonModule } from '@angular/material/button';
import { MatDividerModule } from '@angular/material/divider';
import { MatIconModule } from '@angular/material/icon';
import { MatListModule } from '@angular/material/list';
import { MatMenuModule } from '@angular/material/menu';
import { MatSidenav, MatSidenavModule } from '@angular/material/sidenav';
import { MatToolbarModule } from '@angular/material/toolbar';
import { MatTooltipModule } from '@angular/material/tooltip';
import { NavigationEnd, Router, RouterLink, RouterLinkActive, RouterOutlet } from '@angular/router';
import { filter, map } from 'rxjs';
import { AuthService } from '../core/auth/auth.service';
import { LiveService } from '../core/live/live.service';
import { ProjectsStore } from '../projects/projects.store';

/** The signed-in frame: toolbar, side navigation with the user's projects, content. */
@Component({
  selector: 'app-shell',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    RouterOutlet,
    RouterLink,
    RouterLinkActive,
    MatToolbarModule,
    MatSidenavModule,
    MatListModule,
    MatIconModule,
    MatButtonModule,
    MatMenuModule,
    MatTooltipModule,
    MatDividerModule,
  ],
  templateUrl: './shell.component.html',
  styleUrl: './shell.component.scss',
})
export class Shell {
  protected readonly auth = inject(AuthService);
  protected readonly live = inject(LiveService);
  protected readonly store = inject(ProjectsStore);
  private readonly sidenav = viewChild.required(MatSidenav);

  protected readonly handset = toSignal(
    inject(BreakpointObserver)
      .observe('(max-width: 959.98px)')
      .pipe(map((r) => r.matches)),
    { initialValue: false },
  );

  protected readonly liveLabel = computed(() => {
    switch (this.live.state()) {
      case 'online':
        return 'Live';
      case 'connecting':
        return 'Reconnecting…';
      default:
        return 'Offline';
    }
  });

  protected readonly liveTooltip = computed(() => {
    const err = this.live.lastError();
    switch (this.live.state()) {
      case 'online':
        return 'Receiving live updates';
      case 'connecting':
        return err ? `Connection lost (${err}); retrying` : 'Connecting to live updates';
      default:
        return err ? `Live updates unavailable: ${err}` : 'Live updates unavailable';
    }
  });

  protected readonly initials = computed(() => {
    const u = this.auth.user();
    const src = (u?.name || u?.email || '?').trim();
    return src
      .split(/[\s@.]+/)
      .filter(Boolean)
      .slice(0, 2)
      .map((w) => w[0]!.toUpperCase())
      .join('');
  });

  constructor() {
    this.auth.refreshUser();
    inject(Router)
      .events.pipe(
        filter((e) => e instanceof NavigationEnd),
        takeUntilDestroyed(),
      )
      .subscribe(() => {
        if (this.handset()) void this.sidenav().close();
      });
  }

  protected logout(): void {
    this.auth.logout();
  }
}
