import type { Routes } from '@angular/router';
import { TokensPage } from './tokens.page';

export const TOKENS_ROUTES: Routes = [{ path: '', component: TokensPage, title: 'API tokens · Kapitan' }];
