import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type {
  AddMemberResponse,
  AddMemberRequest,
  CreateProjectRequest,
  Member,
  Project,
  UpdateMemberRequest,
  UpdateProjectRequest,
} from '@kapitan/shared';
import type { Observable } from 'rxjs';

@Injectable({ providedIn: 'root' })
export class ProjectsApi {
  private readonly http = inject(HttpClient);

  list(): Observable<Project[]> {
    return this.http.get<Project[]>('/api/projects');
  }

  get(projectId: string): Observable<Project> {
    return this.http.get<Project>(`/api/projects/${enc(projectId)}`);
  }

  create(body: CreateProjectRequest): Observable<Project> {
    return this.http.post<Project>('/api/projects', body);
  }

  update(projectId: string, body: UpdateProjectRequest): Observable<Project> {
    return this.http.patch<Project>(`/api/projects/${enc(projectId)}`, body);
  }

  delete(projectId: string): Observable<void> {
    return this.http.delete<void>(`/api/projects/${enc(projectId)}`);
  }

  members(projectId: string): Observable<Member[]> {
    return this.http.get<Member[]>(`/api/projects/${enc(projectId)}/members`);
  }

  addMember(projectId: string, body: AddMemberRequest): Observable<AddMemberResponse> {
    return this.http.post<AddMemberResponse>(`/api/projects/${enc(projectId)}/members`, body);
  }

  updateMember(projectId: string, userId: string, body: UpdateMemberRequest): Observable<Member> {
    return this.http.patch<Member>(`/api/projects/${enc(projectId)}/members/${enc(userId)}`, body);
  }

  removeMember(projectId: string, userId: string): Observable<void> {
    return this.http.delete<void>(`/api/projects/${enc(projectId)}/members/${enc(userId)}`);
  }
}

const enc = encodeURIComponent;
