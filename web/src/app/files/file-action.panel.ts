import { ChangeDetectionStrategy, Component, DestroyRef, computed, inject, input, output, signal } from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';
import { FormControl, FormGroup, ReactiveFormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatCheckboxModule } from '@angular/material/checkbox';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatRadioModule } from '@angular/material/radio';
import { RouterLink } from '@angular/router';
import { CreateDeployRequestSchema, type StoredFile, type Targets } from '@kapitan/shared';
import { ApiError } from '../core/api/api-error';
import { DeliveriesApi } from '../deliveries/deliveries-api';
import { ExecutionsApi } from '../executions/executions-api';
import { ProjectContext } from '../projects/project-context';
import { ActionLines } from './action-lines';

export type FileAction = 'run' | 'deploy' | 'distribute';

/**
 * Run a stored script, deploy a file or distribute an image: choose the
 * target machines (and, for a deploy, the path, mode and owner), then watch
 * each machine's part live from the project's room.
 */
@Component({
  selector: 'app-file-action-panel',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, RouterLink, MatButtonModule, MatCheckboxModule, MatFormFieldModule, MatIconModule, MatInputModule, MatProgressBarModule, MatRadioModule],
  template: `
    <div class="panel-pad action" data-testid="file-action-panel" [attr.data-action]="action()">
      <div class="head">
        <strong>{{ title() }}</strong>
        <span class="mono">{{ file().name }}</span>
        <span class="spacer"></span>
        <button matIconButton (click)="closed.emit()" aria-label="Close" data-testid="close-action"><mat-icon>close</mat-icon></button>
      </div>
      @if (!lines().length) {
        <form [formGroup]="form" (ngSubmit)="submit()">
          <mat-radio-group formControlName="mode" class="targets" aria-label="Target machines">
            <mat-radio-button value="all" data-testid="target-all">All machines</mat-radio-button>
            <mat-radio-button value="some" data-testid="target-some">Chosen machines</mat-radio-button>
          </mat-radio-group>
          @if (form.controls.mode.value === 'some') {
            <div class="machines">
              @for (m of ctx.machines(); track m.id) {
                <mat-checkbox [checked]="chosen().has(m.id)" (change)="toggle(m.id, $event.checked)" data-testid="target-machine" [attr.data-machine-id]="m.id">
                  {{ m.hostname }} <span class="muted">({{ m.status }})</span>
                </mat-checkbox>
              } @empty {
                <span class="muted">No machines in this project.</span>
              }
            </div>
          }
          @if (action() === 'deploy') {
            <div class="fields">
              <mat-form-field appearance="outline" class="path">
                <mat-label>Target path</mat-label>
                <input matInput formControlName="path" placeholder="/srv/app/config.json" data-testid="deploy-path" />
              </mat-form-field>
              <mat-form-field appearance="outline">
                <mat-label>Mode</mat-label>
                <input matInput formControlName="fileMode" data-testid="deploy-mode" />
              </mat-form-field>
              <mat-form-field appearance="outline">
                <mat-label>Owner (optional)</mat-label>
                <input matInput formControlName="owner" placeholder="user:group" data-testid="deploy-owner" />
              </mat-form-field>
            </div>
          }
          @if (error(); as e) {
            <p class="error-text" role="alert" data-testid="action-error">{{ e }}</p>
          }
          <button matButton="filled" type="submit" [disabled]="sending()" data-testid="action-submit">{{ title() }}</button>
        </form>
      } @else {
        <ul class="lines" data-testid="action-progress">
          @for (l of lines(); track l.machineId) {
            <li data-testid="action-machine" [attr.data-machine-id]="l.machineId" [attr.data-status]="l.status">
              <span class="host">{{ ctx.hostname(l.machineId) }}</span>
              <span class="status" data-testid="action-status">{{ l.status }}</span>
              @if (l.percent !== null) {
                <mat-progress-bar mode="determinate" [value]="l.percent" />
                <span class="muted" data-testid="action-percent">{{ l.percent }} %</span>
              }
              @if (l.imageId) {
                <code class="muted" data-testid="action-image" [title]="l.imageId">{{ l.imageId.slice(0, 19) }}</code>
              }
              @if (l.moved) {
                <span class="muted" data-testid="action-moved">{{ l.moved }}</span>
              }
              @if (l.executionId) {
                <a [routerLink]="['../executions', l.executionId]" data-testid="action-execution">output</a>
              }
              @if (l.reason) {
                <span class="error-text" data-testid="action-reason">{{ l.reason }}</span>
              }
            </li>
          }
        </ul>
      }
    </div>
  `,
  styles: `
    .action {
      display: flex;
      flex-direction: column;
      gap: 8px;
      border-top: 1px solid var(--mat-sys-outline-variant);
    }
    .head,
    .targets,
    .fields {
      display: flex;
      align-items: center;
      gap: 12px;
      flex-wrap: wrap;
    }
    .path {
      min-width: 24rem;
    }
    .machines {
      display: flex;
      flex-direction: column;
    }
    .lines {
      list-style: none;
      margin: 0;
      padding: 0;
    }
    .lines li {
      display: grid;
      grid-template-columns: 12rem 7rem 1fr 4rem;
      align-items: center;
      gap: 8px;
      padding: 4px 0;
    }
    .lines .error-text,
    .lines code {
      grid-column: 1 / -1;
    }
  `,
})
export class FileActionPanel {
  readonly file = input.required<StoredFile>();
  readonly action = input.required<FileAction>();
  readonly closed = output<void>();

