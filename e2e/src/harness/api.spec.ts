// The REST client and the error-shape assertion against a real HTTP server
// in this process (the Kapitan server is not needed for this).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiClient, ApiError, expectError, newCredentials, type ApiResponse } from './api';

let server: http.Server;
let api: ApiClient;
const seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/api/text') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('plain words');
      } else if (path === '/api/projects' && req.method === 'POST') {
        res.writeHead(400, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ statusCode: 400, code: 'validation_failed', message: 'name: required', details: [{ path: 'name', message: 'required' }] }));
      } else if (path === '/api/projects') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
      } else {
        res.writeHead(404, { 'content-type': 'application/json', 'x-request-id': 'r1' });
        res.end(JSON.stringify({ statusCode: 404, code: 'not_found', message: 'no such thing', requestId: 'r1' }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  api = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 'tok-1');
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('ApiClient.request', () => {
  it('sends JSON with the bearer token and parses JSON answers', async () => {
    const res = await api.request('POST', '/api/projects', { body: { name: '' }, query: { a: 1, b: undefined } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'validation_failed' });
    const sent = seen.at(-1)!;
    expect(sent.url).toBe('/api/projects?a=1');
    expect(sent.headers.authorization).toBe('Bearer tok-1');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(JSON.parse(sent.body)).toEqual({ name: '' });
  });

  it('sends a raw body as is, without a token when told, and returns text answers as text', async () => {
    const res = await api.request('POST', '/api/text', { rawBody: '{"broken', token: null, headers: { 'content-type': 'application/json' } });
    expect(res).toMatchObject({ status: 200, body: 'plain words', text: 'plain words' });
    expect(res.headers['content-type']).toBe('text/plain');
    expect(seen.at(-1)!.body).toBe('{"broken');
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();
  });

  it('convenience calls throw ApiError with the answer on an unexpected status', async () => {
    const error = await api.createProject({ name: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).response.status).toBe(400);
    await expect(api.listProjects()).resolves.toEqual([]);
  });
});

describe('expectError', () => {
  const res = (status: number, body: unknown): ApiResponse => ({ status, headers: {}, body, text: JSON.stringify(body) });

  it('accepts the one error shape, checking status, code and the field at fault', async () => {
    const answer = await api.request('POST', '/api/projects', { body: {} });
    expect(expectError(answer, 400, 'validation_failed', { field: 'name', message: /required/ }).details).toHaveLength(1);
    expectError(await api.request('GET', '/api/nothing'), 404, 'not_found');
  });

  it('rejects another status, another code, a missing field and other shapes', () => {
    const body = { statusCode: 404, code: 'not_found', message: 'gone' };
    expect(() => expectError(res(404, body), 403)).toThrow(/expected HTTP 403, got 404/);
    expect(() => expectError(res(404, body), 404, 'forbidden')).toThrow();
    expect(() => expectError(res(404, body), 404, 'not_found', { field: 'name' })).toThrow();
    expect(() => expectError(res(404, { error: 'Not Found' }), 404)).toThrow(/not the error shape/);
    expect(() => expectError(res(404, { ...body, statusCode: 400 }), 404)).toThrow();
    expect(() => expectError(res(404, { ...body, stack: 'at x' }), 404)).toThrow();
    expect(() => expectError(res(404, { ...body, message: '' }), 404)).toThrow();
  });
});

describe('newCredentials', () => {
  it('makes unique valid credentials', () => {
    const a = newCredentials('admin');
    const b = newCredentials('admin');
    expect(a.email).not.toBe(b.email);
    expect(a.email).toMatch(/^admin-[0-9a-f]{10}@e2e\.kapitan\.test$/);
    expect(a.password.length).toBeGreaterThanOrEqual(10);
  });
});
