#!/usr/bin/env node
// Generates services/protocol/messages/*.ts from Kafka's JSON message definitions.
// Usage: node tools/gen-protocol.mjs <spec-dir> <out-dir>   (npm run gen:protocol)
// One module per message: its types, a reader and a writer driven by each field's version
// range, nullability, flexibility and tag. The output is committed; the build never needs
// the spec directory.
import { readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { join, basename } from 'node:path';

const [specDir, outDir] = process.argv.slice(2);
if (!specDir || !outDir) {
  console.error('usage: gen-protocol.mjs <spec-dir> <out-dir>');
  process.exit(2);
}

/** Removes // comments that are outside strings, so the specs parse as JSON. */
function stripComments(text) {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else out += c;
  }
  return out;
}

/** "3+" → [3, ∞]; "0-2" → [0, 2]; "none"/undefined → null. */
function parseRange(s) {
  if (s === undefined || s === null || s === 'none' || s === '') return null;
  s = String(s);
  if (s.endsWith('+')) return [Number(s.slice(0, -1)), Infinity];
  if (s.includes('-')) {
    const [a, b] = s.split('-').map(Number);
    return [a, b];
  }
  return [Number(s), Number(s)];
}

/** A TypeScript condition on `version` for a range, within the message's valid versions. */
function cond(range, valid) {
  if (!range) return 'false';
  const lo = Math.max(range[0], valid[0]);
  const hi = Math.min(range[1], valid[1]);
  if (lo > hi) return 'false';
  const parts = [];
  if (lo > valid[0]) parts.push(`version >= ${lo}`);
  if (hi < valid[1]) parts.push(`version <= ${hi}`);
  return parts.length ? parts.join(' && ') : 'true';
}

/** The part of `range` inside `valid`, or null when they do not meet. */
function intersect(range, valid) {
  if (!range || !valid) return null;
  const lo = Math.max(range[0], valid[0]);
  const hi = Math.min(range[1], valid[1]);
  return lo <= hi ? [lo, hi] : null;
}

/** A version range as a TypeScript literal for the emitted schema. */
const rangeLit = (r) => (r ? `[${r[0]}, ${r[1] === Infinity ? 'Infinity' : r[1]}]` : 'null');

const covers = (range, valid) => range && range[0] <= valid[0] && range[1] >= valid[1];
const lowerCamel = (s) => s.charAt(0).toLowerCase() + s.slice(1);
const kebab = (s) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

const PRIMS = {
  bool: { ts: 'boolean', read: 'r.bool()', write: (v) => `w.bool(${v})`, def: 'false' },
  int8: { ts: 'number', read: 'r.int8()', write: (v) => `w.int8(${v})`, def: '0' },
  int16: { ts: 'number', read: 'r.int16()', write: (v) => `w.int16(${v})`, def: '0' },
  uint16: { ts: 'number', read: 'r.uint16()', write: (v) => `w.uint16(${v})`, def: '0' },
  int32: { ts: 'number', read: 'r.int32()', write: (v) => `w.int32(${v})`, def: '0' },
  uint32: { ts: 'number', read: 'r.uint32()', write: (v) => `w.uint32(${v})`, def: '0' },
  int64: { ts: 'bigint', read: 'r.int64()', write: (v) => `w.int64(${v})`, def: '0n' },
  float64: { ts: 'number', read: 'r.float64()', write: (v) => `w.float64(${v})`, def: '0' },
  uuid: { ts: 'string', read: 'r.uuid()', write: (v) => `w.uuid(${v})`, def: 'ZERO_UUID' },
};

function literalDefault(type, raw, nullable) {
  if (raw === undefined) return undefined;
  const s = String(raw);
  if (s === 'null') return nullable ? 'null' : undefined;
  if (type === 'bool') return s === 'true' ? 'true' : 'false';
  if (type === 'int64') return `${BigInt(s)}n`;
  if (PRIMS[type] && type !== 'uuid') return String(Number(s));
  if (type === 'string') return JSON.stringify(s);
  return undefined;
}

class Gen {
  constructor(spec) {
    this.spec = spec;
    this.valid = parseRange(spec.validVersions);
    this.flexible = parseRange(spec.flexibleVersions);
    this.structs = new Map(); // name -> fields
    this.order = [];
    this.common = new Map((spec.commonStructs ?? []).map((s) => [s.name, s.fields]));
  }

