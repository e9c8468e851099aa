import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type {
  CreateExecutionRequest,
  CreateExecutionResponse,
  Execution,
  ExecutionLog,
  ExecutionSummary,
  ListExecutionsQuery,
} from '@kapitan/shared';
import type { Observable } from 'rxjs';

@Injectable({ providedIn: 'root' })
export class ExecutionsApi {
  private readonly http = inject(HttpClient);

  /** Starts a run: one execution per target machine. */
  create(projectId: string, body: CreateExecutionRequest): Observable<CreateExecutionResponse> {
    return this.http.post<CreateExecutionResponse>(`/api/projects/${enc(projectId)}/executions`, body);
  }

  list(projectId: string, query: ListExecutionsQuery = {}): Observable<ExecutionSummary[]> {
    let params = new HttpParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params = params.set(k, String(v));
    return this.http.get<ExecutionSummary[]>(`/api/projects/${enc(projectId)}/executions`, { params });
  }

  get(executionId: string): Observable<Execution> {
    return this.http.get<Execution>(`/api/executions/${enc(executionId)}`);
  }

  log(executionId: string, fromSeq?: number): Observable<ExecutionLog> {
    const params = fromSeq === undefined ? undefined : new HttpParams().set('fromSeq', fromSeq);
    return this.http.get<ExecutionLog>(`/api/executions/${enc(executionId)}/log`, { params });
  }

  /** The whole output as text (`Accept: text/plain`), as a Blob to save. */
  logText(executionId: string): Observable<Blob> {
    return this.http.get(`/api/executions/${enc(executionId)}/log`, {
      headers: { Accept: 'text/plain' },
      responseType: 'blob',
    });
  }

  /** Asks the agent to stop it (TERM to the process group, then KILL after a grace period). */
  cancel(executionId: string): Observable<unknown> {
    return this.http.post<unknown>(`/api/executions/${enc(executionId)}/cancel`, null);
  }
}

const enc = encodeURIComponent;
