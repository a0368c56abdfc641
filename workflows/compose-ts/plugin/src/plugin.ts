// docker/compose in TypeScript: the same methods, commands and resource as plugins/docker.
import { definePlugin, failed, invalidArguments, Context, JsonSchema } from '@orch/plugin-sdk';

interface Globals {
  sshHost?: string | null;
  sshPort: number;
  sshUser: string;
  sshKey?: string | null;
  sshPassword?: string | null;
  trustOnFirstUse?: boolean;
  projectDir: string;
  composeFile?: string | null;
  dockerBin: string;
}

const UP = ['up', '-d'];
const DOWN = ['down'];
const PULL = ['pull'];
const PS = ['ps', '--all', '--format', 'json'];

const shellQuote = (s: string) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function command(g: Globals, args: string[]): string {
  const dir = g.projectDir.trim();
  if (!dir) throw invalidArguments('projectDir must not be empty');
  const bin = (g.dockerBin ?? 'docker').trim();
  if (!bin) throw invalidArguments('dockerBin must not be empty');
  let cmd = `cd ${shellQuote(dir)} && ${shellQuote(bin)} compose`;
  const file = g.composeFile?.trim();
  if (file) cmd += ` -f ${shellQuote(file)}`;
  return [cmd, ...args].join(' ');
}

function target(ctx: Context<Globals>) {
  const g = ctx.globalArgs;
  if (!g.sshHost) {
    throw failed(`model \`${ctx.modelName}\` has no IP (is the VM running?): sshHost is null`);
  }
  return {
    host: g.sshHost,
    port: g.sshPort ?? 22,
    user: g.sshUser ?? 'root',
    privateKey: g.sshKey ?? undefined,
    password: g.sshPassword ?? undefined,
    trustOnFirstUse: g.trustOnFirstUse ?? false,
  };
}

function dryRun(ctx: Context<Globals>, steps: string[][]) {
  const t = target(ctx);
  const wouldRun = steps.map((s) => command(ctx.globalArgs, s));
  return { dryRun: true, target: `${t.user}@${t.host}:${t.port}`, wouldRun };
}

function runAll(ctx: Context<Globals>, steps: string[][]) {
  if (ctx.dryRun) return dryRun(ctx, steps);
  const commands = steps.map((s) => command(ctx.globalArgs, s));
  const session = ctx.ssh.open(target(ctx));
  let log = '';
  commands.forEach((cmd, i) => {
    const out = session.exec(cmd);
    if (out.exitCode !== 0) {
      const reason = (out.stderr || out.stdout).trim() || 'no output';
      throw failed(`docker compose ${steps[i].join(' ')} failed (exit ${out.exitCode}): ${reason}`);
    }
    log += `${(out.stderr + out.stdout).trim()}\n`;
    ctx.log.info(`ran \`${cmd}\``);
  });
  const trimmed = log.trim();
  return { commands, output: trimmed.slice(Math.max(0, trimmed.length - 4000)) };
}

interface ServiceState {
  service: string;
  name: string;
  state: string;
  status: string;
  health: string | null;
  exitCode: number | null;
  publishers: { url: string; targetPort: number; publishedPort: number; protocol: string }[];
}

/** Parses `docker compose ps --format json`: a JSON array (old) or one object per line (new). */
export function parsePs(stdout: string): ServiceState[] {
  const text = stdout.trim();
  let raw: Record<string, any>[];
  const bad = (what: string, e: unknown) =>
    failed(`docker compose ps printed ${what} that is not the expected JSON: ${e}`);
  if (!text || text === 'null') raw = [];
  else if (text.startsWith('[')) {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw bad('an array', e);
    }
  } else {
    raw = [];
    for (const line of text.split('\n').map((l) => l.trim())) {
      if (!line.startsWith('{')) continue;
      try {
        raw.push(JSON.parse(line));
      } catch (e) {
        throw bad(`a line (${line.slice(0, 80)})`, e);
      }
    }
    if (raw.length === 0) throw bad('output', `no JSON in ${JSON.stringify(text.slice(0, 200))}`);
  }
  const services = raw.map((c) => {
    const state = c.State ?? '';
    return {
      service: c.Service ?? '',
      name: c.Name ?? '',
      state,
      status: c.Status ?? '',
      health: c.Health ? String(c.Health) : null,
      exitCode: state === 'running' ? null : (c.ExitCode ?? null),
      publishers: (c.Publishers ?? []).map((p: Record<string, any>) => ({
        url: p.URL ?? '',
        targetPort: p.TargetPort ?? 0,
        publishedPort: p.PublishedPort ?? 0,
        protocol: p.Protocol ?? '',
      })),
    };
  });
  return services.sort((a, b) => (a.service + '\0' + a.name).localeCompare(b.service + '\0' + b.name));
}

const noArgs: JsonSchema = { type: 'object', additionalProperties: false };

export const { describe, execute } = definePlugin({
  types: {
    'docker/compose': {
      version: '2026.11.21.1',
      description: 'A Docker Compose project on an SSH host: start, stop, update, status',
      globalArguments: {
        type: 'object',
        additionalProperties: false,
        required: ['projectDir'],
        properties: {
          sshHost: { type: ['string', 'null'], description: 'Address to connect to; null while the VM is stopped' },
          sshPort: { type: 'integer', default: 22, minimum: 1, maximum: 65535 },
          sshUser: { type: 'string', default: 'root' },
          sshKey: { type: ['string', 'null'], description: 'OpenSSH private key text, usually from a vault' },
          sshPassword: { type: ['string', 'null'] },
          trustOnFirstUse: { type: 'boolean', default: false },
          projectDir: { type: 'string', description: 'Directory holding the compose file' },
          composeFile: { type: ['string', 'null'], description: 'compose -f FILE' },
          dockerBin: { type: 'string', default: 'docker' },
        },
      },
      resources: {
        status: { description: "The project's containers (instance `status`): services with state and health" },
      },
      methods: {
        start: { description: 'docker compose up -d', arguments: noArgs, execute: (_, ctx) => runAll(ctx, [UP]) },
        stop: {
          description: 'docker compose down (containers go; volumes stay)',
          arguments: noArgs,
          execute: (_, ctx) => runAll(ctx, [DOWN]),
        },
        update: {
          description: 'docker compose pull, then up -d',
          arguments: noArgs,
          execute: (_, ctx) => runAll(ctx, [PULL, UP]),
        },
        status: {
          description: "docker compose ps: each service's state, status, health and ports; records resource status/status",
          kind: 'read',
          arguments: noArgs,
          execute: (_, ctx: Context<Globals>) => {
            if (ctx.dryRun) return dryRun(ctx, [PS]);
            const out = ctx.ssh.open(target(ctx)).exec(command(ctx.globalArgs, PS));
            if (out.exitCode !== 0) {
              throw failed(`docker compose ps failed (exit ${out.exitCode}): ${(out.stderr || out.stdout).trim()}`);
            }
            const services = parsePs(out.stdout);
            const running = services.filter((s) => s.state === 'running').length;
            const resource = {
              projectDir: ctx.globalArgs.projectDir,
              services,
              running,
              total: services.length,
              healthy: services.length > 0 && running === services.length && !services.some((s) => s.health === 'unhealthy'),
              timestamp: new Date().toISOString(),
            };
            ctx.writeResource('status', 'status', resource);
            ctx.log.info(`${running} of ${services.length} container(s) running in ${resource.projectDir}`);
            return resource;
          },
        },
      },
    },
  },
});
