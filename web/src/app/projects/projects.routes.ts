import type { Routes } from '@angular/router';
import { ProjectListPage } from './project-list.page';

export const PROJECTS_ROUTES: Routes = [
  { path: '', component: ProjectListPage, title: 'Projects · Kapitan' },
  {
    path: ':projectId',
    loadComponent: () => import('./project.page').then((m) => m.ProjectPage),
    children: [
      { path: '', pathMatch: 'full', redirectTo: 'machines' },
      { path: 'machines', loadChildren: () => import('../machines/machines.routes').then((m) => m.MACHINES_ROUTES) },
      {
        path: 'executions',
        loadChildren: () => import('../executions/executions.routes').then((m) => m.EXECUTIONS_ROUTES),
      },
      {
        path: 'run',
        title: 'Run a script · Kapitan',
        loadComponent: () => import('../executions/run-form.page').then((m) => m.RunFormPage),
      },
      { path: 'schedules', loadChildren: () => import('../schedules/schedules.routes').then((m) => m.SCHEDULES_ROUTES) },
      { path: 'files', loadChildren: () => import('../files/files.routes').then((m) => m.FILES_ROUTES) },
      { path: 'secrets', loadChildren: () => import('../secrets/secrets.routes').then((m) => m.SECRETS_ROUTES) },
      { path: 'audit', loadChildren: () => import('../audit/audit.routes').then((m) => m.AUDIT_ROUTES) },
      {
        path: 'members',
        title: 'Members · Kapitan',
        loadComponent: () => import('./members.page').then((m) => m.MembersPage),
      },
      {
        path: 'settings',
        title: 'Project settings · Kapitan',
        loadComponent: () => import('./settings.page').then((m) => m.SettingsPage),
      },
    ],
  },
];
