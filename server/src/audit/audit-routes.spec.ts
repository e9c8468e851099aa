import { RequestMethod } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { createTestApp, TestApp } from '../testing/test-app';
import { AUDIT_SPEC } from './audit.decorator';

const WRITES = new Set([RequestMethod.POST, RequestMethod.PUT, RequestMethod.PATCH, RequestMethod.DELETE]);

/**
 * Every state-changing route of the running app says whether it is audited:
 * `@Audit(...)`, or `@NotAudited(reason)`. A new route without either fails
 * here, so nothing goes unrecorded by being forgotten.
 */
describe('audit coverage of routes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database: 'sqlite' });
  });
  afterAll(() => t?.close());

  it('every POST, PUT, PATCH and DELETE route carries @Audit or @NotAudited', () => {
    const unmarked: string[] = [];
    let writes = 0;
    for (const mod of t.app.get(ModulesContainer).values()) {
      for (const wrapper of mod.controllers.values()) {
        const type = wrapper.metatype;
        if (!type) continue;
        const proto = (type as { prototype: Record<string, unknown> }).prototype;
        const base = String(Reflect.getMetadata(PATH_METADATA, type) ?? '');
        for (const name of Object.getOwnPropertyNames(proto)) {
          const handler = proto[name];
          if (typeof handler !== 'function' || name === 'constructor') continue;
          const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
          if (method === undefined || !WRITES.has(method)) continue;
          writes++;
          if (!Reflect.getMetadata(AUDIT_SPEC, handler)) unmarked.push(`${RequestMethod[method]} ${base}/${String(Reflect.getMetadata(PATH_METADATA, handler))} (${wrapper.name}.${name})`);
        }
      }
    }
    expect(writes).toBeGreaterThan(30);
    expect(unmarked).toEqual([]);
  });
});
