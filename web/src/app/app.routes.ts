import type { Routes } from '@angular/router';
import { AUTH_ROUTES } from './auth/auth.routes';
import { authGuard } from './core/auth/auth.guard';
import { executionRedirectGuard } from './executions/executions.routes';
import { Shell } from './layout/shell.component';

export const routes: Routes = [
  ...AUTH_ROUTES,
  {
    path: '',
    component: Shell,
    canActivate: [authGuard],
    children: [
      { path: '', pathMatch: 'full', redirectTo: 'projects' },
      { path: 'projects', loadChildren: () => import('./projects/projects.routes').then((m) => m.PROJECTS_ROUTES) },
      { path: 'tokens', loadChildren: () => import('./tokens/tokens.routes').then((m) => m.TOKENS_ROUTES) },
      { path: 'admin', loadChildren: () => import('./admin/admin.routes').then((m) => m.ADMIN_ROUTES) },
      // A bare execution link (from the API or a colleague) opens inside its project.
      { path: 'executions/:executionId', canActivate: [executionRedirectGuard], children: [] },
    ],
  },
  { path: '**', redirectTo: 'projects' },
];
