import { HttpClient, HttpParams } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { AuditFilter, AuditPage, AuditQuery } from '@kapitan/shared';
import type { Observable } from 'rxjs';

function params(q: AuditQuery): HttpParams {
  let p = new HttpParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p = p.set(k, String(v));
  return p;
}

/** A project's audit log: pages to read, and the whole (filtered) log as JSON lines. Owners only. */
@Injectable({ providedIn: 'root' })
export class AuditApi {
  private readonly http = inject(HttpClient);

  page(projectId: string, q: AuditQuery): Observable<AuditPage> {
    return this.http.get<AuditPage>(`/api/projects/${encodeURIComponent(projectId)}/audit`, { params: params(q) });
  }

  /** A Blob, not a link: the request needs the session's Authorization header, which a plain download would not send. */
  export(projectId: string, f: AuditFilter): Observable<Blob> {
    return this.http.get(`/api/projects/${encodeURIComponent(projectId)}/audit/export`, { params: params(f), responseType: 'blob' });
  }
}