  /** Registers struct types reachable from a field list. */
  collect(name, fields) {
    if (this.structs.has(name)) return;
    this.structs.set(name, fields);
    for (const f of fields) {
      const t = f.type.startsWith('[]') ? f.type.slice(2) : f.type;
      if (PRIMS[t] || t === 'string' || t === 'bytes' || t === 'records') continue;
      const sub = f.fields ?? this.common.get(t);
      if (!sub) throw new Error(`${this.spec.name}: no definition for struct ${t}`);
      this.collect(t, sub);
    }
    this.order.push(name);
  }

  fieldInfo(f) {
    const isArray = f.type.startsWith('[]');
    const elem = isArray ? f.type.slice(2) : f.type;
    const versions = parseRange(f.versions);
    const nullable = parseRange(f.nullableVersions);
    const tagged = f.tag !== undefined ? parseRange(f.taggedVersions ?? f.versions) : null;
    const anyNullable = !!nullable;
    const kind = PRIMS[elem] ? 'prim' : elem === 'string' ? 'string' : elem === 'bytes' || elem === 'records' ? 'bytes' : 'struct';
    // A record set may be a list of chunks when written (a fetch answers from cached batches
    // without joining them); a decoded one is always one Buffer.
    let elemTs = kind === 'prim' ? PRIMS[elem].ts : kind === 'string' ? 'string' : elem === 'records' ? 'Records' : kind === 'bytes' ? 'Buffer' : elem;
    let ts = isArray ? `${elemTs}[]` : elemTs;
    if (anyNullable && (isArray || kind !== 'prim')) ts += ' | null';
    const optional = tagged !== null || !covers(versions, this.valid);
    // Versions in which the field is on the wire; nullability is only ever asked inside them.
    const live = intersect(versions, this.valid);
    return { f, name: lowerCamel(f.name), isArray, elem, kind, versions, nullable, tagged, ts, optional, live };
  }

  defaultExpr(fi) {
    const { f, isArray, elem, kind, nullable } = fi;
    if (isArray) return nullable && String(f.default) === 'null' ? 'null' : '[]';
    const lit = literalDefault(elem, f.default, !!nullable);
    if (lit !== undefined) return lit;
    if (kind === 'prim') return PRIMS[elem].def;
    if (kind === 'string') return "''";
    if (kind === 'bytes') return nullable ? 'null' : 'EMPTY';
    return `default${elem}()`;
  }

  /** Read expression for one value of the field's element type. */
  readElem(fi, flexExpr, nullableExpr) {
    const { elem, kind } = fi;
    if (kind === 'prim') return PRIMS[elem].read;
    if (kind === 'string') return nullableExpr === 'false' ? `r.string(${flexExpr})` : nullableExpr === 'true' ? `r.nullableString(${flexExpr})` : `(${nullableExpr} ? r.nullableString(${flexExpr}) : r.string(${flexExpr}))`;
    if (kind === 'bytes') return nullableExpr === 'false' ? `r.bytes(${flexExpr})` : nullableExpr === 'true' ? `r.nullableBytes(${flexExpr})` : `(${nullableExpr} ? r.nullableBytes(${flexExpr}) : r.bytes(${flexExpr}))`;
    const read = `read${elem}(r, version, flex)`;
    if (nullableExpr === 'false') return read;
    // A nullable struct is preceded by a presence byte: -1 for null, 1 for present.
    return nullableExpr === 'true' ? `(r.int8() < 0 ? null : ${read})` : `(${nullableExpr} && r.int8() < 0 ? null : ${read})`;
  }

  /** When the field may be null, as a condition that is only evaluated where the field is present. */
  nullableCond(fi) {
    return fi.nullable && fi.live ? cond(fi.nullable, fi.live) : 'false';
  }

  readExpr(fi, flexExpr) {
    const nullableExpr = this.nullableCond(fi);
    if (!fi.isArray) return this.readElem(fi, flexExpr, nullableExpr);
    const item = `(r) => ${this.readElem(fi, flexExpr, 'false')}`;
    if (nullableExpr === 'false') return `r.array(${flexExpr}, ${item})`;
    if (nullableExpr === 'true') return `r.nullableArray(${flexExpr}, ${item})`;
    return `(${nullableExpr} ? r.nullableArray(${flexExpr}, ${item}) : r.array(${flexExpr}, ${item}))`;
  }

