import { ChangeDetectionStrategy, Component, computed, inject, input, signal } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { Router, RouterLink } from '@angular/router';
import { LIMITS, SignupRequestSchema, type SignupRequest } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { schemaDetails } from '../core/api/schema-errors';
import { AuthApi } from '../core/auth/auth-api';
import { AuthService } from '../core/auth/auth.service';
import { catchError, of } from 'rxjs';

@Component({
  selector: 'app-signup-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    RouterLink,
    MatFormFieldModule,
    MatInputModule,
    MatButtonModule,
    MatIconModule,
    MatProgressBarModule,
  ],
  templateUrl: './signup.page.html',
  styleUrl: './auth-card.scss',
})
export class SignupPage {
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);

  /** `?invite=…` of an admin's invitation link. */
  readonly invite = input<string | undefined>();
  /** Whether a stranger may sign up here; null while unknown (the server decides anyway). */
  protected readonly mode = toSignal(inject(AuthApi).signupMode().pipe(catchError(() => of(null))), { initialValue: null });
  protected readonly invited = computed(() => !!this.invite());
  protected readonly closed = computed(() => !this.invited() && this.mode()?.mode === 'invite');

  protected readonly limits = LIMITS;
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly hide = signal(true);

  protected readonly form = inject(NonNullableFormBuilder).group({
    name: ['', [Validators.maxLength(LIMITS.nameMax)]],
    email: ['', [Validators.required, Validators.email, Validators.maxLength(LIMITS.emailMax)]],
    password: [
      '',
      [Validators.required, Validators.minLength(LIMITS.passwordMin), Validators.maxLength(LIMITS.passwordMax)],
    ],
  });

  protected submit(): void {
    this.error.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const { name, email, password } = this.form.getRawValue();
    const invitation = this.invite();
    const body: SignupRequest = { email, password, ...(name.trim() ? { name: name.trim() } : {}), ...(invitation ? { invitation } : {}) };
    const parsed = SignupRequestSchema.safeParse(body);
    if (!parsed.success) {
      applyFieldErrors(
        this.form,
        schemaDetails(parsed.error.issues),
      );
      return;
    }
    this.busy.set(true);
    this.auth.signup(parsed.data).subscribe({
      next: () => void this.router.navigate(['/projects']),
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        const rest = applyFieldErrors(this.form, e.details);
        this.error.set(rest.length || !e.details.length ? e.message : null);
      },
    });
  }
}
