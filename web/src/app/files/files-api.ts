import { HttpClient, HttpErrorResponse, HttpEventType, HttpHeaders, HttpXhrBackend } from '@angular/common/http';
import { EnvironmentInjector, Injectable, inject, runInInjectionContext } from '@angular/core';
import { authInterceptor } from '../core/auth/auth.interceptor';
import { FILE_LIMITS, type FileKind, type StoredFile, type Upload } from '@kapitan/shared';
import { Observable, Subscription, filter, map } from 'rxjs';

/** Where an upload stands: bytes sent so far, then the stored file. */
export type UploadEvent = { type: 'progress'; loaded: number; total: number } | { type: 'done'; file: StoredFile };

/** Files above this go in resumable chunks: a proxy's per-request cap (often 100 MB) never sees a whole one. */
export const RESUMABLE_ABOVE_BYTES = 32 * 1024 * 1024;
/** Chunk size the dashboard sends, well under the server's FILE_LIMITS.chunkMaxBytes. */
export const CHUNK_BYTES = Math.min(8 * 1024 * 1024, FILE_LIMITS.chunkMaxBytes);
/** Attempts per chunk on a network failure before the upload gives up. */
const CHUNK_ATTEMPTS = 4;

/** The project's file store: list, upload (with progress), delete. */
@Injectable({ providedIn: 'root' })
export class FilesApi {
  private readonly http = inject(HttpClient);
  /**
   * The app's HttpClient runs on fetch(), which reports no upload progress.
   * Uploads go through XMLHttpRequest instead, with the same auth interceptor.
   */
  private readonly xhr = (() => {
    const backend = inject(HttpXhrBackend);
    const injector = inject(EnvironmentInjector);
    return new HttpClient({
      handle: (req) => runInInjectionContext(injector, () => authInterceptor(req, (r) => backend.handle(r))),
    });
  })();

  list(projectId: string): Observable<StoredFile[]> {
    return this.http.get<StoredFile[]>(`/api/projects/${enc(projectId)}/files`);
  }

  delete(fileId: string): Observable<void> {
    return this.http.delete<void>(`/api/files/${enc(fileId)}`);
  }

  /** Where the browser downloads the bytes from (needs the bearer header: fetched, not linked). */
  download(fileId: string): Observable<Blob> {
    return this.http.get(`/api/files/${enc(fileId)}/content`, { responseType: 'blob' });
  }

  /** Uploads `file` as `kind`; small files in one multipart request, large ones in resumable chunks. */
  upload(projectId: string, kind: FileKind, file: File): Observable<UploadEvent> {
    return file.size > RESUMABLE_ABOVE_BYTES ? this.uploadInChunks(projectId, kind, file) : this.uploadWhole(projectId, kind, file);
  }

  private uploadWhole(projectId: string, kind: FileKind, file: File): Observable<UploadEvent> {
    const form = new FormData();
    // kind first: the server streams the file part and needs its kind (and limit) before it.
    form.append('kind', kind);
    form.append('name', file.name);
    form.append('file', file, file.name);
    return this.xhr
      .post<StoredFile>(`/api/projects/${enc(projectId)}/files`, form, { reportProgress: true, observe: 'events' })
      .pipe(
        filter((e) => e.type === HttpEventType.UploadProgress || e.type === HttpEventType.Response),
        map((e): UploadEvent =>
          e.type === HttpEventType.UploadProgress
            ? { type: 'progress', loaded: e.loaded, total: e.total ?? file.size }
            : { type: 'done', file: e.body! },
        ),
      );
  }

  private uploadInChunks(projectId: string, kind: FileKind, file: File): Observable<UploadEvent> {
    return new Observable<UploadEvent>((out) => {
      let current: Subscription | undefined;
      let upload: Upload | undefined;
      let stopped = false;
      let attempts = 0;
      let finished = false;
      const drop = () => {
        // A stopped or failed upload leaves nothing behind on the server either.
        if (upload) this.http.delete(`/api/uploads/${enc(upload.id)}`).subscribe({ error: () => undefined });
      };
      const fail = (err: unknown) => {
        finished = true;
        drop();
        out.error(err);
      };
      const next = (offset: number) => {
        if (stopped) return;
        if (offset >= file.size) {
          current = this.http.post<StoredFile>(`/api/uploads/${enc(upload!.id)}/complete`, {}).subscribe({
            next: (stored) => {
              finished = true;
              out.next({ type: 'done', file: stored });
              out.complete();
            },
            error: fail,
          });
          return;
        }
        const end = Math.min(offset + CHUNK_BYTES, file.size);
        current = this.xhr
          .put<Upload>(`/api/uploads/${enc(upload!.id)}`, file.slice(offset, end), {
            params: { offset },
            headers: new HttpHeaders({ 'Content-Type': 'application/octet-stream' }),
            reportProgress: true,
            observe: 'events',
          })
          .subscribe({
            next: (e) => {
              if (e.type === HttpEventType.UploadProgress) out.next({ type: 'progress', loaded: offset + e.loaded, total: file.size });
              if (e.type === HttpEventType.Response) {
                attempts = 0;
                next(e.body!.offset);
              }
            },
            error: (err: unknown) => {
              const resumeAt = err instanceof HttpErrorResponse && err.status === 409 ? Number(err.headers.get('Upload-Offset')) : NaN;
              // 409 tells where the server is (a chunk that did arrive though its answer was lost); a dropped connection is retried.
              if (Number.isFinite(resumeAt)) return next(resumeAt);
              if (err instanceof HttpErrorResponse && err.status === 0 && ++attempts < CHUNK_ATTEMPTS) return next(offset);
              fail(err);
            },
          });
      };
      current = this.http
        .post<Upload>(`/api/projects/${enc(projectId)}/uploads`, { kind, name: file.name, size: file.size })
        .subscribe({
          next: (u) => {
            upload = u;
            next(u.offset);
          },
          error: (err: unknown) => out.error(err),
        });
      return () => {
        stopped = true;
        current?.unsubscribe();
        if (!finished) drop();
      };
    });
  }
}

const enc = encodeURIComponent;
