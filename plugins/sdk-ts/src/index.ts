// The orch plugin SDK for TypeScript. A plugin is one module:
//
//   import { definePlugin } from '@orch/plugin-sdk';
//   export const { describe, execute } = definePlugin({ types: { 'hello/world': { ... } } });
//
// `orch` builds it with componentize-js into a component of the `model-plugin` world
// (wit/plugin.wit). JSON travels as strings across the WIT; this SDK parses and stringifies.
/// <reference path="./wit.d.ts" />
import { log as witLog } from 'orch:plugin/log@0.1.0';
import {
  writeResource as witWriteResource,
  readResource as witReadResource,
  listResources as witListResources,
} from 'orch:plugin/data@0.1.0';
import { send as witSend } from 'orch:plugin/http@0.1.0';
import { Session as WitSession } from 'orch:plugin/ssh@0.1.0';

/** A JSON Schema (draft 2020-12) document. */
export type JsonSchema = { [key: string]: unknown };

/** What a method does to the outside world (the WIT `method-kind`). */
export type MethodKind = 'create' | 'read' | 'update' | 'delete' | 'list' | 'action';

/** The WIT error variants. */
export type ErrorKind =
  | 'invalid-arguments'
  | 'denied'
  | 'not-found'
  | 'conflict'
  | 'transient'
  | 'failed';

/** A typed failure: the host shows `kind` and the message. */
export class PluginError extends Error {
  /** Which WIT error variant this is. */
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = 'PluginError';
  }
}

/** The arguments are wrong (beyond what the schema caught). */
export const invalidArguments = (m: string) => new PluginError('invalid-arguments', m);
/** A policy refused this. */
export const denied = (m: string) => new PluginError('denied', m);
/** The thing asked for does not exist. */
export const notFound = (m: string) => new PluginError('not-found', m);
/** The world is in a state that conflicts with the request. */
export const conflict = (m: string) => new PluginError('conflict', m);
/** Try again later. */
export const transient = (m: string) => new PluginError('transient', m);
/** Anything else. */
export const failed = (m: string) => new PluginError('failed', m);

/** Turns an `err` thrown by a WIT import (`{payload: {tag, val}}`) into a PluginError. */
function fromWit(e: unknown): never {
  const payload = (e as { payload?: { tag?: ErrorKind; val?: string } } | null)?.payload;
  if (payload && typeof payload.tag === 'string') {
    throw new PluginError(payload.tag, String(payload.val ?? ''));
  }
  throw e;
}

function wit<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    return fromWit(e);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Logging into the run's event stream. */
export const log = {
  trace: (m: string) => witLog('trace', m),
  debug: (m: string) => witLog('debug', m),
  info: (m: string) => witLog('info', m),
  warn: (m: string) => witLog('warn', m),
  error: (m: string) => witLog('error', m),
};

/** One HTTP request; the host checks it against the plugin's grants. */
export interface HttpRequest {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /** A string or bytes as is; anything else is sent as JSON. */
  body?: string | Uint8Array | unknown;
  timeoutMs?: number;
  insecureTls?: boolean;
  pinnedCertSha256?: string;
}

/** An HTTP response. */
export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/** Outbound HTTP through `orch:plugin/http` (the only way out: fetch() is not available). */
export const http = {
  /** Sends a request; a non-2xx status is a response, not an error. */
  request(req: HttpRequest): HttpResponse {
    const headers: [string, string][] = Object.entries(req.headers ?? {});
    let body: Uint8Array | undefined;
    if (req.body === undefined) body = undefined;
    else if (typeof req.body === 'string') body = encoder.encode(req.body);
    else if (req.body instanceof Uint8Array) body = req.body;
    else {
      body = encoder.encode(JSON.stringify(req.body));
      headers.push(['content-type', 'application/json']);
    }
    const res = wit(() =>
      witSend({
        method: req.method ?? 'GET',
        url: req.url,
        headers,
        body,
        timeoutMs: req.timeoutMs,
        insecureTls: req.insecureTls ?? false,
        pinnedCertSha256: req.pinnedCertSha256,
      }),
    );
    const bytes = res.body;
    return {
      status: res.status,
      headers: Object.fromEntries(res.headers.map(([k, v]) => [k.toLowerCase(), v])),
      body: bytes,
      text: () => decoder.decode(bytes),
      json: <T>() => JSON.parse(decoder.decode(bytes)) as T,
    };
  },
  /** GET a URL and parse its JSON; a non-2xx status is a `failed` error. */
  getJson<T = unknown>(url: string, headers?: Record<string, string>): T {
    const res = http.request({ url, headers });
    if (res.status < 200 || res.status > 299) {
      throw failed(`GET ${url}: HTTP ${res.status}: ${res.text().slice(0, 200)}`);
    }
    return res.json<T>();
  },
};

