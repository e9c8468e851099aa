import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { AuthResponse, LoginRequest, SignupModeInfo, SignupRequest, User } from '@kapitan/shared';
import type { Observable } from 'rxjs';

@Injectable({ providedIn: 'root' })
export class AuthApi {
  private readonly http = inject(HttpClient);

  signup(body: SignupRequest): Observable<AuthResponse> {
    return this.http.post<AuthResponse>('/api/auth/signup', body);
  }

  signupMode(): Observable<SignupModeInfo> {
    return this.http.get<SignupModeInfo>('/api/auth/signup-mode');
  }

  login(body: LoginRequest): Observable<AuthResponse> {
    return this.http.post<AuthResponse>('/api/auth/login', body);
  }

  logout(): Observable<void> {
    return this.http.post<void>('/api/auth/logout', null);
  }

  me(): Observable<User> {
    return this.http.get<User>('/api/me');
  }
}
