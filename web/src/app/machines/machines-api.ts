import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Machine, UpdateMachineRequest } from '@kapitan/shared';
import type { Observable } from 'rxjs';

@Injectable({ providedIn: 'root' })
export class MachinesApi {
  private readonly http = inject(HttpClient);

  list(projectId: string): Observable<Machine[]> {
    return this.http.get<Machine[]>(`/api/projects/${enc(projectId)}/machines`);
  }

  get(projectId: string, machineId: string): Observable<Machine> {
    return this.http.get<Machine>(`/api/projects/${enc(projectId)}/machines/${enc(machineId)}`);
  }

  update(projectId: string, machineId: string, body: UpdateMachineRequest): Observable<Machine> {
    return this.http.patch<Machine>(`/api/projects/${enc(projectId)}/machines/${enc(machineId)}`, body);
  }

  /** Revokes the machine's credential; its agent is disconnected at once. */
  revoke(projectId: string, machineId: string): Observable<void> {
    return this.http.delete<void>(`/api/projects/${enc(projectId)}/machines/${enc(machineId)}`);
  }
}

const enc = encodeURIComponent;
