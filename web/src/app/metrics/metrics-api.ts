import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { ContainerMetricsResponse, MachineMetricsResponse, MetricsQuery, ProjectCpuResponse } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** Stored metrics: a machine's host and container series, and a project's CPU for the sparklines. */
@Injectable({ providedIn: 'root' })
export class MetricsApi {
  private readonly http = inject(HttpClient);

  host(machineId: string, q: MetricsQuery = {}): Observable<MachineMetricsResponse> {
    return this.http.get<MachineMetricsResponse>(`/api/machines/${enc(machineId)}/metrics`, { params: params(q) });
  }

  containers(machineId: string, q: MetricsQuery = {}): Observable<ContainerMetricsResponse> {
    return this.http.get<ContainerMetricsResponse>(`/api/machines/${enc(machineId)}/metrics/containers`, { params: params(q) });
  }

  projectCpu(projectId: string, q: MetricsQuery = {}): Observable<ProjectCpuResponse> {
    return this.http.get<ProjectCpuResponse>(`/api/projects/${enc(projectId)}/metrics/cpu`, { params: params(q) });
  }
}

const enc = encodeURIComponent;
const params = (q: MetricsQuery): Record<string, string> => Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as Record<string, string>;