  writeElem(fi, v, flexExpr, nullableExpr) {
    const { elem, kind } = fi;
    if (kind === 'prim') return PRIMS[elem].write(v);
    if (kind === 'string' || kind === 'bytes') {
      const [fn, t] = kind === 'string' ? ['String', 'string'] : ['Bytes', elem === 'records' ? 'Records' : 'Buffer'];
      const plain = `w.${t === 'string' ? 'string' : 'bytes'}(${flexExpr}, ${v} as ${t})`;
      const nullable = `w.nullable${fn}(${flexExpr}, ${v})`;
      return nullableExpr === 'false' ? plain : nullableExpr === 'true' ? nullable : `(${nullableExpr} ? ${nullable} : ${plain})`;
    }
    const write = `write${elem}(w, version, flex, ${v}`;
    if (nullableExpr === 'false') return `${write} as ${elem})`;
    const nullableWrite = `(${v} == null ? w.int8(-1) : (w.int8(1), ${write}!)))`;
    return nullableExpr === 'true' ? nullableWrite : `(${nullableExpr} ? ${nullableWrite} : ${write} as ${elem}))`;
  }

  writeStmt(fi, v, flexExpr) {
    const nullableExpr = this.nullableCond(fi);
    if (!fi.isArray) return this.writeElem(fi, v, flexExpr, nullableExpr);
    const item = `(w, x) => ${this.writeElem(fi, 'x', flexExpr, 'false')}`;
    const plain = `w.array(${flexExpr}, ${v} as ${fi.ts.replace(' | null', '')}, ${item})`;
    if (nullableExpr === 'false') return plain;
    const nullable = `w.nullableArray(${flexExpr}, ${v}, ${item})`;
    return nullableExpr === 'true' ? nullable : `(${nullableExpr} ? ${nullable} : ${plain})`;
  }

  struct(name, fields, exported) {
    const infos = fields.map((f) => this.fieldInfo(f));
    const valid = this.valid;
    const lines = [];
    // Type
    lines.push(`export interface ${name} {`);
    for (const fi of infos) lines.push(`  ${fi.name}${fi.optional ? '?' : ''}: ${fi.ts};`);
    lines.push('}', '');
    // Default
    lines.push(`export function default${name}(): ${name} {`);
    lines.push(`  return { ${infos.map((fi) => `${fi.name}: ${this.defaultExpr(fi)}`).join(', ')} };`);
    lines.push('}', '');
    // Reader
    lines.push(`${exported ? 'export ' : ''}function read${name}(r: Reader, version: number, flex: boolean): ${name} {`);
    lines.push(`  const m = default${name}();`);
    const taggedInfos = infos.filter((fi) => fi.tagged).sort((a, b) => a.f.tag - b.f.tag);
    for (const fi of infos) {
      const c = cond(fi.tagged ? [fi.versions[0], fi.tagged[0] - 1] : fi.versions, valid);
      if (c === 'false') continue;
      const flexExpr = fi.f.flexibleVersions !== undefined ? cond(parseRange(fi.f.flexibleVersions), valid) : 'flex';
      const stmt = `m.${fi.name} = ${this.readExpr(fi, flexExpr)};`;
      lines.push(c === 'true' ? `  ${stmt}` : `  if (${c}) ${stmt}`);
    }
    lines.push('  if (flex) r.taggedFields(' + (taggedInfos.length ? '(tag, r) => {' : ');'));
    if (taggedInfos.length) {
      lines.push('    switch (tag) {');
      for (const fi of taggedInfos) {
        const c = cond([Math.max(fi.tagged[0], fi.versions[0]), Math.min(fi.tagged[1], fi.versions[1])], valid);
        if (c === 'false') continue;
        const stmt = `m.${fi.name} = ${this.readExpr(fi, 'true')};`;
        lines.push(`      case ${fi.f.tag}: ${c === 'true' ? stmt : `if (${c}) ${stmt}`} break;`);
      }
      lines.push('    }', '  });');
    }
    lines.push('  return m;', '}', '');
    // Writer
    lines.push(`${exported ? 'export ' : ''}function write${name}(w: Writer, version: number, flex: boolean, m: ${name}): void {`);
    for (const fi of infos) {
      const c = cond(fi.tagged ? [fi.versions[0], fi.tagged[0] - 1] : fi.versions, valid);
      if (c === 'false') continue;
      const flexExpr = fi.f.flexibleVersions !== undefined ? cond(parseRange(fi.f.flexibleVersions), valid) : 'flex';
      // `??` would turn an explicit null into the default: only a missing field takes it.
      const v = !fi.optional ? `m.${fi.name}` : fi.nullable ? `(m.${fi.name} === undefined ? ${this.defaultExpr(fi)} : m.${fi.name})` : `(m.${fi.name} ?? ${this.defaultExpr(fi)})`;
      const stmt = `${this.writeStmt(fi, v, flexExpr)};`;
      lines.push(c === 'true' ? `  ${stmt}` : `  if (${c}) ${stmt}`);
    }
    if (taggedInfos.length) {
      lines.push('  if (flex) {', '    const tags: TagWriter[] = [];');
      for (const fi of taggedInfos) {
        const c = cond([Math.max(fi.tagged[0], fi.versions[0]), Math.min(fi.tagged[1], fi.versions[1])], valid);
        if (c === 'false') continue;
        const def = this.defaultExpr(fi);
        const present = `m.${fi.name} !== undefined && !deepEqual(m.${fi.name}, ${def})`;
        const guard = c === 'true' ? present : `${c} && ${present}`;
        lines.push(`    if (${guard}) tags.push([${fi.f.tag}, (w) => ${this.writeStmt(fi, `m.${fi.name}!`, 'true')}]);`);
      }
      lines.push('    w.taggedFields(tags);', '  }');
    } else {
      lines.push('  if (flex) w.taggedFields();');
    }
    lines.push('}', '');
    return lines.join('\n');
  }

