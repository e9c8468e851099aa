import { DestroyRef, Injectable, computed, inject } from '@angular/core';
import { rxResource, takeUntilDestroyed, toObservable, toSignal } from '@angular/core/rxjs-interop';
import { ActivatedRoute } from '@angular/router';
import { ROLE_RANK, type Machine, type Project, type ProjectRole } from '@kapitan/shared';
import { EMPTY, Subject, map, switchMap } from 'rxjs';
import { Notify } from '../core/api/notify.service';
import { LiveService, type ProjectLiveEvent } from '../core/live/live.service';
import { patchList } from '../core/util/resource';
import { MachinesApi } from '../machines/machines-api';
import { ProjectsApi } from './projects-api';

/**
 * What every page of one project shares: the project (with the caller's role),
 * its machines kept current by the live room, and the room's events. Provided by
 * the project page, so it lives exactly as long as the user is in that project.
 */
@Injectable()
export class ProjectContext {
  private readonly projectsApi = inject(ProjectsApi);
  private readonly machinesApi = inject(MachinesApi);
  private readonly live = inject(LiveService);
  private readonly notify = inject(Notify);

  readonly projectId = toSignal(inject(ActivatedRoute).paramMap.pipe(map((p) => p.get('projectId') ?? '')), {
    requireSync: true,
  });

  readonly projectResource = rxResource({
    params: () => this.projectId() || undefined,
    stream: ({ params }) => this.projectsApi.get(params),
  });

  readonly machinesResource = rxResource({
    params: () => this.projectId() || undefined,
    stream: ({ params }) => this.machinesApi.list(params),
  });

  readonly project = computed<Project | null>(() =>
    this.projectResource.hasValue() ? this.projectResource.value() : null,
  );
  readonly machines = computed<Machine[]>(() =>
    this.machinesResource.hasValue() ? this.machinesResource.value() : [],
  );
  readonly machineById = computed(() => new Map(this.machines().map((m) => [m.id, m])));
  readonly onlineCount = computed(() => this.machines().filter((m) => m.status === 'online').length);

  readonly role = computed<ProjectRole>(() => this.project()?.role ?? 'viewer');
  /** Operators and owners run scripts, enrol and manage machines. */
  readonly canOperate = computed(() => ROLE_RANK[this.role()] >= ROLE_RANK.operator);
  /** Owners manage members and settings and may delete the project. */
  readonly isOwner = computed(() => this.role() === 'owner');

  private readonly events = new Subject<ProjectLiveEvent>();
  /** The project's live room: machine and execution updates, and `resync` after a reconnect. */
  readonly events$ = this.events.asObservable();

  constructor() {
    toObservable(this.projectId)
      .pipe(
        switchMap((id) => (id ? this.live.project(id) : EMPTY)),
        takeUntilDestroyed(inject(DestroyRef)),
      )
      .subscribe((e) => {
        switch (e.type) {
          case 'machine':
            this.upsertMachine(e.machine);
            break;
          case 'resync':
            this.machinesResource.reload();
            break;
          case 'error':
            this.notify.error(new Error(e.message), 'Live updates');
            break;
        }
        this.events.next(e);
      });
  }

  hostname(machineId: string): string {
    return this.machineById().get(machineId)?.hostname ?? machineId.slice(0, 8);
  }

  upsertMachine(m: Machine): void {
    if (m.projectId !== this.projectId() || !this.machinesResource.hasValue()) return;
    patchList(this.machinesResource, (list) => {
      const i = list.findIndex((x) => x.id === m.id);
      if (i < 0) return [...list, m];
      const next = list.slice();
      next[i] = m;
      return next;
    });
  }

  removeMachine(machineId: string): void {
    patchList(this.machinesResource, (list) => list.filter((m) => m.id !== machineId));
  }

  setProject(p: Project): void {
    this.projectResource.set(p);
  }
}
