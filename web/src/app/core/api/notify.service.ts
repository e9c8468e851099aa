import { Injectable, inject } from '@angular/core';
import { MatSnackBar } from '@angular/material/snack-bar';
import { ApiError } from './api-error';

/** Snackbars: one place that turns failures into a readable line. */
@Injectable({ providedIn: 'root' })
export class Notify {
  private readonly snackBar = inject(MatSnackBar);

  success(message: string): void {
    this.snackBar.open(message, undefined, { duration: 3000 });
  }

  error(err: unknown, prefix?: string): ApiError {
    const e = ApiError.from(err);
    const text = prefix ? `${prefix}: ${e.toString()}` : e.toString();
    this.snackBar.open(text, 'Dismiss', { duration: 8000, panelClass: 'snack-error' });
    return e;
  }
}
