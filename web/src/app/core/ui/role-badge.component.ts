import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import type { ProjectRole } from '@kapitan/shared';

@Component({
  selector: 'app-role-badge',
  changeDetection: ChangeDetectionStrategy.OnPush,
  host: { '[class]': '"role-" + role()', '[attr.data-role]': 'role()' },
  template: `{{ role() }}`,
  styles: `
    :host {
      display: inline-block;
      font: var(--mat-sys-label-small);
      text-transform: uppercase;
      letter-spacing: 0.06em;
      padding: 2px 8px;
      border-radius: 6px;
      border: 1px solid var(--mat-sys-outline-variant);
      color: var(--mat-sys-on-surface-variant);
      white-space: nowrap;
    }
    :host(.role-owner) {
      color: var(--mat-sys-on-primary-container);
      background: var(--mat-sys-primary-container);
      border-color: transparent;
    }
    :host(.role-operator) {
      color: var(--mat-sys-on-tertiary-container);
      background: var(--mat-sys-tertiary-container);
      border-color: transparent;
    }
  `,
})
export class RoleBadge {
  readonly role = input.required<ProjectRole>();
}
