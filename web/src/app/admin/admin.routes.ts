import { inject } from '@angular/core';
import { type CanActivateFn, Router, type Routes } from '@angular/router';
import { AuthService } from '../core/auth/auth.service';

/** Only the instance admin sees this area (the API refuses others anyway). */
const adminGuard: CanActivateFn = () => (inject(AuthService).user()?.isAdmin ? true : inject(Router).createUrlTree(['/projects']));

export const ADMIN_ROUTES: Routes = [
  {
    path: '',
    canActivate: [adminGuard],
    title: 'Admin · Kapitan',
    loadComponent: () => import('./admin.page').then((m) => m.AdminPage),
  },
];
