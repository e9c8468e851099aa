import { ChangeDetectionStrategy, Component, DestroyRef, computed, inject, signal } from '@angular/core';
import { rxResource } from '@angular/core/rxjs-interop';
import { FormsModule } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatButtonToggleModule } from '@angular/material/button-toggle';
import { MatDialog } from '@angular/material/dialog';
import { MatIconModule } from '@angular/material/icon';
import { MatProgressBarModule } from '@angular/material/progress-bar';
import { MatTableModule } from '@angular/material/table';
import { MatTooltipModule } from '@angular/material/tooltip';
import { FILE_KINDS, sanitizeFileName, type FileKind, type StoredFile } from '@kapitan/shared';
import type { Subscription } from 'rxjs';
import { ApiError } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { confirm } from '../core/ui/confirm-dialog.component';
import { EmptyState } from '../core/ui/empty-state.component';
import { Clock } from '../core/util/clock';
import { BytesPipe, TimeAgoPipe } from '../core/util/pipes';
import { patchList } from '../core/util/resource';
import { ProjectContext } from '../projects/project-context';
import { FileActionPanel, type FileAction } from './file-action.panel';
import { FilesApi } from './files-api';

/** One upload under way in this page. */
interface Transfer {
  id: number;
  name: string;
  kind: FileKind;
  loaded: number;
  total: number;
  error: string | null;
}

/**
 * A project's files: every member lists and downloads them; operators drop
 * files here (or pick them) to upload, with real progress, and delete them.
 */
