import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateEnrolmentTokenRequest, EnrolmentToken } from '@kapitan/shared';
import type { Observable } from 'rxjs';

@Injectable({ providedIn: 'root' })
export class EnrolmentTokensApi {
  private readonly http = inject(HttpClient);

  list(projectId: string): Observable<EnrolmentToken[]> {
    return this.http.get<EnrolmentToken[]>(`/api/projects/${enc(projectId)}/enrolment-tokens`);
  }

  /** The response carries `token` in clear: the only time it is ever shown. */
  create(projectId: string, body: CreateEnrolmentTokenRequest): Observable<EnrolmentToken> {
    return this.http.post<EnrolmentToken>(`/api/projects/${enc(projectId)}/enrolment-tokens`, body);
  }

  revoke(projectId: string, tokenId: string): Observable<void> {
    return this.http.delete<void>(`/api/projects/${enc(projectId)}/enrolment-tokens/${enc(tokenId)}`);
  }
}

const enc = encodeURIComponent;
