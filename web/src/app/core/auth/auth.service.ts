import { DestroyRef, Injectable, computed, inject, signal } from '@angular/core';
import { Router } from '@angular/router';
import type { AuthResponse, LoginRequest, SignupRequest, User } from '@kapitan/shared';
import { type Observable, EMPTY, catchError, finalize, map, tap } from 'rxjs';
import { AuthApi } from './auth-api';

export const TOKEN_STORAGE_KEY = 'kapitan.accessToken';

/**
 * The session: the access token (kept in localStorage, sent as a Bearer header and
 * in the socket handshake, never as a cookie) and the signed-in user.
 */
@Injectable({ providedIn: 'root' })
export class AuthService {
  private readonly api = inject(AuthApi);
  private readonly router = inject(Router);

  private readonly _token = signal<string | null>(readToken());
  private readonly _user = signal<User | null>(null);

  readonly token = this._token.asReadonly();
  readonly user = this._user.asReadonly();
  readonly isAuthenticated = computed(() => this._token() !== null);

  constructor() {
    // Signing out (or in as someone else) in another tab applies here too.
    const onStorage = (e: StorageEvent) => {
      if (e.key !== TOKEN_STORAGE_KEY) return;
      this._token.set(e.newValue);
      this._user.set(null);
      if (e.newValue === null) void this.router.navigate(['/login']);
    };
    window.addEventListener('storage', onStorage);
    inject(DestroyRef).onDestroy(() => window.removeEventListener('storage', onStorage));
  }

  login(body: LoginRequest): Observable<User> {
    return this.api.login(body).pipe(
      tap((r) => this.establish(r)),
      map((r) => r.user),
    );
  }

  signup(body: SignupRequest): Observable<User> {
    return this.api.signup(body).pipe(
      tap((r) => this.establish(r)),
      map((r) => r.user),
    );
  }

  /** Loads the user behind the stored token (a 401 ends the session through the interceptor). */
  refreshUser(): void {
    if (!this._token()) return;
    this.api
      .me()
      .pipe(catchError(() => EMPTY))
      .subscribe((u) => this._user.set(u));
  }

  /** Revokes the token on the server (best effort), then forgets it. */
  logout(): void {
    if (!this._token()) return;
    this.api
      .logout()
      .pipe(
        catchError(() => EMPTY),
        finalize(() => {
          this.clear();
          void this.router.navigate(['/login']);
        }),
      )
      .subscribe();
  }

  /** The server no longer accepts the token: forget it and ask to sign in again. */
  expire(): void {
    if (!this._token()) return;
    this.clear();
    const here = this.router.url;
    void this.router.navigate(['/login'], {
      queryParams: here && !here.startsWith('/login') ? { returnUrl: here } : {},
    });
  }

  private establish(r: AuthResponse): void {
    localStorage.setItem(TOKEN_STORAGE_KEY, r.accessToken);
    this._token.set(r.accessToken);
    this._user.set(r.user);
  }

  private clear(): void {
    localStorage.removeItem(TOKEN_STORAGE_KEY);
    this._token.set(null);
    this._user.set(null);
  }
}

function readToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_STORAGE_KEY);
  } catch {
    return null;
  }
}

/** Only same-app paths are followed after sign-in (no open redirect). */
export function safeReturnUrl(url: string | null | undefined): string {
  if (!url || !url.startsWith('/') || url.startsWith('//') || url.startsWith('/\\')) return '/projects';
  if (url.startsWith('/login') || url.startsWith('/signup')) return '/projects';
  return url;
}
