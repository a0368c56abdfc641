// The orch:plugin@0.1.0 imports as componentize-js presents them (see wit/plugin.wit).
// Variant cases and enum values keep their WIT (kebab-case) names; an `err` result is thrown
// as an Error whose `payload` is the variant.

declare module 'orch:plugin/log@0.1.0' {
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
  export function log(level: Level, message: string): void;
}

declare module 'orch:plugin/data@0.1.0' {
  export function writeResource(spec: string, name: string, attributes: string): bigint;
  export function readResource(spec: string, name: string): string | undefined;
  export function listResources(spec: string): string[];
}

declare module 'orch:plugin/http@0.1.0' {
  export interface Request {
    method: string;
    url: string;
    headers: [string, string][];
    body?: Uint8Array;
    timeoutMs?: number;
    insecureTls: boolean;
    pinnedCertSha256?: string;
  }
  export interface Response {
    status: number;
    headers: [string, string][];
    body: Uint8Array;
  }
  export function send(request: Request): Response;
}

declare module 'orch:plugin/ssh@0.1.0' {
  export type Auth =
    | { tag: 'private-key'; val: { key: string; passphrase?: string } }
    | { tag: 'password'; val: string };
  export interface Target {
    host: string;
    port: number;
    user: string;
    auth: Auth;
    trustOnFirstUse: boolean;
    connectTimeoutMs?: number;
  }
  export interface ExecResult {
    exitCode: number;
    stdout: Uint8Array;
    stderr: Uint8Array;
  }
  export class Session {
    static open(target: Target): Session;
    exec(command: string, stdin: Uint8Array | undefined, timeoutMs: number | undefined): ExecResult;
    upload(path: string, contents: Uint8Array, mode: number): void;
    download(path: string): Uint8Array;
  }
}
