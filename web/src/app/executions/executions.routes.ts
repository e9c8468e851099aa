import { inject } from '@angular/core';
import { type CanActivateFn, Router, type Routes } from '@angular/router';
import { catchError, map, of } from 'rxjs';
import { Notify } from '../core/api/notify.service';
import { ExecutionsApi } from './executions-api';

export const EXECUTIONS_ROUTES: Routes = [
  {
    path: '',
    title: 'Executions · Kapitan',
    loadComponent: () => import('./execution-list.page').then((m) => m.ExecutionListPage),
  },
  {
    path: ':executionId',
    title: 'Execution · Kapitan',
    loadComponent: () => import('./execution.page').then((m) => m.ExecutionPage),
  },
];

/** `/executions/:executionId` → the execution inside its project. */
export const executionRedirectGuard: CanActivateFn = (route) => {
  const router = inject(Router);
  const notify = inject(Notify);
  const id = route.paramMap.get('executionId') ?? '';
  return inject(ExecutionsApi)
    .get(id)
    .pipe(
      map((e) => router.createUrlTree(['/projects', e.projectId, 'executions', e.id])),
      catchError((err: unknown) => {
        notify.error(err, 'Execution not found');
        return of(router.createUrlTree(['/projects']));
      }),
    );
};
