import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { CreateInvitationRequest, InstanceSettings, Invitation, UpdateInstanceSettingsRequest } from '@kapitan/shared';
import type { Observable } from 'rxjs';

/** Instance administration: sign-up mode and invitations (admin only). */
@Injectable({ providedIn: 'root' })
export class AdminApi {
  private readonly http = inject(HttpClient);

  settings(): Observable<InstanceSettings> {
    return this.http.get<InstanceSettings>('/api/admin/settings');
  }

  updateSettings(body: UpdateInstanceSettingsRequest): Observable<InstanceSettings> {
    return this.http.patch<InstanceSettings>('/api/admin/settings', body);
  }

  invitations(): Observable<Invitation[]> {
    return this.http.get<Invitation[]>('/api/admin/invitations');
  }

  createInvitation(body: CreateInvitationRequest): Observable<Invitation> {
    return this.http.post<Invitation>('/api/admin/invitations', body);
  }

  revokeInvitation(id: string): Observable<void> {
    return this.http.delete<void>(`/api/admin/invitations/${encodeURIComponent(id)}`);
  }
}
