// Client/package.json: front-end projects depend on the client by path or tarball. Every entry it names exists,
// the ES module and CommonJS entries load and expose the API, and `npm pack` ships exactly the listed files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

function targets(entry) {
    if (typeof entry === 'string') return [entry];
    return Object.values(entry).flatMap(targets);
}

test('every file package.json names exists', () => {
    const named = [pkg.main, pkg.module, pkg.types, ...pkg.files, ...targets(pkg.exports)];
    for (const file of named) assert.ok(existsSync(path.join(root, file)), `${file} is missing`);
});

test('the ES module entry exports the API', async () => {
    const entry = pkg.exports['.'].import.default;
    const module = await import(pathToFileURL(path.join(root, entry)).href);
    assert.equal(typeof module.ClientStream, 'function');
    assert.equal(typeof module.HttpEndpoint, 'function');
    assert.equal(module.default.ClientStream, module.ClientStream);
});

test('the CommonJS entry exports the API', () => {
    const require = createRequire(import.meta.url);
    const Minerva = require(path.join(root, pkg.exports['.'].require.default));
    assert.equal(typeof Minerva.ClientStream, 'function');
});

test('npm pack ships exactly the listed files and package.json', { skip: !hasNpm() }, () => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    const shipped = JSON.parse(out)[0].files.map((f) => f.path).sort();
    assert.deepEqual(shipped, [...pkg.files, 'package.json'].sort());
});

function hasNpm() {
    try {
        execFileSync('npm', ['--version'], { stdio: 'ignore' });
        return true;
    } catch {
        return false;
    }
}

test('the shipped, minified minerva-client.js has the API surface of its source (names, function names, methods)', () => {
    const require = createRequire(import.meta.url);
    const surface = (file) => {
        const Minerva = require(path.join(root, file));
        const out = [];
        const walk = (object, prefix) => {
            for (const key of Object.keys(object).sort()) {
                const value = object[key];
                let entry = `${prefix}${key}: ${typeof value}`;
                if (typeof value === 'function') {
                    const methods = Object.getOwnPropertyNames(value.prototype || {}).sort();
                    entry += ` ${value.name} (${methods.join(', ')})`;
                }
                out.push(entry);
                if (value && typeof value === 'object') walk(value, prefix + key + '.');
            }
        };
        walk(Minerva, '');
        return out;
    };
    const shipped = surface('minerva-client.js');
    assert.ok(shipped.includes('ClientStream: function ClientStream (_abortTransports, _alive, _call, _callReset, ' +
        '_handleFrames, _hello, _late, _newPrimary, _openTransport, _openWs, _retryWs, _scheduleSend, _setConnectionState, ' +
        '_transportOffline, _trySend, _unsent, _uploadStalled, _writeStrings, bindToProtocol, constructor, ' +
        'dispose, getUserContext, reset, sendString, start)'), shipped.join('\n'));
    assert.deepEqual(shipped, surface('src/minerva-client.js'));
});
