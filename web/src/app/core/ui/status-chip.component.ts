import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { MatIconModule } from '@angular/material/icon';
import type { ContainerState, ExecutionStatus, MachineStatus } from '@kapitan/shared';

type Tone = 'ok' | 'info' | 'warn' | 'err' | 'muted';

const LOOK: Record<ExecutionStatus | MachineStatus | ContainerState, { tone: Tone; icon: string; label: string }> = {
  online: { tone: 'ok', icon: '', label: 'online' },
  offline: { tone: 'muted', icon: '', label: 'offline' },
  queued: { tone: 'muted', icon: 'schedule', label: 'queued' },
  dispatched: { tone: 'info', icon: 'send', label: 'dispatched' },
  running: { tone: 'info', icon: '', label: 'running' },
  succeeded: { tone: 'ok', icon: 'check_circle', label: 'succeeded' },
  failed: { tone: 'err', icon: 'error', label: 'failed' },
  cancelled: { tone: 'warn', icon: 'block', label: 'cancelled' },
  timed_out: { tone: 'err', icon: 'timer_off', label: 'timed out' },
  lost: { tone: 'err', icon: 'link_off', label: 'lost' },
  expired: { tone: 'warn', icon: 'hourglass_disabled', label: 'expired' },
  refused: { tone: 'err', icon: 'gpp_bad', label: 'refused by policy' },
  created: { tone: 'muted', icon: 'inventory_2', label: 'created' },
  paused: { tone: 'warn', icon: 'pause_circle', label: 'paused' },
  restarting: { tone: 'warn', icon: 'autorenew', label: 'restarting' },
  removing: { tone: 'muted', icon: 'delete', label: 'removing' },
  exited: { tone: 'muted', icon: 'stop_circle', label: 'exited' },
  dead: { tone: 'err', icon: 'error', label: 'dead' },
};

/** A status pill for machines (online/offline) and executions; `data-status` carries the raw value. */
@Component({
  selector: 'app-status-chip',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MatIconModule],
  host: {
    class: 'status-chip',
    '[class]': '"tone-" + look().tone',
    '[attr.data-status]': 'status()',
    '[attr.title]': 'title() || null',
  },
  template: `
    @if (look().icon) {
      <mat-icon aria-hidden="true">{{ look().icon }}</mat-icon>
    } @else {
      <span class="dot" [class.pulse]="status() === 'running' || status() === 'online'"></span>
    }
    <span class="label">{{ look().label }}</span>
  `,
  styles: `
    :host {
      display: inline-flex;
      align-items: center;
      gap: 6px;
      height: 24px;
      padding: 0 10px 0 8px;
      border-radius: 12px;
      font: var(--mat-sys-label-medium);
      white-space: nowrap;
      vertical-align: middle;
      box-sizing: border-box;
    }
    mat-icon {
      font-size: 16px;
      width: 16px;
      height: 16px;
    }
    .dot {
      width: 8px;
      height: 8px;
      border-radius: 50%;
      background: currentColor;
      margin: 0 2px;
    }
    .dot.pulse {
      animation: pulse 1.6s ease-in-out infinite;
    }
    @keyframes pulse {
      0%, 100% { box-shadow: 0 0 0 0 color-mix(in srgb, currentColor 45%, transparent); }
      50% { box-shadow: 0 0 0 4px color-mix(in srgb, currentColor 0%, transparent); }
    }
    :host(.tone-ok) { color: var(--kp-ok); background: var(--kp-ok-bg); }
    :host(.tone-info) { color: var(--kp-info); background: var(--kp-info-bg); }
    :host(.tone-warn) { color: var(--kp-warn); background: var(--kp-warn-bg); }
    :host(.tone-err) { color: var(--kp-err); background: var(--kp-err-bg); }
    :host(.tone-muted) { color: var(--kp-muted); background: var(--kp-muted-bg); }
  `,
})
export class StatusChip {
  readonly status = input.required<ExecutionStatus | MachineStatus | ContainerState>();
  readonly title = input<string | null>(null);
  protected readonly look = computed(() => LOOK[this.status()] ?? { tone: 'muted', icon: 'help', label: this.status() });
}
