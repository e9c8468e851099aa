import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';

/** `key=value` labels as small monospace chips. */
@Component({
  selector: 'app-label-chips',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <span class="label-chips">
      @for (l of entries(); track l[0]) {
        <span class="label-chip" data-testid="label-chip">{{ l[0] }}={{ l[1] }}</span>
      } @empty {
        <span class="muted">{{ emptyText() }}</span>
      }
    </span>
  `,
})
export class LabelChips {
  readonly labels = input<Record<string, string> | null | undefined>({});
  readonly emptyText = input('—');
  protected readonly entries = computed(() => Object.entries(this.labels() ?? {}).sort(([a], [b]) => a.localeCompare(b)));
}
