import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { FormControl, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MAT_DIALOG_DATA, MatDialog, MatDialogModule } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatInputModule } from '@angular/material/input';
import { type Observable, map } from 'rxjs';

export interface ConfirmData {
  title: string;
  message: string;
  confirmText?: string;
  /** Label of the button that backs out (default "Cancel"). */
  cancelText?: string;
  /** Red confirm button. */
  danger?: boolean;
  /** The user must type this (e.g. the project's name) to confirm. */
  requireText?: string;
}

@Component({
  selector: 'app-confirm-dialog',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatDialogModule, MatButtonModule, MatFormFieldModule, MatInputModule, ReactiveFormsModule],
  template: `
    <h2 mat-dialog-title>{{ data.title }}</h2>
    <mat-dialog-content>
      <p class="message">{{ data.message }}</p>
      @if (data.requireText) {
        <mat-form-field class="full-width" subscriptSizing="dynamic">
          <mat-label>Type "{{ data.requireText }}" to confirm</mat-label>
          <input matInput data-testid="confirm-text" [formControl]="typed" autocomplete="off" />
        </mat-form-field>
      }
    </mat-dialog-content>
    <mat-dialog-actions align="end">
      <button matButton mat-dialog-close data-testid="confirm-cancel">{{ data.cancelText ?? 'Cancel' }}</button>
      <button
        matButton="filled"
        [class.danger]="data.danger"
        [disabled]="!canConfirm()"
        [mat-dialog-close]="true"
        data-testid="confirm-ok"
      >
        {{ data.confirmText ?? 'Confirm' }}
      </button>
    </mat-dialog-actions>
  `,
  styles: `
    .message {
      white-space: pre-line;
      margin-top: 0;
    }
    .danger {
      --mat-button-filled-container-color: var(--mat-sys-error);
      --mat-button-filled-label-text-color: var(--mat-sys-on-error);
    }
  `,
})
export class ConfirmDialog {
  protected readonly data = inject<ConfirmData>(MAT_DIALOG_DATA);
  protected readonly typed = new FormControl('', { nonNullable: true });
  private readonly typedValue = toSignal(this.typed.valueChanges, { initialValue: '' });
  protected readonly canConfirm = computed(() => !this.data.requireText || this.typedValue() === this.data.requireText);
}

/** Opens the confirm dialog; emits true when confirmed, false otherwise. */
export function confirm(dialog: MatDialog, data: ConfirmData): Observable<boolean> {
  return dialog
    .open<ConfirmDialog, ConfirmData, boolean>(ConfirmDialog, { data, width: '440px', autoFocus: 'dialog' })
    .afterClosed()
    .pipe(map((r) => r === true));
}
