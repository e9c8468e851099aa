import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { authInterceptor } from './auth.interceptor';
import { AuthService, TOKEN_STORAGE_KEY, safeReturnUrl } from './auth.service';

describe('authInterceptor', () => {
  let http: HttpClient;
  let backend: HttpTestingController;

  beforeEach(() => {
    localStorage.setItem(TOKEN_STORAGE_KEY, 'jwt-1');
    TestBed.configureTestingModule({
      providers: [
        provideRouter([]),
        provideHttpClient(withInterceptors([authInterceptor])),
        provideHttpClientTesting(),
      ],
    });
    http = TestBed.inject(HttpClient);
    backend = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    backend.verify();
    localStorage.clear();
  });

  it('sends the token as a Bearer header to the API only', () => {
    http.get('/api/projects').subscribe();
    http.get('/assets/x.json').subscribe();
    expect(backend.expectOne('/api/projects').request.headers.get('Authorization')).toBe('Bearer jwt-1');
    expect(backend.expectOne('/assets/x.json').request.headers.has('Authorization')).toBe(false);
  });

  it('ends the session on a 401 and goes to /login', () => {
    const router = TestBed.inject(Router);
    const navigate = vi.spyOn(router, 'navigate').mockResolvedValue(true);
    http.get('/api/projects').subscribe({ error: () => undefined });
    backend.expectOne('/api/projects').flush({ statusCode: 401, code: 'unauthenticated', message: 'no' }, { status: 401, statusText: 'Unauthorized' });
    expect(TestBed.inject(AuthService).token()).toBeNull();
    expect(localStorage.getItem(TOKEN_STORAGE_KEY)).toBeNull();
    expect(navigate).toHaveBeenCalledWith(['/login'], expect.anything());
  });

  it('leaves a wrong password to the login form', () => {
    http.post('/api/auth/login', {}).subscribe({ error: () => undefined });
    backend.expectOne('/api/auth/login').flush({}, { status: 401, statusText: 'Unauthorized' });
    expect(TestBed.inject(AuthService).token()).toBe('jwt-1');
  });
});

describe('safeReturnUrl', () => {
  it('follows only same-app paths', () => {
    expect(safeReturnUrl('/projects/1/machines')).toBe('/projects/1/machines');
    expect(safeReturnUrl('//evil.example')).toBe('/projects');
    expect(safeReturnUrl('https://evil.example')).toBe('/projects');
    expect(safeReturnUrl('/login')).toBe('/projects');
    expect(safeReturnUrl(undefined)).toBe('/projects');
  });
});
