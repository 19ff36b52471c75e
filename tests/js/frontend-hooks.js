/** Node module hooks: web/provenance.js's frontend imports (../../scripts/app.js, api.js) resolve to the test's fakes. */

const SHIMS = {
  "app.js": "export const app = globalThis.__provenanceFrontend.app;",
  "api.js": "export const api = globalThis.__provenanceFrontend.api;",
};

export async function resolve(specifier, context, nextResolve) {
  const match = /\/scripts\/(app|api)\.js$/.exec(specifier);
  if (match && context.parentURL?.endsWith("/web/provenance.js")) {
    return { url: `data:text/javascript,${encodeURIComponent(SHIMS[`${match[1]}.js`])}`, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
