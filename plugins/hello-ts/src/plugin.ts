import { definePlugin } from '@orch/plugin-sdk';

export const { describe, execute } = definePlugin({
  types: {
    'hello/world': {
      version: '2026.11.30.1',
      description: 'Says hello and remembers it',
      resources: { greeting: { description: 'A greeting' } },
      methods: {
        greet: {
          description: 'Greets someone and writes a greeting resource',
          arguments: { type: 'object', properties: { who: { type: 'string' } }, required: ['who'] },
          execute: ({ who }, context) => {
            context.writeResource('greeting', who, { text: `hello, ${who}` });
            return { greeted: who };
          },
        },
      },
    },
  },
});