@Component({
  selector: 'app-files-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [
    FormsModule,
    MatTableModule,
    MatButtonModule,
    MatButtonToggleModule,
    MatIconModule,
    MatProgressBarModule,
    MatTooltipModule,
    EmptyState,
    FileActionPanel,
    TimeAgoPipe,
    BytesPipe,
  ],
  template: `
    <div class="page">
      <section class="panel" data-testid="files">
        <div class="panel-toolbar">
          <span class="title">Files</span>
          <span class="spacer"></span>
          <button matIconButton (click)="files.reload()" matTooltip="Refresh" aria-label="Refresh files">
            <mat-icon>refresh</mat-icon>
          </button>
        </div>
        @if (files.isLoading()) {
          <mat-progress-bar mode="indeterminate" />
        }
        @if (ctx.canOperate()) {
          <div
            class="dropzone panel-pad"
            [class.over]="dragging()"
            (dragover)="onDragOver($event)"
            (dragleave)="dragging.set(false)"
            (drop)="onDrop($event)"
            data-testid="file-dropzone"
          >
            <mat-icon>upload_file</mat-icon>
            <span>Drop files here, or</span>
            <button matButton="tonal" type="button" (click)="picker.click()" data-testid="pick-files">choose files</button>
            <input #picker type="file" multiple hidden (change)="onPicked(picker)" data-testid="file-input" />
            <span class="spacer"></span>
            <span class="muted">as</span>
            <mat-button-toggle-group [(ngModel)]="kind" aria-label="Kind of file" data-testid="file-kind">
              @for (k of kinds; track k) {
                <mat-button-toggle [value]="k" [attr.data-kind]="k">{{ k }}</mat-button-toggle>
              }
            </mat-button-toggle-group>
          </div>
          @for (t of transfers(); track t.id) {
            <div class="transfer panel-pad" data-testid="upload-progress" [attr.data-name]="t.name">
              <div class="transfer-head">
                <span class="mono">{{ t.name }}</span>
                <span class="muted">{{ t.kind }}</span>
                <span class="spacer"></span>
                @if (t.error) {
                  <span class="error-text" role="alert">{{ t.error }}</span>
                  <button matIconButton (click)="dismiss(t)" aria-label="Dismiss"><mat-icon>close</mat-icon></button>
                } @else {
                  <span class="muted" data-testid="upload-percent">{{ percent(t) }} % · {{ t.loaded | bytes }} of {{ t.total | bytes }}</span>
                  <button matIconButton (click)="cancel(t)" aria-label="Cancel upload" data-testid="cancel-upload"><mat-icon>cancel</mat-icon></button>
                }
              </div>
              <mat-progress-bar mode="determinate" [value]="percent(t)" />
            </div>
          }
        } @else {
          <p class="panel-pad muted help">Only operators and owners upload or delete files.</p>
        }
        @if (loadError(); as e) {
          <app-empty-state icon="cloud_off" title="Could not load the files">
            {{ e.message }}
            <div actions><button matButton="outlined" (click)="files.reload()">Retry</button></div>
          </app-empty-state>
        } @else if (rows().length) {
          <table mat-table [dataSource]="rows()" data-testid="files-table">
            <ng-container matColumnDef="name">
              <th mat-header-cell *matHeaderCellDef>Name</th>
              <td mat-cell *matCellDef="let f"><span class="mono">{{ f.name }}</span></td>
            </ng-container>
            <ng-container matColumnDef="kind">
              <th mat-header-cell *matHeaderCellDef>Kind</th>
              <td mat-cell *matCellDef="let f">{{ f.kind }}</td>
            </ng-container>
            <ng-container matColumnDef="size">
              <th mat-header-cell *matHeaderCellDef>Size</th>
              <td mat-cell *matCellDef="let f" [attr.title]="f.size + ' bytes'" data-testid="file-size">{{ f.size | bytes }}</td>
            </ng-container>
            <ng-container matColumnDef="sha256">
              <th mat-header-cell *matHeaderCellDef>sha256</th>
              <td mat-cell *matCellDef="let f"><code class="mono sha" [attr.title]="f.sha256" data-testid="file-sha256">{{ f.sha256 }}</code></td>
            </ng-container>
            <ng-container matColumnDef="uploaded">
              <th mat-header-cell *matHeaderCellDef>Uploaded</th>
              <td mat-cell *matCellDef="let f" class="muted">
                {{ f.createdAt | timeAgo: clock.now() }}
                @if (f.uploadedBy) {
                  by {{ f.uploadedBy.email }}
                }
              </td>
            </ng-container>
            <ng-container matColumnDef="actions">
              <th mat-header-cell *matHeaderCellDef class="actions"></th>
              <td mat-cell *matCellDef="let f" class="actions">
                <button matIconButton (click)="download(f)" matTooltip="Download" [attr.aria-label]="'Download ' + f.name" data-testid="download-file">
                  <mat-icon>download</mat-icon>
                </button>
                @if (ctx.canOperate()) {
                  @if (f.kind === 'script') {
                    <button matIconButton (click)="act(f, 'run')" matTooltip="Run on machines" [attr.aria-label]="'Run ' + f.name" data-testid="run-file">
                      <mat-icon>play_arrow</mat-icon>
                    </button>
                  }
                  @if (f.kind !== 'image') {
                    <button matIconButton (click)="act(f, 'deploy')" matTooltip="Deploy to machines" [attr.aria-label]="'Deploy ' + f.name" data-testid="deploy-file">
                      <mat-icon>publish</mat-icon>
                    </button>
                  } @else {
                    <button matIconButton (click)="act(f, 'distribute')" matTooltip="Distribute to machines' Docker" [attr.aria-label]="'Distribute ' + f.name" data-testid="distribute-file">
                      <mat-icon>layers</mat-icon>
                    </button>
                  }
                  <button
                    matIconButton
                    (click)="remove(f)"
                    [disabled]="busy() === f.id"
                    matTooltip="Delete file"
                    [attr.aria-label]="'Delete ' + f.name"
                    data-testid="delete-file"
                  >
                    <mat-icon>delete</mat-icon>
                  </button>
                }
              </td>
            </ng-container>
            <tr mat-header-row *matHeaderRowDef="columns"></tr>
            <tr mat-row *matRowDef="let f; columns: columns" data-testid="file-row" [attr.data-name]="f.name"></tr>
          </table>
          @if (acting(); as a) {
            <app-file-action-panel [file]="a.file" [action]="a.action" (closed)="acting.set(null)" />
          }
        } @else if (files.hasValue()) {
          <app-empty-state icon="folder_off" title="No files">
            Scripts, files to deploy and image tarballs (<code>docker save</code>) uploaded here are kept by their sha256.
          </app-empty-state>
        }
      </section>
    </div>
  `,
  styles: `
    .help {
      margin: 0;
    }
    .dropzone {
      display: flex;
      align-items: center;
      gap: 12px;
      border: 2px dashed var(--mat-sys-outline-variant);
      border-radius: 12px;
      margin: 12px 16px;
    }
    .dropzone.over {
      border-color: var(--mat-sys-primary);
      background: color-mix(in srgb, var(--mat-sys-primary) 8%, transparent);
    }
    .transfer {
      display: flex;
      flex-direction: column;
      gap: 4px;
    }
    .transfer-head {
      display: flex;
      align-items: center;
      gap: 8px;
    }
    .sha {
      display: inline-block;
      max-width: 16ch;
      overflow: hidden;
      text-overflow: ellipsis;
      vertical-align: bottom;
    }
  `,
})
export class FilesPage {
  protected readonly ctx = inject(ProjectContext);
  protected readonly clock = inject(Clock);
  private readonly api = inject(FilesApi);
  private readonly dialog = inject(MatDialog);
  private readonly notify = inject(Notify);

