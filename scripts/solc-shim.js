#!/usr/bin/env node
// spotcheck-solc-shim: a native-solc-compatible front end for solc-js (WebAssembly).
//
// Why: the Solidity download site is unreachable here, so py-solc-x (ape-solidity) and
// svm (ezkl) cannot fetch a native solc. solc-js works, but its CLI is not a drop-in solc:
// it prints a banner before the JSON, truncates stdout at 64 KiB on pipes, fails on
// non-blocking stdin and rejects --allow-paths. This program answers only what those tools
// ask: `--version` and `--standard-json [--base-path P] [--include-path P] [--allow-paths P]`.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

function writeAll(fd, text) {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
    }
  }
}

function readStdin() {
  const chunks = [];
  const buf = Buffer.alloc(1 << 16);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      if (err.code === 'EAGAIN') continue;
      if (err.code === 'EOF') break;
      throw err;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const takeValue = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      i += 1;
      return argv[i];
    };
    if (a === '--version' || a === '-v') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a.startsWith('--base-path')) opts.basePath = takeValue();
    else if (a.startsWith('--include-path')) opts.includePaths.push(takeValue());
    else if (a.startsWith('--allow-paths')) opts.allowPaths.push(...String(takeValue()).split(','));
    else if (a === '-' ) { /* stdin marker */ }
    else {
      writeAll(2, `spotcheck-solc-shim: unsupported argument ${a} (only --version and --standard-json)\n`);
      process.exit(2);
    }
  }
  return opts;
}

function nativeVersion() {
  // solc-js reports e.g. 0.8.37+commit.abcdef.Emscripten.clang; native solc says .Linux.g++
  return solc.version().replace('Emscripten.clang', 'Linux.g++');
}

function makeImportCallback(opts) {
  const roots = [];
  if (opts.basePath) roots.push(path.resolve(opts.basePath));
  for (const p of opts.includePaths) roots.push(path.resolve(p));
  roots.push(process.cwd());
  roots.push(path.resolve(__dirname, '..', 'node_modules'));
  return (importPath) => {
    const candidates = path.isAbsolute(importPath) ? [importPath] : roots.map((r) => path.join(r, importPath));
    for (const c of candidates) {
      try {
        if (fs.statSync(c).isFile()) return { contents: fs.readFileSync(c, 'utf8') };
      } catch (_) { /* try next */ }
    }
    return { error: `File not found: ${importPath} (searched ${candidates.join(', ')})` };
  };
}

const opts = parseArgs(process.argv.slice(2));
if (opts.version) {
  writeAll(1, `solc, the solidity compiler commandline interface\nVersion: ${nativeVersion()}\n`);
  process.exit(0);
}
if (!opts.standardJson) {
  writeAll(2, 'spotcheck-solc-shim: use --standard-json (input on stdin) or --version\n');
  process.exit(2);
}
const input = readStdin();
const output = solc.compile(input, { import: makeImportCallback(opts) });
writeAll(1, output);
process.exit(0);
