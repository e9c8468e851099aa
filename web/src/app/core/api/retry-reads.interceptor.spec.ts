import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { READ_RETRIES, READ_RETRY_DELAY_MS, retryReadsInterceptor } from './retry-reads.interceptor';

describe('retryReadsInterceptor', () => {
  let http: HttpClient;
  let backend: HttpTestingController;

  beforeEach(() => {
    vi.useFakeTimers();
    TestBed.configureTestingModule({ providers: [provideHttpClient(withInterceptors([retryReadsInterceptor])), provideHttpClientTesting()] });
    http = TestBed.inject(HttpClient);
    backend = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    backend.verify();
    vi.useRealTimers();
  });

  it('a read answered 502 by the balancer is sent again and its answer delivered', () => {
    let body: unknown;
    http.get('/api/executions/e1').subscribe((b) => (body = b));
    backend.expectOne('/api/executions/e1').flush('bad gateway', { status: 502, statusText: 'Bad Gateway' });
    vi.advanceTimersByTime(READ_RETRY_DELAY_MS);
    backend.expectOne('/api/executions/e1').flush({ id: 'e1' });
    expect(body).toEqual({ id: 'e1' });
  });

  it('gives up after READ_RETRIES with the last error; a 404 or a write is never sent again', () => {
    let status = 0;
    http.get('/api/executions/e2').subscribe({ error: (e: { status: number }) => (status = e.status) });
    for (let attempt = 1; attempt <= READ_RETRIES; attempt++) {
      backend.expectOne('/api/executions/e2').flush('', { status: 503, statusText: 'Service Unavailable' });
      vi.advanceTimersByTime(READ_RETRY_DELAY_MS * attempt);
    }
    backend.expectOne('/api/executions/e2').flush('', { status: 504, statusText: 'Gateway Timeout' });
    expect(status).toBe(504);

    let notFound = 0;
    http.get('/api/executions/gone').subscribe({ error: (e: { status: number }) => (notFound = e.status) });
    backend.expectOne('/api/executions/gone').flush('', { status: 404, statusText: 'Not Found' });
    expect(notFound).toBe(404);

    let postStatus = 0;
    http.post('/api/projects/p/executions', {}).subscribe({ error: (e: { status: number }) => (postStatus = e.status) });
    backend.expectOne('/api/projects/p/executions').flush('', { status: 502, statusText: 'Bad Gateway' });
    vi.advanceTimersByTime(10 * READ_RETRY_DELAY_MS);
    backend.expectNone('/api/projects/p/executions');
    expect(postStatus).toBe(502);
  });
});