  protected readonly kinds = FILE_KINDS;
  protected kind: FileKind = 'file';
  protected readonly columns = ['name', 'kind', 'size', 'sha256', 'uploaded', 'actions'];
  protected readonly busy = signal<string | null>(null);
  protected readonly dragging = signal(false);
  protected readonly transfers = signal<Transfer[]>([]);
  /** The run, deploy or distribution being prepared or watched. */
  protected readonly acting = signal<{ file: StoredFile; action: FileAction } | null>(null);
  private nextTransferId = 1;
  private readonly running = new Map<number, Subscription>();

  constructor() {
    // Leaving the page stops its uploads (and drops their server-side remains) instead of orphaning them.
    inject(DestroyRef).onDestroy(() => {
      for (const sub of this.running.values()) sub.unsubscribe();
    });
  }

  protected readonly files = rxResource({
    params: () => this.ctx.projectId() || undefined,
    stream: ({ params }) => this.api.list(params),
  });
  protected readonly rows = computed<StoredFile[]>(() => (this.files.hasValue() ? this.files.value() : []));
  protected readonly loadError = computed(() => {
    const e = this.files.error();
    return e ? ApiError.from(e) : null;
  });

  protected act(file: StoredFile, action: FileAction): void {
    // A new panel each time (the @if re-creates it): no state of the last action carries over.
    this.acting.set(null);
    queueMicrotask(() => this.acting.set({ file, action }));
  }

  protected percent(t: Transfer): number {
    return t.total > 0 ? Math.floor((t.loaded / t.total) * 100) : 100;
  }

  protected onDragOver(e: DragEvent): void {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    this.dragging.set(true);
  }

  protected onDrop(e: DragEvent): void {
    e.preventDefault();
    this.dragging.set(false);
    this.start([...(e.dataTransfer?.files ?? [])]);
  }

  protected onPicked(input: HTMLInputElement): void {
    this.start([...(input.files ?? [])]);
    input.value = '';
  }

  protected cancel(t: Transfer): void {
    this.running.get(t.id)?.unsubscribe();
    this.running.delete(t.id);
    this.transfers.update((list) => list.filter((x) => x.id !== t.id));
  }

  protected dismiss(t: Transfer): void {
    this.transfers.update((list) => list.filter((x) => x.id !== t.id));
  }

  private start(files: File[]): void {
    for (const file of files) {
      const t: Transfer = { id: this.nextTransferId++, name: file.name, kind: this.kind, loaded: 0, total: file.size, error: null };
      const name = sanitizeFileName(file.name);
      if (!name.ok) t.error = `name ${name.message}`;
      this.transfers.update((list) => [...list, t]);
      if (t.error) continue;
      const patch = (p: Partial<Transfer>) => this.transfers.update((list) => list.map((x) => (x.id === t.id ? { ...x, ...p } : x)));
      const sub = this.api.upload(this.ctx.projectId(), t.kind, file).subscribe({
        next: (e) => {
          if (e.type === 'progress') patch({ loaded: e.loaded, total: e.total });
          else {
            this.running.delete(t.id);
            this.transfers.update((list) => list.filter((x) => x.id !== t.id));
            patchList(this.files, (list) => [e.file, ...list.filter((x) => x.id !== e.file.id)]);
            this.notify.success(`${e.file.name} uploaded`);
          }
        },
        error: (err: unknown) => {
          this.running.delete(t.id);
          patch({ error: ApiError.from(err).message });
        },
      });
      if (!sub.closed) this.running.set(t.id, sub);
    }
  }

  protected download(f: StoredFile): void {
    this.api.download(f.id).subscribe({
      next: (blob) => {
        const url = URL.createObjectURL(blob);
        const a = document.createElement('a');
        a.href = url;
        a.download = f.name;
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      },
      error: (err: unknown) => this.notify.error(err, 'Could not download the file'),
    });
  }

  protected remove(f: StoredFile): void {
    confirm(this.dialog, {
      title: `Delete ${f.name}?`,
      message: 'Its bytes are removed once no other file has the same content. A file a schedule or a pending deploy still uses cannot be deleted.',
      confirmText: 'Delete',
      danger: true,
    }).subscribe((ok) => {
      if (!ok) return;
      this.busy.set(f.id);
      this.api.delete(f.id).subscribe({
        next: () => {
          this.busy.set(null);
          patchList(this.files, (list) => list.filter((x) => x.id !== f.id));
          this.notify.success(`${f.name} deleted`);
        },
        error: (err: unknown) => {
          this.busy.set(null);
          this.notify.error(err, 'Could not delete the file');
          this.files.reload();
        },
      });
    });
  }
}
