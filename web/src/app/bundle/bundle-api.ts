import { HttpClient, HttpResponse } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateInstallLinkRequest, InstallLink, InstanceTls } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** Installing the agent on a client's machine: the bundle, the one-line command, and what the server proves itself with. */
@Injectable({ providedIn: 'root' })
export class BundleApi {
  private readonly http = inject(HttpClient);

  /** The zip (needs the bearer header: fetched, not linked); its name is in Content-Disposition. */
  bundle(projectId: string): Observable<HttpResponse<Blob>> {
    return this.http.get(`/api/projects/${enc(projectId)}/bundle`, { responseType: 'blob', observe: 'response' });
  }

  createInstallLink(projectId: string, body: CreateInstallLinkRequest = {}): Observable<InstallLink> {
    return this.http.post<InstallLink>(`/api/projects/${enc(projectId)}/install-links`, body);
  }

  tls(): Observable<InstanceTls> {
    return this.http.get<InstanceTls>('/api/instance/tls');
  }
}

const enc = encodeURIComponent;
