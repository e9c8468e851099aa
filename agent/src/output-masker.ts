/**
 * Masks a run's secrets in its output before a chunk is numbered, spooled
 * or sent: nothing unmasked leaves the agent or lands in its spool.
 *
 * One SecretMasker per stream, fed the pieces the line chunker emits. A
 * masker holds back the last (longest mask − 1) characters in case a secret
 * continues in the next piece; that would hold the end of every line until
 * more output came. But no mask contains a line end (maskPatterns splits
 * multi-line values into lines and every encoding escapes CR and LF), so no
 * secret spans one: at each piece's last `\n` or `\r` the masker is flushed
 * and only the partial line after it is held (at most longest mask − 1
 * characters) until its line ends, more output comes or the stream ends.
 * A `\r` progress bar therefore still updates live.
 */
import { SecretMasker, type OutputStream } from '@kapitan/shared';

export class OutputMasker {
  private readonly maskers: Record<OutputStream, SecretMasker>;

  constructor(masks: readonly string[]) {
    this.maskers = { stdout: new SecretMasker(masks), stderr: new SecretMasker(masks) };
  }

  /** What of `text` (and what was held before it) can be sent now, masked. */
  push(stream: OutputStream, text: string): string {
    const m = this.maskers[stream];
    const cut = Math.max(text.lastIndexOf('\n'), text.lastIndexOf('\r')) + 1;
    if (cut === 0) return m.push(text);
    return m.push(text.slice(0, cut)) + m.flush() + m.push(text.slice(cut));
  }

  /** The held rest of a stream, masked; the stream is over. */
  end(stream: OutputStream): string {
    return this.maskers[stream].flush();
  }
}
