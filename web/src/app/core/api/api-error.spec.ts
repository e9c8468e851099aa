import { HttpErrorResponse } from '@angular/common/http';
import { FormControl, FormGroup } from '@angular/forms';
import { ApiError, applyFieldErrors } from './api-error';

describe('ApiError', () => {
  it('reads the server error shape', () => {
    const e = ApiError.from(
      new HttpErrorResponse({
        status: 400,
        error: {
          statusCode: 400,
          code: 'validation_failed',
          message: 'invalid body',
          details: [{ path: 'email', message: 'Invalid email' }],
          requestId: 'req-1',
        },
      }),
    );
    expect(e.statusCode).toBe(400);
    expect(e.code).toBe('validation_failed');
    expect(e.fieldErrors()).toEqual({ email: 'Invalid email' });
    expect(e.toString()).toBe('invalid body (request req-1)');
  });

  it('explains a network failure and an unknown body', () => {
    expect(ApiError.from(new HttpErrorResponse({ status: 0 })).message).toMatch(/Cannot reach/);
    const e = ApiError.from(new HttpErrorResponse({ status: 502, statusText: 'Bad Gateway', error: '<html>' }));
    expect(e.message).toBe('502 Bad Gateway');
  });

  it('reads an error body that came back as a Blob', async () => {
    const blob = new Blob([JSON.stringify({ statusCode: 404, code: 'not_found', message: 'execution not found' })]);
    const e = await ApiError.fromAsync(new HttpErrorResponse({ status: 404, error: blob }));
    expect(e.message).toBe('execution not found');
  });

  it('puts details on the matching controls, longest path first, and returns the rest', () => {
    const form = new FormGroup({
      email: new FormControl(''),
      machineIds: new FormControl<string[]>([]),
    });
    const rest = applyFieldErrors(
      form,
      [
        { path: 'email', message: 'taken' },
        { path: 'targets.machineIds.0', message: 'unknown machine' },
        { path: 'other', message: 'x' },
      ],
      { 'targets.machineIds': 'machineIds' },
    );
    expect(form.controls.email.getError('server')).toBe('taken');
    expect(form.controls.machineIds.getError('server')).toBe('unknown machine');
    expect(rest).toEqual([{ path: 'other', message: 'x' }]);
  });
});
