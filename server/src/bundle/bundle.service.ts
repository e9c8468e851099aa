import { Inject, Injectable } from '@nestjs/common';
import { BundleConfig, BundleQuery, CreateInstallLinkRequest, ErrorCode, InstallLink, type EnrolmentToken } from '@kapitan/shared';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ZipFile } from 'yazl';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { EnrolmentTokensService } from '../machines/enrolment-tokens.service';
import { ProjectsService } from '../projects/projects.service';
import { TlsService } from '../tls/tls.service';
import { bundleInstallScript, examplePolicy, oneLineInstallScript, systemdUnit, uninstallScript, type ScriptValues } from './install-scripts';
import { bundleReadme } from './readme';

const HOUR_MS = 3600_000;
/** A bundle is handed to a client who installs when they can: a week, for up to ten machines, unless asked otherwise. */
const BUNDLE_DEFAULTS = { ttlHours: 7 * 24, maxUses: 10 };
/** A one-line command is pasted now, on one machine. */
const INSTALL_LINK_TTL_MINUTES = 60;
export type AgentForm = 'exe' | 'cjs';
const FORM_FILES: Record<AgentForm, { dist: string; name: string }> = {
  exe: { dist: 'bun/kapitan-agent', name: 'kapitan-agent' },
  cjs: { dist: 'bundle/kapitan-agent.cjs', name: 'kapitan-agent.cjs' },
};
/** Everything in the zip sits in this folder: no absolute paths, no `..`. */
const ZIP_DIR = 'kapitan-agent';

export interface BundleDownload {
  fileName: string;
  stream: Readable;
}

/**
 * What a client installs the agent from: a zip to hand over (the two agent
 * forms, trust material, a fresh enrolment token and the install scripts),
 * or a one-line command whose script carries its own single-use token and
 * downloads the agent from here.
 */
