import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateDeployRequest, CreateDistributionRequest, Delivery } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** Deploys (a file to a path) and distributions (an image into Docker) of stored files. */
@Injectable({ providedIn: 'root' })
export class DeliveriesApi {
  private readonly http = inject(HttpClient);

  deploy(projectId: string, body: CreateDeployRequest): Observable<Delivery> {
    return this.http.post<Delivery>(`/api/projects/${enc(projectId)}/deploys`, body);
  }

  distribute(projectId: string, body: CreateDistributionRequest): Observable<Delivery> {
    return this.http.post<Delivery>(`/api/projects/${enc(projectId)}/distributions`, body);
  }

  get(deliveryId: string): Observable<Delivery> {
    return this.http.get<Delivery>(`/api/deliveries/${enc(deliveryId)}`);
  }
}

const enc = encodeURIComponent;
