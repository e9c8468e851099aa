import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';

/**
 * A machine's recent host CPU as a tiny SVG line, for the machine list: no
 * chart library, so the list (in the main bundle) stays light.
 */
@Component({
  selector: 'app-cpu-sparkline',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (path(); as d) {
      <svg [attr.viewBox]="'0 0 ' + W + ' ' + H" [attr.width]="W" [attr.height]="H" role="img" [attr.aria-label]="label()">
        <path [attr.d]="d" fill="none" stroke="currentColor" stroke-width="1.5" />
      </svg>
      <span class="now">{{ last() }}</span>
    } @else {
      <span class="muted">—</span>
    }
  `,
  styles: `
    :host {
      display: inline-flex;
      align-items: center;
      gap: 6px;
      color: var(--mat-sys-primary);
    }
    .now {
      font: var(--mat-sys-body-small);
      color: var(--mat-sys-on-surface-variant);
      min-width: 3.5em;
    }
  `,
  host: { 'data-testid': 'cpu-sparkline', '[attr.data-points]': 'values().length' },
})
export class CpuSparkline {
  /** CPU per cent, oldest first; nulls are gaps. */
  readonly values = input.required<(number | null)[]>();
  protected readonly W = 96;
  protected readonly H = 24;

  protected readonly path = computed(() => {
    const v = this.values();
    if (v.filter((x) => x !== null).length < 2) return null;
    const step = this.W / Math.max(1, v.length - 1);
    let d = '';
    let pen = false;
    v.forEach((x, i) => {
      if (x === null) {
        pen = false;
        return;
      }
      const y = this.H - 1 - (Math.min(100, Math.max(0, x)) / 100) * (this.H - 2);
      d += `${pen ? 'L' : 'M'}${(i * step).toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    return d;
  });
  protected readonly last = computed(() => {
    const x = [...this.values()].reverse().find((v) => v !== null);
    return x === undefined || x === null ? '' : `${x.toFixed(0)} %`;
  });
  protected readonly label = computed(() => `CPU over the last hour, now ${this.last() || 'unknown'}`);
}
