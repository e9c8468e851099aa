import { ChangeDetectionStrategy, Component, DestroyRef, computed, effect, inject, input, signal, untracked } from '@angular/core';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import type { ContainerMetricsPoint, HostMetricsPoint } from '@kapitan/shared';
import type { EChartsCoreOption } from 'echarts/core';
import { NgxEchartsDirective, provideEchartsCore } from 'ngx-echarts';
import { forkJoin, type Subscription } from 'rxjs';
import { ContainersApi } from '../containers/containers-api';
import { LiveService } from '../core/live/live.service';
import { formatBytes } from '../core/util/format';
import { MetricsApi } from './metrics-api';
import { appendSample, emptyWindow, type MetricsWindow } from './metrics-window';

/** What the charts show: the last quarter of an hour, history first, then every live sample. */
const WINDOW_MS = 15 * 60_000;

type Series = { name: string; data: [number, number | null][]; area?: boolean };

/**
 * Live charts of a machine: host CPU, memory, network and load, and each
 * container's CPU and memory. Opening it watches the machine (its agent
 * samples fast while anyone does); closing it stops watching. Loaded lazily
 * (the machine page defers it), with ECharts behind a dynamic import.
 */
@Component({
  selector: 'app-machine-metrics',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [NgxEchartsDirective, MatIconModule, MatProgressBarModule],
  providers: [provideEchartsCore({ echarts: () => import('./echarts-setup').then((m) => m.default) })],
  template: `
    <section class="panel" data-testid="metrics-panel">
      <div class="panel-toolbar">
        <span class="title">Metrics</span>
        <span class="summary" data-testid="metrics-summary">
          @if (latest(); as l) {
            · CPU <span data-testid="metrics-cpu">{{ l.cpuPercent === null ? '—' : l.cpuPercent.toFixed(1) + ' %' }}</span> · memory
            {{ bytes(l.memoryUsedBytes) }} of {{ bytes(l.memoryTotalBytes) }} · load {{ l.load1.toFixed(2) }} · updated
            <span data-testid="metrics-updated">{{ time(l.at) }}</span>
          } @else if (!loading()) {
            · no samples yet
          }
        </span>
      </div>
      @if (loading()) {
        <mat-progress-bar mode="indeterminate" />
      }
      @if (error(); as e) {
        <div class="panel-pad muted">{{ e }}</div>
      }
      <div class="charts" data-testid="metrics-charts" [attr.data-samples]="window().host.length">
        <figure data-testid="metrics-chart-cpu"><figcaption>CPU %</figcaption><div echarts class="chart" [options]="cpu()" [autoResize]="true"></div></figure>
        <figure data-testid="metrics-chart-memory"><figcaption>Memory</figcaption><div echarts class="chart" [options]="memory()" [autoResize]="true"></div></figure>
        <figure data-testid="metrics-chart-network"><figcaption>Network</figcaption><div echarts class="chart" [options]="network()" [autoResize]="true"></div></figure>
        <figure data-testid="metrics-chart-load"><figcaption>Load</figcaption><div echarts class="chart" [options]="load()" [autoResize]="true"></div></figure>
        <figure data-testid="metrics-chart-container-cpu" [attr.data-containers]="window().containers.size">
          <figcaption>Containers · CPU %</figcaption><div echarts class="chart" [options]="containerCpu()" [autoResize]="true"></div>
        </figure>
        <figure data-testid="metrics-chart-container-memory"><figcaption>Containers · memory</figcaption><div echarts class="chart" [options]="containerMemory()" [autoResize]="true"></div></figure>
      </div>
    </section>
  `,
  styles: `
    .charts {
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(320px, 1fr));
      gap: 8px 16px;
      padding: 8px 16px 16px;
    }
    figure {
      margin: 0;
    }
    figcaption {
      font: var(--mat-sys-label-medium);
      color: var(--mat-sys-on-surface-variant);
    }
    .chart {
      height: 160px;
    }
    .summary {
      font: var(--mat-sys-body-medium);
      color: var(--mat-sys-on-surface-variant);
    }
  `,
})
export class MachineMetrics {
  readonly machineId = input.required<string>();

  private readonly api = inject(MetricsApi);
  private readonly containersApi = inject(ContainersApi);
  private readonly live = inject(LiveService);

  protected readonly window = signal<MetricsWindow>(emptyWindow());
  protected readonly loading = signal(true);
  protected readonly error = signal<string | null>(null);
  private readonly names = signal<Map<string, string>>(new Map());
  protected readonly latest = computed<HostMetricsPoint | null>(() => this.window().host.at(-1) ?? null);

