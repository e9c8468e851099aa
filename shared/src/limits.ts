/**
 * Every bound Kapitan enforces on outside input, in one place so the server,
 * the agent and the dashboard agree on them (design invariant 7).
 */
export const LIMITS = {
  emailMax: 254,
  passwordMin: 10,
  passwordMax: 256,
  nameMax: 100,
  descriptionMax: 2000,
  labelKeyMax: 63,
  labelValueMax: 255,
  labelsMax: 32,
  scriptMaxBytes: 256 * 1024,
  argsMax: 64,
  argMax: 4096,
  envMax: 64,
  envValueMax: 8192,
  cwdMax: 1024,
  timeoutSecondsMax: 7 * 24 * 3600,
  targetMachineIdsMax: 1000,
  /** Characters of output in one chunk; the agent splits larger writes. */
  chunkDataMax: 64 * 1024,
  /** Chunks in one `execution:output` message. */
  chunksPerMessageMax: 64,
  /** socket.io `maxHttpBufferSize`: a bigger message drops the socket. */
  socketMessageMaxBytes: 1024 * 1024,
  logPageMax: 5000,
  enrolmentMaxUses: 100_000,
  /** The longest a bundle's enrolment token may live (30 days). */
  bundleTokenMaxTtlHours: 720,
  /** The longest a one-line install command may wait for its machine (1 day). */
  installLinkMaxTtlMinutes: 1440,
} as const;

/** Presence: one documented threshold (README "Presence"). */
export const PRESENCE = {
  /** The agent sends `agent:heartbeat` this often. */
  heartbeatIntervalMs: 10_000,
  /** A machine with no heartbeat for this long is offline, even if a node still thinks it holds the socket. */
  offlineAfterMs: 30_000,
} as const;
