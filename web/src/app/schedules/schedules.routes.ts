import type { Routes } from '@angular/router';
import { ScheduleListPage } from './schedule-list.page';

export const SCHEDULES_ROUTES: Routes = [
  { path: '', component: ScheduleListPage, title: 'Schedules · Kapitan' },
  { path: 'new', title: 'New schedule · Kapitan', loadComponent: () => import('./schedule-form.page').then((m) => m.ScheduleFormPage) },
  { path: ':scheduleId', title: 'Schedule · Kapitan', loadComponent: () => import('./schedule.page').then((m) => m.SchedulePage) },
  { path: ':scheduleId/edit', title: 'Edit schedule · Kapitan', loadComponent: () => import('./schedule-form.page').then((m) => m.ScheduleFormPage) },
];
