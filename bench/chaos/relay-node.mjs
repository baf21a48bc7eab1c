// One relay process under test (the built `dist/`, via bin/onward): spawn and wait for /readyz,
// SIGKILL, SIGTERM with a grace period, `onward spool check` / other CLI calls on its config,
// its admin stats, and what it logged (errors, crashes: exits that were not ours).
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpGetJson, sleep } from '../lib/net.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'onward');

function runNode(args, timeoutMs) {
  return new Promise((res) => {
    const started = Date.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

function withoutArenaMax(env) {
  const { MALLOC_ARENA_MAX: _, ...rest } = env;
  return rest;
}

/** One relay process; `onCrash` (set by the kill scheduler) hears of exits that were not ours. */
export class RelayNode {
  /** `mallocArenaMax`: MALLOC_ARENA_MAX of the relay process (null or 0: glibc's default). */
  constructor({ configPath, smtpPort, adminPort, logPath, nodeId = null, mallocArenaMax = null }) {
    this.nodeId = nodeId; // postgres: the node's id in the cluster; level: null
    this.env = mallocArenaMax ? { ...process.env, MALLOC_ARENA_MAX: String(mallocArenaMax) } : withoutArenaMax(process.env);
    this.configPath = configPath;
    this.smtpPort = smtpPort;
    this.adminPort = adminPort;
    this.log = createWriteStream(logPath, { flags: 'a' });
    this.child = null;
    this.planned = false; // the current child's exit is ours (SIGKILL / SIGTERM)
    this.crashes = [];
    this.starts = 0;
    this.upSince = 0;
    this.errorLines = 0;
    this.errorSamples = [];
    this.tail = '';
  }

  get pid() {
    return this.child && this.child.exitCode === null && this.child.signalCode === null ? this.child.pid : null;
  }

  get alive() {
    return this.pid !== null;
  }

  async start(deadlineMs = 30_000) {
    const child = spawn(process.execPath, [BIN, 'serve', '--config', this.configPath], {
      cwd: ROOT,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.planned = false;
    this.starts += 1;
    const onData = (chunk) => {
      this.log.write(chunk);
      const text = chunk.toString();
      this.tail = (this.tail + text).slice(-4000);
      for (const line of text.split('\n')) {
        if (/"level":(50|60)\b/.test(line)) {
          this.errorLines += 1;
          if (this.errorSamples.length < 5) this.errorSamples.push(line.slice(0, 400));
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
    child.exited.then(({ code, signal }) => {
      if (this.child === child && !this.planned) {
        this.crashes.push({ at: new Date().toISOString(), code, signal, tail: this.tail.slice(-1500) });
        if (this.onCrash) this.onCrash();
      }
    });
    const until = Date.now() + deadlineMs;
    while (Date.now() < until) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`relay exited while starting (code ${child.exitCode}, signal ${child.signalCode}):\n${this.tail}`);
      try {
        const ready = await httpGetJson(this.adminPort, '/readyz', 1000).then(
          () => true,
          () => false,
        );
        if (ready) {
          this.upSince = Date.now();
          return;
        }
      } catch {
        /* not yet */
      }
      await sleep(50);
    }
    throw new Error(`relay did not become ready within ${deadlineMs} ms`);
  }

  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.planned = true;
    process.kill(child.pid, 'SIGKILL');
    await child.exited;
  }

  /** SIGTERM and wait (up to `graceMs`, then SIGKILL); returns the exit. */
  async stop(graceMs = 20_000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { code: child?.exitCode ?? null, signal: child?.signalCode ?? null, forced: false };
    this.planned = true;
    process.kill(child.pid, 'SIGTERM');
    let forced = false;
    const timer = setTimeout(() => {
      forced = true;
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
    }, graceMs);
    const exit = await child.exited;
    clearTimeout(timer);
    return { ...exit, forced };
  }

  async cli(args, timeoutMs = 120_000) {
    return runNode([BIN, ...args, '--config', this.configPath], timeoutMs);
  }

  /** `onward spool check --json` (level: while the relay is down, the CLI opens the LevelDB itself; postgres: the shared spool, live). */
  async spoolCheck() {
    const r = await this.cli(['spool', 'check', '--json']);
    let report = null;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      /* reported below */
    }
    const problems = report?.problems ?? [];
    const counts = report?.counts ?? {};
    const ok = r.code === 0 && report !== null && problems.length === 0 && Object.keys(counts).length === 0;
    return {
      ok,
      exitCode: r.code,
      ms: r.ms,
      messages: report?.messages ?? null,
      counts,
      problems: problems.slice(0, 10),
      error: report === null ? (r.stderr || r.stdout).slice(0, 1000) : null,
    };
  }

  async stats() {
    return httpGetJson(this.adminPort, '/api/spool/stats', 3000);
  }

  close() {
    this.log.end();
  }
}


/** Messages a spool stats document (admin or `spool stats --json`) still has to work on. */
export function openMessages(stats) {
  return stats.states.queued + stats.states.deferred + stats.states.held;
}