  protected readonly cpu = computed(() => chart([{ name: 'CPU', data: this.host((p) => p.cpuPercent), area: true }], { max: 100 }));
  protected readonly memory = computed(() =>
    chart(
      [
        { name: 'used', data: this.host((p) => p.memoryUsedBytes), area: true },
        { name: 'total', data: this.host((p) => p.memoryTotalBytes) },
      ],
      { bytes: true },
    ),
  );
  protected readonly network = computed(() =>
    chart(
      [
        { name: 'received /s', data: this.host((p) => p.netRxBytesPerSec) },
        { name: 'sent /s', data: this.host((p) => p.netTxBytesPerSec) },
      ],
      { bytes: true },
    ),
  );
  protected readonly load = computed(() =>
    chart([
      { name: '1 min', data: this.host((p) => p.load1) },
      { name: '5 min', data: this.host((p) => p.load5) },
      { name: '15 min', data: this.host((p) => p.load15) },
    ]),
  );
  protected readonly containerCpu = computed(() => chart(this.perContainer((p) => p.cpuPercent)));
  protected readonly containerMemory = computed(() => chart(this.perContainer((p) => p.memoryUsedBytes), { bytes: true }));

  protected readonly bytes = formatBytes;
  protected readonly time = (iso: string) => new Date(iso).toLocaleTimeString();

  constructor() {
    let live: Subscription | null = null;
    inject(DestroyRef).onDestroy(() => live?.unsubscribe());
    effect(() => {
      const machineId = this.machineId();
      untracked(() => {
        live?.unsubscribe();
        this.window.set(emptyWindow());
        this.loading.set(true);
        // watch first, so no sample falls between the history and the live tail
        live = this.live.machineMetrics(machineId).subscribe({
          next: (e) => this.window.update((w) => appendSample(w, e, Date.now(), WINDOW_MS)),
          error: (err: unknown) => this.error.set(err instanceof Error ? err.message : String(err)),
        });
        const from = new Date(Date.now() - WINDOW_MS).toISOString();
        forkJoin({
          host: this.api.host(machineId, { from, resolution: 'raw' }),
          containers: this.api.containers(machineId, { from, resolution: 'raw' }),
          list: this.containersApi.list(machineId),
        }).subscribe({
          next: ({ host, containers, list }) => {
            this.loading.set(false);
            this.names.set(new Map(list.map((c) => [c.id, c.name])));
            this.window.update((w) => {
              const first = w.host[0]?.at;
              const older = first ? host.points.filter((p) => p.at < first) : host.points;
              const merged = new Map<string, ContainerMetricsPoint[]>();
              for (const s of containers.series) merged.set(s.containerId, s.points);
              for (const [id, points] of w.containers) {
                const before = (merged.get(id) ?? []).filter((p) => !points[0] || p.at < points[0].at);
                merged.set(id, [...before, ...points]);
              }
              return { host: [...older, ...w.host], containers: merged };
            });
          },
          error: () => {
            this.loading.set(false);
            this.error.set('Could not load the stored metrics; live samples still show.');
          },
        });
      });
    });
  }

  private host(pick: (p: HostMetricsPoint) => number | null): [number, number | null][] {
    return this.window().host.map((p) => [Date.parse(p.at), pick(p)]);
  }

  private perContainer(pick: (p: ContainerMetricsPoint) => number | null): Series[] {
    const names = this.names();
    return [...this.window().containers].map(([id, points]) => ({
      name: names.get(id) ?? id.slice(0, 12),
      data: points.map((p) => [Date.parse(p.at), pick(p)] as [number, number | null]),
    }));
  }
}

function chart(series: Series[], opts: { max?: number; bytes?: boolean } = {}): EChartsCoreOption {
  const fmt = (v: number) => (opts.bytes ? formatBytes(v) : Number.isInteger(v) ? String(v) : v.toFixed(2));
  return {
    animation: false,
    grid: { left: 56, right: 12, top: series.length > 1 ? 28 : 12, bottom: 24 },
    legend: series.length > 1 ? { top: 0, type: 'scroll', textStyle: { fontSize: 11 } } : undefined,
    tooltip: { trigger: 'axis', valueFormatter: (v: unknown) => (typeof v === 'number' ? fmt(v) : '—') },
    xAxis: { type: 'time', axisLabel: { fontSize: 10, hideOverlap: true } },
    yAxis: { type: 'value', min: 0, max: opts.max, axisLabel: { fontSize: 10, formatter: fmt } },
    series: series.map((s) => ({
      name: s.name,
      type: 'line',
      showSymbol: false,
      connectNulls: false,
      data: s.data,
      ...(s.area ? { areaStyle: { opacity: 0.15 } } : {}),
    })),
  };
}
