import { Injectable, computed, inject } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import type { Project } from '@kapitan/shared';
import { AuthService } from '../core/auth/auth.service';
import { patchList } from '../core/util/resource';
import { ProjectsApi } from './projects-api';

/** The signed-in user's projects, shared by the side navigation and the project list. */
@Injectable({ providedIn: 'root' })
export class ProjectsStore {
  private readonly api = inject(ProjectsApi);
  private readonly auth = inject(AuthService);

  readonly resource = rxResource({
    // Keyed by the token so a different user never sees the previous one's list.
    params: () => this.auth.token() ?? undefined,
    stream: () => this.api.list(),
  });

  readonly projects = computed<Project[]>(() => (this.resource.hasValue() ? this.resource.value() : []));
  readonly loading = this.resource.isLoading;

  reload(): void {
    this.resource.reload();
  }

  /** Applies a local change (created, renamed, deleted) without a round trip. */
  upsert(p: Project): void {
    patchList(this.resource, (list) =>
      [...list.filter((x) => x.id !== p.id), p].sort((a, b) => a.name.localeCompare(b.name)),
    );
  }

  remove(projectId: string): void {
    patchList(this.resource, (list) => list.filter((x) => x.id !== projectId));
  }
}
