import { z } from 'zod';
import { IsoDateSchema } from './common';

/**
 * A key an agent may pin: the base64 SHA-256 of a certificate's
 * SubjectPublicKeyInfo (the `pin-sha256` of RFC 7469). Pinning a key, not a
 * certificate, is what lets the serving certificate be renewed without
 * touching a single agent.
 */
export const SpkiPinSchema = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 SHA-256 digest (44 characters)');

export const TlsPinSchema = z.object({
  spkiSha256: SpkiPinSchema,
  subject: z.string(),
  /** `current`: the key that signs the serving certificate now; `next`: published ahead of a rotation; `chain`: a configured certificate's chain. */
  role: z.enum(['current', 'next', 'chain']),
  notAfter: IsoDateSchema.nullable(),
});
export type TlsPin = z.infer<typeof TlsPinSchema>;

/** GET /api/instance/tls: what agents must pin, and the certificate served now. */
export const InstanceTlsSchema = z.object({
  enabled: z.boolean(),
  httpsPort: z.number().int().nullable(),
  /** The address written into client bundles. */
  publicUrl: z.string(),
  /** `generated`: Kapitan's own instance CA signs the serving certificate; `configured`: KAPITAN_TLS_CERT / KAPITAN_TLS_KEY. */
  source: z.enum(['generated', 'configured']).nullable(),
  pins: z.array(TlsPinSchema),
  serving: z
    .object({
      subject: z.string(),
      dnsNames: z.array(z.string()),
      notAfter: IsoDateSchema,
      /** SHA-256 of the serving certificate, as browsers show it (AA:BB:…). */
      fingerprint256: z.string(),
    })
    .nullable(),
  /** The certificates an agent trusts (the instance CA, or the configured chain's root), PEM. */
  caPem: z.string().nullable(),
});
export type InstanceTls = z.infer<typeof InstanceTlsSchema>;
