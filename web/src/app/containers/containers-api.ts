import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { ContainerAction, ContainerOperation, CreateContainerRequestInput, MachineContainer, MachineDockerStatus } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** The containers of a machine and the operations on them. */
@Injectable({ providedIn: 'root' })
export class ContainersApi {
  private readonly http = inject(HttpClient);

  list(machineId: string): Observable<MachineContainer[]> {
    return this.http.get<MachineContainer[]>(`/api/machines/${enc(machineId)}/containers`);
  }

  docker(machineId: string): Observable<MachineDockerStatus> {
    return this.http.get<MachineDockerStatus>(`/api/machines/${enc(machineId)}/docker`);
  }

  act(machineId: string, containerId: string, action: ContainerAction): Observable<ContainerOperation> {
    return this.http.post<ContainerOperation>(`/api/machines/${enc(machineId)}/containers/${enc(containerId)}/${enc(action)}`, {});
  }

  create(machineId: string, body: CreateContainerRequestInput): Observable<ContainerOperation> {
    return this.http.post<ContainerOperation>(`/api/machines/${enc(machineId)}/containers`, body);
  }

  operations(machineId: string): Observable<ContainerOperation[]> {
    return this.http.get<ContainerOperation[]>(`/api/machines/${enc(machineId)}/container-operations`, { params: { limit: 20 } });
  }
}

const enc = encodeURIComponent;
