import { Inject, Injectable } from '@nestjs/common';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { APP_CONFIG, AppConfig } from '../config/config';

export interface SealedSecret {
  keyId: string;
  nonce: string;
  ciphertext: string;
}

/** A stored secret that cannot be opened: another key sealed it, or the row was altered or moved. */
export class SecretUnreadableError extends Error {}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with a fresh random 96-bit nonce per value. The project id and
 * the name are the associated data, so a ciphertext copied into another
 * project's row, or under another name, fails its tag instead of decrypting
 * there. With random nonces one key seals far fewer than the 2^32 values
 * after which a nonce collision becomes a real risk.
 */
@Injectable()
export class SecretCipher {
  private readonly key: Buffer;
  readonly keyId: string;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'secrets'>) {
    this.key = config.secrets.key;
    this.keyId = config.secrets.keyId;
  }

  seal(projectId: string, name: string, value: string): SealedSecret {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(projectId, name));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { keyId: this.keyId, nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64') };
  }

  open(projectId: string, name: string, sealed: SealedSecret): string {
    if (sealed.keyId !== this.keyId) {
      throw new SecretUnreadableError(
        `secret ${name} was sealed with key ${sealed.keyId}, but this server's KAPITAN_SECRETS_KEY is key ${this.keyId}: ` +
          'start every node with the key the secrets were stored with',
      );
    }
    const nonce = Buffer.from(sealed.nonce, 'base64');
    const data = Buffer.from(sealed.ciphertext, 'base64');
    if (nonce.length !== NONCE_BYTES || data.length < TAG_BYTES) throw new SecretUnreadableError(`secret ${name} is not a sealed value (damaged row)`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(projectId, name));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnreadableError(`secret ${name} fails its integrity check: the row was altered or belongs to another project or name`);
    }
  }
}

/** Length-prefixed, so no (project, name) pair can spell another's. */
function associatedData(projectId: string, name: string): Buffer {
  return Buffer.from(`kapitan-secret:v1:${projectId.length}:${projectId}:${name}`, 'utf8');
}
