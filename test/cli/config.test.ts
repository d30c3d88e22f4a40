import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import { addSettings, envName, resolveSettings, settingsMarkdown, SETTINGS, ConfigError } from '../../services/cli/config.js';

const MAIN = 'dist/services/cli/main.js';

describe('configuration', () => {
  it('documents every setting in the README with its flag, variable and default', () => {
    expect(readFileSync('README.md', 'utf8')).toContain(settingsMarkdown());
    for (const s of SETTINGS) expect(envName(s.key)).toMatch(/^SKIFF_[A-Z0-9_]+$/);
  });

  it('takes a value from its SKIFF_ variable, and a flag over the variable', () => {
    process.env.SKIFF_FLUSH_MS = '77';
    try {
      const fromEnv = addSettings(new Command('dev'), 'dev').exitOverride().parse([], { from: 'user' }).opts();
      expect(resolveSettings(fromEnv, 'dev').flushMs).toBe(77);
      const fromFlag = addSettings(new Command('dev'), 'dev').exitOverride().parse(['--flush-ms', '5'], { from: 'user' }).opts();
      expect(resolveSettings(fromFlag, 'dev').flushMs).toBe(5);
    } finally {
      delete process.env.SKIFF_FLUSH_MS;
    }
  });

  it('refuses invalid values instead of falling back to defaults', () => {
    const opts = addSettings(new Command('dev'), 'dev').exitOverride().parse(['--port', 'ninety'], { from: 'user' }).opts();
    expect(() => resolveSettings(opts, 'dev')).toThrow(ConfigError);
    const bool = addSettings(new Command('dev'), 'dev').exitOverride().parse(['--auto-create-topics', 'maybe'], { from: 'user' }).opts();
    expect(() => resolveSettings(bool, 'dev')).toThrow(/true or false/);
  });

  it('exits with status 2 and a message naming the setting when started with an invalid value', () => {
    const r = spawnSync(process.execPath, [MAIN, 'dev', '--flush-ms', '-3'], { encoding: 'utf8', env: { ...process.env, SKIFF_DATA_DIR: '/nonexistent/never-used' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--flush-ms (SKIFF_FLUSH_MS)');
  });
});
