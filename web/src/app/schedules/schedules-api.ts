import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateScheduleRequest, Occurrence, Schedule, UpdateScheduleRequest } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** A project's schedules and their history. */
@Injectable({ providedIn: 'root' })
export class SchedulesApi {
  private readonly http = inject(HttpClient);

  list(projectId: string): Observable<Schedule[]> {
    return this.http.get<Schedule[]>(`/api/projects/${enc(projectId)}/schedules`);
  }
  get(id: string): Observable<Schedule> {
    return this.http.get<Schedule>(`/api/schedules/${enc(id)}`);
  }
  create(projectId: string, body: CreateScheduleRequest): Observable<Schedule> {
    return this.http.post<Schedule>(`/api/projects/${enc(projectId)}/schedules`, body);
  }
  update(id: string, body: UpdateScheduleRequest): Observable<Schedule> {
    return this.http.patch<Schedule>(`/api/schedules/${enc(id)}`, body);
  }
  setEnabled(id: string, enabled: boolean): Observable<Schedule> {
    return this.http.post<Schedule>(`/api/schedules/${enc(id)}/${enabled ? 'resume' : 'pause'}`, {});
  }
  delete(id: string): Observable<void> {
    return this.http.delete<void>(`/api/schedules/${enc(id)}`);
  }
  occurrences(id: string): Observable<Occurrence[]> {
    return this.http.get<Occurrence[]>(`/api/schedules/${enc(id)}/occurrences`);
  }
}

const enc = encodeURIComponent;
