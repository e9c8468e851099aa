// Jest environment for e2e: node, plus one seam. When a test or a hook fails,
// jest-circus dispatches the event (and awaits this handler) before any
// afterEach/afterAll runs, so the harness can still screenshot the page and
// save the server's log. Hooks are registered by the harness on the test
// context's global (see src/harness/failures.ts).
const { TestEnvironment } = require('jest-environment-node');

function describePath(block) {
  const parts = [];
  for (; block && block.name !== 'ROOT_DESCRIBE_BLOCK'; block = block.parent) parts.unshift(block.name);
  return parts;
}

class KapitanE2eEnvironment extends TestEnvironment {
  async handleTestEvent(event) {
    if (event.name !== 'test_fn_failure' && event.name !== 'hook_failure') return;
    const hooks = this.global.__kapitanFailureHooks;
    if (!hooks || hooks.size === 0) return;
    const testName =
      event.name === 'test_fn_failure'
        ? [...describePath(event.test.parent), event.test.name].join(' > ')
        : `${event.hook.type} in ${describePath(event.describeBlock).join(' > ') || 'file'}`;
    for (const hook of [...hooks]) {
      try {
        await hook({ testName, error: event.error });
      } catch (error) {
        process.stderr.write(`[e2e] failure hook failed: ${error && error.stack ? error.stack : error}\n`);
      }
    }
  }
}

module.exports = KapitanE2eEnvironment;
