// Command-line options of bench/chaos.mjs: parsing, validation and the mode-dependent defaults.

export function usage(problem) {
  console.error(
    `chaos: ${problem}\n` +
      'usage: node bench/chaos.mjs [--messages N] [--connections C] [--kills K] [--seed S] [--fail F]\n' +
      '                            [--minutes M] [--rate R] [--drain-timeout S] [--size B] [--json FILE] [--keep] [--quiet]\n' +
      '                            [--backend level|postgres] [--nodes N] [--db-restarts N] [--malloc-arena-max N]',
  );
  process.exit(2);
}

export function parseArgs(argv) {
  const opts = {
    messages: 20_000,
    connections: 20,
    kills: null,
    seed: null,
    fail: 0.2,
    minutes: null,
    rate: null,
    drainTimeout: 600,
    size: 1024,
    json: null,
    keep: false,
    quiet: false,
    backend: 'level',
    nodes: null,
    dbRestarts: null,
    // glibc arenas of the relay processes, as the Docker image sets them (docs/operations.md); 0: glibc's default (8 per core).
    mallocArenaMax: 2,
  };
  const rest = [...argv];
  const num = (arg, v) => {
    const n = Number(v);
    if (v === undefined || v === '' || !Number.isFinite(n)) usage(`${arg} needs a number`);
    return n;
  };
  while (rest.length > 0) {
    const arg = rest.shift();
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? rest.shift();
    switch (flag) {
      case '--messages': opts.messages = num(flag, value()); break;
      case '--connections': opts.connections = num(flag, value()); break;
      case '--kills': opts.kills = num(flag, value()); break;
      case '--seed': opts.seed = num(flag, value()); break;
      case '--fail': opts.fail = num(flag, value()); break;
      case '--minutes': opts.minutes = num(flag, value()); break;
      case '--rate': opts.rate = num(flag, value()); break;
      case '--drain-timeout': opts.drainTimeout = num(flag, value()); break;
      case '--size': opts.size = num(flag, value()); break;
      case '--json': opts.json = value(); if (!opts.json) usage('--json needs a file name'); break;
      case '--keep': opts.keep = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--backend': opts.backend = value(); break;
      case '--nodes': opts.nodes = num(flag, value()); break;
      case '--db-restarts': opts.dbRestarts = num(flag, value()); break;
      case '--malloc-arena-max': opts.mallocArenaMax = num(flag, value()); break;
      case '--help': case '-h': usage('help');
      // falls through (usage exits)
      default: usage(`unknown argument ${arg}`);
    }
  }
  const int = (name, v, min, max) => {
    if (!Number.isInteger(v) || v < min || v > max) usage(`--${name} must be an integer in ${min}..${max}`);
  };
  int('messages', opts.messages, 1, 1_000_000);
  int('connections', opts.connections, 1, 100);
  if (opts.kills !== null) int('kills', opts.kills, 0, 1000);
  if (opts.seed === null) opts.seed = Math.floor(Math.random() * 2 ** 31);
  int('seed', opts.seed, 0, 2 ** 53);
  if (!(opts.fail >= 0 && opts.fail < 1)) usage('--fail must be in [0, 1)');
  if (opts.minutes !== null && !(opts.minutes > 0 && opts.minutes <= 24 * 60)) usage('--minutes must be in (0, 1440]');
  if (opts.rate !== null && !(opts.rate > 0 && opts.rate <= 100_000)) usage('--rate must be in (0, 100000]');
  if (!(opts.drainTimeout > 0 && opts.drainTimeout <= 24 * 3600)) usage('--drain-timeout must be in (0, 86400]');
  int('size', opts.size, 512, 60 * 1024);
  int('malloc-arena-max', opts.mallocArenaMax, 0, 1024);
  if (opts.backend !== 'level' && opts.backend !== 'postgres') usage('--backend must be level or postgres');
  const postgres = opts.backend === 'postgres';
  // One LevelDB belongs to one process: several nodes (and a database to restart) need postgres.
  opts.nodes ??= postgres ? 3 : 1;
  int('nodes', opts.nodes, 1, postgres ? 9 : 1);
  if (opts.dbRestarts !== null) int('db-restarts', opts.dbRestarts, 0, postgres ? 100 : 0);
  opts.soak = opts.minutes !== null;
  opts.dbRestarts ??= postgres && !opts.soak ? 2 : 0;
  opts.kills ??= opts.soak ? 0 : 10;
  if (opts.soak) {
    opts.rate ??= 50;
    opts.messages = Math.ceil(opts.rate * opts.minutes * 60);
  }
  return opts;
}