  /** The field table as data: what each field is and in which versions, nested structs inline. */
  schemaFields(fields, indent) {
    const pad = ' '.repeat(indent);
    const lines = fields.map((f) => {
      const parts = [`name: '${lowerCamel(f.name)}'`, `type: '${f.type}'`, `versions: ${rangeLit(parseRange(f.versions))}`];
      if (f.nullableVersions !== undefined) parts.push(`nullableVersions: ${rangeLit(parseRange(f.nullableVersions))}`);
      if (f.tag !== undefined) parts.push(`tag: ${f.tag}`, `taggedVersions: ${rangeLit(parseRange(f.taggedVersions ?? f.versions))}`);
      if (f.flexibleVersions !== undefined) parts.push(`flexibleVersions: ${rangeLit(parseRange(f.flexibleVersions))}`);
      const elem = f.type.startsWith('[]') ? f.type.slice(2) : f.type;
      const sub = this.structs.get(elem);
      if (sub && elem !== this.spec.name) parts.push(`fields: ${this.schemaFields(sub, indent + 2)}`);
      return `${pad}  { ${parts.join(', ')} },`;
    });
    return lines.length ? `[\n${lines.join('\n')}\n${pad}]` : '[]';
  }

  generate(file) {
    const spec = this.spec;
    this.collect(spec.name, spec.fields);
    const body = this.order.map((n) => this.struct(n, this.structs.get(n), n === spec.name)).join('\n');
    const uses = (s) => body.includes(s);
    const flexCond = this.flexible ? cond(this.flexible, [0, Infinity]) : 'false';
    const imports = ['Reader', 'Writer', uses('TagWriter') && 'type TagWriter', uses('deepEqual') && 'deepEqual', uses('ZERO_UUID') && 'ZERO_UUID', /\bRecords\b/.test(body) && 'type Records'].filter(Boolean);
    const section = (...lines) => lines.filter((l) => l !== null).join('\n');
    const head = [
      section(
        `// Generated by tools/gen-protocol.mjs from ${file}. Do not edit: run \`npm run gen:protocol\`.`,
        `import { ${imports.join(', ')} } from '../primitives.js';`,
        `import type { MessageSchema } from './schema.js';`,
      ),
      uses('EMPTY') ? 'const EMPTY = Buffer.alloc(0);' : null,
      section(
        `export const ${spec.name}Info = {`,
        spec.apiKey !== undefined ? `  apiKey: ${spec.apiKey},` : null,
        `  name: '${spec.name}',`,
        `  minVersion: ${this.valid[0]},`,
        `  maxVersion: ${this.valid[1]},`,
        `  /** Versions that use compact encodings and tagged fields. */`,
        `  isFlexible: (version: number): boolean => ${flexCond},`,
        '} as const;',
      ),
      section(
        '/** Every field with its version ranges, for code that walks messages generically (property tests). */',
        `export const ${spec.name}Schema: MessageSchema = {`,
        `  name: '${spec.name}',`,
        `  type: '${spec.type}',`,
        spec.apiKey !== undefined ? `  apiKey: ${spec.apiKey},` : null,
        `  validVersions: ${rangeLit(this.valid)},`,
        `  flexibleVersions: ${rangeLit(this.flexible)},`,
        `  fields: ${this.schemaFields(spec.fields, 2)},`,
        '};',
      ),
      section(
        `export function decode${spec.name}(r: Reader, version: number): ${spec.name} {`,
        `  return read${spec.name}(r, version, ${spec.name}Info.isFlexible(version));`,
        '}',
      ),
      section(
        `export function encode${spec.name}(w: Writer, version: number, m: ${spec.name}): Writer {`,
        `  write${spec.name}(w, version, ${spec.name}Info.isFlexible(version), m);`,
        '  return w;',
        '}',
      ),
    ].filter((s) => s !== null);
    return `${head.join('\n\n')}\n\n${body.trimEnd()}\n`;
  }
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const apis = [];
/** First flexible version of each message (null: never flexible), for api-keys.ts. */
const flexibleFrom = new Map();
for (const file of readdirSync(specDir).filter((f) => f.endsWith('.json')).sort()) {
  const spec = JSON.parse(stripComments(readFileSync(join(specDir, file), 'utf8')));
  const mod = kebab(spec.name);
  writeFileSync(join(outDir, `${mod}.ts`), new Gen(spec).generate(basename(file)));
  const flexible = parseRange(spec.flexibleVersions);
  // api-keys.ts keeps only where flexibility starts; every spec so far has an open-ended range.
  if (flexible && flexible[1] !== Infinity) throw new Error(`${spec.name}: bounded flexibleVersions ${spec.flexibleVersions}`);
  flexibleFrom.set(spec.name, flexible ? flexible[0] : null);
  if (spec.type === 'request') apis.push({ name: spec.name.replace(/Request$/, ''), apiKey: spec.apiKey, mod });
}
apis.sort((a, b) => a.apiKey - b.apiKey);
const apiKeys = [
  '// Generated by tools/gen-protocol.mjs. Do not edit: run `npm run gen:protocol`.',
  '// Every API key of the protocol, the header versions of each, and its codecs loaded on demand.',
  `// index.ts imports the codecs of all ${apis.length} APIs, ${2 * apis.length} modules; a process that speaks a few`,
  '// APIs loads only theirs with loadApis() and keeps the memory the others would take.',
  "import { ProtocolError, type Reader, type Writer } from '../primitives.js';",
  '',
  'export const ApiKey = {',
  ...apis.map((a) => `  ${a.name}: ${a.apiKey},`),
  '} as const;',
  '',
  '/** Per API key: name, module stem, and the first flexible request and response versions (null: none). */',
  'const API_TABLE: Record<number, readonly [name: string, stem: string, requestFlexibleFrom: number | null, responseFlexibleFrom: number | null] | undefined> = {',
  ...apis.map(
    (a) =>
      `  ${a.apiKey}: ['${a.name}', '${a.mod.replace(/-request$/, '')}', ${flexibleFrom.get(`${a.name}Request`)}, ${flexibleFrom.get(`${a.name}Response`)}],`,
  ),
  '};',
  '',
  'function entry(apiKey: number) {',
  '  const e = API_TABLE[apiKey];',
  '  if (!e) throw new ProtocolError(`unknown api key ${apiKey}`);',
  '  return e;',
  '}',
  '',
  'const flexible = (from: number | null, version: number) => from !== null && version >= from;',
  '',
  '/** Header version of a request: 2 when the request version is flexible, else 1 (0 for ControlledShutdown v0). */',
  'export function requestHeaderVersion(apiKey: number, version: number): number {',
  '  const e = entry(apiKey);',
  '  if (apiKey === ApiKey.ControlledShutdown && version === 0) return 0;',
  '  return flexible(e[2], version) ? 2 : 1;',
  '}',
  '',
  '/**',
  ' * Header version of a response: 1 when the response version is flexible, else 0. ApiVersions',
  ' * always answers with header v0, so that a client can read it before it knows what the broker speaks.',
  ' */',
  'export function responseHeaderVersion(apiKey: number, version: number): number {',
  '  const e = entry(apiKey);',
  '  if (apiKey === ApiKey.ApiVersions) return 0;',
  '  return flexible(e[3], version) ? 1 : 0;',
  '}',
  '',
  'export interface MessageInfo {',
  '  apiKey: number;',
  '  name: string;',
  '  minVersion: number;',
  '  maxVersion: number;',
  '  isFlexible(version: number): boolean;',
  '}',
  '',
  "/** One entry of index.ts's `apis` table, with the messages' own types erased. */",
  'export interface ApiCodecs {',
  '  name: string;',
  '  request: MessageInfo;',
  '  response: MessageInfo;',
  '  decodeRequest(r: Reader, version: number): unknown;',
  '  encodeRequest(w: Writer, version: number, m: unknown): Writer;',
  '  decodeResponse(r: Reader, version: number): unknown;',
  '  encodeResponse(w: Writer, version: number, m: unknown): Writer;',
  '}',
  '',
  '/** Imports the codecs of these APIs only. */',
  'export async function loadApis(apiKeys: Iterable<number>): Promise<Map<number, ApiCodecs>> {',
  '  const loaded = await Promise.all(',
  '    [...apiKeys].map(async (apiKey): Promise<[number, ApiCodecs]> => {',
  '      const [name, stem] = entry(apiKey);',
  "      // Resolved at run time, by Node or by vitest: vite would otherwise try at transform time.",
  '      const [req, res] = await Promise.all([import(/* @vite-ignore */ `./${stem}-request.js`), import(/* @vite-ignore */ `./${stem}-response.js`)]);',
  '      return [',
  '        apiKey,',
  '        {',
  '          name,',
  '          request: req[`${name}RequestInfo`],',
  '          response: res[`${name}ResponseInfo`],',
  '          decodeRequest: req[`decode${name}Request`],',
  '          encodeRequest: req[`encode${name}Request`],',
  '          decodeResponse: res[`decode${name}Response`],',
  '          encodeResponse: res[`encode${name}Response`],',
  '        },',
  '      ];',
  '    }),',
  '  );',
  '  return new Map(loaded);',
  '}',
  '',
].join('\n');
writeFileSync(join(outDir, 'api-keys.ts'), apiKeys);
const index = [
  '// Generated by tools/gen-protocol.mjs. Do not edit: run `npm run gen:protocol`.',
  '// Every API key of the protocol with the request and response codecs of each (api-keys.ts',
  '// has the keys and header versions alone, and loads the codecs of chosen APIs).',
  ...apis.flatMap((a) => [
    `import * as ${a.name}Req from './${a.mod}.js';`,
    `import * as ${a.name}Res from './${a.mod.replace(/-request$/, '-response')}.js';`,
  ]),
  '',
  "export { ApiKey, requestHeaderVersion, responseHeaderVersion } from './api-keys.js';",
  '',
  'export const apis = {',
  ...apis.map(
    (a) =>
      `  ${a.apiKey}: { name: '${a.name}', request: ${a.name}Req.${a.name}RequestInfo, response: ${a.name}Res.${a.name}ResponseInfo, decodeRequest: ${a.name}Req.decode${a.name}Request, encodeRequest: ${a.name}Req.encode${a.name}Request, decodeResponse: ${a.name}Res.decode${a.name}Response, encodeResponse: ${a.name}Res.encode${a.name}Response },`,
  ),
  '} as const;',
  '',
].join('\n');
writeFileSync(join(outDir, 'index.ts'), index);
writeFileSync(
  join(outDir, 'schema.ts'),
  `// Generated by tools/gen-protocol.mjs. Do not edit: run \`npm run gen:protocol\`.
// The shape of the field tables (\`<Name>Schema\`) emitted next to each codec, for code that walks
// messages generically: property tests build values from them, debugging tools can print frames.

/** Inclusive [first, last] version; last is Infinity for "N+"; null for "none". */
export type VersionRange = readonly [first: number, last: number] | null;

export interface FieldSchema {
  /** Property name in the generated interface. */
  readonly name: string;
  /** Spec type: bool, int8..int64, uint16, uint32, float64, uuid, string, bytes, records, a struct name, or []elem. */
  readonly type: string;
  readonly versions: VersionRange;
  readonly nullableVersions?: VersionRange;
  readonly tag?: number;
  readonly taggedVersions?: VersionRange;
  /** Overrides the message's flexible versions for this field alone (RequestHeader.ClientId). */
  readonly flexibleVersions?: VersionRange;
  /** Fields of a struct or struct-array type. */
  readonly fields?: readonly FieldSchema[];
}

export interface MessageSchema {
  readonly name: string;
  readonly type: 'request' | 'response' | 'header' | 'data';
  readonly apiKey?: number;
  readonly validVersions: readonly [first: number, last: number];
  readonly flexibleVersions: VersionRange;
  readonly fields: readonly FieldSchema[];
}
`,
);
console.log(`generated ${apis.length} APIs into ${outDir}`);
