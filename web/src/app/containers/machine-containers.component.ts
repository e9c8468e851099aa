import { ChangeDetectionStrategy, Component, computed, inject, input, signal } from '@angular/core';
import { rxResource, takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { FormControl, FormGroup, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatDialog } from '@angular/material/dialog';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { CreateContainerRequestSchema, type ContainerAction, type ContainerOperation, type MachineContainer, type MachineDockerStatus } from '@kapitan/shared';
import { map, type Observable } from 'rxjs';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { schemaDetails } from '../core/api/schema-errors';
import { LiveService } from '../core/live/live.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { StatusChip } from '../core/ui/status-chip.component';
import { LogViewer, type LogEvent } from '../executions/log-viewer/log-viewer.component';
import { ProjectContext } from '../projects/project-context';
import { Clock } from '../core/util/clock';
import { TimeAgoPipe } from '../core/util/pipes';
import { ContainersApi } from './containers-api';
import { toCreateRequest, type CreateFormValue } from './container-create.form';
import { withCreateAnswer, withRoomState } from './recent-operations';

const CONFIRM: Record<ContainerAction, { title: string; text: string; danger: boolean } | null> = {
  start: null,
  stop: { title: 'Stop container?', text: 'It gets SIGTERM, then SIGKILL after Docker’s grace period.', danger: false },
  restart: { title: 'Restart container?', text: 'It is stopped and started again.', danger: false },
  remove: { title: 'Remove container?', text: 'It is stopped if running and removed, with its anonymous volumes’ data.', danger: true },
};

/**
 * A machine's containers, live: the table follows the project room's
 * container events (a snapshot replaces it, a change patches it), Docker's
 * availability with the agent's reason, actions with confirmation, a create
 * form, operations as they progress, and the logs of one container.
 */
@Component({
  selector: 'app-machine-containers',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    MatButtonModule,
    MatIconModule,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatTableModule,
    MatTooltipModule,
    MatProgressBarModule,
    StatusChip,
    EmptyState,
    LogViewer,
    TimeAgoPipe,
  ],
  templateUrl: './machine-containers.component.html',
  styles: `
    .sub { font: var(--mat-sys-body-small); color: var(--mat-sys-on-surface-variant); }
    .notice { display: flex; gap: 8px; align-items: center; padding: 12px 16px; background: var(--mat-sys-error-container); color: var(--mat-sys-on-error-container); }
    .ops { padding: 8px 16px; display: flex; flex-direction: column; gap: 4px; font: var(--mat-sys-body-small); }
    .op-failed { color: var(--mat-sys-error); }
    td.actions { white-space: nowrap; text-align: right; }
    .create { padding: 16px; display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 0 16px; }
    .create .buttons { grid-column: 1 / -1; display: flex; gap: 8px; justify-content: flex-end; }
    .logs-head { display: flex; align-items: center; gap: 8px; padding: 8px 16px; }
  `,
})
export class MachineContainers {
  readonly machineId = input.required<string>();

  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(ContainersApi);
  private readonly live = inject(LiveService);
  private readonly notify = inject(Notify);
  private readonly dialog = inject(MatDialog);

  protected readonly columns = ['state', 'name', 'image', 'ports', 'status', 'actions'];

  protected readonly list = rxResource({ params: () => this.machineId(), stream: ({ params }) => this.api.list(params) });
  protected readonly dockerRes = rxResource({ params: () => this.machineId(), stream: ({ params }) => this.api.docker(params) });
  protected readonly opsRes = rxResource({ params: () => this.machineId(), stream: ({ params }) => this.api.operations(params) });

  protected readonly containers = computed<MachineContainer[]>(() => (this.list.hasValue() ? this.list.value() : []));
  protected readonly docker = computed<MachineDockerStatus | null>(() => (this.dockerRes.hasValue() ? this.dockerRes.value() : null));
  protected readonly operations = computed<ContainerOperation[]>(() => (this.opsRes.hasValue() ? this.opsRes.value().slice(0, 5) : []));

