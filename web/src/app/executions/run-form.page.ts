import { ChangeDetectionStrategy, Component, computed, effect, inject, input, signal, untracked } from '@angular/core';
import { toSignal } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatButtonToggleModule } from '@angular/material/button-toggle';
import { MatExpansionModule } from '@angular/material/expansion';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatSelectModule } from '@angular/material/select';
import { rxResource } from '@angular/core/rxjs-interop';
import { Router, RouterLink } from '@angular/router';
import { LIMITS } from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { EmptyState } from '../core/ui/empty-state.component';
import { labelsMatch, parseKeyValueLines } from '../core/util/key-value';
import { ProjectContext } from '../projects/project-context';
import { SecretsApi } from '../secrets/secrets-api';
import { ExecutionsApi } from './executions-api';
import {
  EMPTY_RUN_FORM,
  formFromExecution,
  toCreateExecutionRequest,
  type RunFormField,
  type RunFormValue,
  type TargetMode,
} from './run-request';

const SCRIPT_PLACEHOLDER = `#!/bin/sh
set -eu
echo "hello from $(hostname)"`;

@Component({
  selector: 'app-run-form-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    ReactiveFormsModule,
    RouterLink,
    MatFormFieldModule,
    MatInputModule,
    MatSelectModule,
    MatButtonModule,
    MatButtonToggleModule,
    MatIconModule,
    MatExpansionModule,
    MatProgressBarModule,
    EmptyState,
  ],
  templateUrl: './run-form.page.html',
  styleUrl: './run-form.page.scss',
})
export class RunFormPage {
  /** `?machine=<id>`: preselect one machine. */
  readonly machine = input<string>();
  /** `?from=<executionId>`: prefill from an earlier execution ("run again"). */
  readonly from = input<string>();

  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(ExecutionsApi);
  private readonly secretsApi = inject(SecretsApi);
  private readonly notify = inject(Notify);
  private readonly router = inject(Router);

  protected readonly limits = LIMITS;
  protected readonly scriptPlaceholder = SCRIPT_PLACEHOLDER;
  protected readonly busy = signal(false);
  protected readonly formError = signal<string | null>(null);

  protected readonly form = inject(NonNullableFormBuilder).group({
    script: ['', [Validators.required]],
    args: [''],
    env: [''],
    secrets: [[] as string[]],
    cwd: [''],
    timeoutSeconds: [3600 as number | null, [Validators.min(1), Validators.max(LIMITS.timeoutSecondsMax)]],
    expiresInSeconds: [null as number | null, [Validators.min(1), Validators.max(LIMITS.timeoutSecondsMax)]],
    targetMode: ['machines' as TargetMode],
    machineIds: [[] as string[]],
    labels: [''],
  });

  /** The project's secrets, by name: what the picker offers (values never reach the page). */
  protected readonly projectSecrets = rxResource({
    params: () => this.ctx.projectId(),
    stream: ({ params }) => this.secretsApi.list(params),
  });
  protected readonly secretNames = computed(() => (this.projectSecrets.hasValue() ? this.projectSecrets.value().map((s) => s.name) : []));

  private readonly value = toSignal(this.form.valueChanges, { initialValue: this.form.getRawValue() });
  protected readonly mode = computed(() => this.value().targetMode ?? 'machines');

  /** The machines the run would reach, for the preview line and the button. */
  protected readonly targeted = computed(() => {
    const v = this.value();
    const machines = this.ctx.machines();
    switch (v.targetMode) {
      case 'machines': {
        const ids = new Set(v.machineIds ?? []);
        return machines.filter((m) => ids.has(m.id));
      }
      case 'labels': {
        const sel = parseKeyValueLines(v.labels ?? '');
        if (sel.errors.length || Object.keys(sel.values).length === 0) return [];
        return machines.filter((m) => labelsMatch(m.labels, sel.values));
      }
      default:
        return machines;
    }
  });
  protected readonly targetedOnline = computed(() => this.targeted().filter((m) => m.status === 'online').length);

  constructor() {
    // Prefill once from ?machine= or ?from=.
    effect(() => {
      const machineId = this.machine();
      if (machineId) untracked(() => this.form.patchValue({ targetMode: 'machines', machineIds: [machineId] }));
    });
    effect(() => {
      const from = this.from();
      if (!from) return;
      untracked(() =>
        this.api.get(from).subscribe({
          next: (e) => this.form.reset(formFromExecution(e)),
          error: (err: unknown) => this.notify.error(err, 'Could not load the earlier execution'),
        }),
      );
    });
  }

  protected submit(): void {
    this.formError.set(null);
    const result = toCreateExecutionRequest(this.form.getRawValue() as RunFormValue);
    if (!result.ok) {
      this.showErrors(result.errors);
      return;
    }
    this.busy.set(true);
    this.api.create(this.ctx.projectId(), result.request).subscribe({
      next: (r) => {
        this.busy.set(false);
        const n = r.executions.length;
        this.notify.success(n === 1 ? 'Execution started' : `Run started on ${n} machines`);
        const base = ['/projects', this.ctx.projectId(), 'executions'];
        if (n === 1) void this.router.navigate([...base, r.executions[0]!.id]);
        else void this.router.navigate(base, { queryParams: { runId: r.runId } });
      },
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        const rest = applyFieldErrors(this.form, e.details, {
          'targets.machineIds': 'machineIds',
          'targets.labels': 'labels',
          targets: this.mode() === 'labels' ? 'labels' : this.mode() === 'machines' ? 'machineIds' : 'targetMode',
        });
        if (rest.length || !e.details.length) this.formError.set(e.toString());
      },
    });
  }

  protected reset(): void {
    this.form.reset(EMPTY_RUN_FORM);
    this.formError.set(null);
  }

  protected error(field: RunFormField): string | null {
    const c = this.form.controls[field];
    if (c.hasError('server')) return c.getError('server') as string;
    if (c.hasError('required')) return 'Required';
    if (c.hasError('min')) return 'Too small';
    if (c.hasError('max')) return 'Too large';
    return null;
  }

  private showErrors(errors: Partial<Record<RunFormField, string>>): void {
    for (const [field, message] of Object.entries(errors) as [RunFormField, string][]) {
      const c = this.form.controls[field];
      c.setErrors({ ...(c.errors ?? {}), server: message });
      c.markAsTouched();
    }
  }
}
