import { maskSecrets } from '@kapitan/shared';
import { OutputMasker } from './output-masker';

const SECRET = 'hunter2-correct-horse';

describe('OutputMasker', () => {
  it('releases every whole line at once: only a partial line after the last line end is held', () => {
    const m = new OutputMasker([SECRET]);
    expect(m.push('stdout', `pw=${SECRET}\n`)).toBe('pw=***\n');
    expect(m.push('stdout', `progress 10%\rprogress 20%\r`)).toBe('progress 10%\rprogress 20%\r');
    // a partial line: the tail that could still start the secret waits for more
    const held = m.push('stdout', 'Password: ');
    expect(held.length).toBeLessThan('Password: '.length);
    expect(held + m.end('stdout')).toBe('Password: ');
  });

  it('masks a secret cut across pieces anywhere, per stream, as maskSecrets masks the whole text', () => {
    const text = `a${SECRET}b\n${SECRET.slice(0, 5)}`;
    const rest = `${SECRET.slice(5)} tail\nend ${SECRET}`;
    for (let cut = 0; cut <= text.length + rest.length; cut++) {
      const all = text + rest;
      const m = new OutputMasker([SECRET]);
      let out = m.push('stdout', all.slice(0, cut));
      // stderr in between does not disturb stdout's held text
      expect(m.push('stderr', 'noise\n')).toBe('noise\n');
      out += m.push('stdout', all.slice(cut)) + m.end('stdout');
      expect(out).toBe(maskSecrets(all, [SECRET]));
      expect(out).not.toContain(SECRET.slice(0, 8));
    }
  });

  it('keeps nothing of a stream whose secret straddles pieces on both streams at once', () => {
    const m = new OutputMasker([SECRET]);
    const out = { stdout: '', stderr: '' };
    for (const s of ['stdout', 'stderr'] as const) out[s] += m.push(s, SECRET.slice(0, 7));
    for (const s of ['stdout', 'stderr'] as const) out[s] += m.push(s, SECRET.slice(7) + '\n') + m.end(s);
    expect(out).toEqual({ stdout: '***\n', stderr: '***\n' });
  });
});