  protected readonly creating = signal(false);
  protected readonly createErrors = signal<string[]>([]);
  protected readonly form = new FormGroup({
    image: new FormControl('', { nonNullable: true, validators: [Validators.required] }),
    name: new FormControl('', { nonNullable: true }),
    env: new FormControl('', { nonNullable: true }),
    ports: new FormControl('', { nonNullable: true }),
    volumes: new FormControl('', { nonNullable: true }),
    restartPolicy: new FormControl<CreateFormValue['restartPolicy']>('no', { nonNullable: true }),
    command: new FormControl('', { nonNullable: true }),
    labels: new FormControl('', { nonNullable: true }),
  });

  protected readonly logsOf = signal<MachineContainer | null>(null);
  /** Lines of the log before now to start from; changing it follows again. */
  protected readonly logTail = signal(1000);
  protected readonly tails = [0, 100, 1000, 10_000, 100_000];
  protected readonly logSource = computed<Observable<LogEvent> | null>(() => {
    const c = this.logsOf();
    if (!c) return null;
    return this.live.containerLogs(this.machineId(), c.id, this.logTail()).pipe(map((e): LogEvent => e));
  });

  constructor() {
    this.ctx.events$.pipe(takeUntilDestroyed()).subscribe((e) => {
      if (e.type === 'containers' && e.event.machineId === this.machineId()) {
        const ev = e.event;
        this.list.update((cur) => {
          if (ev.snapshot) return ev.containers;
          const byId = new Map((cur ?? []).map((c) => [c.id, c]));
          for (const c of ev.containers) byId.set(c.id, c);
          for (const id of ev.removed) byId.delete(id);
          return [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
        });
      } else if (e.type === 'docker' && e.status.machineId === this.machineId()) {
        this.dockerRes.set(e.status);
      } else if (e.type === 'container-operation' && e.operation.machineId === this.machineId()) {
        this.opsRes.update((cur) => withRoomState(cur, e.operation));
      } else if (e.type === 'resync') {
        this.list.reload();
        this.dockerRes.reload();
        this.opsRes.reload();
      }
    });
  }

  private answered(o: ContainerOperation): void {
    this.opsRes.update((cur) => withCreateAnswer(cur, o));
  }

  protected ports(c: MachineContainer): string {
    return c.ports.map((p) => (p.publicPort ? `${p.ip && p.ip !== '0.0.0.0' ? p.ip + ':' : ''}${p.publicPort}→${p.privatePort}/${p.protocol}` : `${p.privatePort}/${p.protocol}`)).join(', ');
  }

  protected describe(o: ContainerOperation): string {
    const target = o.kind === 'create' ? (o.spec?.name ?? o.spec?.image ?? '') : (this.containers().find((c) => c.id === o.containerId)?.name ?? o.containerId?.slice(0, 12) ?? '');
    return `${o.kind} ${target}`;
  }

  protected act(c: MachineContainer, action: ContainerAction): void {
    const ask = CONFIRM[action];
    const go = (): void => {
      this.api.act(this.machineId(), c.id, action).subscribe({
        next: (o) => this.answered(o),
        error: (err: unknown) => this.notify.error(err, `Could not ${action} ${c.name}`),
      });
    };
    if (!ask) return go();
    confirm(this.dialog, { title: ask.title, message: `${c.name}: ${ask.text}`, confirmText: action[0]!.toUpperCase() + action.slice(1), danger: ask.danger }).subscribe((ok) => ok && go());
  }

  protected create(): void {
    const { request, errors } = toCreateRequest(this.form.getRawValue());
    const parsed = CreateContainerRequestSchema.safeParse(request);
    const all = [...errors, ...(parsed.success ? [] : schemaDetails(parsed.error.issues).map((d) => `${d.path}: ${d.message}`))];
    this.createErrors.set(all);
    if (all.length) return;
    this.api.create(this.machineId(), request).subscribe({
      next: (o) => {
        this.answered(o);
        this.creating.set(false);
        this.form.reset();
        this.notify.success('Create queued: it succeeds once the container runs');
      },
      error: (err: unknown) => {
        const e = ApiError.from(err);
        this.createErrors.set(e.details.length ? e.details.map((d) => `${d.path}: ${d.message}`) : [e.message]);
      },
    });
  }
}
