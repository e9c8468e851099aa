import type { Routes } from '@angular/router';

export const MACHINES_ROUTES: Routes = [
  {
    path: '',
    title: 'Machines · Kapitan',
    loadComponent: () => import('./machine-list.page').then((m) => m.MachineListPage),
  },
  {
    path: ':machineId',
    title: 'Machine · Kapitan',
    loadComponent: () => import('./machine-detail.page').then((m) => m.MachineDetailPage),
  },
];
