// Generates src/schema.d.ts from docs/worker-api.yaml: `npm run generate`.
// Bodies that are bytes (a scene, an output) become Blob rather than string.
import fs from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const source = new URL("../../../docs/worker-api.yaml", import.meta.url);
// An argument writes elsewhere (the tests compare a fresh generation with the committed file).
const target = process.argv[2] ?? new URL("../src/schema.d.ts", import.meta.url);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));

const ast = await openapiTS(source, {
  // A field with a default stays optional in what a client sends; replies list what they always carry in
  // `required`.
  defaultNonNullable: false,
  transform(schema) {
    if (schema.format === "binary" || (schema.type === "string" && schema.contentMediaType)) return BLOB;
    return undefined;
  },
});
const header = "// Generated from docs/worker-api.yaml by scripts/generate.mjs; do not edit.\n\n";
fs.writeFileSync(target, header + astToString(ast));
