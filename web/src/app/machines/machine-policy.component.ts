import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import type { ReportedPolicy } from '@kapitan/shared';

/**
 * The client policy the machine's agent reported at its last hello: what it
 * will refuse whatever is sent to it. Read-only here: the file belongs to
 * the machine's owner, not to the dashboard.
 */
@Component({
  selector: 'app-machine-policy',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="panel">
      <div class="panel-toolbar"><span class="title">Client policy</span></div>
      <div class="panel-pad" data-testid="machine-policy">
        @if (policy(); as p) {
          <p class="muted" data-testid="policy-source">
            @if (p.found) {
              <span class="mono">{{ p.path }}</span> · sha256 <span class="mono">{{ p.sha256?.slice(0, 12) }}</span>
            } @else {
              No policy file (<span class="mono">{{ p.path }}</span>): everything allowed
            }
          </p>
          <dl class="dl-grid">
            <dt>Read-only</dt>
            <dd data-testid="policy-readonly">{{ p.effective.readOnly ? 'yes: nothing that changes the machine' : 'no' }}</dd>
            <dt>Scripts</dt>
            <dd data-testid="policy-scripts">
              {{ p.effective.scripts.enabled ? 'allowed' : 'disabled' }}
              @if (p.effective.scripts.enabled && p.effective.scripts.allowSha256; as list) {
                · only {{ list.length }} allowed sha256{{ list.length === 1 ? '' : 's' }}
              }
            </dd>
            <dt>Deploys</dt>
            <dd data-testid="policy-deploys">
              {{ p.effective.deploys.enabled ? 'allowed' : 'disabled' }}
              @if (p.effective.deploys.enabled) {
                under <span class="mono">{{ p.effective.deploys.pathPrefixes.join(', ') || '(nowhere)' }}</span>
              }
            </dd>
            <dt>Docker</dt>
            <dd data-testid="policy-docker">
              {{ p.effective.docker.enabled ? 'allowed' : 'disabled' }}
              @if (p.effective.docker.enabled) {
                · images <span class="mono">{{ p.effective.docker.images?.join(', ') ?? 'any' }}</span>
              }
            </dd>
          </dl>
        } @else {
          <p class="muted" data-testid="policy-unknown">Not reported: the agent has not connected since it was upgraded, or is older than client policies.</p>
        }
      </div>
    </section>
  `,
})
export class MachinePolicy {
  readonly policy = input<ReportedPolicy | null>(null);
}
