/**
 * The CPU time every PostgreSQL process on this machine has used so far, in ms, read from /proc (Linux only; null
 * elsewhere): each process's own time plus that of the children it has reaped, so that the backends that have
 * exited count through the postmaster. Read at the start and end of a phase, the difference is what the server
 * spent on it. The bench runs one cluster at a time.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond = null;

export function serverCpuMs() {
  if (process.platform !== 'linux') return null;
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  let ticks = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ...: the name may hold spaces, the fields after the last ')' do not.
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    if (stat.slice(open + 1, close) !== 'postgres') continue;
    const fields = stat.slice(close + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 here (counted from the state, field 3).
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return (ticks * 1000) / ticksPerSecond;
}
