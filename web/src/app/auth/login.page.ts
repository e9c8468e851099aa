import { ChangeDetectionStrategy, Component, inject, input, signal } from '@angular/core';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { Router, RouterLink } from '@angular/router';
import { LIMITS, LoginRequestSchema } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { AuthService, safeReturnUrl } from '../core/auth/auth.service';

@Component({
  selector: 'app-login-page',
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
  templateUrl: './login.page.html',
  styleUrl: './auth-card.scss',
})
export class LoginPage {
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);

  /** `?returnUrl=` (router input binding): where to go after signing in. */
  readonly returnUrl = input<string>();

  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly hide = signal(true);

  protected readonly form = inject(NonNullableFormBuilder).group({
    email: ['', [Validators.required, Validators.email, Validators.maxLength(LIMITS.emailMax)]],
    password: ['', [Validators.required, Validators.maxLength(LIMITS.passwordMax)]],
  });

  protected submit(): void {
    this.error.set(null);
    if (this.form.invalid) {
      this.form.markAllAsTouched();
      return;
    }
    const parsed = LoginRequestSchema.safeParse(this.form.getRawValue());
    if (!parsed.success) {
      this.error.set(parsed.error.issues[0]?.message ?? 'Check the form');
      return;
    }
    this.busy.set(true);
    this.auth.login(parsed.data).subscribe({
      next: () => void this.router.navigateByUrl(safeReturnUrl(this.returnUrl())),
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        applyFieldErrors(this.form, e.details);
        this.error.set(e.statusCode === 401 ? 'Wrong email or password.' : e.message);
      },
    });
  }
}
