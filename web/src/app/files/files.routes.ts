import type { Routes } from '@angular/router';
import { FilesPage } from './files.page';

export const FILES_ROUTES: Routes = [{ path: '', component: FilesPage, title: 'Files · Kapitan' }];