  protected readonly ctx = inject(ProjectContext);
  private readonly deliveries = inject(DeliveriesApi);
  private readonly executions = inject(ExecutionsApi);

  protected readonly form = new FormGroup({
    mode: new FormControl<'all' | 'some'>('all', { nonNullable: true }),
    path: new FormControl('', { nonNullable: true }),
    fileMode: new FormControl('0644', { nonNullable: true }),
    owner: new FormControl('', { nonNullable: true }),
  });
  protected readonly chosen = signal<ReadonlySet<string>>(new Set());
  protected readonly sending = signal(false);
  protected readonly error = signal<string | null>(null);
  private readonly tracked = new ActionLines();
  protected readonly lines = this.tracked.lines;

  protected readonly title = computed(() => ({ run: 'Run', deploy: 'Deploy', distribute: 'Distribute' })[this.action()]);

  constructor() {
    this.ctx.events$.pipe(takeUntilDestroyed(inject(DestroyRef))).subscribe((e) => {
      if (e.type === 'resync') this.fetchAgain();
      else this.tracked.event(e);
    });
  }

  private fetchAgain(): void {
    const { deliveryId, executionIds } = this.tracked.followed();
    if (deliveryId) this.deliveries.get(deliveryId).subscribe({ next: (d) => this.tracked.deliveryFetched(d), error: () => undefined });
    for (const id of executionIds) this.executions.get(id).subscribe({ next: (execution) => this.tracked.event({ type: 'execution', execution }), error: () => undefined });
  }

  protected toggle(machineId: string, on: boolean): void {
    const next = new Set(this.chosen());
    if (on) next.add(machineId);
    else next.delete(machineId);
    this.chosen.set(next);
  }

  protected submit(): void {
    const v = this.form.getRawValue();
    const targets: Targets = v.mode === 'all' ? { all: true } : { machineIds: [...this.chosen()] };
    if (v.mode === 'some' && !this.chosen().size) return this.error.set('choose at least one machine');
    const projectId = this.ctx.projectId();
    const fileId = this.file().id;
    this.error.set(null);
    this.sending.set(true);
    const fail = (err: unknown) => {
      this.tracked.refused();
      this.sending.set(false);
      this.error.set(ApiError.from(err).message);
    };
    if (this.action() === 'run') {
      this.tracked.requested();
      this.executions.create(projectId, { fileId, targets }).subscribe({
        next: (r) => this.tracked.runCreated(r),
        error: fail,
      });
      return;
    }
    const request =
      this.action() === 'deploy'
        ? (() => {
            // The shared schema checks the path, mode and owner here first, with the same words as the server.
            const body = { fileId, targets, path: v.path.trim(), mode: v.fileMode.trim(), ...(v.owner.trim() ? { owner: v.owner.trim() } : {}) };
            const parsed = CreateDeployRequestSchema.safeParse(body);
            if (!parsed.success) {
              const issue = parsed.error.issues[0];
              fail(new Error(`${issue.path.join('.')}: ${issue.message}`));
              return null;
            }
            return this.deliveries.deploy(projectId, body);
          })()
        : this.deliveries.distribute(projectId, { fileId, targets });
    if (!request) return;
    this.tracked.requested();
    request.subscribe({
      next: (d) => this.tracked.deliveryCreated(d),
      error: fail,
    });
  }
}
