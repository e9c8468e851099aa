import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateSecretRequest, Secret, UpdateSecretRequest } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** Project secrets. Values go up and never come back: every answer is names and history. */
@Injectable({ providedIn: 'root' })
export class SecretsApi {
  private readonly http = inject(HttpClient);

  list(projectId: string): Observable<Secret[]> {
    return this.http.get<Secret[]>(`/api/projects/${enc(projectId)}/secrets`);
  }

  create(projectId: string, body: CreateSecretRequest): Observable<Secret> {
    return this.http.post<Secret>(`/api/projects/${enc(projectId)}/secrets`, body);
  }

  rotate(projectId: string, name: string, body: UpdateSecretRequest): Observable<Secret> {
    return this.http.put<Secret>(`/api/projects/${enc(projectId)}/secrets/${enc(name)}`, body);
  }

  delete(projectId: string, name: string): Observable<void> {
    return this.http.delete<void>(`/api/projects/${enc(projectId)}/secrets/${enc(name)}`);
  }
}

const enc = encodeURIComponent;
