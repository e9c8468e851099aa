import type { Routes } from '@angular/router';
import { SecretsPage } from './secrets.page';

export const SECRETS_ROUTES: Routes = [{ path: '', component: SecretsPage, title: 'Secrets · Kapitan' }];