@Injectable()
export class BundleService {
  private readonly hashes = new Map<string, { key: string; sha256: string }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly projects: ProjectsService,
    private readonly tokens: EnrolmentTokensService,
    private readonly tls: TlsService,
  ) {}

  async bundle(userId: string, projectId: string, query: BundleQuery): Promise<BundleDownload> {
    await this.projects.requireRole(userId, projectId, 'owner');
    const files = this.agentFiles();
    const ttlHours = query.ttlHours ?? BUNDLE_DEFAULTS.ttlHours;
    const token = await this.tokens.mint(userId, projectId, 'bundle', {
      expiresAt: new Date(Date.now() + ttlHours * HOUR_MS).toISOString(),
      maxUses: query.maxUses ?? BUNDLE_DEFAULTS.maxUses,
    });
    const v = this.scriptValues();
    const tls = this.tls.info();

    const zip = new ZipFile();
    const now = new Date();
    const text = (name: string, content: string, mode: number) => zip.addBuffer(Buffer.from(content), `${ZIP_DIR}/${name}`, { mode: 0o100000 | mode, mtime: now });
    zip.addFile(files.exe, `${ZIP_DIR}/${FORM_FILES.exe.name}`, { mode: 0o100755, mtime: now });
    zip.addFile(files.cjs, `${ZIP_DIR}/${FORM_FILES.cjs.name}`, { mode: 0o100755, mtime: now });
    text('install.sh', bundleInstallScript(v), 0o755);
    text('uninstall.sh', uninstallScript(v), 0o755);
    text('kapitan.json', this.configJson(projectId, token, v), 0o644);
    if (tls.caPem) text('ca.pem', tls.caPem, 0o644);
    // The token is a credential: readable by its owner only once unzipped.
    text('enrolment-token', `${token.token!}\n`, 0o600);
    text('agent-policy.json', examplePolicy(), 0o644);
    text('kapitan-agent.service', systemdUnit(v), 0o644);
    text('README.txt', bundleReadme(v, token), 0o644);
    zip.end();
    return { fileName: `kapitan-agent-${projectId.slice(0, 8)}.zip`, stream: zip.outputStream as unknown as Readable };
  }

  async createInstallLink(userId: string, projectId: string, body: CreateInstallLinkRequest): Promise<InstallLink> {
    await this.projects.requireRole(userId, projectId, 'owner');
    this.agentFiles();
    const minutes = body.ttlMinutes ?? INSTALL_LINK_TTL_MINUTES;
    const token = await this.tokens.mint(userId, projectId, 'install', { expiresAt: new Date(Date.now() + minutes * 60_000).toISOString(), maxUses: 1 });
    const url = `${this.config.tls.publicUrl}/api/install/${token.token!}.sh`;
    const pin = this.config.tls.publicUrl.startsWith('https:') ? this.tls.servingSpkiPin() : null;
    // An instance that is its own CA is not in curl's trust store: curl checks the serving key's pin instead.
    const curl = pin ? `curl -fsSL --insecure --pinnedpubkey 'sha256//${pin}'` : 'curl -fsSL';
    return { command: `${curl} '${url}' | sh`, url, servingSpkiSha256: pin, token };
  }

  /** The one-line install script, if its token still opens an enrolment (not spent, expired or revoked). */
  async installScript(secret: string): Promise<string> {
    const token = await this.requireInstallToken(secret);
    const files = this.agentFiles();
    const v = this.scriptValues();
    const base = `${this.config.tls.publicUrl}/api/install/${secret}/agent`;
    return oneLineInstallScript({
      ...v,
      token: secret,
      caPem: this.tls.info().caPem,
      unit: systemdUnit(v),
      policy: examplePolicy(),
      config: this.configJson(token.projectId, token, v),
      downloads: {
        exe: { url: `${base}/exe`, sha256: await this.sha256(files.exe) },
        cjs: { url: `${base}/cjs`, sha256: await this.sha256(files.cjs) },
      },
    });
  }

  /** The agent file a one-line install downloads; only while its token is good. */
  async installAgent(secret: string, form: AgentForm): Promise<{ stream: Readable; size: number }> {
    await this.requireInstallToken(secret);
    const file = this.agentFiles()[form];
    return { stream: createReadStream(file), size: statSync(file).size };
  }

  private async requireInstallToken(secret: string): Promise<EnrolmentToken & { projectId: string }> {
    const token = await this.tokens.usable(secret, 'install');
    // One answer for unknown, spent, expired and revoked, as enrolment gives.
    if (!token) throw new ApiException(404, ErrorCode.notFound, 'this install link is not valid (unknown, expired, used or revoked); make a new one in the dashboard');
    return token;
  }

  private scriptValues(): ScriptValues {
    const tls = this.tls.info();
    return { serverUrl: this.config.tls.publicUrl, version: this.agentVersion(), pins: tls.pins.map((p) => p.spkiSha256) };
  }

  private configJson(projectId: string, token: EnrolmentToken, v: ScriptValues): string {
    const config: BundleConfig = {
      serverUrl: v.serverUrl,
      projectId,
      version: v.version,
      pins: v.pins,
      enrolmentTokenId: token.id,
      enrolmentTokenExpiresAt: token.expiresAt,
      createdAt: new Date().toISOString(),
    };
    return `${JSON.stringify(config, null, 2)}\n`;
  }

  private agentFiles(): Record<AgentForm, string> {
    const exe = join(this.config.agentDistDir, FORM_FILES.exe.dist);
    const cjs = join(this.config.agentDistDir, FORM_FILES.cjs.dist);
    for (const f of [exe, cjs]) {
      if (!existsSync(f)) throw new ApiException(503, ErrorCode.unavailable, `this server has no agent build to hand out (${f} is missing; see KAPITAN_AGENT_DIST_DIR)`);
    }
    return { exe, cjs };
  }

  private agentVersion(): string {
    try {
      const pkg = JSON.parse(readFileSync(join(this.config.agentDistDir, '..', 'package.json'), 'utf8')) as { version?: unknown };
      return typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      return 'unknown';
    }
  }

  /** SHA-256 of an agent file, kept while the file is unchanged (the standalone one is ~100 MiB). */
  private async sha256(file: string): Promise<string> {
    const st = statSync(file);
    const key = `${st.size}:${st.mtimeMs}`;
    const known = this.hashes.get(file);
    if (known?.key === key) return known.sha256;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    this.hashes.set(file, { key, sha256 });
    return sha256;
  }
}
