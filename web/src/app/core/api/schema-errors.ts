import type { ErrorDetail } from './api-error';

/** The part of a zod issue we read (zod 4). */
export interface SchemaIssue {
  readonly code: string;
  readonly message: string;
  readonly path: readonly PropertyKey[];
  readonly issues?: readonly { readonly message: string }[];
}

/**
 * A readable message for one issue: for a record key that failed its own schema
 * (zod's "Invalid key in record"), the key's rule, naming the key.
 */
export function issueMessage(issue: SchemaIssue): string {
  if (issue.code === 'invalid_key') {
    const key = issue.path[issue.path.length - 1];
    const why = issue.issues?.[0]?.message ?? issue.message;
    return typeof key === 'string' ? `"${key}": ${why}` : why;
  }
  return issue.message;
}

/** zod issues as the `{path, message}` details of the API error shape, for the same form helpers. */
export function schemaDetails(issues: readonly SchemaIssue[]): ErrorDetail[] {
  return issues.map((i) => ({ path: i.path.map(String).join('.'), message: issueMessage(i) }));
}
