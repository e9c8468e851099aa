import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { ApiToken, CreateApiTokenRequest, CreatedApiToken } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** The signed-in user's API tokens. The value comes back once, from create. */
@Injectable({ providedIn: 'root' })
export class TokensApi {
  private readonly http = inject(HttpClient);

  list(): Observable<ApiToken[]> {
    return this.http.get<ApiToken[]>('/api/tokens');
  }

  create(body: CreateApiTokenRequest): Observable<CreatedApiToken> {
    return this.http.post<CreatedApiToken>('/api/tokens', body);
  }

  revoke(id: string): Observable<void> {
    return this.http.delete<void>(`/api/tokens/${encodeURIComponent(id)}`);
  }
}
