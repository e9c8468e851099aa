import type { Routes } from '@angular/router';
import { guestGuard } from '../core/auth/auth.guard';

export const AUTH_ROUTES: Routes = [
  {
    path: 'login',
    canActivate: [guestGuard],
    title: 'Sign in · Kapitan',
    loadComponent: () => import('./login.page').then((m) => m.LoginPage),
  },
  {
    path: 'signup',
    canActivate: [guestGuard],
    title: 'Create account · Kapitan',
    loadComponent: () => import('./signup.page').then((m) => m.SignupPage),
  },
];
