import { definePlugin } from '@orch/plugin-sdk';

export const { describe, execute } = definePlugin({
  types: {
    'ts/sandbox': {
      version: '2026.11.30.1',
      description: 'Tries to reach the network',
      globalArguments: { type: 'object', properties: { url: { type: 'string' } }, required: ['url'] },
      methods: {
        noop: { description: 'Does nothing (for cargo xtask bench)', execute: () => null },
        fetch: { description: 'fetch() the url', execute: (_, ctx) => fetch(ctx.globalArgs.url) },
        http: { description: 'orch http to the url (not granted)', execute: (_, ctx) => ctx.http.getJson(ctx.globalArgs.url) },
      },
    },
  },
});