/** Where and how to connect over SSH; the host checks the target against the grants. */
export interface SshTarget {
  host: string;
  port?: number;
  user: string;
  /** An OpenSSH private key (the text of the key file), usually from a vault. */
  privateKey?: string;
  passphrase?: string;
  password?: string;
  trustOnFirstUse?: boolean;
  connectTimeoutMs?: number;
}

/** What a remote command did. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** An open SSH connection. */
export class SshSession {
  private readonly inner: WitSession;
  /** @internal */
  constructor(inner: WitSession) {
    this.inner = inner;
  }
  /** Runs a command; a non-zero exit code is a result, not an error. */
  exec(command: string, opts: { stdin?: string | Uint8Array; timeoutMs?: number } = {}): ExecResult {
    const stdin = typeof opts.stdin === 'string' ? encoder.encode(opts.stdin) : opts.stdin;
    const r = wit(() => this.inner.exec(command, stdin, opts.timeoutMs));
    return { exitCode: r.exitCode, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
  }
  /** Runs a command and returns its stdout; a non-zero exit is a `failed` error with stderr. */
  run(command: string, opts: { stdin?: string | Uint8Array; timeoutMs?: number } = {}): string {
    const r = this.exec(command, opts);
    if (r.exitCode !== 0) {
      throw failed(`\`${command}\` exited with ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
    }
    return r.stdout;
  }
  /** Writes a file (mode as octal permissions, e.g. 0o644). */
  upload(path: string, contents: string | Uint8Array, mode = 0o644): void {
    const bytes = typeof contents === 'string' ? encoder.encode(contents) : contents;
    wit(() => this.inner.upload(path, bytes, mode));
  }
  /** Reads a file. */
  download(path: string): Uint8Array {
    return wit(() => this.inner.download(path));
  }
}

/** Remote commands through `orch:plugin/ssh`. */
export const ssh = {
  /** Connects to a granted target. */
  open(t: SshTarget): SshSession {
    const auth =
      t.privateKey !== undefined
        ? { tag: 'private-key' as const, val: { key: t.privateKey, passphrase: t.passphrase } }
        : { tag: 'password' as const, val: t.password ?? '' };
    const session = wit(() =>
      WitSession.open({
        host: t.host,
        port: t.port ?? 22,
        user: t.user,
        auth,
        trustOnFirstUse: t.trustOnFirstUse ?? false,
        connectTimeoutMs: t.connectTimeoutMs,
      }),
    );
    return new SshSession(session);
  },
};

/** What a method sees besides its arguments (as in swamp's extension models). */
export interface Context<G = any> {
  /** The definition's `globalArguments`, validated by the host. */
  globalArgs: G;
  modelName: string;
  typeName: string;
  method: string;
  /** Only plan: change nothing in the world. */
  dryRun: boolean;
  /** Writes a new version of a resource of this model; returns the version number. */
  writeResource(spec: string, name: string, attributes: unknown): number;
  /** The latest attributes of a resource of this model, or undefined. */
  readResource<T = unknown>(spec: string, name: string): T | undefined;
  /** Names of this model's resources of kind `spec`. */
  listResources(spec: string): string[];
  log: typeof log;
  http: typeof http;
  ssh: typeof ssh;
}

/** One method of a model type. */
export interface MethodDef<A = any, G = any> {
  description: string;
  kind?: MethodKind;
  /** The host refuses destructive methods unless the caller confirms. */
  destructive?: boolean;
  /** JSON Schema of the arguments; the host validates before calling. */
  arguments?: JsonSchema;
  /** Runs the method; the return value is the method's JSON output. Must be synchronous. */
  execute(args: A, context: Context<G>): unknown;
}

/** A kind of resource the model writes. */
export interface ResourceDef {
  description: string;
  schema?: JsonSchema;
}

/** One model type (e.g. `docker/compose`). */
export interface TypeDef<G = any> {
  /** CalVer: YYYY.MM.DD.MICRO. */
  version: string;
  description: string;
  /** JSON Schema of the definition's `globalArguments`. */
  globalArguments?: JsonSchema;
  resources?: Record<string, ResourceDef>;
  methods: Record<string, MethodDef<any, G>>;
}

/** What a plugin provides. */
export interface PluginDef {
  types: Record<string, TypeDef>;
}

interface WitCall {
  typeName: string;
  method: string;
  modelName: string;
  globalArguments: string;
  arguments: string;
  dryRun: boolean;
}

const EMPTY_OBJECT: JsonSchema = { type: 'object', additionalProperties: false };

/** Builds the two exports of the `model-plugin` world from plain type definitions. */
export function definePlugin(def: PluginDef) {
  // fetch() is compiled out (it would need wasi:http, which orch never links): say so plainly.
  (globalThis as { fetch?: unknown }).fetch = () => {
    throw denied('fetch() is not available in orch plugins: use http.request from @orch/plugin-sdk');
  };
  // There is no stdio: console output goes into the run's event stream.
  const text = (args: unknown[]) =>
    args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  (globalThis as { console?: unknown }).console = {
    log: (...a: unknown[]) => log.info(text(a)),
    info: (...a: unknown[]) => log.info(text(a)),
    debug: (...a: unknown[]) => log.debug(text(a)),
    warn: (...a: unknown[]) => log.warn(text(a)),
    error: (...a: unknown[]) => log.error(text(a)),
  };
  const describe = () =>
    Object.entries(def.types).map(([name, t]) => ({
      name,
      version: t.version,
      description: t.description,
      globalArgumentsSchema: JSON.stringify(t.globalArguments ?? EMPTY_OBJECT),
      resources: Object.entries(t.resources ?? {}).map(([r, spec]) => ({
        name: r,
        description: spec.description,
        schema: JSON.stringify(spec.schema ?? { type: 'object' }),
      })),
      methods: Object.entries(t.methods).map(([m, md]) => ({
        name: m,
        description: md.description,
        kind: md.kind ?? 'action',
        destructive: md.destructive ?? false,
        argumentsSchema: JSON.stringify(md.arguments ?? EMPTY_OBJECT),
      })),
    }));
  const execute = (call: WitCall): string => {
    try {
      const t = def.types[call.typeName];
      if (!t) throw notFound(`this plugin has no type ${call.typeName}`);
      const m = t.methods[call.method];
      if (!m) throw notFound(`${call.typeName} has no method ${call.method}`);
      const context: Context = {
        globalArgs: JSON.parse(call.globalArguments),
        modelName: call.modelName,
        typeName: call.typeName,
        method: call.method,
        dryRun: call.dryRun,
        writeResource: (spec, name, attributes) =>
          Number(wit(() => witWriteResource(spec, name, JSON.stringify(attributes)))),
        readResource: <T>(spec: string, name: string) => {
          const text = wit(() => witReadResource(spec, name));
          return text === undefined ? undefined : (JSON.parse(text) as T);
        },
        listResources: (spec) => wit(() => witListResources(spec)),
        log,
        http,
        ssh,
      };
      const out = m.execute(JSON.parse(call.arguments), context);
      if (out && typeof (out as { then?: unknown }).then === 'function') {
        throw failed(`${call.typeName}.${call.method}: execute returned a Promise; orch methods are synchronous (drop async/await)`);
      }
      return JSON.stringify(out ?? null);
    } catch (e) {
      // componentize-js turns a thrown `{payload}` into the `err` case of the result.
      const err =
        e instanceof PluginError
          ? { tag: e.kind, val: e.message }
          : { tag: 'failed' as const, val: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
      throw Object.assign(new Error(err.val), { payload: err });
    }
  };
  return { describe, execute };
}
